//! An NTFS volume: boot sector, $MFT, $UpCase, label; path lookups as the scan does them (the
//! directory indexes), the files' data runs and data, and the free space from $Bitmap.
#![no_main]
use std::sync::Arc;
use libfuzzer_sys::fuzz_target;
use winre_core::ntfs::NtfsVolume;

const PATHS: &[&str] = &[
    r"Windows\System32\Recovery\ReAgent.xml",
    r"Recovery\WindowsRE\Winre.wim",
    r"dir\file.txt",
    r"big.bin",
];

fuzz_target!(|data: &[u8]| {
    let Ok(volume) = NtfsVolume::open(Arc::new(data.to_vec())) else { return };
    let _ = volume.label();
    for path in PATHS {
        let _ = volume.read_small_file(path, 64 * 1024);
        if let Ok(Some(file)) = volume.open_file(path) {
            let _ = file.data_runs();
            if let Ok(reader) = file.data_reader() {
                winre_fuzz::sample_reads(&reader);
            }
        }
    }
    for record in 0..16 {
        let _ = volume.open_record(record);
    }
    let _ = volume.free_space();
});

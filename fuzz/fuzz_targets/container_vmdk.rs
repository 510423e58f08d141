//! A VMDK. VMDKs open by path (a descriptor names extent files beside it), so the input goes to
//! a private scratch directory: a sparse extent ("KDMV") as disk.vmdk; otherwise the bytes up to
//! the first "\n--extent--\n" are a text descriptor (disk.vmdk) and the rest is extent.vmdk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_disk::container::{open, OpenOptions};

const SEPARATOR: &[u8] = b"\n--extent--\n";

fuzz_target!(|data: &[u8]| {
    let split = data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR);
    let dir = match split {
        Some(at) if !data.starts_with(b"KDMV") => winre_fuzz::write_files(&[
            ("disk.vmdk", &data[..at]),
            ("extent.vmdk", &data[at + SEPARATOR.len()..]),
        ]),
        _ => winre_fuzz::write_files(&[("disk.vmdk", data)]),
    };
    if let Ok(disk) = open(&dir.join("disk.vmdk"), &OpenOptions::default()) {
        winre_fuzz::sample_reads(disk.reader.as_ref());
    }
});

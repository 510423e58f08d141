//! One E01 segment file. EWF sets open by path (x.E01, x.E02, ...), so the input goes to a
//! private scratch directory as disk.E01; then the media is read at spread-out offsets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_disk::container::{open, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let dir = winre_fuzz::write_files(&[("disk.E01", data)]);
    if let Ok(disk) = open(&dir.join("disk.E01"), &OpenOptions::default()) {
        winre_fuzz::sample_reads(disk.reader.as_ref());
    }
});

//! A qcow2 container over the fuzz input (in memory), opened by magic, then read at spread-out
//! offsets (block / cluster tables followed, data read or decompressed).
#![no_main]
use std::sync::Arc;
use libfuzzer_sys::fuzz_target;
use winre_disk::container::{open_reader, OpenOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(disk) = open_reader(Arc::new(data.to_vec()), &OpenOptions::default()) {
        winre_fuzz::sample_reads(disk.reader.as_ref());
    }
});

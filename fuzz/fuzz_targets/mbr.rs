//! An MBR with its extended-partition chain, then the whole partition table reading of a raw
//! disk (MBR or GPT, overlap checks, file system probes).
#![no_main]
use std::sync::Arc;
use libfuzzer_sys::fuzz_target;
use winre_disk::container::raw;
use winre_disk::partition::{mbr, read_table};

fuzz_target!(|data: &[u8]| {
    if let Some(sector0) = data.get(..512) {
        let _ = mbr::parse(&data, sector0, 512);
        let _ = mbr::parse(&data, sector0, 4096);
    }
    let disk = raw::from_reader(Arc::new(data.to_vec()));
    let _ = read_table(&disk);
});

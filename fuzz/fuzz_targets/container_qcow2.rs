//! A qcow2 container over the fuzz input, opened by magic, then read at spread-out offsets
//! (block / cluster tables followed, data read or decompressed). An input holding
//! "\n--parent--\n" is a child and its backing file: written to a scratch directory as
//! disk.qcow2 and base.img and opened by path, so the chain code resolves the (fuzzed) backing
//! name: the base, a loop to the child itself, a hostile or absolute name.
#![no_main]
use std::sync::Arc;
use libfuzzer_sys::fuzz_target;
use winre_disk::container::{open, open_reader, OpenOptions};

const SEPARATOR: &[u8] = b"\n--parent--\n";

fuzz_target!(|data: &[u8]| {
    let opened = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => {
            let dir = winre_fuzz::write_files(&[
                ("disk.qcow2", &data[..at]),
                ("base.img", &data[at + SEPARATOR.len()..]),
            ]);
            open(&dir.join("disk.qcow2"), &OpenOptions::default())
        }
        None => open_reader(Arc::new(data.to_vec()), &OpenOptions::default()),
    };
    if let Ok(disk) = opened {
        winre_fuzz::sample_reads(disk.reader.as_ref());
    }
});

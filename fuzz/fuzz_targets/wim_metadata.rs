//! An image's metadata resource (uncompressed): security data, the dentry tree and its streams,
//! then a walk of the tree, path building, listing and lookups as `winre wim ls|cat` do them.
#![no_main]
use std::collections::HashMap;
use libfuzzer_sys::fuzz_target;
use winre_wim::Image;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::parse(data, 1, HashMap::new()) else { return };
    let mut budget = 10_000u32;
    image.walk(image.root().id, |d| {
        if budget > 0 {
            budget -= 1;
            let _ = image.entry_info(d);
            let _ = image.link_count(d);
            for s in d.streams() {
                let _ = image.stream_size_bytes(s);
            }
        }
    });
    for path in [r"Windows\System32\Recovery\ReAgent.xml", "dir/file.txt", "big.bin", "/"] {
        let _ = image.lookup(path);
    }
});

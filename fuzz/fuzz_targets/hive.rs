//! A registry hive: base block, bins, then a walk of keys and values (capped in depth and count).
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_hive::Hive;

fuzz_target!(|data: &[u8]| {
    let Ok(hive) = Hive::open(data) else { return };
    let _ = hive.health();
    if let Ok(root) = hive.root() {
        let mut budget = 4096;
        winre_fuzz::walk_key(&root, 16, &mut budget);
    }
    let _ = hive.key(r"Microsoft\Windows NT\CurrentVersion");
});

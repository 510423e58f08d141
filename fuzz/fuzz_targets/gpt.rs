//! A GPT (primary, then backup on damage) on a raw disk, for 512- and 4096-byte sectors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_disk::partition::gpt;

fuzz_target!(|data: &[u8]| {
    let _ = gpt::read(&data, 512);
    let _ = gpt::read(&data, 4096);
});

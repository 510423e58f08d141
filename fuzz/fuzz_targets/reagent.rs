//! ReAgent.xml (UTF-8 or UTF-16 with a BOM).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = winre_core::reagent::parse_reagent(data) {
        let _ = config.enabled();
    }
});

//! The WIM XML data (UTF-16LE with a BOM), for an image count taken from the first byte.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, xml)) = data.split_first() else { return };
    let _ = winre_wim::xml::parse(xml, 0, u32::from(count % 8));
});

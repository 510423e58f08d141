//! A PE image's version resource: headers, section table, resource tree, VS_VERSIONINFO (fixed
//! info, string tables, translations); the VS_VERSIONINFO parser also on the raw input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(info)) = winre_pe::read_version_info(data) {
        let _ = info.string("FileVersion");
    }
    let _ = winre_pe::version_info::parse(data, 0);
});

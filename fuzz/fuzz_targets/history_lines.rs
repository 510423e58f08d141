//! PowerShell history triage (`history::powershell::match_lines`) on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for m in winre_core::history::powershell::match_lines(&text) {
        assert!(m.line_number >= 1);
    }
});

//! The SOFTWARE hive's CurrentVersion values (WinREVersion, build, UBR, ...).
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_hive::Hive;

fuzz_target!(|data: &[u8]| {
    let Ok(hive) = Hive::open(data) else { return };
    let _ = winre_core::software::read_software_versions(&hive);
});

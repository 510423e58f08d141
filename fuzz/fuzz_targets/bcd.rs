//! A BCD store: {bootmgr} -> default loader -> recoverysequence -> the WinRE loader and its
//! ramdisk device element; the device element parser also on the raw input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_hive::Hive;

fuzz_target!(|data: &[u8]| {
    let _ = winre_core::bcd::parse_device_element(data);
    let Ok(hive) = Hive::open(data) else { return };
    if let Ok(bcd) = winre_core::bcd::read_bcd_winre(&hive) {
        let _ = winre_core::locate::ramdisk(&bcd);
    }
});

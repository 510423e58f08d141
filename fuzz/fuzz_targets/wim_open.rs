//! A whole WIM file: header, XML, blob table, integrity table, images' metadata, then `verify` (every blob's
//! chunks decoded and hashed, the integrity table checked).
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_wim::verify::{verify, VerifyOptions};
use winre_wim::Wim;

fuzz_target!(|data: &[u8]| {
    if let Ok(wim) = Wim::open(data) {
        let _ = winre_wim::WimInfo::new(&wim);
        if let Ok(Some(table)) = wim.integrity_table() {
            let _ = table.check(wim.reader(), &|_| {});
        }
        for index in 1..=2 {
            if let Ok(image) = winre_wim::Image::open(&wim, index) {
                let _ = image.lookup(r"Windows\System32\Recovery\ReAgent.xml");
            }
        }
    }
    let _ = verify(data, VerifyOptions::default(), &|_| {});
});

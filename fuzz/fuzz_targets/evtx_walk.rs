//! An event log walk (`history::evtx::read_log`, the `evtx` crate underneath) with the providers
//! `winre history` asks for, plus an empty name so that every chunk is parsed; then the typed
//! events built from what it kept.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use winre_core::history::{events, evtx};

fuzz_target!(|data: &[u8]| {
    let providers: [(&str, &[u32]); 4] = [
        (events::WU_PROVIDER, events::WU_IDS),
        (events::WINRE_AGENT_PROVIDER, events::WINRE_AGENT_IDS),
        (events::SERVICING_PROVIDER, events::SERVICING_IDS),
        ("", &[4104, 7036]),
    ];
    let Ok(read) = evtx::read_log(Arc::new(data.to_vec()), "fuzz.evtx", &providers) else {
        return;
    };
    for e in &read.events {
        let _ = events::update_event(e);
        let _ = events::agent_event(e);
        let _ = events::reboot_event(e);
    }
});

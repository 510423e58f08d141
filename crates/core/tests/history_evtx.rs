//! The event log walk against logs written by tests/support/evtx_writer.rs, each checked first
//! with python-evtx (an independent reader), and against real logs the `evtx` crate's repository
//! ships (tests/data/evtx-samples, see its README).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

#[path = "support/evtx_writer.rs"]
mod evtx_writer;

use std::path::Path;
use std::sync::Arc;

use evtx_writer::*;
use winre_core::history::events::{
    self, WINRE_AGENT_IDS, WINRE_AGENT_PROVIDER, WU_IDS, WU_PROVIDER,
};
use winre_core::history::evtx::read_log;

const APRIL_2025: u64 = 1_744_106_400; // 2025-04-08T10:00:00Z

fn system_log() -> Vec<Event> {
    let mut log = Vec::new();
    let mut id = 1;
    let mut push = |e: fn(u64) -> Event| {
        log.push(e(id));
        id += 1;
    };
    // Filler, then the April 2025 story, then more filler: three chunks at least.
    for _ in 0..500 {
        push(|id| scm(id, APRIL_2025 - 3600 + id, "Windows Update"));
    }
    push(|id| {
        wu(
            id,
            APRIL_2025,
            43,
            "2025-04 Update for Windows 10 Version 22H2 for x64-based Systems (KB5057589)",
            None,
        )
    });
    push(|id| {
        wu(
            id,
            APRIL_2025 + 60,
            20,
            "2025-04 Update for Windows 10 Version 22H2 for x64-based Systems (KB5057589)",
            Some(0x8007_0643),
        )
    });
    push(|id| {
        wu(
            id,
            APRIL_2025 + 61,
            19,
            "2025-04 Cumulative Update for Windows 10 Version 22H2 for x64-based Systems (KB5055518)",
            None,
        )
    });
    for _ in 0..500 {
        push(|id| scm(id, APRIL_2025 + 100 + id, "BITS"));
    }
    push(|id| {
        agent(
            id,
            APRIL_2025 + 7200,
            4501,
            &[("Version", Value::Str("10.0.19041.5728".into()))],
        )
    });
    push(|id| {
        agent(
            id,
            APRIL_2025 + 7300,
            4502,
            &[
                ("ErrorPhase", Value::U32(2)),
                ("Errorcode", Value::Hex32(0x8007_0070)),
            ],
        )
    });
    log
}

#[test]
fn written_log_reads_the_same_in_python_evtx_and_here() {
    let events = system_log();
    let bytes = write_log(&events);
    assert!(bytes.len() > 4096 + 2 * 65536, "several chunks");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("System.evtx");
    std::fs::write(&path, &bytes).unwrap();

    // The independent reader sees every record with its provider, id and fields.
    let theirs = python_evtx(&path, true);
    assert_eq!(theirs.len(), events.len());
    let failed = theirs.iter().find(|r| r.2 == 20).unwrap();
    assert_eq!(failed.1, WU_PROVIDER);
    assert_eq!(failed.3[0], ("errorCode".into(), "0x80070643".into()));
    assert!(failed.3[1].1.ends_with("(KB5057589)"));
    let agent_ok = theirs.iter().find(|r| r.2 == 4501).unwrap();
    assert_eq!(agent_ok.3, [("Version".into(), "10.0.19041.5728".into())]);

    // Ours keeps the wanted ones only, with the same ids and values.
    let read = read_log(
        Arc::new(bytes),
        "System.evtx",
        &[
            (WU_PROVIDER, WU_IDS),
            (WINRE_AGENT_PROVIDER, WINRE_AGENT_IDS),
        ],
    )
    .unwrap();
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    assert!(read.chunks >= 3);
    assert!(
        read.chunks_parsed < read.chunks,
        "chunks of filler only are skipped: {} of {}",
        read.chunks_parsed,
        read.chunks
    );
    let ids: Vec<u64> = read.events.iter().map(|e| e.record_id).collect();
    let expected: Vec<u64> = theirs
        .iter()
        .filter(|r| r.1 == WU_PROVIDER || r.1 == WINRE_AGENT_PROVIDER)
        .map(|r| r.0)
        .collect();
    assert_eq!(ids, expected);
    let updates: Vec<_> = read
        .events
        .iter()
        .filter_map(events::update_event)
        .collect();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[1].kind, "failed");
    assert_eq!(updates[1].error_code.as_deref(), Some("0x80070643"));
    assert_eq!(updates[1].kb.as_deref(), Some("KB5057589"));
    assert_eq!(updates[1].time, "2025-04-08T10:01:00Z");
    assert_eq!(updates[2].kb.as_deref(), Some("KB5055518"));
    let agent: Vec<_> = read.events.iter().filter_map(events::agent_event).collect();
    assert_eq!(agent[0].version.unwrap().to_string(), "10.0.19041.5728");
    assert_eq!(agent[1].error_phase, Some(2));
    assert_eq!(agent[1].error_code.as_deref(), Some("0x80070070"));
}

#[test]
fn damaged_chunk_is_reported_and_the_rest_read() {
    let events = system_log();
    let mut bytes = write_log(&events);
    // Break the second chunk's magic: that chunk is skipped with a message, the others read.
    bytes[4096 + 65536] = b'X';
    let read = read_log(
        Arc::new(bytes),
        "System.evtx",
        &[
            (WU_PROVIDER, WU_IDS),
            (WINRE_AGENT_PROVIDER, WINRE_AGENT_IDS),
        ],
    )
    .unwrap();
    assert!(!read.problems.is_empty());
    assert!(
        read.problems[0].contains("System.evtx"),
        "{:?}",
        read.problems
    );
    // Garbage is an error naming the log, not a panic.
    let err = read_log(Arc::new(vec![0x41u8; 10_000]), "Setup.evtx", &[]).unwrap_err();
    assert!(err.to_string().contains("Setup.evtx"), "{err}");
}

/// The real logs the `evtx` crate ships (tests/data/evtx-samples): every chunk is walked without
/// a panic, and what python-evtx finds of one provider we find too.
#[test]
fn real_sample_logs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/evtx-samples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("evtx") {
            continue;
        }
        seen += 1;
        let bytes = std::fs::read(&path).unwrap();
        if path.to_string_lossy().contains("LanguagePackSetup") {
            // python-evtx cannot render this one (it reads past the buffer); ours must walk it
            // without panicking, and find its records.
            let read = read_log(Arc::new(bytes), "sample", &[("", &[])]).unwrap();
            assert!(read.chunks >= 1);
            continue;
        }
        let theirs = python_evtx(&path, false);
        let provider = theirs.first().map(|r| r.1.clone()).unwrap_or_default();
        let ids: Vec<u32> = theirs
            .iter()
            .filter(|r| r.1 == provider)
            .map(|r| r.2)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let read = read_log(Arc::new(bytes), "sample", &[(&provider, &ids)]).unwrap();
        let ours: Vec<u64> = read.events.iter().map(|e| e.record_id).collect();
        let expected: Vec<u64> = theirs
            .iter()
            .filter(|r| r.1 == provider)
            .map(|r| r.0)
            .collect();
        assert_eq!(ours, expected, "{}", path.display());
    }
    assert!(seen >= 3, "samples in {}", dir.display());
}

/// Writes the System.evtx of benches/history-scan.sh (about 20 MiB, a Windows Update event in
/// every chunk, so no chunk is skipped) to `$WINRE_BENCH_EVTX`. Ignored: the bench runs it.
#[test]
#[ignore]
fn write_bench_system_log() {
    let Some(out) = std::env::var_os("WINRE_BENCH_EVTX") else {
        panic!("set WINRE_BENCH_EVTX to the file to write");
    };
    let mut events = Vec::new();
    let mut id = 1u64;
    while events.len() < 150_000 {
        let e = if id.is_multiple_of(400) {
            wu(
                id,
                APRIL_2025 + id,
                19,
                "2025-04 Security Intelligence Update (KB2267602)",
                None,
            )
        } else {
            scm(id, APRIL_2025 + id, "Windows Modules Installer")
        };
        events.push(e);
        id += 1;
    }
    let bytes = write_log(&events);
    std::fs::write(out, &bytes).unwrap();
}

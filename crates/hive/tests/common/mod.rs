//! Shared by the hive tests: builds the fixtures with fixtures/make-hives.sh (hivex) and reads
//! the expected values with libhivex-based tools, never with winre-hive itself.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Builds (or reuses) the hive fixtures; fails loudly when hivex is missing.
pub fn hives() -> PathBuf {
    let script = fixtures_dir().join("make-hives.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run fixtures/make-hives.sh");
    assert!(
        status.success(),
        "fixtures/make-hives.sh failed (needs python3-hivex and libhivex-bin)"
    );
    fixtures_dir().join("cache/hives")
}

pub fn hive_path(name: &str) -> PathBuf {
    hives().join(name)
}

/// The cell offsets make-hives.py recorded (file offsets).
pub fn offsets() -> HashMap<String, u64> {
    let text = std::fs::read_to_string(hives().join("offsets.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Runs a tool and returns its stdout, failing the test if it is missing or fails.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(std::process::Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}): install libhivex-bin"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

//! Helpers shared by the disk crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use winre_readat::ReadAt;

/// Runs `fixtures/NAME`, which builds (or reuses) its cached fixtures and fails loudly when a
/// tool is missing, and returns the directory it prints.
pub fn run_fixture_script(name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// SHA-256 of everything `reader` holds, read in chunks of 1 MiB + 1536 bytes so that reads
/// straddle block, grain and cluster boundaries.
pub fn sha256_of(reader: &dyn ReadAt) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; (1 << 20) + 1536];
    let mut offset = 0u64;
    while offset < reader.len() {
        let take = buf.len().min((reader.len() - offset) as usize);
        reader
            .read_exact_at(offset, &mut buf[..take])
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        hasher.update(&buf[..take]);
        offset += take as u64;
    }
    format!("{:x}", hasher.finalize())
}

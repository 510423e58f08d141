//! Helpers shared by the WIM integration tests: the fixtures and the wimlib-imagex oracle.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds (or reuses) the fixture WIMs and returns their directory.
pub fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/make-wims.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fixtures/make-wims.sh");
    assert!(
        out.status.success(),
        "make-wims.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The WIMs every reader must handle (single-part, non-solid, non-pipable).
pub const READABLE: &[&str] = &[
    "none.wim",
    "none-check.wim",
    "xpress.wim",
    "xpress-4k.wim",
    "xpress-64k.wim",
    "lzx.wim",
    "lzx-128k.wim",
    "lzx-2m.wim",
    "two-images.wim",
];

/// Runs a tool and returns its stdout; fails loudly when the tool is missing or fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test (apt: wimtools): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `key<sep>value` lines into a map (first occurrence wins), trimming both sides.
pub fn fields(text: &str, sep: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(sep) {
            map.entry(k.trim().to_owned())
                .or_insert_with(|| v.trim().to_owned());
        }
    }
    map
}

/// Blank-line separated blocks of `key<sep>value` lines.
pub fn blocks(text: &str, sep: &str) -> Vec<BTreeMap<String, String>> {
    text.split("\n\n")
        .map(|b| fields(b, sep))
        .filter(|m| !m.is_empty())
        .collect()
}

/// `wimlib-imagex info WIM`: the WIM fields and one map per image.
pub fn wimlib_info(wim: &Path) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let text = run("wimlib-imagex", &["info", wim.to_str().unwrap()]);
    let (head, images) = text
        .split_once("Available Images:")
        .expect("wimlib-imagex info output has images");
    let images = blocks(images, ":")
        .into_iter()
        .filter(|m| m.contains_key("Index"))
        .collect();
    (fields(head, ":"), images)
}

/// A FILETIME rendered the way wimlib-imagex prints it, by `date` (an independent clock).
pub fn wimlib_time(unix_seconds: i64) -> String {
    run(
        "date",
        &[
            "-u",
            "-d",
            &format!("@{unix_seconds}"),
            "+%a %b %d %H:%M:%S %Y UTC",
        ],
    )
    .trim()
    .to_owned()
}

/// Builds (or reuses) the tree WIMs of `fixtures/make-tree-wims.sh` and returns their directory.
pub fn tree_fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/make-tree-wims.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fixtures/make-tree-wims.sh");
    assert!(
        out.status.success(),
        "make-tree-wims.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The non-empty files `wimlib-imagex apply` writes for image `index` of `wim`, with their bytes
/// (the oracle the decoding tests compare blobs with).
pub fn wimlib_applied_files(wim: &Path, index: u32) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x");
    run(
        "wimlib-imagex",
        &[
            "apply",
            wim.to_str().unwrap(),
            &index.to_string(),
            dest.to_str().unwrap(),
        ],
    );
    let mut files = Vec::new();
    walk(&dest, &mut files);
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .filter(|(_, bytes)| !bytes.is_empty())
        .collect()
}

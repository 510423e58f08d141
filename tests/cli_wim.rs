//! `winre wim info` and `winre verify` as a user runs them: JSON output, text output, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-wims.sh");
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

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .unwrap()
}

fn wimlib(args: &[&str]) -> String {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("wimlib-imagex is required (apt: wimtools)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim_start_matches(':').trim())
        })
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn wim_info_json_agrees_with_wimlib() {
    let dir = fixtures();
    for name in ["none-check.wim", "two-images.wim", "xpress-4k.wim"] {
        let path = dir.join(name);
        let out = winre(&["wim", "info", "--json", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let theirs = wimlib(&["info", path.to_str().unwrap()]);
        assert_eq!(
            json["header"]["image_count"].to_string(),
            field(&theirs, "Image Count")
        );
        assert_eq!(
            json["header"]["chunk_size_bytes"].to_string(),
            field(&theirs, "Chunk Size").trim_end_matches(" bytes")
        );
        assert_eq!(
            json["header"]["boot_index"].to_string(),
            field(&theirs, "Boot Index")
        );
        assert_eq!(
            format!("0x{}", json["header"]["guid"].as_str().unwrap()),
            field(&theirs, "GUID")
        );
        assert_eq!(
            json["has_integrity_table"].as_bool().unwrap(),
            field(&theirs, "Attributes").contains("Integrity info")
        );
        let images = json["images"].as_array().unwrap();
        for image in images {
            let index = image["index"].as_u64().unwrap().to_string();
            let one = wimlib(&["info", path.to_str().unwrap(), &index]);
            assert_eq!(image["name"].as_str().unwrap(), field(&one, "Name"));
            assert_eq!(image["file_count"].to_string(), field(&one, "File Count"));
            if let Some(v) = image["version"].as_str() {
                let theirs = format!(
                    "{}.{}.{}.{}",
                    field(&one, "Major Version"),
                    field(&one, "Minor Version"),
                    field(&one, "Build"),
                    field(&one, "Service Pack Build")
                );
                assert_eq!(v, theirs);
            }
        }
    }
}

#[test]
fn wim_info_text_and_errors() {
    let dir = fixtures();
    let out = winre(&["wim", "info", dir.join("two-images.wim").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("10.0.19041.5728") && text.contains("10.0.22621.4317"),
        "{text}"
    );
    assert!(text.contains("Image 2 (bootable)"), "{text}");
    let out = winre(&["wim", "info", dir.join("split.swm").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported"));
    let out = winre(&["wim", "info", dir.join("pipable.wim").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pipable:          yes"));
    let out = winre(&["wim", "info", "/nonexistent.wim"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_exit_codes() {
    let dir = fixtures();
    let out = winre(&[
        "verify",
        "--json",
        "--threads",
        "2",
        dir.join("none-check.wim").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["intact"], true);
    assert!(json["integrity"]["chunk_count"].as_u64().unwrap() >= 1);
    assert!(json["failures"].as_array().unwrap().is_empty());

    // One flipped byte inside a file's data: corruption found, exit 1.
    let tmp = tempfile::tempdir().unwrap();
    let damaged = tmp.path().join("damaged.wim");
    let mut bytes = std::fs::read(dir.join("none.wim")).unwrap();
    bytes[4096] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let out = winre(&["verify", damaged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHA-1 mismatch"));
    // A tiny decode buffer budget (one chunk at a time) finds the same; a bad size is refused.
    let out = winre(&[
        "verify",
        "--buffer-memory",
        "1KiB",
        damaged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHA-1 mismatch"));
    let out = winre(&[
        "verify",
        "--buffer-memory",
        "lots",
        damaged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64), "a bad SIZE is a usage error");
    // wimlib agrees that it is damaged.
    let theirs = Command::new("wimlib-imagex")
        .args(["verify", damaged.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!theirs.status.success());

    // Not a WIM at all: exit 2.
    std::fs::write(&damaged, b"hello").unwrap();
    assert_eq!(
        winre(&["verify", damaged.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

//! `winre scan`, `winre check` and `winre extract` as a pipeline sees them: JSON lines, exit
//! codes, error records, and an extracted Winre.wim checked with ntfscat and wimlib-imagex.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-winre-disks.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-winre-disks.sh");
        assert!(status.success(), "fixtures/make-winre-disks.sh failed");
        root.join("cache/winre")
    })
}

fn img(name: &str) -> String {
    fixtures().join(format!("{name}.img")).display().to_string()
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn scan_json_one_line_per_image_and_an_error_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("not-a-disk.img");
    std::fs::write(&bogus, b"hello").expect("write");
    let after = img("gpt-after");
    let small = img("gpt-small");
    let out = winre(&[
        "scan",
        "--json",
        "--jobs",
        "2",
        &after,
        bogus.to_str().expect("path"),
        &small,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["source"]["path"], after.as_str());
    assert_eq!(lines[0]["winre"]["status"], "enabled");
    assert_eq!(lines[1]["source"]["path"], bogus.to_str().expect("path"));
    assert!(
        lines[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        lines[1]
    );
    assert!(lines[2]["recovery_space"]["shortfall"]
        .as_u64()
        .is_some_and(|s| s > 0));
}

#[test]
fn scan_exits_0_when_every_image_reads_and_prints_text() {
    let out = winre(&["scan", &img("gpt-after"), &img("none"), "--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("Windows RE status:    Enabled"), "{text}");
    assert!(text.contains("Windows RE status:    Not found"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bytes"),
        "--stats prints bytes read"
    );
}

#[test]
fn check_exit_codes() {
    let pass = winre(&["check", &img("gpt-after"), "--kb", "KB5057589"]);
    assert_eq!(pass.status.code(), Some(0), "{}", stdout(&pass));
    let fail = winre(&[
        "check",
        &img("gpt-after"),
        &img("gpt-small"),
        "--kb",
        "KB5057589",
    ]);
    assert_eq!(fail.status.code(), Some(1), "{}", stdout(&fail));
    let text = stdout(&fail);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("gpt-small.img: FAIL"))
            .count(),
        2,
        "{text}"
    );
    let version = winre(&[
        "check",
        &img("gpt-small"),
        "--min-version",
        "10.0.19041.3920",
        "--min-free",
        "50MiB",
    ]);
    assert_eq!(version.status.code(), Some(0), "{}", stdout(&version));
    let free = winre(&["check", &img("gpt-after"), "--min-free", "1GiB"]);
    assert_eq!(free.status.code(), Some(1), "{}", stdout(&free));
    let missing = winre(&["check", "/nonexistent/disk.img"]);
    assert_eq!(missing.status.code(), Some(2));
    let bad_size = winre(&["check", &img("gpt-after"), "--min-free", "lots"]);
    assert_eq!(
        bad_size.status.code(),
        Some(64),
        "a bad SIZE is a usage error"
    );
}

#[test]
fn extract_matches_ntfscat_and_verifies_with_wimlib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_wim = dir.path().join("winre.wim");
    let out_xml = dir.path().join("ReAgent.xml");
    let o = out_wim.to_str().expect("path");
    let x = out_xml.to_str().expect("path");
    let run = winre(&["extract", &img("fragmented"), "-o", o, "--reagent", x]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let extracted = std::fs::read(&out_wim).expect("extracted wim");
    let by_ntfscat = Command::new("ntfscat")
        .args([
            fixtures().join("fragmented.p4.img").to_str().expect("path"),
            "/Recovery/WindowsRE/Winre.wim",
        ])
        .output()
        .expect("ntfscat (apt-get install ntfs-3g)");
    assert!(by_ntfscat.status.success());
    assert_eq!(extracted, by_ntfscat.stdout);
    assert!(
        stdout(&run).starts_with(&sha256_hex(&extracted)),
        "{}",
        stdout(&run)
    );
    let verify = Command::new("wimlib-imagex")
        .args(["verify", o])
        .output()
        .expect("wimlib-imagex (apt-get install wimtools)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let reagent = std::fs::read(&out_xml).expect("ReAgent.xml");
    assert!(
        reagent.starts_with(b"\xef\xbb\xbf<?xml"),
        "ReAgent.xml keeps its BOM"
    );

    let again = winre(&["extract", &img("fragmented"), "-o", o]);
    assert_ne!(again.status.code(), Some(0), "refuses to overwrite");
    let forced = winre(&["extract", &img("gpt-after"), "-o", o, "--force"]);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let none = winre(&[
        "extract",
        &img("none"),
        "-o",
        dir.path().join("x.wim").to_str().expect("path"),
    ]);
    assert_eq!(none.status.code(), Some(2));
}

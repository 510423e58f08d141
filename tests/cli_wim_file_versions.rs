//! `winre wim info` reports the version resources of image 1's winpeshl.exe and winload.efi
//! (fixtures/make-pe.sh: PEs written by MinGW windres + ld, captured by wimlib-imagex) and
//! judges them against the WIM XML's version, set with `wimlib-imagex info --image-property`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-pe.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run make-pe.sh");
    assert!(
        out.status.success(),
        "make-pe.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
}

fn info_json(wim: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["wim", "info", "--json"])
        .arg(wim)
        .output()
        .expect("run winre");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The four numbers of the `keyword a,b,c,d` line of a resource script.
fn rc_version(rc: &Path, keyword: &str) -> String {
    let text = std::fs::read_to_string(rc).expect("read .rc");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(keyword))
        .unwrap_or_else(|| panic!("no {keyword} in {}", rc.display()));
    line.trim().replace(',', ".")
}

#[test]
fn versions_come_from_the_files_and_disagree_with_the_xml() {
    let dir = fixtures();
    let report = info_json(&dir.join("pe.wim"));
    let files = report["file_versions"].as_array().expect("file_versions");
    assert_eq!(files.len(), 2, "{files:?}");
    let winpeshl = &files[0];
    assert_eq!(winpeshl["path"], r"Windows\System32\winpeshl.exe");
    let rc = dir.join("winpeshl.exe.rc");
    assert_eq!(winpeshl["file_version"], rc_version(&rc, "FILEVERSION"));
    assert_eq!(
        winpeshl["product_version"],
        rc_version(&rc, "PRODUCTVERSION")
    );
    assert_eq!(winpeshl["compared"], "file_version");
    let winload = &files[1];
    assert_eq!(winload["path"], r"Windows\System32\winload.efi");
    assert_eq!(
        winload["product_version"],
        rc_version(&dir.join("winload.efi.rc"), "PRODUCTVERSION")
    );
    // The fixture's XML says SPBUILD 3000; the files say 3233 and 3235.
    assert_eq!(report["images"][0]["version"], "10.0.22621.3000");
    assert_eq!(winpeshl["agrees_with_xml"], false);
    assert_eq!(winload["agrees_with_xml"], false);
}

#[test]
fn versions_agree_once_the_xml_matches() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let wim = tmp.path().join("pe.wim");
    std::fs::copy(dir.join("pe.wim"), &wim).expect("copy");
    let status = Command::new("wimlib-imagex")
        .arg("info")
        .arg(&wim)
        .args(["1", "--image-property", "WINDOWS/VERSION/SPBUILD=3233"])
        .output()
        .expect("wimlib-imagex is needed for this test");
    assert!(status.status.success());
    let report = info_json(&wim);
    assert_eq!(report["images"][0]["version"], "10.0.22621.3233");
    assert_eq!(report["file_versions"][0]["agrees_with_xml"], true);
    // winload's product version is 3235: still not the XML's.
    assert_eq!(report["file_versions"][1]["agrees_with_xml"], false);
}

//! `winre disk cat` and `winre disk info --verify-container` on VMDK and E01 fixtures, checked
//! against sha256sum of the raw disk and ewfinfo's stored MD5.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-vmdk-ewf.sh");
    let out = Command::new(&script)
        .output()
        .expect("run make-vmdk-ewf.sh");
    assert!(
        out.status.success(),
        "make-vmdk-ewf.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .split_whitespace()
        .next()
        .expect("hash")
        .to_owned()
}

#[test]
fn disk_cat_of_vmdk_and_e01_equals_the_raw_disk() {
    let dir = fixtures();
    let expected = sha256sum(&dir.join("raw.img"));
    let tmp = tempfile::tempdir().expect("tempdir");
    for image in [
        "sparse.vmdk",
        "stream-footer.vmdk",
        "flat.vmdk",
        "split.E01",
        "e01-none.E01",
    ] {
        let out_path = tmp.path().join("out.raw");
        let out = std::fs::File::create(&out_path).expect("create");
        let status = Command::new(env!("CARGO_BIN_EXE_winre"))
            .args(["disk", "cat"])
            .arg(dir.join(image))
            .stdout(out)
            .status()
            .expect("run winre");
        assert!(status.success(), "disk cat {image}");
        assert_eq!(sha256sum(&out_path), expected, "{image}");
    }
}

#[test]
fn verify_container_checks_the_e01_md5_that_ewfinfo_reports() {
    let dir = fixtures();
    let image = dir.join("split.E01");
    let ewfinfo = Command::new("ewfinfo")
        .arg(&image)
        .output()
        .expect("ewfinfo (apt: ewf-tools)");
    let text = String::from_utf8_lossy(&ewfinfo.stdout).into_owned();
    let md5 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("MD5:").map(|v| v.trim().to_owned()))
        .expect("MD5 line in ewfinfo output");
    let out = winre(&[
        "disk",
        "info",
        "--json",
        "--verify-container",
        image.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let notes: Vec<&str> = json["container"]["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes.contains(&format!("stored MD5 {md5}").as_str()),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("MD5 verified")),
        "{notes:?}"
    );
    assert_eq!(json["container"]["format"], "ewf");

    // A flipped byte inside the media: --verify-container fails and names the chunk.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(dir.join("e01-none.E01")).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let damaged = tmp.path().join("e01-none.E01");
    std::fs::write(&damaged, &bytes).expect("write");
    let out = winre(&[
        "disk",
        "info",
        "--verify-container",
        damaged.to_str().expect("utf-8 path"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("EWF chunk") && stderr.contains("Adler-32"),
        "{stderr}"
    );
}

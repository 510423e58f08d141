//! Unclean Windows volumes: a dirty flag set by `ntfsfix` (it schedules a chkdsk that way) and a
//! live `\hiberfil.sys` put in by `ntfscp`, each checked with ntfs-3g's own tools (`ntfsinfo`
//! reports DIRTY, `ntfsfix` refuses a hibernated volume) before winre sees them. `scan` notes
//! them, `plan` and `resize` refuse to write such a volume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

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

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sparse copies of LAYOUT.img and of its partition image N in `dir`.
fn copies(dir: &Path, layout: &str, n: u32) -> (PathBuf, PathBuf) {
    let mut out = Vec::new();
    for name in [format!("{layout}.img"), format!("{layout}.p{n}.img")] {
        let dst = dir.join(&name);
        let cp = run(
            "cp",
            &["--sparse=always", s(&fixtures().join(&name)), s(&dst)],
        );
        assert!(cp.status.success());
        out.push(dst);
    }
    (out.remove(0), out.remove(0))
}

/// Writes partition image `part` back over partition `n` of `disk`, at the offset sfdisk gives.
fn put_back(disk: &Path, n: u32, part: &Path) {
    let dump = text(&run("sfdisk", &["-d", s(disk)]).stdout);
    let prefix = format!("{}{n} :", s(disk));
    let line = dump
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("partition in sfdisk -d");
    let start: u64 = line
        .split("start=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("start=");
    let dd = run(
        "dd",
        &[
            &format!("if={}", s(part)),
            &format!("of={}", s(disk)),
            "bs=512",
            &format!("seek={start}"),
            "conv=notrunc,sparse",
            "status=none",
        ],
    );
    assert!(dd.status.success(), "{}", text(&dd.stderr));
}

fn winre_json(args: &[&str]) -> (Value, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)));
    (v, out.status.code())
}

fn problem<'a>(scan: &'a Value, code: &str) -> Option<&'a str> {
    scan["problems"]
        .as_array()?
        .iter()
        .find(|p| p["code"] == code)
        .and_then(|p| p["message"].as_str())
}

#[test]
fn a_dirty_recovery_volume_is_noted_and_not_resized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (disk, part) = copies(dir.path(), "free-after", 4);
    let clean = text(&run("ntfsinfo", &["-f", "-i", "3", s(&part)]).stdout);
    assert!(clean.contains("Volume Flags:\t\t none set"), "{clean}");
    // ntfsfix marks the volume for chkdsk: the $Volume dirty flag.
    assert!(run("ntfsfix", &[s(&part)]).status.success());
    let dirty = text(&run("ntfsinfo", &["-f", "-i", "3", s(&part)]).stdout);
    assert!(dirty.contains("DIRTY (0x0001)"), "{dirty}");
    put_back(&disk, 4, &part);

    let (scan, code) = winre_json(&["scan", "--json", s(&disk)]);
    assert_eq!(code, Some(0), "a note, not a failure");
    let note = problem(&scan, "volume_dirty").unwrap_or_else(|| panic!("{scan:#}"));
    assert!(
        note.starts_with("partition 4: the NTFS dirty flag is set"),
        "{note}"
    );
    assert!(problem(&scan, "os_hibernated").is_none(), "{scan:#}");

    let (plan, code) = winre_json(&["plan", "--json", s(&disk)]);
    assert_eq!(code, Some(3), "{plan:#}");
    assert_eq!(plan["verdict"]["reason"], "volume_dirty", "{plan:#}");
    let digest = |p: &Path| text(&run("sha256sum", &[s(p)]).stdout);
    let original = digest(&disk);
    let resize = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["resize", s(&disk), "--apply"])
        .output()
        .expect("run winre");
    assert_eq!(resize.status.code(), Some(3), "{}", text(&resize.stderr));
    assert_eq!(digest(&disk), original, "the refused image is unchanged");
}

#[test]
fn a_hibernated_os_volume_is_noted_and_not_shrunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (disk, part) = copies(dir.path(), "shrink-free", 3);
    let hiberfil = dir.path().join("hiberfil.sys");
    let mut header = b"HIBR".to_vec();
    header.resize(64 << 10, 0);
    std::fs::write(&hiberfil, header).expect("write");
    let cp = run("ntfscp", &[s(&part), s(&hiberfil), "hiberfil.sys"]);
    assert!(cp.status.success(), "{}", text(&cp.stderr));
    // ntfs-3g refuses a read-write mount of it, as it does of a hibernated Windows.
    let check = dir.path().join("check.img");
    assert!(run("cp", &["--sparse=always", s(&part), s(&check)])
        .status
        .success());
    let fix = run("ntfsfix", &[s(&check)]);
    assert!(
        text(&fix.stderr).contains("Windows is hibernated"),
        "{}",
        text(&fix.stderr)
    );
    put_back(&disk, 3, &part);

    let (scan, code) = winre_json(&["scan", "--json", s(&disk)]);
    assert_eq!(code, Some(0));
    let note = problem(&scan, "os_hibernated").unwrap_or_else(|| panic!("{scan:#}"));
    assert!(note.contains(r#"starts with "HIBR""#), "{note}");
    assert!(problem(&scan, "volume_dirty").is_none(), "{scan:#}");

    let (plan, code) = winre_json(&["plan", "--json", s(&disk)]);
    assert_eq!(code, Some(3), "{plan:#}");
    assert_eq!(plan["verdict"]["reason"], "os_hibernated", "{plan:#}");
}

//! Read-only proof: every fixture input (disk images in every container format, their extent
//! and segment files, and every WIM) is made read-only (mode 0444), then `winre scan` (with
//! `--hash`, which reads all of Winre.wim), `check`, `extract`, `disk info`, `verify`,
//! `wim info`, `wim ls`, `wim cat` and `wim extract` run on it; afterwards each file's SHA-256, size, mtime and ctime must be what
//! they were. ctime changes on any write or metadata change, so it also catches a write that
//! restores the old mtime. Tests may run as root, for whom mode 0444 does not stop a write:
//! the hashes and times are the proof, the mode is a second fence for ordinary users.
//!
//! Each run must also end with one of winre's exit codes (0, 1 or 2), never by a signal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Runs a fixture script (which builds what is missing into fixtures/cache) and returns its
/// output directory.
fn build(script: &str, dir: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let status = Command::new("bash")
        .arg(root.join(script))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(status.success(), "fixtures/{script} failed");
    root.join("cache").join(dir)
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .filter(|p| keep(p.file_name().and_then(|n| n.to_str()).unwrap_or("")))
        .collect();
    files.sort();
    files
}

/// What must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    sha256: String,
    size: u64,
    mtime: (i64, i64),
}

fn ctime(path: &Path) -> (i64, i64) {
    let meta = std::fs::metadata(path).expect("metadata");
    (meta.ctime(), meta.ctime_nsec())
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = std::fs::metadata(path).expect("metadata");
    let mut file = std::fs::File::open(path).expect("open");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Snapshot {
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        size: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    }
}

/// Snapshots of `files`, hashed on all cores (gigabytes of sparse images).
fn snapshots(files: &[PathBuf]) -> Vec<Snapshot> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Snapshot)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        mine.push((i, snapshot(f)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing thread"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, s)| s).collect()
}

/// Makes files read-only and puts their modes back when dropped, also when the test fails.
struct ReadOnly(Vec<(PathBuf, u32)>);

impl ReadOnly {
    fn new(files: &[PathBuf]) -> Self {
        let mut saved = Vec::new();
        for f in files {
            let mode = std::fs::metadata(f).expect("metadata").permissions().mode();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o444)).expect("chmod");
            saved.push((f.clone(), mode));
        }
        ReadOnly(saved)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for (f, mode) in &self.0 {
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(*mode));
        }
    }
}

/// Runs winre; returns its exit code, failing the test if it died by a signal.
fn winre(args: &[&str]) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre");
    match out.status.code() {
        Some(code @ 0..=2) => code,
        other => panic!(
            "winre {args:?} ended with {other:?} (a signal or an unknown exit code); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn every_command_leaves_every_fixture_unchanged() {
    let winre_dir = build("make-winre-disks.sh", "winre");
    let wims_dir = build("make-wims.sh", "wims");
    let codec_dir = build("make-codec-wims.sh", "codec-v1");
    let containers_dir = build("make-containers.sh", "containers");
    let vmdk_ewf_dir = build("make-vmdk-ewf.sh", "vmdk-ewf");
    let pe_dir = build("make-pe.sh", "pe");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/winre-demo.qcow2");

    // Whole disks holding WinRE (not the per-partition copies kept for ntfscat).
    let winre_disks = files_in(&winre_dir, |n| {
        (n.ends_with(".img") && !n.contains(".p")) || n.ends_with(".wim")
    });
    let (wim_files, winre_disks): (Vec<_>, Vec<_>) = winre_disks
        .into_iter()
        .partition(|p| p.extension().is_some_and(|e| e == "wim"));
    // Every container file; qemu-img's raw conversions (the tests' oracles) are not inputs.
    let containers = files_in(&containers_dir, |n| {
        !n.ends_with(".raw") && !n.ends_with(".tsv")
    });
    let vmdk_ewf = files_in(&vmdk_ewf_dir, |n| {
        !n.ends_with(".raw") && n != "raw.img" && n != "big.img"
    });
    let mut wims = files_in(&wims_dir, |n| n.ends_with(".wim") || n.ends_with(".swm"));
    wims.extend(files_in(&codec_dir, |n| n.ends_with(".wim")));
    wims.extend(files_in(&pe_dir, |n| n.ends_with(".wim")));
    wims.extend(wim_files);

    let mut all: Vec<PathBuf> = Vec::new();
    all.extend(winre_disks.iter().cloned());
    all.push(demo.clone());
    all.extend(containers.iter().cloned());
    all.extend(vmdk_ewf.iter().cloned());
    all.extend(wims.iter().cloned());
    assert!(
        winre_disks.len() >= 10 && containers.len() >= 10 && vmdk_ewf.len() >= 10,
        "fixture sets are missing files: {} WinRE disks, {} containers, {} VMDK/E01 files",
        winre_disks.len(),
        containers.len(),
        vmdk_ewf.len()
    );

    let before = snapshots(&all);
    let guard = ReadOnly::new(&all);
    // chmod itself moved the ctimes: these are the ones nothing may move from here on.
    let ctimes: Vec<(i64, i64)> = all.iter().map(|f| ctime(f)).collect();

    let out = tempfile::tempdir().expect("tempdir");
    let mut disks: Vec<&Path> = winre_disks.iter().map(PathBuf::as_path).collect();
    disks.push(&demo);
    for (i, disk) in disks.iter().enumerate() {
        winre(&["scan", "--json", "--hash", s(disk)]);
        winre(&["check", "--kb", "KB5057589", s(disk)]);
        winre(&["disk", "info", s(disk)]);
        let wim_out = out.path().join(format!("{i}.wim"));
        let xml_out = out.path().join(format!("{i}.xml"));
        let code = winre(&[
            "extract",
            s(disk),
            "-o",
            s(&wim_out),
            "--reagent",
            s(&xml_out),
        ]);
        if code == 0 {
            winre(&["verify", s(&wim_out)]);
        }
    }
    // Containers of every format, sparse extents, descriptors and segment sets.
    let readable: Vec<&PathBuf> = containers
        .iter()
        .chain(vmdk_ewf.iter())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Extents and later segments are opened through their descriptor / first segment.
            !(n.contains("-f00")
                || n.contains("-s00")
                || (n.contains(".E0") && !n.ends_with(".E01")))
        })
        .collect();
    for image in &readable {
        winre(&["disk", "info", s(image)]);
        winre(&["scan", "--json", s(image)]);
    }
    for (i, wim) in wims.iter().enumerate() {
        winre(&["verify", s(wim)]);
        winre(&["wim", "info", s(wim)]);
        winre(&["wim", "ls", "--json", s(wim), "1"]);
        winre(&["wim", "cat", s(wim), "1", r"Windows\System32\winpeshl.exe"]);
        let dir = out.path().join(format!("wim-{i}"));
        winre(&["wim", "extract", s(wim), "1", "/", "-o", s(&dir)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    for ((f, _), was) in guard.0.iter().zip(&ctimes) {
        let mode = std::fs::metadata(f).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "{}: mode changed under winre", f.display());
        assert_eq!(
            ctime(f),
            *was,
            "{}: ctime changed (written or touched)",
            f.display()
        );
    }
    drop(guard);
    for ((f, was), now) in all.iter().zip(&before).zip(snapshots(&all)) {
        assert_eq!(now.sha256, was.sha256, "{}: content changed", f.display());
        assert_eq!(now.size, was.size, "{}: size changed", f.display());
        assert_eq!(now.mtime, was.mtime, "{}: mtime changed", f.display());
    }
}

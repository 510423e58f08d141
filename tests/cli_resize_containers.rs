//! `winre resize --apply` and `winre undo` on the containers written through qemu-nbd (qcow2,
//! qcow2 with a backing file, VHDX, VMDK sparse / flat / split, dynamic VHD), on a `--overlay`
//! and on a loop device, each made from the same raw fixture by `qemu-img convert`.
//!
//! The plan is deterministic, so `qemu-img convert -O raw` of each result must be byte-identical
//! to the result of the same resize on the raw image; `qemu-img check` must be clean, and the
//! raw checks (sgdisk -v, ntfsresize --info, ntfsfix -n, ntfscat + wimlib-imagex verify of
//! Winre.wim) must pass on the converted result. Killed at several points, `undo` must give back
//! what `qemu-img compare` calls identical, with no qemu-nbd left running.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The OS-shrink fixture (recovery partition right after the OS): the resize shrinks NTFS,
/// moves the recovery partition down (320 MiB copied), grows it, and rewrites the GPT and
/// ReAgent.xml, so every kind of write goes through qemu.
const FIXTURE: &str = "winre/gpt-after.img";
const MIN_FREE: &str = "350MiB";

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-resize-disks.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-resize-disks.sh");
        assert!(status.success(), "fixtures/make-resize-disks.sh failed");
        root.join("cache")
    })
}

fn have_qemu() -> bool {
    let ok = ["qemu-img", "qemu-nbd"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("skipped: qemu-img or qemu-nbd is not installed");
    }
    ok
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is missing: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The raw fixture copied (sparse) into `dir` as `name`.
fn raw_copy(dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    let st = Command::new("cp")
        .args(["--sparse=always", "-f"])
        .arg(fixtures().join(FIXTURE))
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

/// The raw result the containers must match, made once per test process.
fn raw_result() -> &'static Path {
    static RESULT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &RESULT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let img = raw_copy(dir.path(), "raw.img");
            let out = winre(&["resize", s(&img), "--apply", "--min-free", MIN_FREE]);
            assert!(out.status.success(), "raw resize: {}", text(&out.stderr));
            (dir, img)
        })
        .1
}

/// `qemu-img convert -f FORMAT -O raw`.
fn to_raw(image: &Path, format: &str, out: &Path) {
    run(
        "qemu-img",
        &["convert", "-f", format, "-O", "raw", s(image), s(out)],
    );
}

/// The first differing byte of two files, if any.
fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let out = Command::new("cmp").arg(a).arg(b).output().unwrap();
    if out.status.success() {
        return None;
    }
    let t = text(&out.stdout) + &text(&out.stderr);
    Some(
        t.split("byte ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(u64::MAX),
    )
}

/// Partition `n`'s (start, sectors) from sfdisk.
fn partition(img: &Path, n: usize) -> (u64, u64) {
    let out = run("sfdisk", &["--json", s(img)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["partitiontable"]["partitions"][n - 1];
    (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())
}

/// The checks of the raw case, on a raw image: GPT, both changed NTFS volumes, Winre.wim.
fn raw_checks(img: &Path, dir: &Path) {
    let sg = run("sgdisk", &["-v", s(img)]);
    assert!(
        text(&sg.stdout).contains("No problems found"),
        "sgdisk -v: {}",
        text(&sg.stdout)
    );
    for n in [3, 4] {
        let (start, size) = partition(img, n);
        let vol = dir.join(format!("p{n}.img"));
        run(
            "dd",
            &[
                &format!("if={}", s(img)),
                &format!("of={}", s(&vol)),
                "bs=512",
                &format!("skip={start}"),
                &format!("count={size}"),
                "conv=sparse",
                "status=none",
            ],
        );
        let info = run("ntfsresize", &["--info", "--force", "--no-action", s(&vol)]);
        assert!(!text(&info.stdout).contains("ERROR"));
        let fix = run("ntfsfix", &["--no-action", s(&vol)]);
        assert!(text(&fix.stdout).contains("processed successfully"));
        if n == 4 {
            let wim = dir.join("check.wim");
            let cat = run("ntfscat", &[s(&vol), "/Recovery/WindowsRE/Winre.wim"]);
            std::fs::write(&wim, cat.stdout).unwrap();
            run("wimlib-imagex", &["verify", s(&wim)]);
        }
        std::fs::remove_file(&vol).unwrap();
    }
}

/// qemu-nbd processes whose command line names something under `dir`.
fn qemu_nbd_under(dir: &Path) -> Vec<u32> {
    let needle = s(dir).as_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let is_qemu_nbd = cmdline
            .split(|&b| b == 0)
            .next()
            .is_some_and(|argv0| argv0.ends_with(b"qemu-nbd"));
        if is_qemu_nbd && cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(pid);
        }
    }
    found
}

/// No qemu-nbd serving anything under `dir` (waiting briefly: it closes the image first).
fn no_qemu_nbd_left(dir: &Path) {
    let started = std::time::Instant::now();
    while !qemu_nbd_under(dir).is_empty() && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        qemu_nbd_under(dir),
        Vec::<u32>::new(),
        "qemu-nbd left running"
    );
}

/// Converts the fixture to `format` (with `-o opts`), resizes it, and checks the result
/// against the raw resize, qemu-img check and the raw checks; then undoes it.
fn resize_container(format: &str, opts: &str, name: &str) {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "source.img");
    let image = dir.path().join(name);
    let mut args = vec!["convert", "-f", "raw", "-O", format];
    if !opts.is_empty() {
        args.extend_from_slice(&["-o", opts]);
    }
    args.extend_from_slice(&[s(&raw), s(&image)]);
    run("qemu-img", &args);
    let out = winre(&[
        "resize",
        s(&image),
        "--apply",
        "--json",
        "--min-free",
        MIN_FREE,
    ]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["case"], "shrink_os");
    no_qemu_nbd_left(dir.path());
    if format != "vpc" {
        // qemu-img check does not check vpc images.
        run("qemu-img", &["check", "-f", format, s(&image)]);
    }
    let converted = dir.path().join("converted.img");
    to_raw(&image, format, &converted);
    assert_eq!(
        first_difference(&converted, raw_result()),
        None,
        "{format}: the converted result differs from the raw resize"
    );
    raw_checks(&converted, dir.path());
    let out = winre(&["undo", s(&image)]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    no_qemu_nbd_left(dir.path());
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", format, "-F", "raw", s(&image), s(&raw)])
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "{format}: after undo: {}",
        text(&cmp.stdout)
    );
}

#[test]
fn qcow2_resize_matches_the_raw_resize() {
    resize_container("qcow2", "", "disk.qcow2");
}

#[test]
fn vhdx_resize_matches_the_raw_resize() {
    resize_container("vhdx", "", "disk.vhdx");
}

#[test]
fn sparse_vmdk_resize_matches_the_raw_resize() {
    resize_container("vmdk", "subformat=monolithicSparse", "disk.vmdk");
}

#[test]
fn flat_and_split_vmdk_resize_matches_the_raw_resize() {
    resize_container("vmdk", "subformat=monolithicFlat", "flat.vmdk");
    resize_container("vmdk", "subformat=twoGbMaxExtentSparse", "split.vmdk");
}

#[test]
fn dynamic_vhd_resize_matches_the_raw_resize() {
    resize_container("vpc", "subformat=dynamic,force_size=on", "disk.vhd");
}

/// A qcow2 whose unchanged clusters live in a raw backing file: only the qcow2 is written.
#[test]
fn qcow2_with_a_backing_file_resize_matches_the_raw_resize() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = raw_copy(dir.path(), "base.img");
    let base_sha = sha256_file(&base);
    let top = dir.path().join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "base.img",
            s(&top),
        ],
    );
    let out = winre(&["resize", s(&top), "--apply", "--min-free", MIN_FREE]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(sha256_file(&base), base_sha, "the backing file was written");
    run("qemu-img", &["check", s(&top)]);
    let converted = dir.path().join("converted.img");
    to_raw(&top, "qcow2", &converted);
    assert_eq!(first_difference(&converted, raw_result()), None);
    let out = winre(&["undo", s(&top)]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    run("qemu-img", &["compare", "-F", "raw", s(&top), s(&base)]);
    no_qemu_nbd_left(dir.path());
}

/// `--overlay`: the original keeps its SHA-256; the overlay holds the raw result.
#[test]
fn overlay_leaves_the_original_alone() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "source.img");
    let original = dir.path().join("vm.qcow2");
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&original)],
    );
    let original_sha = sha256_file(&original);
    let overlay = dir.path().join("vm-resized.qcow2");
    let out = winre(&[
        "resize",
        s(&original),
        "--apply",
        "--min-free",
        MIN_FREE,
        "--overlay",
        s(&overlay),
    ]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(sha256_file(&original), original_sha, "the original changed");
    let info = run("qemu-img", &["info", "--output=json", s(&overlay)]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["backing-filename-format"], "qcow2", "{info}");
    run("qemu-img", &["check", s(&overlay)]);
    let converted = dir.path().join("converted.img");
    to_raw(&overlay, "qcow2", &converted);
    assert_eq!(first_difference(&converted, raw_result()), None);
    // An existing overlay is never overwritten.
    let again = winre(&[
        "resize",
        s(&original),
        "--apply",
        "--min-free",
        MIN_FREE,
        "--overlay",
        s(&overlay),
    ]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert_eq!(sha256_file(&original), original_sha);
    no_qemu_nbd_left(dir.path());
}

/// A streamOptimized VMDK cannot be written in place: refused with the converting command.
#[test]
fn stream_optimized_vmdk_is_refused_with_the_command_that_converts_it() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "source.img");
    let vmdk = dir.path().join("stream.vmdk");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            s(&raw),
            s(&vmdk),
        ],
    );
    let sha = sha256_file(&vmdk);
    let out = winre(&["resize", s(&vmdk), "--apply", "--min-free", MIN_FREE]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("qemu-img convert -f vmdk -O vmdk -o subformat=monolithicSparse"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&vmdk), sha);
}

/// A qcow2 whose clusters in the regions to be written are compressed: refused.
#[test]
fn compressed_qcow2_clusters_are_refused_with_the_command_that_converts_them() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "source.img");
    let qcow = dir.path().join("compressed.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-f",
            "raw",
            "-O",
            "qcow2",
            s(&raw),
            s(&qcow),
        ],
    );
    let sha = sha256_file(&qcow);
    let out = winre(&["resize", s(&qcow), "--apply", "--min-free", MIN_FREE]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("compressed")
            && text(&out.stderr).contains("qemu-img convert -O qcow2"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&qcow), sha);
    assert!(!dir.path().join("compressed.qcow2.winre-journal").exists());
    no_qemu_nbd_left(dir.path());
}

/// Killed (the test hook aborts after the N-th write) at several points, then undone:
/// `qemu-img compare` with the original says identical and no qemu-nbd is left.
fn kill_then_undo(format: &str) {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "source.img");
    let pristine = dir.path().join(format!("pristine.{format}"));
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", format, s(&raw), s(&pristine)],
    );
    let image = dir.path().join(format!("work.{format}"));
    let journal = dir.path().join(format!("work.{format}.winre-journal"));
    // Journal header, a saved region, the last saved regions, the seal, the first moves, a late
    // move, the metadata writes.
    let mut aborted = 0;
    for n in [1u32, 2, 30, 50, 52, 53, 60, 75, 90, 200] {
        let _ = std::fs::remove_file(&journal);
        std::fs::copy(&pristine, &image).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_winre"))
            .args(["resize", s(&image), "--apply", "--min-free", MIN_FREE])
            .env("WINRE_TEST_STOP_AFTER_WRITE", n.to_string())
            .output()
            .unwrap();
        if !out.status.success() {
            assert_eq!(
                out.status.signal(),
                Some(6),
                "{format} step {n}: expected the abort hook: {}",
                text(&out.stderr)
            );
            aborted += 1;
        }
        no_qemu_nbd_left(dir.path());
        let undo = winre(&["undo", s(&image)]);
        assert!(
            undo.status.success(),
            "{format} step {n}: undo: {}",
            text(&undo.stderr)
        );
        no_qemu_nbd_left(dir.path());
        let cmp = Command::new("qemu-img")
            .args([
                "compare",
                "-f",
                format,
                "-F",
                format,
                s(&image),
                s(&pristine),
            ])
            .output()
            .unwrap();
        assert!(
            cmp.status.success(),
            "{format} step {n}: after undo: {}",
            text(&cmp.stdout)
        );
    }
    assert!(aborted >= 8, "only {aborted} runs were stopped by the hook");
}

#[test]
fn qcow2_killed_at_several_points_then_undone() {
    kill_then_undo("qcow2");
}

#[test]
fn vhdx_killed_at_several_points_then_undone() {
    kill_then_undo("vhdx");
}

/// A loop device over the raw fixture, written in place with `--device`; refused while another
/// process holds it open exclusively.
#[test]
fn loop_device_resize_matches_the_raw_resize() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_copy(dir.path(), "loop.img");
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&raw)
        .output();
    let device = match out {
        Ok(o) if o.status.success() => text(&o.stdout).trim().to_string(),
        Ok(o) => {
            eprintln!(
                "skipped: losetup could not attach a loop device: {}",
                text(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: losetup is not available: {e}");
            return;
        }
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _detach = Detach(device.clone());
    let journal = dir.path().join("loop.winre-journal");
    let args = [
        "resize",
        &device,
        "--apply",
        "--device",
        "--min-free",
        MIN_FREE,
        "--journal",
        s(&journal),
    ];
    {
        // O_EXCL (0o200 on Linux) claims the device, as a mount or another tool would.
        let _held = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            0o200,
        )
        .open(&device)
        .unwrap();
        let out = winre(&args);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("in use"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = winre(&["resize", &device, "--apply", "--min-free", MIN_FREE]);
    assert_eq!(out.status.code(), Some(3), "without --device");
    let out = winre(&args);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(first_difference(&raw, raw_result()), None);
    raw_checks(&raw, dir.path());
    let out = winre(&["undo", &device, "--device", "--journal", s(&journal)]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    assert_eq!(
        sha256_file(&raw),
        sha256_file(&fixtures().join(FIXTURE)),
        "undo did not restore the device"
    );
}

//! Inputs that are not plain image files: a FIFO, a directory and a character device are refused
//! at once by every reader command (a FIFO used to hang `scan`), a read-only loop device
//! (`losetup -r`) reads like the file under it, and `--parent` is accepted by every reader command.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn winre_bin() -> &'static str {
    env!("CARGO_BIN_EXE_winre")
}

/// Runs winre with a deadline: a command that blocks (on a FIFO) fails the test instead of
/// hanging it.
fn winre_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(winre_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run winre");
    // Drain the pipes while waiting, so a large output cannot stall the child.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("winre {args:?} still running after {limit:?}: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

fn winre(args: &[&str]) -> Output {
    winre_within(args, Duration::from_secs(60))
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed for this test: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("path")
}

/// Every command that reads a disk image, with the arguments it needs around IMAGE.
fn reader_commands(image: &str, out: &str) -> Vec<Vec<String>> {
    [
        vec!["scan", image],
        vec!["check", image],
        vec!["plan", image],
        vec!["extract", image, "-o", out],
        vec!["disk", "info", image],
        vec!["disk", "cat", image],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect()
}

#[test]
fn fifo_directory_and_char_device_are_refused_at_once_by_every_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("image.fifo");
    run("mkfifo", &[p(&fifo)]);
    let out = dir.path().join("out.wim");
    for (input, what) in [
        (fifo.as_path(), "FIFO"),
        (dir.path(), "directory"),
        (Path::new("/dev/null"), "character device"),
    ] {
        for args in reader_commands(p(input), p(&out)) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Without the check, opening the FIFO blocks until a writer comes: the deadline fails it.
            let output = winre_within(&args, Duration::from_secs(20));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(!output.status.success(), "{args:?} succeeded: {text}");
            assert!(
                text.contains(what) && text.contains(p(input)),
                "{args:?}: {text}"
            );
        }
    }
}

/// A small GPT disk made by sgdisk, with an NTFS-like nothing in it: enough for the table.
fn gpt_image(dir: &Path) -> PathBuf {
    let image = dir.join("disk.img");
    run("truncate", &["-s", "24M", p(&image)]);
    run(
        "sgdisk",
        &[
            "-n",
            "1:2048:+8M",
            "-t",
            "1:0700",
            "-n",
            "2:0:0",
            "-t",
            "2:2700",
            p(&image),
        ],
    );
    image
}

/// A read-only loop device over a file, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Result<Self, String> {
        let out = Command::new("losetup")
            .args(["-r", "-f", "--show", p(file)])
            .output()
            .map_err(|e| format!("losetup cannot run: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Self(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn loop_device_reads_like_the_file_under_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = gpt_image(dir.path());
    let device = match Loop::attach(&image) {
        Ok(device) => device,
        Err(reason) => {
            eprintln!("skipping: the kernel gives no loop device here ({reason})");
            return;
        }
    };
    let size: u64 = run("blockdev", &["--getsize64", &device.0])
        .trim()
        .parse()
        .expect("size");
    assert_eq!(size, 24 << 20);
    let info = |path: &str| -> serde_json::Value {
        let out = winre(&["disk", "info", "--json", path]);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let (from_file, from_device) = (info(p(&image)), info(&device.0));
    assert_eq!(from_device["container"]["virtual_size"], size);
    assert_eq!(from_device["partition_table"], from_file["partition_table"]);
    assert_eq!(from_device["partitions"], from_file["partitions"]);
    // scan reads it too (no WinRE in it, but the disk and its table).
    let out = winre(&["scan", "--json", &device.0]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["source"]["disk_size"], size, "{report}");
    assert_eq!(report["partition_table"]["scheme"], "gpt");
    // disk cat streams the device's bytes: compare with the file.
    let out = winre(&["disk", "cat", "--partition", "1", &device.0]);
    assert!(out.status.success());
    let bytes = std::fs::read(&image).expect("read");
    assert_eq!(out.stdout, bytes[2048 * 512..(2048 + 16384) * 512]);
}

/// raw base <- mid.qcow2 <- top.qcow2, the base renamed so only --parent can find it.
fn chain(dir: &Path) -> (PathBuf, PathBuf) {
    let base = gpt_image(dir);
    let mid = dir.join("mid.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "disk.img",
            "-F",
            "raw",
            p(&mid),
        ],
    );
    let top = dir.join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            p(&top),
        ],
    );
    let moved = dir.join("renamed-base.img");
    std::fs::rename(&base, &moved).expect("rename");
    (top, moved)
}

#[test]
fn parent_flag_is_accepted_by_every_reader_and_the_chain_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (top, base) = chain(dir.path());
    let mid = dir.path().join("mid.qcow2");
    let out_wim = dir.path().join("out.wim");
    for args in reader_commands(p(&top), p(&out_wim)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Without --parent: the missing base is named, and the hint is a flag the command has.
        let output = winre(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("\"disk.img\"") && text.contains("--parent"),
            "{args:?}: {text}"
        );
        // With the whole chain given, nearest first, the command gets past opening the disk.
        let mut with = args.clone();
        with.extend(["--parent", p(&mid), "--parent", p(&base)]);
        let output = winre(&with);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains("parent disk") && !text.contains("unexpected argument"),
            "{with:?}: {text}"
        );
    }
    let out = winre(&[
        "scan",
        "--json",
        p(&top),
        "--parent",
        p(&mid),
        "--parent",
        p(&base),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let chain = report["source"]["chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 2, "{report}");
    assert_eq!(chain[0]["path"], p(&mid));
    assert_eq!(chain[0]["format"], "qcow2");
    assert_eq!(chain[0]["given"], true);
    assert_eq!(chain[1]["path"], p(&base));
    assert_eq!(chain[1]["format"], "raw");
    assert_eq!(chain[1]["recorded"], "disk.img");
    // The text output names the parents too.
    let out = winre(&[
        "disk",
        "info",
        p(&top),
        "--parent",
        p(&mid),
        "--parent",
        p(&base),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Parent: {} (qcow2, given with --parent)", p(&mid))),
        "{text}"
    );
    // And the table reads as the base's, as qemu-img sees the top.
    let raw = dir.path().join("top.raw");
    std::fs::rename(&base, dir.path().join("disk.img")).expect("rename back");
    run(
        "qemu-img",
        &["convert", "-f", "qcow2", "-O", "raw", p(&top), p(&raw)],
    );
    let out = winre(&["disk", "cat", p(&top)]);
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(&raw).expect("read"));
}

//! The qemu-nbd route of `ImageFile`: bytes written through our NBD client are what
//! `qemu-img convert` reads back, `qemu-img check` stays clean, and qemu-nbd is gone after
//! close. Skipped with a printed reason where qemu-img / qemu-nbd are not installed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

use winre_patch::guest::GuestWriter;
use winre_patch::image::{ImageFile, ImageKind};

fn have_qemu() -> bool {
    let ok = winre_patch::qemu::find_program("qemu-img").is_some()
        && winre_patch::qemu::find_program("qemu-nbd").is_some();
    if !ok {
        eprintln!("skipped: qemu-img or qemu-nbd is not installed");
    }
    ok
}

fn qemu_img(args: &[&str]) -> std::process::Output {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn alive(pid: u32) -> bool {
    // A zombie is reaped by close(); anything left in /proc/PID is a live process.
    Path::new(&format!("/proc/{pid}")).exists()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn round_trip(format: &str, create_opts: &[&str], kind: ImageKind) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join(format!("disk.{format}"));
    let image_s = image.to_str().unwrap();
    let mut args = vec!["create", "-q", "-f", format];
    args.extend_from_slice(create_opts);
    args.extend_from_slice(&[image_s, "64M"]);
    qemu_img(&args);
    let img = ImageFile::open(&image, false).unwrap();
    assert_eq!(img.kind(), kind);
    assert_eq!(img.disk_len(), 64 << 20);
    let GuestWriter::Nbd(nbd) = img.guest() else {
        panic!("{format} is not written through qemu-nbd");
    };
    let pid = nbd.server_pid().unwrap();
    // Unaligned, crossing several NBD requests, and one small write far out.
    let big = pattern(9 * 1024 * 1024 + 123, 7);
    img.write_at(1_000_001, &big).unwrap();
    img.write_at((64 << 20) - 512, &pattern(512, 99)).unwrap();
    img.sync().unwrap();
    let mut back = vec![0u8; big.len()];
    img.read_at(1_000_001, &mut back).unwrap();
    assert_eq!(back, big);
    assert!(img.write_at((64 << 20) - 511, &[0u8; 512]).is_err());
    img.close().unwrap();
    assert!(!alive(pid), "qemu-nbd {pid} still runs after close");

    let raw = dir.path().join("out.raw");
    qemu_img(&[
        "convert",
        "-f",
        format,
        "-O",
        "raw",
        image_s,
        raw.to_str().unwrap(),
    ]);
    let out = std::fs::read(&raw).unwrap();
    assert_eq!(&out[1_000_001..1_000_001 + big.len()], &big[..]);
    assert_eq!(&out[(64 << 20) - 512..], &pattern(512, 99)[..]);
    assert!(out[..1_000_001].iter().all(|&b| b == 0));
    if format != "vpc" {
        qemu_img(&["check", "-f", format, image_s]);
    }
}

#[test]
fn qcow2_written_through_qemu_nbd() {
    if have_qemu() {
        round_trip("qcow2", &[], ImageKind::Qcow2);
    }
}

#[test]
fn vhdx_written_through_qemu_nbd() {
    if have_qemu() {
        round_trip("vhdx", &[], ImageKind::Vhdx);
    }
}

#[test]
fn vmdk_sparse_written_through_qemu_nbd() {
    if have_qemu() {
        round_trip(
            "vmdk",
            &["-o", "subformat=monolithicSparse"],
            ImageKind::Vmdk,
        );
    }
}

#[test]
fn split_vmdk_written_through_qemu_nbd() {
    if have_qemu() {
        round_trip(
            "vmdk",
            &["-o", "subformat=twoGbMaxExtentSparse"],
            ImageKind::Vmdk,
        );
    }
}

#[test]
fn dynamic_vhd_written_through_qemu_nbd() {
    if have_qemu() {
        round_trip(
            "vpc",
            &["-o", "subformat=dynamic,force_size=on"],
            ImageKind::DynamicVhd,
        );
    }
}

/// qemu-nbd without --persistent exits when its client goes away, also when the client is
/// killed: a child process opens the image through qemu-nbd and is SIGKILLed.
#[test]
fn qemu_nbd_exits_when_the_client_is_killed() {
    if !have_qemu() {
        return;
    }
    if std::env::var_os("WINRE_GUEST_NBD_CHILD").is_some() {
        let image = std::env::var_os("WINRE_GUEST_NBD_IMAGE").unwrap();
        let img = ImageFile::open(Path::new(&image), false).unwrap();
        let GuestWriter::Nbd(nbd) = img.guest() else {
            panic!("not through qemu-nbd");
        };
        println!("qemu-nbd pid {}", nbd.server_pid().unwrap());
        img.write_at(4096, &[1u8; 4096]).unwrap();
        img.sync().unwrap();
        println!("written");
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        image.to_str().unwrap(),
        "16M",
    ]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "qemu_nbd_exits_when_the_client_is_killed",
            "--nocapture",
        ])
        .env("WINRE_GUEST_NBD_CHILD", "1")
        .env("WINRE_GUEST_NBD_IMAGE", &image)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut pid = None;
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0 {
        if let Some(p) = line.trim().strip_prefix("qemu-nbd pid ") {
            pid = Some(p.parse::<u32>().unwrap());
        }
        if line.trim() == "written" {
            break;
        }
        line.clear();
    }
    let pid = pid.expect("the child printed no qemu-nbd pid");
    assert!(alive(pid));
    child.kill().unwrap();
    child.wait().unwrap();
    let started = std::time::Instant::now();
    while alive(pid) && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(pid), "qemu-nbd {pid} outlived its killed client");
    // The write the killed client flushed is in the image, and the image is consistent.
    qemu_img(&["check", "-f", "qcow2", image.to_str().unwrap()]);
    let raw = dir.path().join("out.raw");
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        image.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let out = std::fs::read(&raw).unwrap();
    assert!(out[4096..8192].iter().all(|&b| b == 1));
}

//! VHD, VHDX and qcow2 containers made by qemu-img (fixtures/make-containers.sh): reading the
//! whole guest through our `ReadAt` must give the bytes qemu-img reads (`qemu-img convert -O raw`,
//! hashed by the fixture script), with the virtual size `qemu-img info` reports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use winre_disk::container::{self, Disk, Format, OpenOptions};
use winre_readat::{FileReader, ReadAt};

/// Builds (or reuses) the fixtures of `fixtures/make-containers.sh`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::run_fixture_script("make-containers.sh"))
}

struct Expected {
    name: String,
    sha256: String,
    oracle_len: u64,
    virtual_size: u64,
}

fn manifest() -> Vec<Expected> {
    let text = std::fs::read_to_string(fixtures().join("manifest.tsv")).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Expected {
                name: f[0].into(),
                sha256: f[1].into(),
                oracle_len: f[2].parse().unwrap(),
                virtual_size: f[3].parse().unwrap(),
            }
        })
        .collect()
}

fn options_for(name: &str) -> OpenOptions {
    let parent = match name {
        "qcow2-child.qcow2" => Some(fixtures().join("base.raw")),
        "qcow2-child-of-qcow2.qcow2" => Some(fixtures().join("qcow2-v3.qcow2")),
        _ => None,
    };
    OpenOptions {
        parents: parent.into_iter().collect(),
        ..OpenOptions::default()
    }
}

fn open(name: &str) -> Disk {
    container::open(&fixtures().join(name), &options_for(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_container_reads_like_qemu_img() {
    let entries = manifest();
    assert!(
        entries.len() >= 14,
        "manifest has {} entries",
        entries.len()
    );
    for e in entries {
        let disk = open(&e.name);
        assert_eq!(
            disk.info.virtual_size, e.virtual_size,
            "{}: virtual size vs qemu-img info",
            e.name
        );
        assert_eq!(
            disk.reader.len(),
            e.oracle_len,
            "{}: guest length vs qemu-img convert",
            e.name
        );
        assert_eq!(
            common::sha256_of(disk.reader.as_ref()),
            e.sha256,
            "{}: guest bytes vs qemu-img convert -O raw",
            e.name
        );
        let (format, variant, sector) = match e.name.as_str() {
            "vhd-fixed.vhd" => (Format::Vhd, "fixed", 512),
            "vhd-dynamic.vhd" => (Format::Vhd, "dynamic", 512),
            "vhdx-fixed.vhdx" => (Format::Vhdx, "fixed", 512),
            "vhdx-4k.vhdx" => (Format::Vhdx, "dynamic", 4096),
            n if n.starts_with("vhdx-") => (Format::Vhdx, "dynamic", 512),
            "qcow2-v2.qcow2" => (Format::Qcow2, "v2", 512),
            n if n.starts_with("qcow2-") => (Format::Qcow2, "v3", 512),
            n => panic!("unexpected fixture {n}"),
        };
        assert_eq!(
            (
                disk.info.format,
                disk.info.variant.as_str(),
                disk.info.sector_size
            ),
            (format, variant, sector),
            "{}",
            e.name
        );
    }
}

/// Reads at many offsets and lengths from several threads at once and compares with base.raw,
/// the image the containers were made from.
#[test]
fn concurrent_small_reads_match_the_source_image() {
    let base = Arc::new(FileReader::open(fixtures().join("base.raw")).unwrap());
    for name in [
        "vhd-dynamic.vhd",
        "vhdx-1m.vhdx",
        "qcow2-compressed.qcow2",
        "qcow2-512.qcow2",
    ] {
        let disk = open(name);
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let (disk, base) = (&disk, Arc::clone(&base));
                scope.spawn(move || {
                    // A simple LCG so each thread walks different offsets, reproducibly.
                    let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t + 1);
                    for _ in 0..300 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let len = 1 + (x >> 40) as usize % 200_000;
                        let offset = (x >> 8) % (base.len() - len as u64);
                        let mut ours = vec![0u8; len];
                        let mut theirs = vec![0u8; len];
                        disk.reader.read_exact_at(offset, &mut ours).unwrap();
                        base.read_exact_at(offset, &mut theirs).unwrap();
                        assert!(ours == theirs, "{name}: {len} bytes at {offset} differ");
                    }
                });
            }
        });
    }
}

/// 5 GiB sparse guests: compare the written regions and a stride of samples with qemu-img's
/// raw conversion (kept sparse by the fixture script), without hashing 5 GiB.
#[test]
fn large_sparse_guests_match_qemu_img_by_range() {
    const MIB: u64 = 1 << 20;
    for (name, oracle) in [
        ("big-vhd.vhd", "big-vhd.raw"),
        ("big-vhdx.vhdx", "big-vhdx.raw"),
        ("big-qcow2.qcow2", "big-qcow2.raw"),
    ] {
        let disk = open(name);
        let raw = FileReader::open(fixtures().join(oracle)).unwrap();
        assert_eq!(disk.reader.len(), raw.len(), "{name}");
        let mut ranges: Vec<(u64, u64)> = vec![
            (0, 2 * MIB),
            (2048 * MIB - 8192, 3 * MIB),
            (4096 * MIB - 4096, 5 * MIB),
        ];
        ranges.push((raw.len() - 4 * MIB, 4 * MIB));
        ranges.extend((0..raw.len() / (97 * MIB)).map(|i| (i * 97 * MIB + 12345, 64 * 1024)));
        for (offset, len) in ranges {
            let mut ours = vec![0u8; len as usize];
            let mut theirs = vec![0u8; len as usize];
            disk.reader.read_exact_at(offset, &mut ours).unwrap();
            raw.read_exact_at(offset, &mut theirs).unwrap();
            assert!(
                ours == theirs,
                "{name}: {len} bytes at {offset} differ from qemu-img's"
            );
        }
    }
}

#[test]
fn reads_past_the_end_fail() {
    for name in [
        "vhd-fixed.vhd",
        "vhd-dynamic.vhd",
        "vhdx-1m.vhdx",
        "qcow2-v3.qcow2",
    ] {
        let disk = open(name);
        let mut b = [0u8; 2];
        let err = disk
            .reader
            .read_exact_at(disk.reader.len() - 1, &mut b)
            .unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "{name}: {err}"
        );
    }
}

#[test]
fn backing_file_is_followed_from_its_recorded_name() {
    for (name, recorded) in [
        ("qcow2-child.qcow2", "base.raw"),
        ("qcow2-child-of-qcow2.qcow2", "qcow2-v3.qcow2"),
    ] {
        let disk = container::open(&fixtures().join(name), &OpenOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(disk.info.chain.len(), 1, "{name}");
        assert_eq!(disk.info.chain[0].recorded, recorded);
        assert!(!disk.info.chain[0].given);
        assert_eq!(
            disk.info.chain[0].path,
            fixtures().join(recorded).display().to_string()
        );
    }
}

#[test]
fn detection_ignores_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("vhd-dynamic.vhd", Format::Vhd),
        ("vhdx-1m.vhdx", Format::Vhdx),
        ("qcow2-v2.qcow2", Format::Qcow2),
    ] {
        let renamed = dir.path().join(format!("{name}.img"));
        std::fs::copy(fixtures().join(name), &renamed).unwrap();
        assert_eq!(
            container::open(&renamed, &OpenOptions::default())
                .unwrap()
                .info
                .format,
            format
        );
    }
    assert_eq!(
        container::open(&fixtures().join("base.raw"), &OpenOptions::default())
            .unwrap()
            .info
            .format,
        Format::Raw
    );
}

//! `ReadAt::known_zero` on every container qemu-img writes (fixtures/make-containers.sh and
//! fixtures/make-vmdk-ewf.sh), checked against `qemu-img map --output=json` as the independent
//! oracle: a range qemu-img maps as data (`"zero": false, "data": true`) must never be known
//! zero, and a range it maps as zeros (`"zero": true`: a hole, an unallocated or zero cluster
//! with nothing beneath it, a hole in a flat extent) must be known zero, so that `disk cat`
//! skips it. Those ranges must also read as zeros.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use winre_disk::container::{self, OpenOptions};
use winre_readat::{FileReader, ReadAt};

/// One entry of `qemu-img map --output=json`.
struct MapEntry {
    start: u64,
    length: u64,
    data: bool,
    zero: bool,
}

fn qemu_map(image: &Path) -> Vec<MapEntry> {
    let out = Command::new("qemu-img")
        .args(["map", "--output=json"])
        .arg(image)
        .output()
        .expect("qemu-img (apt: qemu-utils) must be installed");
    assert!(
        out.status.success(),
        "qemu-img map {}: {}",
        image.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| MapEntry {
            start: e["start"].as_u64().unwrap(),
            length: e["length"].as_u64().unwrap(),
            data: e["data"].as_bool().unwrap(),
            zero: e["zero"].as_bool().unwrap(),
        })
        .collect()
}

/// Checks one image; returns (bytes qemu maps as data, bytes it maps as not data).
fn check(image: &Path, parent: Option<PathBuf>) -> (u64, u64) {
    let name = image.display();
    let disk = container::open(
        image,
        &OpenOptions {
            parents: parent.into_iter().collect(),
            ..OpenOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let reader = disk.reader.as_ref();
    let (mut data_bytes, mut hole_bytes) = (0, 0);
    for e in qemu_map(image) {
        let end = e.start + e.length;
        // qemu rounds a VHD up to its CHS geometry; we stop at the footer's current size.
        let end = end.min(reader.len());
        if e.start >= end {
            continue;
        }
        if e.data && !e.zero {
            data_bytes += end - e.start;
            // Every 4 KiB piece of a data range (at most 512 of them, spread over the range)
            // must not be known zero, nor any range that straddles its edges.
            let pieces = (end - e.start).div_ceil(4096);
            let step = pieces.div_ceil(512).max(1);
            for i in (0..pieces).step_by(step as usize) {
                let at = e.start + i * 4096;
                let len = 4096.min(end - at);
                assert!(
                    !reader.known_zero(at, len),
                    "{name}: known zero at {at}+{len}, but qemu-img maps {}+{} as data",
                    e.start,
                    e.length
                );
            }
            if e.start >= 512 {
                assert!(
                    !reader.known_zero(e.start - 512, 1024),
                    "{name}: at {}",
                    e.start
                );
            }
        } else if e.zero {
            hole_bytes += end - e.start;
            assert!(
                reader.known_zero(e.start, end - e.start),
                "{name}: qemu-img maps {}+{} as not data, but it is not known zero",
                e.start,
                e.length
            );
            // And it reads as zeros (its first and last MiB).
            for at in [e.start, end.saturating_sub(1 << 20).max(e.start)] {
                let mut buf = vec![0xffu8; (end - at).min(1 << 20) as usize];
                reader.read_exact_at(at, &mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == 0), "{name}: bytes at {at}");
            }
        }
    }
    // Past the end and an empty source are never known zero.
    assert!(!reader.known_zero(reader.len() - 1, 2), "{name}");
    (data_bytes, hole_bytes)
}

/// qemu's VHDX driver reports no block status (`qemu-img map` calls every byte data), so for
/// VHDX the oracle is qemu's reading: every MiB we know to be zero is zero in
/// `qemu-img convert -O raw` of the image. Returns the bytes known zero.
fn check_by_bytes(image: &Path, scratch: &Path) -> u64 {
    let name = image.display();
    let status = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(image)
        .arg(scratch)
        .status()
        .expect("qemu-img (apt: qemu-utils) must be installed");
    assert!(status.success(), "qemu-img convert {name}");
    let oracle = FileReader::open(scratch).unwrap();
    let disk = container::open(image, &OpenOptions::default()).unwrap();
    let reader = disk.reader.as_ref();
    let mib = 1u64 << 20;
    let mut known = 0;
    let mut buf = vec![0u8; mib as usize];
    for at in (0..reader.len()).step_by(mib as usize) {
        let len = mib.min(reader.len() - at);
        // A hole qemu left in its output is zeros it read; skip reading it.
        if reader.known_zero(at, len) {
            known += len;
            if !oracle.known_zero(at, len) {
                let b = &mut buf[..len as usize];
                oracle.read_exact_at(at, b).unwrap();
                assert!(
                    b.iter().all(|&x| x == 0),
                    "{name}: known zero at {at}+{len}, qemu reads data"
                );
            }
        }
    }
    assert!(
        known > 0 && known < reader.len(),
        "{name}: {known} bytes known zero"
    );
    known
}

#[test]
fn known_zero_of_vhdx_reads_as_zeros_in_qemu_img() {
    let c = common::run_fixture_script("make-containers.sh");
    let dir = tempfile::tempdir().unwrap();
    for name in ["vhdx-dynamic.vhdx", "vhdx-1m.vhdx", "big-vhdx.vhdx"] {
        check_by_bytes(&c.join(name), &dir.path().join("oracle.raw"));
    }
}

#[test]
fn known_zero_agrees_with_qemu_img_map_on_every_container() {
    let c = common::run_fixture_script("make-containers.sh");
    let v = common::run_fixture_script("make-vmdk-ewf.sh");
    let plain = [
        c.join("base.raw"),
        c.join("vhd-fixed.vhd"),
        c.join("vhd-dynamic.vhd"),
        c.join("qcow2-v2.qcow2"),
        c.join("qcow2-v3.qcow2"),
        c.join("qcow2-compressed.qcow2"),
        c.join("qcow2-512.qcow2"),
        c.join("qcow2-2m.qcow2"),
        c.join("qcow2-zero.qcow2"),
        c.join("big-vhd.vhd"),
        c.join("big-qcow2.qcow2"),
        v.join("sparse.vmdk"),
        v.join("stream.vmdk"),
        v.join("flat.vmdk"),
        v.join("split-sparse.vmdk"),
        v.join("big-sparse.vmdk"),
        v.join("big-flat.vmdk"),
    ];
    let children = [
        (c.join("qcow2-child.qcow2"), c.join("base.raw")),
        (
            c.join("qcow2-child-of-qcow2.qcow2"),
            c.join("qcow2-v3.qcow2"),
        ),
        (v.join("child.vmdk"), v.join("sparse.vmdk")),
    ];
    let cases = plain
        .into_iter()
        .map(|p| (p, None))
        .chain(children.into_iter().map(|(c, p)| (c, Some(p))));
    for (image, parent) in cases {
        let (data, holes) = check(&image, parent);
        // Every fixture holds both data and holes, so both directions were tested.
        assert!(data > 0 && holes > 0, "{}: {data} {holes}", image.display());
    }
}

/// A sparse raw file made with `truncate` and data written at offsets: only the holes the
/// filesystem reports are known zero (a filesystem without SEEK_DATA reports none, and then
/// the hole assertions below would fail: this test needs one that has it, as ext4, xfs, btrfs
/// and tmpfs do).
#[test]
fn file_reader_knows_the_holes_of_a_sparse_file() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.raw");
    let file = std::fs::File::create(&path).unwrap();
    let mib = 1u64 << 20;
    file.set_len(16 * mib).unwrap();
    file.write_all_at(b"data", 3 * mib + 100).unwrap();
    file.write_all_at(&[0u8; 4096], 8 * mib).unwrap(); // written zeros are data
    file.sync_all().unwrap();
    drop(file);
    let r = FileReader::open(&path).unwrap();
    let map = qemu_map(&path);
    assert!(map.iter().any(|e| !e.data), "qemu-img sees no hole");
    assert!(r.known_zero(0, 3 * mib));
    assert!(!r.known_zero(0, 3 * mib + 200));
    assert!(!r.known_zero(3 * mib + 100, 1));
    assert!(r.known_zero(4 * mib, 4 * mib));
    assert!(!r.known_zero(8 * mib, 4096));
    assert!(r.known_zero(9 * mib, 7 * mib)); // the tail hole up to the end
    assert!(!r.known_zero(9 * mib, 7 * mib + 1)); // past the end
    check(&path, None);
}

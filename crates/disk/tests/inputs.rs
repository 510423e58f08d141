//! Inputs as users hand them over: differencing chains followed from their recorded names (and
//! hostile names refused), VMDK SESparse extents, a raw volume ending with a stale VHD footer,
//! and formats refused by name. Each image is written by qemu-img / qemu-io (or, for SESparse,
//! which only ESXi writes, byte by byte from the layout qemu's vmdk driver reads) and compared
//! with `qemu-img convert -O raw`.
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

use winre_disk::container::{self, Format, OpenOptions};
use winre_disk::Error;

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed for this test: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// SHA-256 of `qemu-img convert -O raw` of `image` (format given, so no probing).
fn qemu_raw_sha(image: &Path, format: &str) -> String {
    let raw = image.with_extension("qemu.raw");
    run(
        "qemu-img",
        &["convert", "-f", format, "-O", "raw", p(image), p(&raw)],
    );
    let sha = common::sha256_of(&std::fs::read(&raw).unwrap());
    std::fs::remove_file(&raw).unwrap();
    sha
}

fn open(path: &Path) -> Result<container::Disk, Error> {
    container::open(path, &OpenOptions::default())
}

/// qemu-io writes of `pattern` bytes at `offset`, `len` long (-z: zeros).
fn write(image: &Path, format: &str, ops: &[&str]) {
    let mut args = vec!["-f", format];
    for op in ops {
        args.push("-c");
        args.push(op);
    }
    args.push(p(image));
    run("qemu-io", &args);
}

/// base (8 MiB, format `base_format`) <- mid.qcow2 <- top.qcow2, each with its own writes, the
/// top zeroing a range the base holds data in. Names are relative, as `qemu-img create -b`
/// records them.
fn three_deep(dir: &Path, base_format: &str, base_ext: &str) -> PathBuf {
    let raw = dir.join("seed.raw");
    run("qemu-img", &["create", "-f", "raw", p(&raw), "8M"]);
    write(
        &raw,
        "raw",
        &[
            "write -P 0x11 0 1M",
            "write -P 0x12 4M 1M",
            "write -P 0x13 7M 1M",
        ],
    );
    let base = dir.join(format!("base.{base_ext}"));
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", base_format, p(&raw), p(&base)],
    );
    std::fs::remove_file(&raw).unwrap();
    let base_name = format!("base.{base_ext}");
    let mid = dir.join("mid.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            &base_name,
            "-F",
            base_format,
            p(&mid),
        ],
    );
    write(
        &mid,
        "qcow2",
        &["write -P 0x21 512k 1M", "write -P 0x22 6M 64k"],
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
    write(&top, "qcow2", &["write -P 0x31 1M 4k", "write -z 4M 512k"]);
    top
}

#[test]
fn qcow2_chain_three_deep_is_followed_and_reads_like_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_deep(dir.path(), "qcow2", "qcow2");
    let disk = open(&top).unwrap();
    let chain: Vec<(&str, Format, &str)> = disk
        .info
        .chain
        .iter()
        .map(|l| (l.path.as_str(), l.format, l.recorded.as_str()))
        .collect();
    let mid = dir.path().join("mid.qcow2");
    let base = dir.path().join("base.qcow2");
    assert_eq!(
        chain,
        [
            (p(&mid), Format::Qcow2, "mid.qcow2"),
            (p(&base), Format::Qcow2, "base.qcow2")
        ]
    );
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        qemu_raw_sha(&top, "qcow2")
    );
}

#[test]
fn chains_over_vhdx_vhd_and_vmdk_bases_read_like_qemu() {
    // qemu writes no differencing VHD / VHDX, so these bases are the end of qcow2 chains.
    for (format, ext) in [("vhdx", "vhdx"), ("vpc", "vhd"), ("vmdk", "vmdk")] {
        let dir = tempfile::tempdir().unwrap();
        let top = three_deep(dir.path(), format, ext);
        let disk = open(&top).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(disk.info.chain.len(), 2, "{format}");
        assert_eq!(
            common::sha256_of(disk.reader.as_ref()),
            qemu_raw_sha(&top, "qcow2"),
            "{format}"
        );
    }
}

#[test]
fn given_parents_replace_recorded_names_nearest_first() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_deep(dir.path(), "qcow2", "qcow2");
    let expected = qemu_raw_sha(&top, "qcow2");
    // Rename both parents: the recorded names no longer lead anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let mid = elsewhere.path().join("m.qcow2");
    let base = elsewhere.path().join("b.qcow2");
    std::fs::rename(dir.path().join("mid.qcow2"), &mid).unwrap();
    std::fs::rename(dir.path().join("base.qcow2"), &base).unwrap();
    match open(&top) {
        Err(Error::NeedsParent { parent, reason, .. }) => {
            assert_eq!(parent, "mid.qcow2");
            assert!(reason.contains("No such file"), "{reason}");
        }
        other => panic!("expected NeedsParent, got {other:?}"),
    }
    let options = OpenOptions {
        parents: vec![mid.clone(), base.clone()],
        ..OpenOptions::default()
    };
    let disk = container::open(&top, &options).unwrap();
    assert!(disk.info.chain.iter().all(|l| l.given));
    assert_eq!(common::sha256_of(disk.reader.as_ref()), expected);
}

fn needs_parent_reason(path: &Path) -> String {
    match open(path) {
        Err(Error::NeedsParent { reason, .. }) => reason,
        other => panic!("{}: expected NeedsParent, got {other:?}", path.display()),
    }
}

#[test]
fn hostile_backing_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sub = root.join("vms");
    std::fs::create_dir(&sub).unwrap();
    let base = root.join("base.qcow2");
    run("qemu-img", &["create", "-f", "qcow2", p(&base), "1M"]);
    let create = |name: &str, backing: &str| {
        let child = sub.join(name);
        run(
            "qemu-img",
            &[
                "create",
                "-f",
                "qcow2",
                "-u",
                "-b",
                backing,
                "-F",
                "qcow2",
                p(&child),
                "1M",
            ],
        );
        child
    };
    // An absolute path (as libvirt records them) is followed only when given.
    let absolute = create("absolute.qcow2", p(&base));
    assert!(
        needs_parent_reason(&absolute).contains("absolute path"),
        "{}",
        needs_parent_reason(&absolute)
    );
    let given = container::open(
        &absolute,
        &OpenOptions {
            parents: vec![base.clone()],
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(given.info.chain[0].path, p(&base));
    // Out of the folder by name, and by a symlink in the folder.
    let dotdot = create("dotdot.qcow2", "../base.qcow2");
    assert!(needs_parent_reason(&dotdot).contains("not a file in the image's folder"));
    std::os::unix::fs::symlink(&base, sub.join("link.qcow2")).unwrap();
    let linked = create("linked.qcow2", "link.qcow2");
    assert!(needs_parent_reason(&linked).contains("leads out of the image's folder"));
    // A FIFO in the folder is no parent (and opening it must not block).
    run("mkfifo", &[p(&sub.join("fifo.qcow2"))]);
    let fifo = create("fifo-child.qcow2", "fifo.qcow2");
    assert!(needs_parent_reason(&fifo).contains("not a regular file"));
    // A loop A -> B -> A (qemu-img rebase -u writes it without checking).
    let a = sub.join("a.qcow2");
    let b = create("b.qcow2", "a.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "b.qcow2",
            "-F",
            "qcow2",
            p(&a),
            "1M",
        ],
    );
    match open(&a) {
        Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("loops"), "{detail}"),
        other => panic!("expected a loop error, got {other:?}"),
    }
    let _ = b;
}

/// An SESparse extent of `sectors` 512-byte sectors, laid out as qemu's block/vmdk.c reads it:
/// constant header (sector 0), volatile header (1), grain directory (2), grain tables (3..67),
/// grains from sector 72. `grains` are (guest grain, grain table entry, data) triples.
fn sesparse_extent(sectors: u64, grains: &[(u64, u64, Option<u8>)]) -> Vec<u8> {
    const GRAINS_SECTOR: u64 = 72;
    let mut header = Vec::new();
    let mut field = |v: u64| header.extend_from_slice(&v.to_le_bytes());
    field(0xcafe_babe); // magic
    field(0x2_0000_0001); // version
    field(sectors); // capacity
    field(8); // grain size (sectors)
    field(64); // grain table size (sectors)
    field(0); // flags
    for _ in 0..4 {
        field(0); // reserved
    }
    for (offset, size) in [
        (1, 1),                // volatile header
        (0, 0),                // journal header
        (0, 0),                // journal
        (2, 1),                // grain directory
        (3, 64),               // grain tables
        (0, 0),                // free bitmap
        (0, 0),                // backmap
        (GRAINS_SECTOR, 8192), // grains
    ] {
        field(offset);
        field(size);
    }
    header.resize(512, 0);
    let mut file = header;
    let mut volatile = Vec::new();
    volatile.extend_from_slice(&0xcafe_cafe_u64.to_le_bytes());
    volatile.resize(512, 0);
    file.extend_from_slice(&volatile);
    let mut gd = vec![0u8; 512];
    gd[..8].copy_from_slice(&0x1000_0000_0000_0000_u64.to_le_bytes()); // grain table 0
    file.extend_from_slice(&gd);
    let mut gt = vec![0u8; 64 * 512];
    for &(grain, gte, _) in grains {
        let at = grain as usize * 8;
        gt[at..at + 8].copy_from_slice(&gte.to_le_bytes());
    }
    file.extend_from_slice(&gt);
    file.resize(GRAINS_SECTOR as usize * 512, 0);
    for &(_, gte, data) in grains {
        if let Some(byte) = data {
            let number =
                ((gte & 0x0fff_0000_0000_0000) >> 48) | ((gte & 0x0000_ffff_ffff_ffff) << 12);
            let at = (GRAINS_SECTOR as usize + number as usize * 8) * 512;
            if file.len() < at + 4096 {
                file.resize(at + 4096, 0);
            }
            for (i, b) in file[at..at + 4096].iter_mut().enumerate() {
                *b = byte ^ (i as u8);
            }
        }
    }
    file
}

#[test]
fn sesparse_reads_like_qemu_through_a_descriptor_and_bare() {
    let dir = tempfile::tempdir().unwrap();
    let sectors = 16384; // 8 MiB: 2048 grains, one grain table
    let stored = |number: u64| 0x3000_0000_0000_0000 | ((number & 0xfff) << 48) | (number >> 12);
    let extent = sesparse_extent(
        sectors,
        &[
            (0, stored(0), Some(0xa0)),
            (1, stored(5), Some(0xa1)),
            (2, 0x2000_0000_0000_0000, None), // zero grain
            (3, 0x1000_0000_0000_0000, None), // unmapped: zeros
            (9, stored(0x1001), Some(0xa9)),  // grain number past 12 bits: the split encoding
            (2047, stored(7), Some(0xaf)),
        ],
    );
    std::fs::write(dir.path().join("disk-sesparse.vmdk"), &extent).unwrap();
    let descriptor = dir.path().join("disk.vmdk");
    std::fs::write(
        &descriptor,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=0badcafe\nparentCID=ffffffff\n\
             createType=\"seSparse\"\n\n# Extent description\n\
             RW {sectors} SESPARSE \"disk-sesparse.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
             ddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"14\"\n"
        ),
    )
    .unwrap();
    let expected = qemu_raw_sha(&descriptor, "vmdk");
    let disk = open(&descriptor).unwrap();
    assert_eq!(disk.info.variant, "seSparse");
    assert_eq!(disk.info.virtual_size, sectors * 512);
    assert_eq!(common::sha256_of(disk.reader.as_ref()), expected);
    // Not a vacuous agreement: the stored grains are where their entries say.
    let mut byte = [0u8; 1];
    for (grain, value) in [(0u64, 0xa0u8), (1, 0xa1), (2, 0), (9, 0xa9), (2047, 0xaf)] {
        disk.reader
            .read_exact_at(grain * 4096 + 3, &mut byte)
            .unwrap();
        assert_eq!(
            byte[0],
            if value == 0 { 0 } else { value ^ 3 },
            "grain {grain}"
        );
    }
    // The extent alone, recognised by its magic.
    let bare = open(&dir.path().join("disk-sesparse.vmdk")).unwrap();
    assert_eq!(bare.info.format, Format::Vmdk);
    assert_eq!(bare.info.variant, "seSparse extent");
    assert_eq!(common::sha256_of(bare.reader.as_ref()), expected);
}

#[test]
fn damaged_sesparse_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.vmdk");
    let good = sesparse_extent(16384, &[(0, 0x3000_0000_0000_0000, Some(1))]);
    // A grain table entry of an unknown state, found when the grain is read.
    let mut bad = good.clone();
    bad[3 * 512..3 * 512 + 8].copy_from_slice(&0x7000_0000_0000_0000_u64.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let disk = open(&path).unwrap();
    let err = disk
        .reader
        .read_exact_at(0, &mut [0u8; 512])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown state"), "{err}");
    // A journal to replay, a wrong volatile magic, another version: refused at open.
    for (at, value, expect) in [
        (512 + 24, 1u64, "journal"),
        (512, 0x1234, "volatile header"),
        (8, 0x3_0000_0001, "version"),
    ] {
        let mut bad = good.clone();
        bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let message = open(&path).unwrap_err().to_string();
        assert!(message.contains(expect), "{expect}: {message}");
    }
    // Cut short: the grain directory is past the end.
    std::fs::write(&path, &good[..1024]).unwrap();
    assert!(open(&path).is_err());
}

#[test]
fn partition_cut_out_of_a_fixed_vhd_reads_as_raw_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    run("qemu-img", &["create", "-f", "raw", p(&raw), "16M"]);
    // One MBR partition from 1 MiB to the end of the disk (sfdisk), with data in it.
    let out = Command::new("sfdisk")
        .arg(p(&raw))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"label: dos\nstart=2048, type=7\n")?;
            child.wait()
        })
        .expect("sfdisk is needed for this test");
    assert!(out.success());
    write(&raw, "raw", &["write -P 0x5a 1M 64k"]);
    let vhd = dir.path().join("disk.vhd");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed",
            p(&raw),
            p(&vhd),
        ],
    );
    let whole = open(&vhd).unwrap();
    assert_eq!(
        (whole.info.format, whole.info.variant.as_str()),
        (Format::Vhd, "fixed")
    );
    // dd of the partition to the end of the file: its last 512 bytes are the VHD's footer.
    let bytes = std::fs::read(&vhd).unwrap();
    let cut = dir.path().join("partition.img");
    std::fs::write(&cut, &bytes[1 << 20..]).unwrap();
    assert_eq!(&bytes[bytes.len() - 512..bytes.len() - 504], b"conectix");
    let disk = open(&cut).unwrap();
    assert_eq!(disk.info.format, Format::Raw);
    assert_eq!(disk.info.virtual_size, bytes.len() as u64 - (1 << 20));
    assert!(
        disk.info.notes.iter().any(|n| n.contains("stale footer")),
        "{:?}",
        disk.info.notes
    );
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        common::sha256_of(&bytes[1 << 20..].to_vec())
    );
}

#[test]
fn unsupported_formats_written_by_qemu_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (format, name) in [("vdi", "VDI"), ("parallels", "Parallels"), ("qed", "QED")] {
        let image = dir.path().join(format!("x.{format}"));
        // Some builds of qemu-img cannot write every format; skip those, saying so.
        let out = Command::new("qemu-img")
            .args(["create", "-f", format, p(&image), "4M"])
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipping {format}: qemu-img cannot create it here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        match open(&image) {
            Err(Error::Unsupported(message)) => assert!(message.contains(name), "{message}"),
            other => panic!("{format}: expected Unsupported, got {other:?}"),
        }
    }
}

//! Damaged and hostile VHD, VHDX and qcow2 files (made by patching qemu-img's output): each gives
//! a clear error naming the structure and the offset, or reads around the damage as the format
//! allows; none panics or hangs. The layouts are parsed here independently of crates/disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use winre_disk::container::{self, Disk, OpenOptions};
use winre_disk::Error;
use winre_readat::{FileReader, ReadAt};

/// Builds (or reuses) the fixtures of `fixtures/make-containers.sh`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::run_fixture_script("make-containers.sh"))
}

const MIB: u64 = 1 << 20;

/// A copy of a fixture in a temporary directory, as bytes to patch.
struct Copy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Copy {
    fn of(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        Copy {
            _dir: dir,
            path,
            bytes,
        }
    }
    fn be32(&self, at: u64) -> u32 {
        u32::from_be_bytes(self.bytes[at as usize..at as usize + 4].try_into().unwrap())
    }
    fn be64(&self, at: u64) -> u64 {
        u64::from_be_bytes(self.bytes[at as usize..at as usize + 8].try_into().unwrap())
    }
    fn le32(&self, at: u64) -> u32 {
        u32::from_le_bytes(self.bytes[at as usize..at as usize + 4].try_into().unwrap())
    }
    fn le64(&self, at: u64) -> u64 {
        u64::from_le_bytes(self.bytes[at as usize..at as usize + 8].try_into().unwrap())
    }
    fn put(&mut self, at: u64, data: &[u8]) {
        self.bytes[at as usize..at as usize + data.len()].copy_from_slice(data);
    }
    fn write(&self) -> &Path {
        std::fs::write(&self.path, &self.bytes).unwrap();
        &self.path
    }
    fn open(&self) -> Result<Disk, Error> {
        self.write();
        container::open(&self.path, &OpenOptions::default())
    }
    fn open_with_parent(&self, parent: &Path) -> Result<Disk, Error> {
        self.write();
        container::open(
            &self.path,
            &OpenOptions {
                parents: vec![parent.to_path_buf()],
                ..OpenOptions::default()
            },
        )
    }
}

/// Reads the whole guest; returns the first error.
fn read_all(disk: &Disk) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4 << 20];
    let mut offset = 0;
    while offset < disk.reader.len() {
        let take = buf.len().min((disk.reader.len() - offset) as usize);
        disk.reader.read_exact_at(offset, &mut buf[..take])?;
        offset += take as u64;
    }
    Ok(())
}

fn corrupt_message(result: Result<Disk, Error>) -> String {
    match result {
        Err(e @ Error::Corrupt { .. }) => e.to_string(),
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

// --- VHD ------------------------------------------------------------------------------------

/// VHD checksum: one's complement of the byte sum with the checksum field as zero.
fn vhd_checksum(bytes: &[u8], field: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(b.into()));
    !sum
}

/// The dynamic VHD's header offset and BAT offset, from the footer copy at 0.
fn vhd_tables(c: &Copy) -> (u64, u64) {
    let header = c.be64(0x10);
    (header, c.be64(header + 0x10))
}

#[test]
fn vhd_footer_with_a_bad_checksum_is_refused() {
    let mut c = Copy::of("vhd-fixed.vhd");
    let footer = c.bytes.len() as u64 - 512;
    c.bytes[footer as usize + 0x100] ^= 0x40; // reserved area: only the checksum notices
    let message = corrupt_message(c.open());
    assert!(
        message.contains("VHD footer")
            && message.contains(&format!("offset {footer}"))
            && message.contains("checksum"),
        "{message}"
    );
}

#[test]
fn dynamic_vhd_with_a_damaged_last_footer_uses_the_copy_and_says_so() {
    let mut c = Copy::of("vhd-dynamic.vhd");
    let footer = c.bytes.len() - 512;
    c.bytes[footer + 0x30] ^= 1; // the size, in the last footer only
    let disk = c.open().unwrap();
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n.contains("copy at offset 0")),
        "{:?}",
        disk.info.notes
    );
    let base = FileReader::open(fixtures().join("base.raw")).unwrap();
    let (mut ours, mut theirs) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    disk.reader.read_exact_at(MIB, &mut ours).unwrap();
    base.read_exact_at(MIB, &mut theirs).unwrap();
    assert!(ours == theirs);
}

#[test]
fn vhd_bat_entry_past_the_end_is_named_with_its_offset() {
    let mut c = Copy::of("vhd-dynamic.vhd");
    let (header, bat) = vhd_tables(&c);
    let block_bytes = c.be32(header + 0x20) as u64;
    // Block 0 holds the GPT: allocated.
    assert_ne!(c.be32(bat), 0xFFFF_FFFF);
    c.put(bat, &0x7FFF_FFF0u32.to_be_bytes());
    let disk = c.open().unwrap();
    let mut b = [0u8; 512];
    let err = disk.reader.read_exact_at(0, &mut b).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("VHD BAT entry 0") && message.contains(&format!("offset {bat}")),
        "{message}"
    );
    // Other blocks still read.
    disk.reader.read_exact_at(block_bytes * 10, &mut b).unwrap();
}

#[test]
fn hostile_vhd_dynamic_headers_are_refused_before_allocating() {
    for (field, value, expect) in [
        (0x20u64, 0u32, "block size"),
        (0x20, 3 << 20, "block size"),
        (0x1C, 1, "BAT has 1 entries"),
    ] {
        let mut c = Copy::of("vhd-dynamic.vhd");
        let (header, _) = vhd_tables(&c);
        c.put(header + field, &value.to_be_bytes());
        let sum = vhd_checksum(&c.bytes[header as usize..header as usize + 1024], 0x24);
        c.put(header + 0x24, &sum.to_be_bytes());
        let message = corrupt_message(c.open());
        assert!(
            message.contains("VHD dynamic header") && message.contains(expect),
            "{message}"
        );
    }
    // A BAT offset past the end of the file.
    let mut c = Copy::of("vhd-dynamic.vhd");
    let (header, _) = vhd_tables(&c);
    c.put(header + 0x10, &(1u64 << 40).to_be_bytes());
    let sum = vhd_checksum(&c.bytes[header as usize..header as usize + 1024], 0x24);
    c.put(header + 0x24, &sum.to_be_bytes());
    assert!(corrupt_message(c.open()).contains("ends past the end of the file"));
}

/// Turns vhd-dynamic.vhd into a differencing child of an unchanged copy of itself: block `k`'s
/// data is overwritten with 0xEE and the first half of its sectors marked as "in the parent";
/// block `j` is unallocated (all from the parent). Expected: the parent's bytes, except the
/// second half of block k, which is 0xEE.
#[test]
fn differencing_vhd_reads_through_its_parent() {
    let parent = Copy::of("vhd-dynamic.vhd");
    parent.write();
    let mut child = Copy::of("vhd-dynamic.vhd");
    let (header, bat) = vhd_tables(&child);
    let block_bytes = child.be32(header + 0x20) as u64;
    let bitmap_bytes = (block_bytes / 512 / 8).next_multiple_of(512);
    let allocated: Vec<u64> = (0..child.be32(header + 0x1C) as u64)
        .filter(|&b| child.be32(bat + 4 * b) != 0xFFFF_FFFF)
        .collect();
    assert!(allocated.len() >= 3, "{allocated:?}");
    let (k, j) = (allocated[1], allocated[2]);
    let block_at = child.be32(bat + 4 * k) as u64 * 512;
    let half = block_bytes / 512 / 2;
    for sector in 0..half {
        child.bytes[(block_at + sector / 8) as usize] &= !(0x80 >> (sector % 8));
    }
    let data_at = (block_at + bitmap_bytes) as usize;
    child.bytes[data_at..data_at + block_bytes as usize].fill(0xEE);
    child.put(bat + 4 * j, &0xFFFF_FFFFu32.to_be_bytes());
    // Footer (both copies): disk type 4, new unique id; dynamic header: parent id and name.
    let parent_id: [u8; 16] = child.bytes[0x44..0x54].try_into().unwrap();
    let mut footer = child.bytes[..512].to_vec();
    footer[0x3C..0x40].copy_from_slice(&4u32.to_be_bytes());
    footer[0x44] ^= 0xFF;
    let sum = vhd_checksum(&footer, 0x40);
    footer[0x40..0x44].copy_from_slice(&sum.to_be_bytes());
    let end = child.bytes.len() as u64 - 512;
    child.put(0, &footer);
    child.put(end, &footer);
    child.put(header + 0x28, &parent_id);
    let name: Vec<u8> = "parent.vhd"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    child.put(header + 0x40, &name);
    let sum = vhd_checksum(&child.bytes[header as usize..header as usize + 1024], 0x24);
    child.put(header + 0x24, &sum.to_be_bytes());

    match child.open() {
        Err(Error::NeedsParent { format, parent, .. }) => assert_eq!(
            (format.as_str(), parent.as_str()),
            ("differencing VHD", "parent.vhd")
        ),
        other => panic!("expected NeedsParent, got {other:?}"),
    }
    // A parent of another size is refused rather than misread.
    assert!(
        corrupt_message(child.open_with_parent(&fixtures().join("base.raw"))).contains("parent")
    );
    let disk = child.open_with_parent(&parent.path).unwrap();
    assert_eq!(disk.info.variant, "differencing");
    let theirs = container::open(&parent.path, &OpenOptions::default()).unwrap();
    let mut expected = vec![0u8; disk.reader.len() as usize];
    theirs.reader.read_exact_at(0, &mut expected).unwrap();
    let second_half = (k * block_bytes + half * 512) as usize;
    expected[second_half..((k + 1) * block_bytes) as usize].fill(0xEE);
    let mut ours = vec![0u8; disk.reader.len() as usize];
    disk.reader.read_exact_at(0, &mut ours).unwrap();
    assert!(
        ours == expected,
        "differencing VHD differs from parent + child's sectors"
    );
    assert!(ours[(k * block_bytes) as usize..second_half]
        .iter()
        .any(|&b| b != 0xEE));
}

// --- VHDX -----------------------------------------------------------------------------------

/// CRC-32C, bitwise (independent of the table-driven one in crates/disk).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn vhdx_fix_header_crc(c: &mut Copy, at: u64) {
    c.put(at + 4, &[0; 4]);
    let crc = crc32c(&c.bytes[at as usize..at as usize + 4096]);
    c.put(at + 4, &crc.to_le_bytes());
}

/// (BAT offset, metadata region offset) from region table 1.
fn vhdx_regions(c: &Copy) -> (u64, u64) {
    let bat_guid = [
        0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A,
        0x08,
    ];
    let (mut bat, mut meta) = (0, 0);
    for i in 0..c.le32(192 * 1024 + 8) as u64 {
        let at = 192 * 1024 + 16 + 32 * i;
        if c.bytes[at as usize..at as usize + 16] == bat_guid {
            bat = c.le64(at + 16);
        } else {
            meta = c.le64(at + 16);
        }
    }
    (bat, meta)
}

/// The header with the higher sequence number.
fn vhdx_current_header(c: &Copy) -> u64 {
    if c.le64(128 * 1024 + 8) > c.le64(64 * 1024 + 8) {
        128 * 1024
    } else {
        64 * 1024
    }
}

#[test]
fn vhdx_with_one_bad_header_crc_uses_the_other() {
    let mut c = Copy::of("vhdx-1m.vhdx");
    let current = vhdx_current_header(&c);
    c.bytes[current as usize + 0x200] ^= 1;
    let disk = c.open().unwrap();
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n.contains("header") && n.contains("CRC-32C")),
        "{:?}",
        disk.info.notes
    );
    read_all(&disk).unwrap();
    let other = if current == 64 * 1024 {
        128 * 1024
    } else {
        64 * 1024
    };
    c.bytes[other as usize + 0x200] ^= 1;
    let message = corrupt_message(c.open());
    assert!(
        message.contains("both unusable")
            && message.contains("65536")
            && message.contains("131072"),
        "{message}"
    );
}

#[test]
fn vhdx_bat_entry_past_the_end_is_named_with_its_offset() {
    let mut c = Copy::of("vhdx-1m.vhdx");
    let (bat, _) = vhdx_regions(&c);
    assert_eq!(c.le64(bat) & 7, 6, "block 0 (the GPT) is fully present");
    c.put(bat, &((0xF_FFFF_u64 << 20) | 6).to_le_bytes());
    let disk = c.open().unwrap();
    let mut b = [0u8; 512];
    let message = disk
        .reader
        .read_exact_at(0, &mut b)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("VHDX BAT entry 0") && message.contains(&format!("offset {bat}")),
        "{message}"
    );
    // A reserved state.
    c.put(bat, &4u64.to_le_bytes());
    let message = c
        .open()
        .unwrap()
        .reader
        .read_exact_at(0, &mut b)
        .unwrap_err()
        .to_string();
    assert!(message.contains("state 4"), "{message}");
}

#[test]
fn vhdx_log_is_reported() {
    let mut c = Copy::of("vhdx-1m.vhdx");
    let header = vhdx_current_header(&c);
    let guid = [0x11u8; 16];
    c.put(header + 0x30, &guid);
    vhdx_fix_header_crc(&mut c, header);
    let disk = c.open().unwrap();
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n.contains("no entry") && n.contains("reads are exact")),
        "{:?}",
        disk.info.notes
    );
    // Now an entry of that log in the log region.
    let log_at = c.le64(header + 0x48);
    c.put(log_at, b"loge");
    c.put(log_at + 0x20, &guid);
    let disk = c.open().unwrap();
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n.contains("1 entries") && n.contains("not replayed")),
        "{:?}",
        disk.info.notes
    );
}

/// Marks vhdx-1m as differencing (HasParent) and gives it a parent whose bytes are all 0x77:
/// blocks the BAT says are not present must come from the parent, the rest from the child.
#[test]
fn differencing_vhdx_needs_and_reads_its_parent() {
    let mut c = Copy::of("vhdx-1m.vhdx");
    let (bat, meta) = vhdx_regions(&c);
    let file_params = [
        0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7,
        0x6B,
    ];
    let entries =
        u16::from_le_bytes([c.bytes[meta as usize + 10], c.bytes[meta as usize + 11]]) as u64;
    let item = (0..entries)
        .map(|i| meta + 32 + 32 * i)
        .find(|&at| c.bytes[at as usize..at as usize + 16] == file_params)
        .unwrap();
    let flags_at = meta + c.le32(item + 16) as u64 + 4;
    let flags = c.le32(flags_at) | 2;
    c.put(flags_at, &flags.to_le_bytes());
    // Blocks 1 (data) and 100 (zero or data): not present, so from the parent.
    c.put(bat + 8, &0u64.to_le_bytes());
    c.put(bat + 800, &0u64.to_le_bytes());
    match c.open() {
        Err(Error::NeedsParent { format, .. }) => assert_eq!(format, "differencing VHDX"),
        other => panic!("expected NeedsParent, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent.raw");
    std::fs::write(&parent, vec![0x77u8; 128 << 20]).unwrap();
    let disk = c.open_with_parent(&parent).unwrap();
    let base = std::fs::read(fixtures().join("base.raw")).unwrap();
    let mut ours = vec![0u8; 128 << 20];
    disk.reader.read_exact_at(0, &mut ours).unwrap();
    let mut from_parent = 0;
    for block in 0..128usize {
        let state = c.le64(bat + 8 * block as u64) & 7;
        let got = &ours[block << 20..(block + 1) << 20];
        match state {
            0 => {
                assert!(got.iter().all(|&b| b == 0x77), "block {block}");
                from_parent += 1;
            }
            6 => assert!(
                got == &base[block << 20..(block + 1) << 20],
                "block {block}"
            ),
            _ => assert!(got.iter().all(|&b| b == 0), "block {block} state {state}"),
        }
    }
    assert_eq!(from_parent, 2);
}

// --- qcow2 ----------------------------------------------------------------------------------

#[test]
fn qcow2_l1_and_l2_entries_past_the_end_are_named_with_their_offsets() {
    let mut c = Copy::of("qcow2-v3.qcow2");
    let l1 = c.be64(0x28);
    let l2 = c.be64(l1) & 0x00FF_FFFF_FFFF_FE00;
    assert_ne!(l2, 0);
    let original = c.be64(l1);
    c.put(l1, &((1u64 << 40) | (1 << 63)).to_be_bytes());
    let disk = c.open().unwrap();
    let mut b = [0u8; 512];
    let message = disk
        .reader
        .read_exact_at(0, &mut b)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("qcow2 L1 entry 0") && message.contains(&format!("offset {l1}")),
        "{message}"
    );
    c.put(l1, &original.to_be_bytes());
    // The L2 entry for guest cluster 0 (the GPT).
    assert_ne!(c.be64(l2), 0);
    c.put(l2, &((1u64 << 40) | (1 << 63)).to_be_bytes());
    let disk = c.open().unwrap();
    let message = disk
        .reader
        .read_exact_at(0, &mut b)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("qcow2 L2 entry 0") && message.contains(&format!("offset {l2}")),
        "{message}"
    );
}

#[test]
fn hostile_qcow2_headers_are_refused() {
    let cases: [(u64, &[u8], &str); 5] = [
        (0x14, &30u32.to_be_bytes(), "cluster_bits 30"),
        (0x24, &0u32.to_be_bytes(), "L1 table has 0 entries"),
        (0x28, &(1u64 << 50).to_be_bytes(), "L1 table"),
        (0x18, &(u64::MAX / 2).to_be_bytes(), ""),
        (0x20, &1u32.to_be_bytes(), "encrypted"),
    ];
    for (at, value, expect) in cases {
        let mut c = Copy::of("qcow2-v3.qcow2");
        c.put(at, value);
        let err = c.open().unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. } | Error::Unsupported(_)),
            "{err:?}"
        );
        assert!(err.to_string().contains(expect), "{err}");
    }
    let mut c = Copy::of("qcow2-v3.qcow2");
    c.put(0x48, &(1u64 << 4).to_be_bytes()); // extended L2
    assert!(matches!(c.open(), Err(Error::Unsupported(m)) if m.contains("extended L2")));
}

#[test]
fn damaged_compressed_cluster_is_an_error() {
    let mut c = Copy::of("qcow2-compressed.qcow2");
    let l1 = c.be64(0x28);
    let l2 = c.be64(l1) & 0x00FF_FFFF_FFFF_FE00;
    let cluster_bits = c.be32(0x14);
    // Find a compressed entry and scribble over its data.
    let (index, entry) = (0..1u64 << (cluster_bits - 3))
        .map(|i| (i, c.be64(l2 + 8 * i)))
        .find(|(_, e)| e & (1 << 62) != 0)
        .unwrap();
    let host = entry & ((1u64 << (62 - (cluster_bits - 8))) - 1);
    c.bytes[host as usize..host as usize + 64].fill(0xFF);
    let disk = c.open().unwrap();
    let mut b = vec![0u8; 1 << cluster_bits];
    let message = disk
        .reader
        .read_exact_at(index << cluster_bits, &mut b)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("compressed cluster") && message.contains(&host.to_string()),
        "{message}"
    );
}

// --- all ------------------------------------------------------------------------------------

/// Truncated files: opening or reading fails with an error, never a panic or wrong bytes.
#[test]
fn truncated_containers_fail_cleanly() {
    for name in [
        "vhd-dynamic.vhd",
        "vhdx-1m.vhdx",
        "qcow2-v2.qcow2",
        "qcow2-compressed.qcow2",
        "qcow2-512.qcow2",
    ] {
        let full = std::fs::read(fixtures().join(name)).unwrap();
        for cut in [
            100,
            70 * 1024,
            3 * MIB as usize + 7,
            full.len() / 2,
            full.len() - 1024,
        ] {
            let mut c = Copy::of(name);
            c.bytes.truncate(cut);
            match c.open() {
                Err(e) => assert!(!e.to_string().is_empty()),
                Ok(disk) => {
                    let err = read_all(&disk)
                        .expect_err(&format!("{name} cut at {cut} read without error"));
                    assert!(
                        err.to_string().contains("offset"),
                        "{name} cut at {cut}: {err}"
                    );
                }
            }
        }
    }
}

/// Seeded random byte flips in the metadata at the start of each container: open and read a
/// few ranges; errors are fine, panics and hangs are not.
#[test]
fn random_damage_never_panics() {
    for name in [
        "vhd-dynamic.vhd",
        "vhdx-1m.vhdx",
        "qcow2-v3.qcow2",
        "qcow2-compressed.qcow2",
    ] {
        let pristine = Copy::of(name);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..60 {
            let mut c = Copy {
                _dir: tempfile::tempdir().unwrap(),
                path: PathBuf::new(),
                bytes: pristine.bytes.clone(),
            };
            c.path = c._dir.path().join(name);
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % (4 * MIB).min(c.bytes.len() as u64)) as usize;
                c.bytes[at] ^= 1u8 << (x >> 61);
            }
            if let Ok(disk) = c.open() {
                let mut b = vec![0u8; 256 * 1024];
                for offset in [0, 20 * MIB, 64 * MIB - 1000] {
                    if offset + b.len() as u64 <= disk.reader.len() {
                        let _ = disk.reader.read_exact_at(offset, &mut b);
                    }
                }
            }
        }
    }
}

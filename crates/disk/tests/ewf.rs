//! E01 sets written by ewfacquire must read back byte for byte as the raw disk they were acquired
//! from; media size and stored MD5 must agree with ewfinfo / ewfverify. Damaged sets (a flipped
//! chunk byte, a missing segment, truncation, a looping section chain) give clear errors.

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
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use winre_disk::container::{self, Format, OpenOptions};
use winre_readat::ReadAt;

/// Builds (or reuses) the fixtures of `fixtures/make-vmdk-ewf.sh`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::run_fixture_script("make-vmdk-ewf.sh"))
}

fn raw_sha256() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        format!(
            "{:x}",
            Sha256::digest(std::fs::read(fixtures().join("raw.img")).unwrap())
        )
    })
}

/// "Media size: 128 MiB (134217728 bytes)" and "MD5: <hex>" as ewfinfo prints them.
fn ewfinfo(path: &Path) -> (u64, String) {
    let out = Command::new("ewfinfo")
        .arg(path)
        .output()
        .expect("run ewfinfo (apt: ewf-tools)");
    assert!(out.status.success(), "ewfinfo {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {key} in ewfinfo output:\n{text}"))
    };
    let size = line("Media size:");
    let bytes = size
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (bytes, line("MD5:"))
}

fn ewfverify_ok(path: &Path) -> bool {
    let out = Command::new("ewfverify")
        .arg("-q")
        .arg(path)
        .output()
        .expect("run ewfverify (apt: ewf-tools)");
    out.status.success()
}

fn open(path: &Path, verify: bool) -> winre_disk::Result<container::Disk> {
    container::open(
        path,
        &OpenOptions {
            parents: Vec::new(),
            verify_container: verify,
        },
    )
}

fn assert_reads_as_raw(first_segment: &str, sector_size: u32) {
    let path = fixtures().join(first_segment);
    let disk = open(&path, false).unwrap();
    assert_eq!(disk.info.format, Format::Ewf);
    assert_eq!(disk.info.sector_size, sector_size);
    let (media_bytes, md5) = ewfinfo(&path);
    assert_eq!(disk.info.virtual_size, media_bytes);
    assert_eq!(
        disk.reader.len(),
        std::fs::metadata(fixtures().join("raw.img")).unwrap().len()
    );
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n == &format!("stored MD5 {md5}")),
        "{:?}",
        disk.info.notes
    );
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        raw_sha256(),
        "{first_segment}"
    );
    // --verify-container recomputes the MD5 ewfinfo shows.
    let verified = open(&path, true).unwrap();
    assert!(
        verified
            .info
            .notes
            .iter()
            .any(|n| n.starts_with("MD5 verified")),
        "{:?}",
        verified.info.notes
    );
}

#[test]
fn fast_compression_single_segment() {
    assert_reads_as_raw("e01-fast.E01", 512);
}

#[test]
fn best_compression_single_segment() {
    assert_reads_as_raw("e01-best.E01", 512);
}

#[test]
fn uncompressed_chunks_single_segment() {
    assert_reads_as_raw("e01-none.E01", 512);
}

#[test]
fn four_k_sectors() {
    assert_reads_as_raw("e01-4k.E01", 4096);
}

#[test]
fn split_set_compressed() {
    assert_reads_as_raw("split.E01", 512);
    let disk = open(&fixtures().join("split.E01"), false).unwrap();
    assert!(
        disk.info
            .notes
            .iter()
            .any(|n| n.starts_with("6 segment file(s)")),
        "{:?}",
        disk.info.notes
    );
}

#[test]
fn split_set_uncompressed() {
    assert_reads_as_raw("split-none.E01", 512);
}

// ---- damage ----

fn copy_set(prefix: &str, tmp: &Path) {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with(&format!("{prefix}.E")) {
            std::fs::copy(entry.path(), tmp.join(&name)).unwrap();
        }
    }
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// (section type, descriptor offset, data offset) of each section, walked independently of the crate.
fn sections(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 13;
    loop {
        let kind = String::from_utf8_lossy(&bytes[offset..offset + 16])
            .trim_end_matches('\0')
            .to_owned();
        let next = u64::from_le_bytes(bytes[offset + 16..offset + 24].try_into().unwrap()) as usize;
        out.push((kind.clone(), offset, offset + 76));
        if kind == "done" || kind == "next" {
            return out;
        }
        offset = next;
    }
}

/// File offset of chunk `n` of the first table of a segment, from its table section.
fn chunk_offset(bytes: &[u8], n: usize) -> (usize, bool) {
    let (_, _, table) = sections(bytes)
        .into_iter()
        .find(|(k, _, _)| k == "table")
        .unwrap();
    let base = u64::from_le_bytes(bytes[table + 8..table + 16].try_into().unwrap()) as usize;
    let entry = u32::from_le_bytes(
        bytes[table + 24 + 4 * n..table + 28 + 4 * n]
            .try_into()
            .unwrap(),
    );
    (
        base + (entry & 0x7fff_ffff) as usize,
        entry & 0x8000_0000 != 0,
    )
}

/// Reads the whole media; the first error as text. Must not panic or hang.
fn read_all_error(path: &Path) -> String {
    let disk = match open(path, false) {
        Ok(disk) => disk,
        Err(e) => return e.to_string(),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < disk.reader.len() {
        let take = (disk.reader.len() - offset).min(buf.len() as u64) as usize;
        if let Err(e) = disk.reader.read_exact_at(offset, &mut buf[..take]) {
            return e.to_string();
        }
        offset += take as u64;
    }
    panic!("{} read without error", path.display());
}

#[test]
fn flipped_byte_in_a_compressed_chunk_names_chunk_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set("e01-fast", tmp.path());
    let path = tmp.path().join("e01-fast.E01");
    let mut bytes = std::fs::read(&path).unwrap();
    // Chunk 40 lies in the 3 MiB of random data; flip its last byte (zlib's Adler-32).
    let (at, compressed) = chunk_offset(&bytes, 40);
    let (next, _) = chunk_offset(&bytes, 41);
    let _ = compressed;
    bytes[next - 1] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        !ewfverify_ok(&path),
        "ewfverify should reject the damaged set too"
    );
    let message = read_all_error(&path);
    assert!(
        message.contains("EWF chunk 40 (in e01-fast.E01)"),
        "{message}"
    );
    assert!(message.contains(&format!("offset {at}")), "{message}");
    // The MD5 check at open reports the same chunk.
    let message = open(&path, true).unwrap_err().to_string();
    assert!(message.contains("EWF chunk 40"), "{message}");
}

#[test]
fn flipped_byte_in_an_uncompressed_chunk_fails_its_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set("e01-none", tmp.path());
    let path = tmp.path().join("e01-none.E01");
    let mut bytes = std::fs::read(&path).unwrap();
    let (at, compressed) = chunk_offset(&bytes, 7);
    assert!(!compressed, "-c none stores raw chunks");
    bytes[at + 1000] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        !ewfverify_ok(&path),
        "ewfverify should reject the damaged set too"
    );
    let message = read_all_error(&path);
    assert!(
        message.contains("EWF chunk 7 (in e01-none.E01)"),
        "{message}"
    );
    assert!(message.contains(&format!("offset {at}")), "{message}");
    assert!(message.contains("Adler-32 checksum mismatch"), "{message}");
}

#[test]
fn missing_second_segment_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set("split", tmp.path());
    std::fs::remove_file(tmp.path().join("split.E02")).unwrap();
    let message = open(&tmp.path().join("split.E01"), false)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("segment 2 (split.E02) is missing"),
        "{message}"
    );
}

#[test]
fn truncated_segments_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["e01-fast", "split"] {
        let full = std::fs::read(fixtures().join(format!("{name}.E01"))).unwrap();
        // (Cut below the 8-byte signature the file is no longer recognisable as E01: a raw image.)
        for keep in [13usize, 100, 1000, 200_000, full.len() - 100] {
            copy_set(name, tmp.path());
            let path = tmp.path().join(format!("{name}.E01"));
            std::fs::write(&path, &full[..keep]).unwrap();
            let message = read_all_error(&path);
            assert!(
                message.contains("truncated") || message.contains("past the end"),
                "{name} cut to {keep}: {message}"
            );
        }
    }
}

#[test]
fn section_chain_that_loops_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set("e01-fast", tmp.path());
    let path = tmp.path().join("e01-fast.E01");
    let mut bytes = std::fs::read(&path).unwrap();
    // Point the volume section's "next" back at the first section, with a valid checksum.
    let (_, volume, _) = sections(&bytes)
        .into_iter()
        .find(|(k, _, _)| k == "volume")
        .unwrap();
    bytes[volume + 16..volume + 24].copy_from_slice(&13u64.to_le_bytes());
    let checksum = adler32(&bytes[volume..volume + 72]);
    bytes[volume + 72..volume + 76].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let message = open(&path, false).unwrap_err().to_string();
    assert!(message.contains("does not move forward"), "{message}");
}

#[test]
fn table_entry_past_the_end_and_damaged_table_use_the_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set("e01-fast", tmp.path());
    let path = tmp.path().join("e01-fast.E01");
    let original = std::fs::read(&path).unwrap();
    let all = sections(&original);
    let (_, _, table) = all.iter().find(|(k, _, _)| k == "table").unwrap().clone();
    let (_, _, table2) = all.iter().find(|(k, _, _)| k == "table2").unwrap().clone();

    // Damage one entry of the first table only: its checksum fails and table2 stands in.
    let mut bytes = original.clone();
    bytes[table + 24 + 4 * 3] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let disk = open(&path, true).unwrap();
    assert!(
        disk.info.notes.iter().any(|n| n.contains("table2 mirror")),
        "{:?}",
        disk.info.notes
    );

    // Both copies point entry 3 past the end (with valid checksums): corrupt, naming the entry.
    let mut bytes = original.clone();
    for t in [table, table2] {
        let count = u32::from_le_bytes(bytes[t..t + 4].try_into().unwrap()) as usize;
        bytes[t + 24 + 12..t + 28 + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        let checksum = adler32(&bytes[t + 24..t + 24 + 4 * count]);
        bytes[t + 24 + 4 * count..t + 28 + 4 * count].copy_from_slice(&checksum.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let message = open(&path, false).unwrap_err().to_string();
    assert!(
        message.contains("entry 3 (chunk 3)") && message.contains("past the end"),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {}", table + 24 + 12)),
        "{message}"
    );
}

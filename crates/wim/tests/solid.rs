//! Solid resources (WIM version 0xE00) and pipable WIMs, against wimlib-imagex: every file reads
//! like `wimlib-imagex apply`, the blob table agrees with `wimlib-imagex info --blobs`, verify
//! agrees with `wimlib-imagex verify`, damage in a solid chunk names the blobs it breaks, and
//! lying solid headers give Corrupt errors naming the structure and offset.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use winre_readat::{Counting, FileReader};
use winre_wim::blob_table::BlobEntry;
use winre_wim::verify::{verify, BlobProblem, Progress, VerifyOptions, VerifyReport};
use winre_wim::{Error, Sha1Digest, Wim};

/// Solid WIMs with the solid chunk size the fixture script gave them.
const SOLID: &[(&str, u64)] = &[
    ("solid-lzx.wim", 32768),
    ("solid-xpress.wim", 4096),
    ("solid-multi.wim", 32768),
    ("solid-lzms.wim", 64 << 20),
    ("solid-lzms-32k.wim", 32768),
    ("solid-multi-lzms.wim", 65536),
];
/// Pipable WIMs.
const PIPABLE: &[&str] = &[
    "pipable-lzx.wim",
    "pipable-xpress.wim",
    "pipable-none.wim",
    "pipable-two.wim",
    "pipable-lzms.wim",
];

fn solid_fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/make-solid-wims.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fixtures/make-solid-wims.sh");
    assert!(
        out.status.success(),
        "make-solid-wims.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn all_names() -> Vec<&'static str> {
    SOLID
        .iter()
        .map(|(n, _)| *n)
        .chain(PIPABLE.iter().copied())
        .collect()
}

fn open(path: &Path) -> Wim<FileReader> {
    Wim::open(FileReader::open(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn streamed(wim: &Wim<impl winre_readat::ReadAt>, blob: &BlobEntry) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pieces = 0;
    wim.stream_blob(blob, |piece| {
        out.extend_from_slice(piece);
        pieces += 1;
        Ok(())
    })
    .unwrap_or_else(|e| panic!("blob {}: {:?}", blob.sha1, e));
    assert!(pieces >= 1);
    out
}

#[test]
fn every_file_reads_like_wimlib_apply() {
    let dir = solid_fixtures();
    for name in all_names() {
        let path = dir.join(name);
        let wim = open(&path);
        let by_hash: HashMap<Sha1Digest, &BlobEntry> =
            wim.blob_table().blobs.iter().map(|b| (b.sha1, b)).collect();
        let mut seen = BTreeSet::new();
        for image in wim.images() {
            let mut checked = 0;
            for (file, theirs) in wimlib_applied_files(&path, image.index) {
                let blob = by_hash
                    .get(&Sha1Digest::of(&theirs))
                    .unwrap_or_else(|| panic!("{name}: no blob for {}", file.display()));
                assert!(
                    streamed(&wim, blob) == theirs,
                    "{name}: {} streams wrong",
                    file.display()
                );
                assert!(
                    wim.read_blob(blob, 1 << 30).unwrap() == theirs,
                    "{name}: {} reads wrong",
                    file.display()
                );
                seen.insert(blob.sha1);
                checked += 1;
            }
            assert!(checked >= 65, "{name}: only {checked} files");
        }
        // Every file blob of the table is some file's data.
        for b in wim.blob_table().blobs.iter().filter(|b| !b.is_metadata()) {
            assert!(seen.contains(&b.sha1), "{name}: blob {} unused", b.sha1);
        }
        for m in &wim.blob_table().metadata {
            assert_eq!(
                Sha1Digest::of(&wim.read_blob(m, 1 << 30).unwrap()),
                m.sha1,
                "{name}"
            );
        }
    }
}

/// `wimlib-imagex info --blobs`: per blob hash, its fields.
fn wimlib_blobs(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    blocks(
        &run(
            "wimlib-imagex",
            &["info", path.to_str().unwrap(), "--blobs"],
        ),
        "=",
    )
    .into_iter()
    .filter_map(|m| Some((m.get("Hash")?.trim_start_matches("0x").to_owned(), m)))
    .collect()
}

fn bytes_field(v: &str) -> u64 {
    v.trim().trim_end_matches(" bytes").trim().parse().unwrap()
}

#[test]
fn solid_placement_agrees_with_wimlib_info() {
    let dir = solid_fixtures();
    for (name, chunk_size) in SOLID {
        let path = dir.join(name);
        let wim = open(&path);
        let table = wim.blob_table();
        assert!(table.has_solid, "{name}");
        let expected_resources = if name.contains("multi") { 2 } else { 1 };
        assert_eq!(table.solid_resources.len(), expected_resources, "{name}");
        for r in &table.solid_resources {
            assert_eq!(u64::from(r.chunk_size_bytes), *chunk_size, "{name}");
        }
        let theirs = wimlib_blobs(&path);
        let mut solid = 0;
        for b in &table.blobs {
            let t = &theirs[&b.sha1.to_string()];
            assert_eq!(
                b.size_bytes(),
                bytes_field(&t["Uncompressed size"]),
                "{name}"
            );
            let Some(place) = b.solid else {
                assert!(!t.contains_key("Solid resource"), "{name}");
                continue;
            };
            solid += 1;
            let res = &table.solid_resources[place.resource];
            // "Solid resource = USIZE => STORED bytes @ offset OFFSET"
            let text = &t["Solid resource"];
            let (usize_text, rest) = text.split_once("=>").unwrap();
            let (stored_text, offset_text) = rest.split_once('@').unwrap();
            assert_eq!(res.original_size, bytes_field(usize_text), "{name}");
            assert_eq!(res.size_in_wim, bytes_field(stored_text), "{name}");
            assert_eq!(
                res.offset,
                bytes_field(offset_text.trim().trim_start_matches("offset")),
                "{name}"
            );
            assert_eq!(
                place.offset_bytes,
                bytes_field(&t["Solid offset"]),
                "{name}"
            );
        }
        assert!(solid >= 60, "{name}: {solid} solid blobs");
    }
}

#[test]
fn pipable_header_comes_from_the_end() {
    let dir = solid_fixtures();
    for name in PIPABLE {
        let path = dir.join(name);
        let wim = open(&path);
        assert!(wim.header().pipable, "{name}");
        let theirs = fields(
            &run(
                "wimlib-imagex",
                &["info", path.to_str().unwrap(), "--header"],
            ),
            "=",
        );
        let h = wim.header();
        assert_eq!(h.guid_hex(), theirs["GUID"], "{name}");
        assert_eq!(
            h.blob_table.offset.to_string(),
            theirs["Blob Table Offset"],
            "{name}"
        );
        assert_eq!(
            h.xml.offset.to_string(),
            theirs["XML Data Offset"],
            "{name}"
        );
        let (_, images) = wimlib_info(&path);
        assert_eq!(wim.images().len(), images.len(), "{name}");
    }
    // The pipable WIM of the general fixtures reads too.
    let wim = open(&fixtures().join("pipable.wim"));
    assert!(wim.header().pipable);
    for b in &wim.blob_table().blobs {
        assert_eq!(Sha1Digest::of(&streamed(&wim, b)), b.sha1);
    }
}

fn wimlib_verify_ok(path: &Path) -> bool {
    Command::new("wimlib-imagex")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("wimlib-imagex is required (apt: wimtools)")
        .status
        .success()
}

fn check(bytes: &[u8]) -> VerifyReport {
    verify(bytes.to_vec(), Default::default(), &|_| {}).unwrap()
}

#[test]
fn verify_agrees_with_wimlib_on_intact_files() {
    let dir = solid_fixtures();
    for name in all_names() {
        let path = dir.join(name);
        assert!(wimlib_verify_ok(&path), "{name}: wimlib says damaged");
        // A 1-byte buffer budget: one chunk (or group) at a time, across resources too.
        for (threads, buffer_bytes) in [(1, None), (3, None), (3, Some(1))] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let last = AtomicU64::new(0);
            let total = AtomicU64::new(0);
            let progress = |p: Progress| {
                last.fetch_max(p.done_bytes, Ordering::Relaxed);
                total.store(p.total_bytes, Ordering::Relaxed);
            };
            let report = pool
                .install(|| {
                    verify(
                        FileReader::open(&path).unwrap(),
                        VerifyOptions {
                            buffer_bytes,
                            ..Default::default()
                        },
                        &progress,
                    )
                })
                .unwrap();
            assert!(
                report.intact,
                "{name} with {threads} threads, budget {buffer_bytes:?}: {report:?}"
            );
            let wim = open(&path);
            assert_eq!(report.blobs_checked, wim.blob_table().blobs.len() as u64);
            assert_eq!(
                last.load(Ordering::Relaxed),
                total.load(Ordering::Relaxed),
                "{name}: progress ends at the total"
            );
            if name == "pipable-lzx.wim" {
                let integrity = report.integrity.as_ref().expect("--check wrote a table");
                assert!(integrity.failures.is_empty() && integrity.chunk_count > 0);
            }
        }
    }
}

/// The solid blobs (hash, offset in resource, size) that overlap bytes `lo..hi` of resource
/// `res_offset`, according to `wimlib-imagex info --blobs`.
fn wimlib_blobs_overlapping(path: &Path, res_offset: u64, lo: u64, hi: u64) -> BTreeSet<String> {
    wimlib_blobs(path)
        .into_iter()
        .filter(|(_, t)| {
            let Some(text) = t.get("Solid resource") else {
                return false;
            };
            let at = bytes_field(text.rsplit_once("offset").unwrap().1);
            let start = bytes_field(&t["Solid offset"]);
            let end = start + bytes_field(&t["Uncompressed size"]);
            at == res_offset && start < hi && lo < end
        })
        .map(|(h, _)| h)
        .collect()
}

/// A chunk in the middle of the first solid resource of a fixture (whose blobs wimlib places
/// across chunk boundaries or not), with the file's bytes and the blobs that
/// `wimlib-imagex info --blobs` says overlap the chunk.
struct MiddleChunk {
    bytes: Vec<u8>,
    wim: Wim<FileReader>,
    index: u64,
    span: winre_wim::resource::ChunkSpan,
    wimlib_blobs: BTreeSet<String>,
}

fn middle_chunk(path: &Path, chunk_size: u64) -> MiddleChunk {
    let wim = open(path);
    let res = wim.blob_table().solid_resources[0];
    let chunks = wim.solid_chunks(0).unwrap();
    let index = chunks.chunk_count() / 2;
    let span = chunks.span(index).unwrap();
    let lo = index * chunk_size;
    MiddleChunk {
        bytes: std::fs::read(path).unwrap(),
        wim,
        index,
        span,
        wimlib_blobs: wimlib_blobs_overlapping(path, res.offset, lo, lo + chunk_size),
    }
}

#[test]
fn flipped_byte_in_a_solid_chunk_names_the_blobs_it_breaks() {
    let dir = solid_fixtures();
    for (name, chunk_size) in SOLID {
        let MiddleChunk {
            bytes,
            wim,
            index,
            span,
            wimlib_blobs: expected,
        } = middle_chunk(&dir.join(name), *chunk_size);
        let mut damaged = bytes.clone();
        damaged[(span.offset + span.stored_len as u64 / 2) as usize] ^= 0x55;
        let report = check(&damaged);
        assert!(!report.intact, "{name}");
        let ours: BTreeSet<String> = report.failures.iter().map(|f| f.sha1.to_string()).collect();
        // One chunk at a time finds the same.
        let tight = verify(
            damaged.clone(),
            VerifyOptions {
                buffer_bytes: Some(1),
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        let tight: BTreeSet<String> = tight.failures.iter().map(|f| f.sha1.to_string()).collect();
        assert_eq!(tight, ours, "{name}: a 1-byte budget");
        assert!(!expected.is_empty(), "{name}: chunk {index} holds no blob");
        assert!(
            ours.is_subset(&expected) && !ours.is_empty(),
            "{name}: reported {ours:?}, chunk {index} holds {expected:?}"
        );
        for f in &report.failures {
            assert!(f.offset_in_solid_resource.is_some(), "{name}");
            // Each broken blob is named by the files that use it.
            assert!(!f.used_by.is_empty(), "{name}: {f:?}");
            assert!(f.offset <= span.offset && span.offset < f.offset + f.size_in_wim);
            match &f.problem {
                BlobProblem::DecodeError { chunk, offset, .. } => {
                    assert_eq!((*chunk, *offset), (index, span.offset), "{name}")
                }
                BlobProblem::HashMismatch { .. } => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        // The other blobs were still checked, and wimlib agrees that the file is damaged.
        assert!(report.failures.len() < wim.blob_table().blobs.len());
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &damaged).unwrap();
        assert!(
            !wimlib_verify_ok(tmp.path()),
            "{name}: wimlib missed the damage"
        );
    }
}

/// A file with one unreadable byte range (a bad sector on the evidence disk).
struct BadSector {
    bytes: Vec<u8>,
    bad: std::ops::Range<u64>,
}

impl winre_readat::ReadAt for BadSector {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if offset < self.bad.end && self.bad.start < end {
            return Err(std::io::Error::other(format!(
                "bad sector in {offset}..{end}"
            )));
        }
        self.bytes.read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

#[test]
fn unreadable_bytes_in_one_chunk_fail_only_its_blobs() {
    // Small chunks are decoded in groups with one read; the read of a group that hits the bad
    // range fails, and then each chunk is read alone, so only the one chunk's blobs fail.
    let dir = solid_fixtures();
    for (name, chunk_size) in SOLID {
        let MiddleChunk {
            bytes,
            index,
            span,
            wimlib_blobs: expected,
            ..
        } = middle_chunk(&dir.join(name), *chunk_size);
        let at = span.offset + span.stored_len as u64 / 2;
        let reader = BadSector {
            bytes,
            bad: at..at + 1,
        };
        let report = verify(reader, Default::default(), &|_| {}).unwrap();
        let ours: BTreeSet<String> = report.failures.iter().map(|f| f.sha1.to_string()).collect();
        assert_eq!(ours, expected, "{name}: chunk {index}");
        for f in &report.failures {
            assert!(
                matches!(&f.problem, BlobProblem::ReadError { detail } if detail.contains("bad sector")),
                "{name}: {f:?}"
            );
        }
    }
}

#[test]
fn flipped_byte_in_a_pipable_chunk() {
    let dir = solid_fixtures();
    for name in ["pipable-lzx.wim", "pipable-xpress.wim"] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap();
        let wim = open(&path);
        let blob = wim
            .blob_table()
            .blobs
            .iter()
            .filter(|b| b.reshdr.is_compressed() && !b.is_metadata())
            .max_by_key(|b| b.reshdr.size_in_wim)
            .unwrap();
        let mut damaged = bytes.clone();
        let at = blob.reshdr.offset + blob.reshdr.size_in_wim / 3;
        damaged[at as usize] ^= 0xA5;
        let report = check(&damaged);
        assert!(!report.intact, "{name}");
        assert!(
            report.failures.iter().any(|f| f.sha1 == blob.sha1),
            "{name}: {report:?}"
        );
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &damaged).unwrap();
        assert!(!wimlib_verify_ok(tmp.path()), "{name}");
    }
}

/// The offset of the blob table entry that describes solid resource 0 of `wim`.
fn resource_entry_offset(wim: &Wim<FileReader>) -> usize {
    let res = wim.blob_table().solid_resources[0];
    (wim.header().blob_table.offset + 50 * res.table_index as u64) as usize
}

fn corrupt_at(err: &Error) -> (String, u64) {
    match err {
        Error::Corrupt { what, offset, .. } => (what.clone(), *offset),
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn lying_solid_headers_are_corrupt_errors() {
    let dir = solid_fixtures();
    let path = dir.join("solid-lzx.wim");
    let bytes = std::fs::read(&path).unwrap();
    let wim = open(&path);
    let res = wim.blob_table().solid_resources[0];
    let at = res.offset as usize;
    let file_blob = wim
        .blob_table()
        .blobs
        .iter()
        .find(|b| b.solid.is_some())
        .unwrap()
        .to_owned();
    // (what, position in the resource, new bytes there, where the error must point)
    let edits: Vec<(&str, u64, Vec<u8>, u64)> = vec![
        (
            "uncompressed size 2^60",
            0,
            (1u64 << 60).to_le_bytes().to_vec(),
            0,
        ),
        ("chunk size 0", 8, 0u32.to_le_bytes().to_vec(), 8),
        ("chunk size 2^31", 8, (1u32 << 31).to_le_bytes().to_vec(), 8),
        ("compression format 9", 12, 9u32.to_le_bytes().to_vec(), 12),
        ("chunk 0 stored size 0", 16, 0u32.to_le_bytes().to_vec(), 16),
        (
            "chunk 1 stored size 2^31",
            20,
            (1u32 << 31).to_le_bytes().to_vec(),
            20,
        ),
    ];
    for (label, pos, new, error_pos) in edits {
        let mut damaged = bytes.clone();
        let pos = at + pos as usize;
        damaged[pos..pos + new.len()].copy_from_slice(&new);
        let offset = res.offset + error_pos;
        let wim = Wim::open(damaged.clone()).unwrap_or_else(|e| panic!("{label}: {e}"));
        let err: Error = wim.stream_blob(&file_blob, |_| Ok(())).unwrap_err().into();
        let (what, at) = corrupt_at(&err);
        assert!(what.contains("solid resource"), "{label}: {err}");
        assert_eq!(at, offset, "{label}: {err}");
        let err = wim.read_blob(&file_blob, 1 << 30).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{label}: {err}");
        // Verify reports every blob of the resource, and does not stop.
        let report = check(&damaged);
        assert!(!report.intact, "{label}");
        let solid_count = wim
            .blob_table()
            .blobs
            .iter()
            .filter(|b| b.solid.is_some())
            .count();
        assert_eq!(report.failures.len(), solid_count, "{label}");
        assert!(report
            .failures
            .iter()
            .all(|f| matches!(f.problem, BlobProblem::BadLayout { .. })));
    }
}

#[test]
fn truncated_or_misplaced_solid_resources_are_corrupt() {
    let dir = solid_fixtures();
    let path = dir.join("solid-xpress.wim");
    let bytes = std::fs::read(&path).unwrap();
    let wim = open(&path);
    let entry = resource_entry_offset(&wim);
    let res = wim.blob_table().solid_resources[0];
    let set_size = |b: &mut Vec<u8>, size: u64| {
        b[entry..entry + 7].copy_from_slice(&size.to_le_bytes()[..7]);
    };
    // Stored size past the end of the file: refused when opening, naming the resource.
    let mut damaged = bytes.clone();
    set_size(&mut damaged, bytes.len() as u64);
    let err = Wim::open(damaged.clone()).unwrap_err();
    let (what, at) = corrupt_at(&err);
    assert!(what.contains("solid resource"), "{err}");
    assert_eq!(at, res.offset);
    assert!(check(&damaged).structure_error.is_some());
    // Too small for its header.
    let mut damaged = bytes.clone();
    set_size(&mut damaged, 8);
    let (what, _) = corrupt_at(&Wim::open(damaged).unwrap_err());
    assert!(what.contains("solid resource"), "{what}");
    // Cut short: the chunk table no longer fits, or the chunks run past the resource.
    for size in [20, res.size_in_wim / 2] {
        let mut damaged = bytes.clone();
        set_size(&mut damaged, size);
        let wim = Wim::open(damaged.clone()).unwrap();
        let err: Error = wim.solid_chunks(0).unwrap_err().into();
        let (what, _) = corrupt_at(&err);
        assert!(what.contains("solid resource"), "size {size}: {err}");
        let blob = wim
            .blob_table()
            .blobs
            .iter()
            .find(|b| b.solid.is_some())
            .unwrap();
        assert!(wim.read_blob(blob, 1 << 30).is_err());
        assert!(!check(&damaged).intact, "size {size}");
    }
    // Some bytes short: like wimlib, the last chunk's stored size is what remains, so the table
    // loads; the last chunk then fails, verify names the blobs in it, and wimlib agrees.
    let mut damaged = bytes.clone();
    set_size(&mut damaged, res.size_in_wim - 300);
    let report = check(&damaged);
    assert!(!report.intact);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &damaged).unwrap();
    assert!(!wimlib_verify_ok(tmp.path()));
    let wim = Wim::open(damaged).unwrap();
    let last = wim.solid_chunks(0).unwrap().chunk_count() - 1;
    let lo = last * 4096;
    let expected = wimlib_blobs_overlapping(&path, res.offset, lo, lo + 4096);
    let ours: BTreeSet<String> = report.failures.iter().map(|f| f.sha1.to_string()).collect();
    assert!(
        !ours.is_empty() && ours.is_subset(&expected),
        "{ours:?} vs {expected:?}"
    );
    // A blob placed past its resource's end, and two blobs that overlap.
    let first_blob = entry + 50;
    let mut damaged = bytes.clone();
    damaged[first_blob + 8..first_blob + 16].copy_from_slice(&(res.original_size).to_le_bytes());
    let (what, at) = corrupt_at(&Wim::open(damaged).unwrap_err());
    assert!(what.starts_with("blob table entry"), "{what}");
    assert_eq!(at, first_blob as u64);
    let second_blob = entry + 100;
    let mut damaged = bytes.clone();
    let first_offset =
        u64::from_le_bytes(bytes[first_blob + 8..first_blob + 16].try_into().unwrap());
    damaged[second_blob + 8..second_blob + 16].copy_from_slice(&(first_offset + 1).to_le_bytes());
    let err = Wim::open(damaged).unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
}

#[test]
fn random_damage_in_solid_resources_never_panics() {
    let dir = solid_fixtures();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, _) in SOLID {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap();
        let wim = open(&path);
        let res = wim.blob_table().solid_resources[0];
        for _ in 0..40 {
            let mut damaged = bytes.clone();
            for _ in 0..3 {
                let at = res.offset + next() % res.size_in_wim;
                damaged[at as usize] ^= (next() % 255 + 1) as u8;
            }
            let report = check(&damaged);
            assert!(
                report.structure_error.is_some() || report.blobs_checked > 0,
                "{name}"
            );
        }
    }
}

#[test]
fn one_small_blob_reads_only_the_chunks_that_hold_it() {
    let dir = solid_fixtures();
    let path = dir.join("solid-xpress.wim");
    let counting = Counting::new(FileReader::open(&path).unwrap());
    let wim = Wim::open(&counting).unwrap();
    let blob = wim
        .blob_table()
        .blobs
        .iter()
        .filter(|b| b.solid.is_some() && b.size_bytes() < 4096)
        .max_by_key(|b| b.solid.unwrap().offset_bytes)
        .unwrap();
    let chunks = wim.solid_chunks(0).unwrap();
    let before = counting.stats().bytes;
    let data = streamed(&wim, blob);
    assert_eq!(Sha1Digest::of(&data), blob.sha1);
    let read = counting.stats().bytes - before;
    // At most two 4 KiB chunks (a blob under 4 KiB straddles at most one boundary).
    assert!(
        read <= 2 * 4096,
        "read {read} bytes of a {}-chunk resource",
        chunks.chunk_count()
    );
}

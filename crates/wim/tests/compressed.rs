//! Compressed WIMs (XPRESS, LZX, every chunk size the fixtures use): every resource decodes to
//! the bytes `wimlib-imagex apply` writes, verify passes single- and multi-threaded, and damage
//! inside compressed data is reported per blob.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use winre_readat::FileReader;
use winre_wim::blob_table::BlobEntry;
use winre_wim::budget::MemoryBudget;
use winre_wim::resource::{self, ChunkLayout, DecoderPool};
use winre_wim::verify::{verify, BlobProblem, Progress};
use winre_wim::{Sha1Digest, Wim};

#[test]
fn every_file_decodes_like_wimlib_apply() {
    let dir = fixtures();
    for name in READABLE {
        let path = dir.join(name);
        let wim = Wim::open(FileReader::open(&path).unwrap()).unwrap();
        let by_hash: HashMap<Sha1Digest, &BlobEntry> =
            wim.blob_table().blobs.iter().map(|b| (b.sha1, b)).collect();
        for image in wim.images() {
            let mut checked = 0;
            for (file, theirs) in wimlib_applied_files(&path, image.index) {
                let blob = by_hash
                    .get(&Sha1Digest::of(&theirs))
                    .unwrap_or_else(|| panic!("{name}: no blob for {}", file.display()));
                let ours = wim.read_blob(blob, 1 << 30).unwrap();
                assert!(ours == theirs, "{name}: {} differs", file.display());
                let mut streamed = Vec::new();
                wim.stream_blob(blob, |piece| {
                    streamed.extend_from_slice(piece);
                    Ok(())
                })
                .unwrap();
                assert!(
                    streamed == theirs,
                    "{name}: {} streams wrong",
                    file.display()
                );
                checked += 1;
            }
            assert!(checked >= 35, "{name}: only {checked} files");
        }
        // Metadata resources decode to their recorded SHA-1 too.
        for m in &wim.blob_table().metadata {
            assert_eq!(
                Sha1Digest::of(&wim.read_blob(m, 1 << 30).unwrap()),
                m.sha1,
                "{name}"
            );
        }
    }
}

#[test]
fn verify_passes_with_one_and_several_threads() {
    let dir = fixtures();
    for name in READABLE {
        let path = dir.join(name);
        for threads in [1, 3] {
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
                        Default::default(),
                        &progress,
                    )
                })
                .unwrap();
            assert!(report.intact, "{name} with {threads} threads: {report:?}");
            assert!(report.blobs_checked >= 39);
            assert_eq!(
                last.load(Ordering::Relaxed),
                total.load(Ordering::Relaxed),
                "{name}: progress ends at the total"
            );
        }
        assert!(wimlib_verify_ok(&path), "{name}");
    }
}

fn wimlib_verify_ok(path: &std::path::Path) -> bool {
    std::process::Command::new("wimlib-imagex")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("wimlib-imagex is required (apt: wimtools)")
        .status
        .success()
}

#[test]
fn parallel_stream_matches_sequential_and_raw_chunks_occur() {
    let dir = fixtures();
    for name in ["xpress-4k.wim", "lzx.wim", "lzx-2m.wim"] {
        let wim = Wim::open(FileReader::open(dir.join(name)).unwrap()).unwrap();
        let h = wim.header();
        let pool = DecoderPool::new(h.compression, h.chunk_size_bytes as usize).unwrap();
        let mut raw_chunks = 0;
        for blob in wim
            .blob_table()
            .blobs
            .iter()
            .filter(|b| b.reshdr.is_compressed())
        {
            let spec = wim.spec(blob.reshdr);
            let mut sequential = Vec::new();
            resource::stream(wim.reader(), &spec, Some(&pool), |b| {
                sequential.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            // 7 workers under a budget of 1 byte: one group at a time, the same bytes.
            for (workers, budget) in [(1, u64::MAX), (7, u64::MAX), (7, 1)] {
                let budget = MemoryBudget::new(budget);
                let mut parallel = Vec::new();
                resource::stream_parallel(wim.reader(), &spec, &pool, workers, &budget, |b| {
                    parallel.extend_from_slice(b);
                    Ok(())
                })
                .unwrap();
                assert!(parallel == sequential, "{name} blob {}", blob.sha1);
            }
            assert_eq!(Sha1Digest::of(&sequential), blob.sha1);
            let layout = ChunkLayout::new(&blob.reshdr, h.chunk_size_bytes).unwrap();
            raw_chunks += layout
                .spans(wim.reader(), 0, layout.chunk_count)
                .unwrap()
                .iter()
                .filter(|s| s.is_raw())
                .count();
        }
        // With small chunks, the incompressible files of the tree are stored as raw chunks.
        if name != "lzx-2m.wim" {
            assert!(raw_chunks > 0, "{name}");
        }
    }
}

fn largest_compressed(bytes: &[u8]) -> (BlobEntry, ChunkLayout) {
    let wim = Wim::open(bytes.to_vec()).unwrap();
    let blob = *wim
        .blob_table()
        .blobs
        .iter()
        .filter(|b| !b.is_metadata() && b.reshdr.is_compressed())
        .max_by_key(|b| b.reshdr.size_in_wim)
        .unwrap();
    let layout = ChunkLayout::new(&blob.reshdr, wim.header().chunk_size_bytes).unwrap();
    (blob, layout)
}

#[test]
fn flipped_byte_in_compressed_blob() {
    let mut bytes = std::fs::read(fixtures().join("lzx.wim")).unwrap();
    let (blob, layout) = largest_compressed(&bytes);
    assert!(
        layout.chunk_count >= 32,
        "the fixture's largest blob takes the chunk-parallel path"
    );
    // Inside a compressed (not raw) chunk in the middle of the blob.
    let wim = Wim::open(bytes.clone()).unwrap();
    let spans = layout.spans(wim.reader(), 0, layout.chunk_count).unwrap();
    let span = spans
        .iter()
        .skip(spans.len() / 2)
        .find(|s| !s.is_raw())
        .unwrap();
    bytes[(span.offset + span.stored_len as u64 / 2) as usize] ^= 0x20;
    let report = verify(bytes.clone(), Default::default(), &|_| {}).unwrap();
    assert!(!report.intact);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let f = &report.failures[0];
    assert_eq!(f.sha1, blob.sha1);
    match &f.problem {
        BlobProblem::DecodeError { chunk, .. } => assert_eq!(*chunk, span.index),
        BlobProblem::HashMismatch { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(f.integrity_chunks.len(), 1);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("d.wim");
    std::fs::write(&p, &bytes).unwrap();
    assert!(!wimlib_verify_ok(&p));
}

#[test]
fn chunk_table_entry_past_the_resource() {
    let mut bytes = std::fs::read(fixtures().join("xpress.wim")).unwrap();
    let (blob, layout) = largest_compressed(&bytes);
    let at = (layout.table_offset + 4 * 5) as usize; // start of chunk 6
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let report = verify(bytes.clone(), Default::default(), &|_| {}).unwrap();
    assert!(!report.intact);
    let f = report
        .failures
        .iter()
        .find(|f| f.sha1 == blob.sha1)
        .unwrap();
    match &f.problem {
        BlobProblem::BadLayout { detail } => assert!(detail.contains("past the end"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("d.wim");
    std::fs::write(&p, &bytes).unwrap();
    assert!(!wimlib_verify_ok(&p));
}

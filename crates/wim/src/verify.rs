//! Verification: the integrity table, then every blob (image metadata included) decompressed and
//! hashed against the SHA-1 the blob table records.
//!
//! Small blobs are spread over the rayon pool, one worker each; blobs of many compressed chunks
//! are then done one at a time, their chunks decoded on one thread per rayon worker and hashed
//! in order (SHA-1 is sequential) on this thread as they arrive ([`crate::pipeline`]). Each
//! worker owns its decoder (from a [`DecoderPool`]); every decode buffer is taken from one byte
//! budget ([`MemoryBudget`], [`VerifyOptions::buffer_bytes`]), so memory is bounded whatever the
//! size of the WIM and of its chunks: huge chunks decode fewer at a time.
//!
//! Solid resources are decoded once each, all in one pipeline (the next resource's chunks start
//! while the last of this one decodes), and their bytes are handed in order to the blobs that
//! lie in them (a blob may start and end anywhere, and straddle chunks); each blob is hashed as
//! its bytes go by. A chunk that cannot be read or decoded fails every blob it holds part of,
//! and the other chunks are still checked.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use sha1::Digest;
use winre_readat::ReadAt;

use crate::blob_table::BlobEntry;
use crate::budget::{MemoryBudget, DEFAULT_BUFFER_BYTES};
use crate::codec::Compression;
use crate::digest::Sha1Digest;
use crate::integrity::{IntegrityFailure, IntegrityTable};
use crate::metadata::usage::{stream_uses, StreamUse};
use crate::metadata::Image;
use crate::resource::{self, ChunkLayout, ChunkSpan, DecoderPool, Fault, ResourceSpec};
use crate::solid::{self, SolidChunks};
use crate::wim::{read_header, Wim};
use crate::{Error, Result};

/// Blobs with at least this many compressed chunks are decoded chunk-parallel.
pub const LARGE_BLOB_CHUNKS: u64 = 32;
/// Progress of a verification: bytes done and total, counted in stored bytes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done so far.
    pub done_bytes: u64,
    /// Bytes to do in all.
    pub total_bytes: u64,
}

/// The result of `winre verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Size of the file.
    pub file_size_bytes: u64,
    /// The integrity table check, when the WIM has a table.
    pub integrity: Option<IntegrityReport>,
    /// Why the blob table or XML data could not be read (then no blob was checked), or why an
    /// image's dentry tree whose metadata blob hashes right cannot be read (a directory cycle,
    /// entries past the end, a bad security block): one sentence per image, `; `-joined.
    pub structure_error: Option<String>,
    /// Blobs checked (metadata included).
    pub blobs_checked: u64,
    /// Uncompressed bytes hashed.
    pub bytes_checked: u64,
    /// Each blob that failed.
    pub failures: Vec<BlobFailure>,
    /// Images whose files could not be mapped to failed blobs (their metadata is unreadable).
    pub path_errors: Vec<String>,
    /// True when nothing failed.
    pub intact: bool,
}

/// The integrity table check.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrityReport {
    /// Window size.
    pub chunk_size_bytes: u32,
    /// Number of windows.
    pub chunk_count: u64,
    /// Bytes covered (from the end of the header to the end of the blob table).
    pub covered_bytes: u64,
    /// The table itself is unreadable or inconsistent.
    pub table_error: Option<String>,
    /// Windows that failed.
    pub failures: Vec<IntegrityFailure>,
}

/// A blob that failed.
#[derive(Debug, Clone, Serialize)]
pub struct BlobFailure {
    /// The SHA-1 the blob table records.
    pub sha1: Sha1Digest,
    /// Offset of its resource (for a blob in a solid resource: of the stored chunks that hold
    /// it, or of the solid resource when its chunk table is unreadable).
    pub offset: u64,
    /// Stored size (for a blob in a solid resource: of those chunks, or of the resource).
    pub size_in_wim: u64,
    /// Uncompressed size.
    pub original_size: u64,
    /// For a blob in a solid resource: its offset in the resource's uncompressed bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_in_solid_resource: Option<u64>,
    /// The image whose metadata this is, if it is metadata.
    pub metadata_of_image: Option<u32>,
    /// What failed.
    pub problem: BlobProblem,
    /// Failed integrity windows that overlap its stored bytes.
    pub integrity_chunks: Vec<u64>,
    /// Every (image, path, stream) whose data is this blob.
    pub used_by: Vec<StreamUse>,
}

/// What failed about a blob.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlobProblem {
    /// It decoded, but to bytes with another SHA-1.
    HashMismatch {
        /// SHA-1 of the bytes read.
        actual: Sha1Digest,
    },
    /// A chunk did not decode.
    DecodeError {
        /// Chunk number.
        chunk: u64,
        /// Offset of the chunk's stored bytes.
        offset: u64,
        /// The decoder's message.
        detail: String,
    },
    /// Its resource header or chunk table is inconsistent.
    BadLayout {
        /// What is wrong.
        detail: String,
    },
    /// Reading failed (e.g. the file is truncated).
    ReadError {
        /// The error.
        detail: String,
    },
}

/// Options of [`verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Skip the integrity table.
    pub skip_integrity: bool,
    /// Bytes the decode buffers may hold at once (None: [`DEFAULT_BUFFER_BYTES`]). Huge chunks
    /// decode fewer at a time under a small budget; one chunk always decodes, whatever its size.
    pub buffer_bytes: Option<u64>,
}

/// Verifies the WIM in `reader` on the current rayon pool (use `ThreadPool::install` to choose
/// the number of threads). Returns Err only when the file cannot be checked at all: no readable
/// header, or a feature not supported (split WIMs, or a codec not built in).
/// Corruption anywhere else, including an unreadable blob table or XML, is reported in the
/// [`VerifyReport`]. `progress` is called from worker threads.
pub fn verify<R: ReadAt>(
    reader: R,
    options: VerifyOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<VerifyReport> {
    let header = read_header(&reader)?;
    let file_size_bytes = reader.len();
    let integrity_table = if options.skip_integrity {
        Ok(None)
    } else {
        IntegrityTable::read(&reader, &header)
    };
    let opened = Wim::open_with_header(&reader, header.clone());
    if let Err(Error::Unsupported(m)) = &opened {
        return Err(Error::Unsupported(m.clone()));
    }
    let all_blobs: Vec<BlobEntry> = opened
        .as_ref()
        .map(|w| w.blob_table().blobs.clone())
        .unwrap_or_default();
    let (solid_blobs, blobs): (Vec<BlobEntry>, Vec<BlobEntry>) =
        all_blobs.iter().partition(|b| b.solid.is_some());
    // Stored bytes of the solid resources that hold blobs, for progress.
    let solid_stored_bytes = opened.as_ref().map_or(0, |w| {
        let used: std::collections::BTreeSet<usize> = solid_blobs
            .iter()
            .filter_map(|b| b.solid.map(|p| p.resource))
            .collect();
        used.iter()
            .filter_map(|&i| w.blob_table().solid_resources.get(i))
            .fold(0u64, |sum, r| sum.saturating_add(r.size_in_wim))
    });
    let pool = if header.compression != Compression::None
        && blobs.iter().any(|b| b.reshdr.is_compressed())
    {
        Some(DecoderPool::new(
            header.compression,
            usize::try_from(header.chunk_size_bytes).unwrap_or(usize::MAX),
        )?)
    } else {
        None
    };

    let integrity_bytes = match &integrity_table {
        Ok(Some(t)) => t.covered_bytes(),
        _ => 0,
    };
    let total_bytes = blobs.iter().fold(
        integrity_bytes.saturating_add(solid_stored_bytes),
        |sum, b| sum.saturating_add(b.reshdr.size_in_wim),
    );
    let done = AtomicU64::new(0);
    let advance = |n: u64| {
        let done_bytes = done.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        progress(Progress {
            done_bytes,
            total_bytes,
        });
    };

    let integrity = match integrity_table {
        Ok(None) => None,
        Ok(Some(table)) => Some(IntegrityReport {
            chunk_size_bytes: table.chunk_size_bytes,
            chunk_count: table.digests.len() as u64,
            covered_bytes: table.covered_bytes(),
            table_error: None,
            failures: table.check(&reader, &advance),
        }),
        Err(e) => Some(IntegrityReport {
            chunk_size_bytes: 0,
            chunk_count: 0,
            covered_bytes: 0,
            table_error: Some(e.to_string()),
            failures: Vec::new(),
        }),
    };

    let (structure_error, mut failures) = match &opened {
        Err(e) => (Some(e.to_string()), Vec::new()),
        Ok(wim) => {
            let budget = MemoryBudget::new(options.buffer_bytes.unwrap_or(DEFAULT_BUFFER_BYTES));
            let mut failures = check_blobs(wim, &blobs, pool.as_ref(), &budget, &advance);
            failures.extend(check_solid(wim, &solid_blobs, &budget, &advance)?);
            (check_trees(wim, &failures), failures)
        }
    };
    // Point each failed blob at the failed integrity windows it overlaps.
    if let Some(report) = &integrity {
        for f in &mut failures {
            let end = f.offset.saturating_add(f.size_in_wim);
            f.integrity_chunks = report
                .failures
                .iter()
                .filter(|w| w.offset < end && f.offset < w.offset.saturating_add(w.len))
                .map(|w| w.chunk)
                .collect();
        }
    }
    failures.sort_by_key(|f| f.offset);
    let path_errors = match &opened {
        Ok(wim) => attach_paths(wim, &mut failures),
        Err(_) => Vec::new(),
    };
    let bytes_checked = all_blobs
        .iter()
        .fold(0u64, |s, b| s.saturating_add(b.size_bytes()));
    let integrity_ok = integrity
        .as_ref()
        .is_none_or(|i| i.table_error.is_none() && i.failures.is_empty());
    Ok(VerifyReport {
        file_size_bytes,
        intact: integrity_ok && structure_error.is_none() && failures.is_empty(),
        integrity,
        structure_error,
        blobs_checked: all_blobs.len() as u64,
        bytes_checked,
        failures,
        path_errors,
    })
}

/// Parses the dentry tree of every image whose metadata blob did not fail already, as wimlib's
/// verify does; why each that cannot be read fails, or `None` when all read.
fn check_trees<R: ReadAt + Sync>(wim: &Wim<R>, failures: &[BlobFailure]) -> Option<String> {
    let failed: HashSet<u32> = failures
        .iter()
        .filter_map(|f| f.metadata_of_image)
        .collect();
    let errors: Vec<String> = (1..=wim.header().image_count)
        .into_par_iter()
        .filter(|index| !failed.contains(index))
        .filter_map(|index| {
            Image::open(wim, index)
                .err()
                .map(|e| format!("image {index}: its directory tree cannot be read: {e}"))
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Fills each failure's `used_by` from the images' file trees; returns why an image could not
/// be mapped. Reads the metadata only when a data blob failed.
fn attach_paths<R: ReadAt>(wim: &Wim<R>, failures: &mut [BlobFailure]) -> Vec<String> {
    let wanted: HashSet<Sha1Digest> = failures
        .iter()
        .filter(|f| f.metadata_of_image.is_none())
        .map(|f| f.sha1)
        .collect();
    let (mut uses, errors) = stream_uses(wim, &wanted);
    for f in failures.iter_mut() {
        f.used_by = uses.remove(&f.sha1).unwrap_or_default();
    }
    errors
}

fn is_large(spec: &ResourceSpec) -> bool {
    spec.reshdr.is_compressed()
        && ChunkLayout::for_spec(spec).is_ok_and(|l| l.chunk_count >= LARGE_BLOB_CHUNKS)
}

fn check_blobs<R: ReadAt>(
    wim: &Wim<R>,
    blobs: &[BlobEntry],
    pool: Option<&DecoderPool>,
    budget: &MemoryBudget,
    advance: &(dyn Fn(u64) + Sync),
) -> Vec<BlobFailure> {
    let (large, small): (Vec<&BlobEntry>, Vec<&BlobEntry>) =
        blobs.iter().partition(|b| is_large(&wim.spec(b.reshdr)));
    let mut failures: Vec<BlobFailure> = small
        .par_iter()
        .filter_map(|blob| {
            let spec = wim.spec(blob.reshdr);
            let mut hasher = sha1::Sha1::new();
            let grant = budget.acquire(resource::stream_buffer_bytes(&spec));
            let result = resource::stream(wim.reader(), &spec, pool, |bytes| {
                hasher.update(bytes);
                Ok(())
            });
            drop(grant);
            advance(blob.reshdr.size_in_wim);
            judge(wim, blob, result, hasher)
        })
        .collect();
    let workers = rayon::current_num_threads();
    for blob in large {
        let spec = wim.spec(blob.reshdr);
        let Some(pool) = pool else { continue };
        let mut hasher = sha1::Sha1::new();
        let mut fed = 0u64;
        let total = blob.reshdr.original_size.max(1);
        let stored = blob.reshdr.size_in_wim;
        let mut reported = 0u64;
        let result =
            resource::stream_parallel(wim.reader(), &spec, pool, workers, budget, |bytes| {
                hasher.update(bytes);
                fed = fed.saturating_add(bytes.len() as u64);
                // Report stored bytes in proportion to the uncompressed bytes hashed.
                let now = u128::from(stored)
                    .saturating_mul(u128::from(fed))
                    .checked_div(u128::from(total))
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(stored);
                advance(now.saturating_sub(reported));
                reported = now;
                Ok(())
            });
        advance(stored.saturating_sub(reported));
        failures.extend(judge(wim, blob, result, hasher));
    }
    failures
}

/// One blob of a solid resource being hashed as the resource's bytes go by.
struct SolidBlobCheck<'a> {
    blob: &'a BlobEntry,
    start: u64,
    end: u64,
    hasher: sha1::Sha1,
    problem: Option<BlobProblem>,
    /// Stored bytes of the chunks that hold it: (first offset, end).
    stored: Option<(u64, u64)>,
}

/// Verifies the blobs that live in solid resources: each resource decoded once, all of them in
/// one pipeline (the next resource starts while the last chunks of this one decode). Returns Err
/// only for a resource whose codec is not supported.
fn check_solid<R: ReadAt>(
    wim: &Wim<R>,
    blobs: &[BlobEntry],
    budget: &MemoryBudget,
    advance: &(dyn Fn(u64) + Sync),
) -> Result<Vec<BlobFailure>> {
    let mut by_resource: BTreeMap<usize, Vec<&BlobEntry>> = BTreeMap::new();
    for b in blobs {
        if let Some(p) = b.solid {
            by_resource.entry(p.resource).or_default().push(b);
        }
    }
    let mut failures = Vec::new();
    // The resources that load: (index, stored size, chunks, decoders), and their blobs' checks.
    let mut loaded = Vec::new();
    let mut checks: Vec<Vec<SolidBlobCheck>> = Vec::new();
    for (index, mut list) in by_resource {
        list.sort_by_key(|b| b.solid.map_or(0, |p| p.offset_bytes));
        let stored_total = wim
            .blob_table()
            .solid_resources
            .get(index)
            .map_or(0, |r| r.size_in_wim);
        let (chunks, pool) = match wim
            .solid_chunks(index)
            .and_then(|c| wim.solid_pool(index).map(|p| (c, p)))
        {
            Ok(x) => x,
            Err(Fault::Unsupported(e)) => return Err(e),
            Err(fault) => {
                let problem = problem_of(&fault);
                failures.extend(
                    list.iter()
                        .map(|b| solid_failure(wim, b, index, None, problem.clone())),
                );
                advance(stored_total);
                continue;
            }
        };
        let resource_checks = list
            .iter()
            .map(|b| {
                let start = b.solid.map_or(0, |p| p.offset_bytes);
                SolidBlobCheck {
                    blob: b,
                    start,
                    end: start.saturating_add(b.size_bytes()),
                    hasher: sha1::Sha1::new(),
                    problem: None,
                    stored: None,
                }
            })
            .collect();
        loaded.push((index, stored_total, chunks, pool));
        checks.push(resource_checks);
    }
    let jobs: Vec<solid::SolidJob<'_>> = loaded.iter().map(|(_, _, c, p)| (&**c, &**p)).collect();
    // Per resource: the first blob not yet complete, and the stored bytes fed.
    let mut progress = vec![(0usize, 0u64); loaded.len()];
    solid::decode_parallel(
        wim.reader(),
        &jobs,
        rayon::current_num_threads(),
        budget,
        |job, span, result| {
            let (Some((_, _, chunks, _)), Some(list), Some((cursor, fed))) =
                (loaded.get(job), checks.get_mut(job), progress.get_mut(job))
            else {
                return;
            };
            *fed = fed.saturating_add(span.stored_len as u64);
            advance(span.stored_len as u64);
            *cursor = feed_solid_chunk(chunks, list, *cursor, span, result);
        },
    );
    for (((index, stored_total, _, _), list), (_, fed)) in loaded.iter().zip(checks).zip(progress) {
        advance(stored_total.saturating_sub(fed));
        failures.extend(list.into_iter().filter_map(|c| {
            let problem = match c.problem {
                Some(p) => p,
                None => {
                    let actual = Sha1Digest(c.hasher.finalize().into());
                    if actual == c.blob.sha1 {
                        return None;
                    }
                    BlobProblem::HashMismatch { actual }
                }
            };
            Some(solid_failure(wim, c.blob, *index, c.stored, problem))
        }));
    }
    Ok(failures)
}

/// Hands one decoded (or failed) chunk to the blobs that hold part of it, from `cursor` (the
/// first blob not yet complete); returns the new cursor.
fn feed_solid_chunk(
    chunks: &SolidChunks,
    checks: &mut [SolidBlobCheck],
    cursor: usize,
    span: &ChunkSpan,
    result: Result<&[u8], Fault>,
) -> usize {
    let chunk_start = chunks.chunk_start(span.index);
    let chunk_end = chunk_start.saturating_add(span.original_len as u64);
    let stored_end = span.offset.saturating_add(span.stored_len as u64);
    let problem = result.as_ref().err().map(problem_of);
    let mut next = cursor;
    for check in checks.iter_mut().skip(cursor) {
        if check.start >= chunk_end {
            break;
        }
        if check.end <= chunk_start {
            next = next.saturating_add(1);
            continue;
        }
        check.stored = Some(match check.stored {
            Some((first, _)) => (first, stored_end),
            None => (span.offset, stored_end),
        });
        match (&result, &problem) {
            (Ok(bytes), _) if check.problem.is_none() => {
                let lo = usize::try_from(check.start.max(chunk_start).saturating_sub(chunk_start))
                    .unwrap_or(0);
                let hi = usize::try_from(check.end.min(chunk_end).saturating_sub(chunk_start))
                    .unwrap_or(0);
                check.hasher.update(bytes.get(lo..hi).unwrap_or_default());
            }
            (Err(_), Some(p)) if check.problem.is_none() => check.problem = Some(p.clone()),
            _ => {}
        }
        if check.end <= chunk_end {
            next = next.saturating_add(1);
        }
    }
    next
}

fn solid_failure<R: ReadAt>(
    wim: &Wim<R>,
    blob: &BlobEntry,
    resource: usize,
    stored: Option<(u64, u64)>,
    problem: BlobProblem,
) -> BlobFailure {
    let res = wim.blob_table().solid_resources.get(resource);
    let (offset, size_in_wim) = match (stored, res) {
        (Some((first, end)), _) => (first, end.saturating_sub(first)),
        (None, Some(r)) => (r.offset, r.size_in_wim),
        (None, None) => (0, 0),
    };
    BlobFailure {
        sha1: blob.sha1,
        offset,
        size_in_wim,
        original_size: blob.size_bytes(),
        offset_in_solid_resource: blob.solid.map(|p| p.offset_bytes),
        metadata_of_image: None,
        problem,
        integrity_chunks: Vec::new(),
        used_by: Vec::new(),
    }
}

/// What a fault means for the blobs it touches.
fn problem_of(fault: &Fault) -> BlobProblem {
    match fault {
        Fault::Decode {
            chunk,
            offset,
            detail,
        } => BlobProblem::DecodeError {
            chunk: *chunk,
            offset: *offset,
            detail: detail.clone(),
        },
        Fault::Layout(e) => BlobProblem::BadLayout {
            detail: e.to_string(),
        },
        Fault::Read(e) | Fault::Unsupported(e) => BlobProblem::ReadError {
            detail: e.to_string(),
        },
    }
}

fn judge<R: ReadAt>(
    wim: &Wim<R>,
    blob: &BlobEntry,
    result: Result<(), Fault>,
    hasher: sha1::Sha1,
) -> Option<BlobFailure> {
    let problem = match result {
        Ok(()) => {
            let actual = Sha1Digest(hasher.finalize().into());
            if actual == blob.sha1 {
                return None;
            }
            BlobProblem::HashMismatch { actual }
        }
        Err(fault) => problem_of(&fault),
    };
    let metadata_of_image = wim
        .blob_table()
        .metadata
        .iter()
        .position(|m| m.table_index == blob.table_index)
        .and_then(|i| u32::try_from(i.saturating_add(1)).ok());
    Some(BlobFailure {
        sha1: blob.sha1,
        offset: blob.reshdr.offset,
        size_in_wim: blob.reshdr.size_in_wim,
        original_size: blob.reshdr.original_size,
        offset_in_solid_resource: None,
        metadata_of_image,
        problem,
        integrity_chunks: Vec::new(),
        used_by: Vec::new(),
    })
}

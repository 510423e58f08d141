//! The integrity table: SHA-1 digests of fixed-size windows (wimlib writes 10 MiB) of the file
//! from the end of the header to the end of the blob table. It does not cover the XML data or
//! itself.
//!
// Sources: wimlib src/integrity.c (`read_integrity_table`, `check_wim_integrity`).

use rayon::prelude::*;
use serde::Serialize;
use sha1::Digest;
use winre_readat::ReadAt;

use crate::digest::Sha1Digest;
use crate::header::{Header, HEADER_SIZE};
use crate::resource::{read_to_vec, ResourceSpec};
use crate::{Error, Result};

/// Largest integrity table we load (5 million windows; 50 TB at 10 MiB each).
pub const MAX_INTEGRITY_TABLE_BYTES: u64 = 100_000_000;
/// Size of the table's own header {u32 size, u32 entry count, u32 window size}.
const TABLE_HEADER_BYTES: u64 = 12;
/// Size of the buffer each worker hashes through.
const READ_PIECE_BYTES: usize = 1024 * 1024;

/// A parsed integrity table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityTable {
    /// Size of each hashed window (the last may be shorter).
    pub chunk_size_bytes: u32,
    /// One digest per window.
    pub digests: Vec<Sha1Digest>,
    /// First byte covered (208, the end of the header).
    pub start: u64,
    /// Byte after the last one covered (the end of the blob table).
    pub end: u64,
}

/// One window whose bytes do not match their digest or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrityFailure {
    /// Window number, from 0.
    pub chunk: u64,
    /// Its first byte in the WIM.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// "SHA-1 mismatch" or the read error.
    pub detail: String,
}

impl IntegrityTable {
    /// Reads the table named by the header, or None when there is none. Refuses a table whose
    /// recorded size, entry count and window size do not agree with each other and with the
    /// span from the header to the end of the blob table.
    pub fn read<R: ReadAt + ?Sized>(reader: &R, header: &Header) -> Result<Option<Self>> {
        let Some(reshdr) = header.integrity else {
            return Ok(None);
        };
        let what = "integrity table";
        let corrupt = |detail: String| Error::corrupt(what, reshdr.offset, detail);
        if reshdr.original_size < TABLE_HEADER_BYTES {
            return Err(corrupt(format!(
                "{} bytes, too small for its 12-byte header",
                reshdr.original_size
            )));
        }
        if reshdr.offset < HEADER_SIZE {
            return Err(corrupt("the table overlaps the WIM header".into()));
        }
        reshdr.check_within(what, reader.len())?;
        let spec = ResourceSpec {
            reshdr,
            compression: header.compression,
            chunk_size_bytes: header.chunk_size_bytes,
            pipable: header.pipable,
        };
        let cap = MAX_INTEGRITY_TABLE_BYTES.min(reader.len());
        let bytes = read_to_vec(reader, &spec, cap, what)?;
        let field = |at: usize| {
            bytes
                .get(at..at.saturating_add(4))
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (size, entries, chunk_size) = (field(0), field(4), field(8));
        let end = header.blob_table.end("blob table")?;
        if end < HEADER_SIZE || end > reader.len() {
            return Err(corrupt(format!(
                "the covered span ends at {end}, outside {HEADER_SIZE}..={}",
                reader.len()
            )));
        }
        let covered = end.saturating_sub(HEADER_SIZE);
        let expected_size = u64::from(entries)
            .saturating_mul(20)
            .saturating_add(TABLE_HEADER_BYTES);
        if u64::from(size) != reshdr.original_size || u64::from(size) != expected_size {
            return Err(corrupt(format!(
                "size field {size}, resource size {}, and {entries} entries need {expected_size}",
                reshdr.original_size
            )));
        }
        if chunk_size == 0 {
            return Err(corrupt("window size 0".into()));
        }
        let expected_entries = covered.div_ceil(u64::from(chunk_size));
        if u64::from(entries) != expected_entries {
            return Err(corrupt(format!(
                "{entries} entries, but {covered} bytes in windows of {chunk_size} need {expected_entries}"
            )));
        }
        let digests = bytes
            .get(12..)
            .unwrap_or_default()
            .chunks_exact(20)
            .map(|c| Sha1Digest(c.try_into().unwrap_or([0; 20])))
            .collect();
        Ok(Some(Self {
            chunk_size_bytes: chunk_size,
            digests,
            start: HEADER_SIZE,
            end,
        }))
    }

    /// Byte range (offset, length) of window `chunk`.
    pub fn window(&self, chunk: u64) -> (u64, u64) {
        let size = u64::from(self.chunk_size_bytes);
        let offset = self.start.saturating_add(chunk.saturating_mul(size));
        (offset, self.end.saturating_sub(offset).min(size))
    }

    /// Number of bytes covered.
    pub fn covered_bytes(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Hashes every window, in parallel on the current rayon pool, and returns the failures in
    /// order. `progress` is called with the number of bytes each finished window covered.
    pub fn check<R: ReadAt + ?Sized>(
        &self,
        reader: &R,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Vec<IntegrityFailure> {
        let count = self.digests.len();
        let mut failures: Vec<IntegrityFailure> = (0..count)
            .into_par_iter()
            .map_init(
                || vec![0u8; READ_PIECE_BYTES],
                |buf, i| {
                    let chunk = i as u64;
                    let (offset, len) = self.window(chunk);
                    let result = hash_range(reader, offset, len, buf);
                    progress(len);
                    let detail = match result {
                        Ok(d) if Some(&d) == self.digests.get(i) => return None,
                        Ok(d) => format!(
                            "SHA-1 mismatch: expected {}, got {d}",
                            self.digests.get(i).copied().unwrap_or_default()
                        ),
                        Err(e) => format!("read failed: {e}"),
                    };
                    Some(IntegrityFailure {
                        chunk,
                        offset,
                        len,
                        detail,
                    })
                },
            )
            .flatten()
            .collect();
        failures.sort_by_key(|f| f.chunk);
        failures
    }
}

fn hash_range<R: ReadAt + ?Sized>(
    reader: &R,
    offset: u64,
    len: u64,
    buf: &mut [u8],
) -> std::io::Result<Sha1Digest> {
    let mut hasher = sha1::Sha1::new();
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from(len.saturating_sub(done))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let piece = buf.get_mut(..n).unwrap_or_default();
        reader.read_exact_at(offset.saturating_add(done), piece)?;
        hasher.update(&*piece);
        done = done.saturating_add(n as u64);
    }
    Ok(Sha1Digest(hasher.finalize().into()))
}

//! Reading a resource: its bytes as stored, or its chunk table and compressed chunks.
//!
//! A compressed (non-solid) resource starts with a chunk table listing where chunks 1..n-1
//! start, relative to the end of the table (chunk 0 starts right after it). Entries are 4 bytes,
//! or 8 bytes when the resource is larger than 4 GiB uncompressed. Every chunk but the last
//! decompresses to the WIM's chunk size; a chunk whose stored size equals its uncompressed size
//! is stored raw. Chunks are independent, so they can be decoded in parallel; the chunk table is
//! read a batch at a time, so memory never grows with the resource.
//!
//! In a wimlib pipable WIM the same chunk table sits at the *end* of the resource instead, and
//! each chunk is preceded by a 4-byte copy of its stored size; the table's offsets count only
//! chunk bytes, as if those 4-byte prefixes were absent. Solid resources have a third layout:
//! see [`crate::solid`].
//!
// Sources: wimlib src/resource.c (top comment, `read_compressed_wim_resource`),
// include/wimlib/resource.h (`get_chunk_entry_size`, `struct pwm_chunk_hdr`) and src/write.c
// (`write_pipable_wim`, whose comment describes the pipable layout).

use std::ops::ControlFlow;
use std::sync::Mutex;

use winre_readat::ReadAt;

use crate::budget::MemoryBudget;
use crate::codec::{self, ChunkDecoder, Compression};
use crate::reshdr::ResourceHeader;
use crate::{Error, Result};

/// Size of the pieces an uncompressed resource is read in.
pub const RAW_PIECE_BYTES: usize = 1024 * 1024;

/// A resource and what is needed to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Where it is.
    pub reshdr: ResourceHeader,
    /// The WIM's compression (used when the resource is compressed).
    pub compression: Compression,
    /// The WIM's chunk size in bytes.
    pub chunk_size_bytes: u32,
    /// The WIM is pipable (chunk table at the end, a size before each chunk).
    pub pipable: bool,
}

/// Where one chunk is stored and how large it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Chunk number, from 0.
    pub index: u64,
    /// Absolute offset of its stored bytes in the WIM.
    pub offset: u64,
    /// Stored size.
    pub stored_len: usize,
    /// Uncompressed size.
    pub original_len: usize,
}

impl ChunkSpan {
    /// True when the chunk is stored uncompressed.
    pub fn is_raw(&self) -> bool {
        self.stored_len == self.original_len
    }
}

/// What went wrong while streaming a resource, with enough detail for a verify report.
#[derive(Debug)]
pub enum Fault {
    /// The resource header or chunk table is inconsistent.
    Layout(Error),
    /// A chunk did not decode.
    Decode {
        /// Chunk number.
        chunk: u64,
        /// Offset of its stored bytes.
        offset: u64,
        /// The decoder's message.
        detail: String,
    },
    /// Reading failed (a truncated file, an I/O error).
    Read(Error),
    /// No decoder for this compression (yet).
    Unsupported(Error),
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Layout(e) | Fault::Read(e) | Fault::Unsupported(e) => e,
            Fault::Decode {
                chunk,
                offset,
                detail,
            } => Error::corrupt(
                format!("compressed chunk {chunk}"),
                offset,
                format!("does not decode: {detail}"),
            ),
        }
    }
}

/// The chunk layout of a compressed resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Absolute offset of the chunk table.
    pub table_offset: u64,
    /// 4 or 8.
    pub entry_size: u64,
    /// Absolute offset of chunk 0 (just past the table).
    pub data_offset: u64,
    /// Stored bytes after the table.
    pub data_len: u64,
    /// Number of chunks.
    pub chunk_count: u64,
    /// Uncompressed chunk size.
    pub chunk_size: u64,
    /// Uncompressed size of the resource.
    pub original_size: u64,
    /// Size of the table (entries for chunks 1..n-1).
    pub table_len: u64,
    /// Bytes before each chunk: 4 (its stored size) in a pipable WIM, else 0.
    pub chunk_header_bytes: u64,
}

impl ChunkLayout {
    /// Works out the layout of a compressed resource from its header and the chunk size.
    /// Refuses a chunk table that does not fit in the resource, and stored data smaller than
    /// one byte per chunk or larger than the uncompressed size (no chunk may grow).
    pub fn new(reshdr: &ResourceHeader, chunk_size_bytes: u32) -> Result<Self> {
        Self::with_format(reshdr, chunk_size_bytes, false)
    }

    /// The layout of the compressed resource `spec` describes (ordinary or pipable).
    pub fn for_spec(spec: &ResourceSpec) -> Result<Self> {
        Self::with_format(&spec.reshdr, spec.chunk_size_bytes, spec.pipable)
    }

    fn with_format(reshdr: &ResourceHeader, chunk_size_bytes: u32, pipable: bool) -> Result<Self> {
        let what = if pipable {
            "compressed resource (pipable)"
        } else {
            "compressed resource"
        };
        let corrupt = |detail: String| Error::corrupt(what, reshdr.offset, detail);
        let chunk_size = u64::from(chunk_size_bytes);
        if chunk_size == 0 || !chunk_size.is_power_of_two() {
            return Err(corrupt(format!(
                "chunk size {chunk_size} is not a power of two"
            )));
        }
        let chunk_count = reshdr.original_size.div_ceil(chunk_size);
        let entry_size: u64 = if reshdr.original_size > u64::from(u32::MAX) {
            8
        } else {
            4
        };
        let table_bytes = chunk_count
            .saturating_sub(1)
            .checked_mul(entry_size)
            .ok_or_else(|| corrupt("chunk table size overflows".into()))?;
        let chunk_header_bytes: u64 = if pipable { 4 } else { 0 };
        let overhead = chunk_count
            .checked_mul(chunk_header_bytes)
            .and_then(|h| h.checked_add(table_bytes))
            .ok_or_else(|| corrupt("chunk table size overflows".into()))?;
        let data_len = reshdr.size_in_wim.checked_sub(overhead).ok_or_else(|| {
            corrupt(format!(
                "chunk table of {} entries ({table_bytes} bytes) and {chunk_count} chunk headers of {chunk_header_bytes} bytes do not fit in the stored size {}",
                chunk_count.saturating_sub(1),
                reshdr.size_in_wim
            ))
        })?;
        if data_len < chunk_count || data_len > reshdr.original_size {
            return Err(corrupt(format!(
                "{data_len} bytes of chunk data for {chunk_count} chunks and {} bytes uncompressed",
                reshdr.original_size
            )));
        }
        let end = reshdr.end(what)?;
        let (table_offset, data_offset) = if pipable {
            (end.saturating_sub(table_bytes), reshdr.offset)
        } else {
            (
                reshdr.offset,
                reshdr
                    .offset
                    .checked_add(table_bytes)
                    .ok_or_else(|| corrupt("offset overflows".into()))?,
            )
        };
        Ok(Self {
            table_offset,
            entry_size,
            data_offset,
            data_len,
            chunk_count,
            chunk_size,
            original_size: reshdr.original_size,
            table_len: table_bytes,
            chunk_header_bytes,
        })
    }

    /// Uncompressed size of chunk `index`.
    pub fn original_len(&self, index: u64) -> usize {
        let start = index.saturating_mul(self.chunk_size);
        let len = self
            .original_size
            .saturating_sub(start)
            .min(self.chunk_size);
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    /// Offset of chunk table entry `k` (the start of chunk `k + 1`).
    fn entry_offset(&self, k: u64) -> u64 {
        self.table_offset
            .saturating_add(k.saturating_mul(self.entry_size))
    }

    /// Reads the chunk table entries needed for chunks `first..first + count` and returns their
    /// spans. Refuses entries that go backwards, point past the resource, or give a chunk a
    /// stored size of 0 or more than its uncompressed size.
    pub fn spans<R: ReadAt + ?Sized>(
        &self,
        reader: &R,
        first: u64,
        count: u64,
    ) -> Result<Vec<ChunkSpan>, Fault> {
        let end = first.saturating_add(count).min(self.chunk_count);
        if first >= end {
            return Ok(Vec::new());
        }
        // Chunk i starts at entry i-1 (chunk 0 at 0); chunk i ends where chunk i+1 starts, the
        // last one at the end of the data.
        let entries_from = first.saturating_sub(1);
        let entries_to = end.min(self.chunk_count.saturating_sub(1));
        let entry_count = entries_to.saturating_sub(entries_from);
        let raw_len = entry_count.saturating_mul(self.entry_size);
        let raw_len = usize::try_from(raw_len).map_err(|_| {
            Fault::Layout(Error::corrupt(
                "chunk table",
                self.table_offset,
                "too large",
            ))
        })?;
        // The entries must lie in the file before we allocate for them.
        let table_end = self
            .entry_offset(entries_from)
            .saturating_add(raw_len as u64);
        if table_end > reader.len() || table_end > self.table_offset.saturating_add(self.table_len)
        {
            return Err(Fault::Layout(Error::corrupt(
                "chunk table",
                self.table_offset,
                format!(
                    "entries end at {table_end}, past the table or the file ({} bytes)",
                    reader.len()
                ),
            )));
        }
        let mut raw = vec![0u8; raw_len];
        reader
            .read_exact_at(self.entry_offset(entries_from), &mut raw)
            .map_err(|e| Fault::Read(e.into()))?;
        let entry = |k: u64| -> u64 {
            // k in entries_from..entries_to, so the slice is in bounds; 0 stands in otherwise.
            let at = usize::try_from(
                k.saturating_sub(entries_from)
                    .saturating_mul(self.entry_size),
            )
            .unwrap_or(usize::MAX);
            if self.entry_size == 8 {
                raw.get(at..at.saturating_add(8))
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes)
            } else {
                raw.get(at..at.saturating_add(4))
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
            }
        };
        let start_of = |i: u64| {
            if i == 0 {
                0
            } else {
                entry(i.saturating_sub(1))
            }
        };
        let mut spans = Vec::with_capacity(usize::try_from(end.saturating_sub(first)).unwrap_or(0));
        for i in first..end {
            let start = start_of(i);
            let stop = if i.saturating_add(1) == self.chunk_count {
                self.data_len
            } else {
                entry(i)
            };
            let original_len = self.original_len(i);
            let bad = |detail: String| {
                Fault::Layout(Error::corrupt(
                    format!("chunk table entry for chunk {i}"),
                    self.entry_offset(i.saturating_sub(1)),
                    detail,
                ))
            };
            if stop > self.data_len {
                return Err(bad(format!(
                    "chunk ends at {stop}, past the end of the resource's {} data bytes",
                    self.data_len
                )));
            }
            let stored = stop.checked_sub(start).ok_or_else(|| {
                bad(format!(
                    "chunk starts at {start} but the next starts at {stop}"
                ))
            })?;
            if stored == 0 || stored > u64::try_from(original_len).unwrap_or(u64::MAX) {
                return Err(bad(format!(
                    "stored size {stored}, expected 1..={original_len}"
                )));
            }
            // In a pipable resource, chunk i has i + 1 size prefixes before its bytes.
            let prefixes = i.saturating_add(1).saturating_mul(self.chunk_header_bytes);
            spans.push(ChunkSpan {
                index: i,
                offset: self
                    .data_offset
                    .saturating_add(start)
                    .saturating_add(prefixes),
                stored_len: usize::try_from(stored).unwrap_or(usize::MAX),
                original_len,
            });
        }
        Ok(spans)
    }
}

/// Decoders for one compression format and chunk size, handed out to whichever worker needs one
/// and returned after; at most one per concurrent worker is ever created.
pub struct DecoderPool {
    compression: Compression,
    max_chunk_size: usize,
    free: Mutex<Vec<Box<dyn ChunkDecoder>>>,
}

impl DecoderPool {
    /// A pool for `compression` and chunks up to `max_chunk_size` bytes. Creates one decoder
    /// now, so an unsupported format is refused here rather than mid-stream.
    pub fn new(compression: Compression, max_chunk_size: usize) -> Result<Self> {
        let first = codec::new_decoder(compression, max_chunk_size)?;
        Ok(Self {
            compression,
            max_chunk_size,
            free: Mutex::new(vec![first]),
        })
    }

    /// Runs `f` with a decoder of the pool.
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn ChunkDecoder) -> T) -> Result<T> {
        let taken = self
            .free
            .lock()
            .map_err(|_| Error::Unsupported("decoder pool poisoned".into()))?
            .pop();
        let mut decoder = match taken {
            Some(d) => d,
            None => codec::new_decoder(self.compression, self.max_chunk_size)?,
        };
        let out = f(decoder.as_mut());
        if let Ok(mut free) = self.free.lock() {
            free.push(decoder);
        }
        Ok(out)
    }
}

/// Decodes one chunk from `input` (its stored bytes) into `output` (its uncompressed length).
pub(crate) fn decode_chunk(
    span: &ChunkSpan,
    input: &[u8],
    output: &mut [u8],
    pool: &DecoderPool,
) -> Result<(), Fault> {
    if span.is_raw() {
        output.copy_from_slice(input);
        return Ok(());
    }
    pool.with(|d| d.decompress(input, output))
        .map_err(Fault::Unsupported)?
        .map_err(|e| Fault::Decode {
            chunk: span.index,
            offset: span.offset,
            detail: e.to_string(),
        })
}

fn check_spec(spec: &ResourceSpec) -> Result<(), Fault> {
    if spec.reshdr.is_solid() {
        return Err(Fault::Unsupported(Error::Unsupported(format!(
            "resource at offset {} is part of a solid resource (WIM version 0xE00); solid resources are not supported yet",
            spec.reshdr.offset
        ))));
    }
    if spec.reshdr.is_compressed() && spec.compression == Compression::None {
        return Err(Fault::Layout(Error::corrupt(
            "resource",
            spec.reshdr.offset,
            "flagged compressed in a WIM whose header names no compression",
        )));
    }
    Ok(())
}

pub(crate) fn read_fault(e: std::io::Error) -> Fault {
    Fault::Read(Error::Io(e))
}

/// Streams the uncompressed bytes of a resource, in order, to `sink`, one piece at a time
/// (at most one chunk, or [`RAW_PIECE_BYTES`] for an uncompressed resource). `pool` is needed
/// only for compressed resources. Memory: [`stream_buffer_bytes`].
pub fn stream<R: ReadAt + ?Sized>(
    reader: &R,
    spec: &ResourceSpec,
    pool: Option<&DecoderPool>,
    mut sink: impl FnMut(&[u8]) -> Result<(), Fault>,
) -> Result<(), Fault> {
    check_spec(spec)?;
    let reshdr = &spec.reshdr;
    reshdr
        .check_within("resource", reader.len())
        .map_err(Fault::Layout)?;
    if !reshdr.is_compressed() {
        let mut buf = vec![
            0u8;
            RAW_PIECE_BYTES
                .min(usize::try_from(reshdr.size_in_wim).unwrap_or(usize::MAX))
        ];
        let mut done = 0u64;
        while done < reshdr.size_in_wim {
            let n = usize::try_from(reshdr.size_in_wim.saturating_sub(done))
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let piece = buf.get_mut(..n).unwrap_or_default();
            reader
                .read_exact_at(reshdr.offset.saturating_add(done), piece)
                .map_err(read_fault)?;
            sink(piece)?;
            done = done.saturating_add(n as u64);
        }
        return Ok(());
    }
    let layout = ChunkLayout::for_spec(spec).map_err(Fault::Layout)?;
    let pool = pool.ok_or_else(|| {
        Fault::Unsupported(Error::Unsupported(
            "no decoder given for a compressed resource".into(),
        ))
    })?;
    // No larger than the resource: a small blob in a WIM of 64 MiB chunks needs little.
    let (mut input, mut output) = (Vec::new(), Vec::new());
    const TABLE_BATCH: u64 = 1024;
    let mut first = 0;
    while first < layout.chunk_count {
        for span in layout.spans(reader, first, TABLE_BATCH)? {
            resize_exact(&mut input, span.stored_len);
            resize_exact(&mut output, span.original_len);
            let (inp, out) = (input.as_mut_slice(), output.as_mut_slice());
            reader.read_exact_at(span.offset, inp).map_err(read_fault)?;
            decode_chunk(&span, inp, out, pool)?;
            sink(out)?;
        }
        first = first.saturating_add(TABLE_BATCH);
    }
    Ok(())
}

/// Bytes [`stream`] holds for `spec`'s buffers at most (a chunk and its stored bytes, or a raw
/// piece), for a [`MemoryBudget`].
pub fn stream_buffer_bytes(spec: &ResourceSpec) -> u64 {
    let reshdr = &spec.reshdr;
    if reshdr.is_compressed() {
        let chunk = u64::from(spec.chunk_size_bytes);
        reshdr
            .original_size
            .min(chunk)
            .saturating_add(reshdr.size_in_wim.min(chunk))
    } else {
        reshdr.size_in_wim.min(RAW_PIECE_BYTES as u64)
    }
}

/// Sets `buf` to `len` bytes, growing it to exactly that (not the doubling of `resize`), so
/// that its memory is what a [`MemoryBudget`] grant counted. Bytes already there stay: the
/// caller overwrites them.
pub(crate) fn resize_exact(buf: &mut Vec<u8>, len: usize) {
    if len > buf.capacity() {
        buf.reserve_exact(len.saturating_sub(buf.len()));
    }
    buf.resize(len, 0);
}

/// Uncompressed bytes a parallel work item holds at most (unless one chunk is larger): chunks
/// smaller than this are decoded in groups, so that small chunks (32 KiB XPRESS) do not pay a
/// hand-over each.
pub const ITEM_BYTES: u64 = 1024 * 1024;

/// Work items per worker a resource is cut into at least, when its chunks allow: with fewer,
/// the last item decodes alone while the other workers wait.
const ITEMS_PER_WORKER: u64 = 4;

/// Chunks per parallel work item, for `chunk_count` chunks of `chunk_size` bytes on `workers`
/// threads: at most [`ITEM_BYTES`] of them, and few enough that each worker gets several items.
/// At least 1.
pub fn chunks_per_item(chunk_size: u64, chunk_count: u64, workers: usize) -> u64 {
    let items_wanted = u64::try_from(workers)
        .unwrap_or(u64::MAX)
        .saturating_mul(ITEMS_PER_WORKER)
        .max(1);
    ITEM_BYTES
        .checked_div(chunk_size)
        .unwrap_or(1)
        .min(chunk_count.checked_div(items_wanted).unwrap_or(0))
        .max(1)
}

/// Decodes the chunks `spans` (stored one after another, as in every resource) into `out`, laid
/// end to end: one read of their stored bytes into `input`, then each chunk. Returns each
/// chunk's outcome. When the one read fails (a truncated file), each chunk is read on its own
/// (into `input` again), so only the chunks really missing fail.
pub(crate) fn decode_group<R: ReadAt + ?Sized>(
    reader: &R,
    spans: &[ChunkSpan],
    pool: &DecoderPool,
    out: &mut Vec<u8>,
    input: &mut Vec<u8>,
) -> Vec<Result<(), Fault>> {
    // Sized first, so that `out` never holds bytes of an earlier group.
    let total = spans
        .iter()
        .fold(0usize, |n, s| n.saturating_add(s.original_len));
    resize_exact(out, total);
    let (Some(head), Some(tail)) = (spans.first(), spans.last()) else {
        return Vec::new();
    };
    let region = tail
        .offset
        .saturating_add(tail.stored_len as u64)
        .saturating_sub(head.offset);
    // The spans come from a checked layout: their stored bytes lie inside the resource, and each
    // is at most one chunk.
    resize_exact(input, usize::try_from(region).unwrap_or(0));
    let whole = reader.read_exact_at(head.offset, input).is_ok();
    let mut results = Vec::with_capacity(spans.len());
    let mut at = 0usize;
    for span in spans {
        let piece = out
            .get_mut(at..at.saturating_add(span.original_len))
            .unwrap_or_default();
        at = at.saturating_add(span.original_len);
        results.push(if whole {
            let from = usize::try_from(span.offset.saturating_sub(head.offset)).unwrap_or(0);
            let stored = input
                .get(from..from.saturating_add(span.stored_len))
                .unwrap_or_default();
            decode_chunk(span, stored, piece, pool)
        } else {
            resize_exact(input, span.stored_len);
            reader
                .read_exact_at(span.offset, input)
                .map_err(read_fault)
                .and_then(|()| decode_chunk(span, input, piece, pool))
        });
    }
    results
}

/// Like [`stream`], but decodes groups of chunks on `workers` threads
/// ([`crate::pipeline`]: no barrier between groups) while `sink` sees the bytes in order on
/// the calling thread, so it can hash them. Stops at the first fault. Memory: at most
/// `workers + 1` groups of chunks (at least one chunk, else about [`ITEM_BYTES`]) and their
/// stored bytes, fewer when `budget` has no room for them (a group counts its chunks' full size
/// twice: the stored sizes are known only once decoding starts).
pub fn stream_parallel<R: ReadAt + ?Sized>(
    reader: &R,
    spec: &ResourceSpec,
    pool: &DecoderPool,
    workers: usize,
    budget: &MemoryBudget,
    mut sink: impl FnMut(&[u8]) -> Result<(), Fault>,
) -> Result<(), Fault> {
    check_spec(spec)?;
    if !spec.reshdr.is_compressed() {
        return stream(reader, spec, Some(pool), sink);
    }
    spec.reshdr
        .check_within("resource", reader.len())
        .map_err(Fault::Layout)?;
    let layout = ChunkLayout::for_spec(spec).map_err(Fault::Layout)?;
    let per_item = chunks_per_item(layout.chunk_size, layout.chunk_count, workers);
    let mut outcome = Ok(());
    let group_bytes = per_item.saturating_mul(layout.chunk_size).saturating_mul(2);
    crate::pipeline::decode_in_order(
        layout.chunk_count.div_ceil(per_item),
        workers,
        budget,
        |_| group_bytes,
        |item, out, input| -> Result<usize, Fault> {
            let spans = layout.spans(reader, item.saturating_mul(per_item), per_item)?;
            decode_group(reader, &spans, pool, out, input)
                .into_iter()
                .try_for_each(|r| r)?;
            Ok(out.len())
        },
        |decoded, out| match decoded.and_then(|n| sink(out.get(..n).unwrap_or_default())) {
            Ok(()) => ControlFlow::Continue(()),
            Err(fault) => {
                outcome = Err(fault);
                ControlFlow::Break(())
            }
        },
    );
    outcome
}

/// Reads a whole resource into memory, refusing one larger than `max_bytes` uncompressed.
/// `pool` may be None: a decoder is then created for this call if the resource is compressed.
pub fn read_to_vec<R: ReadAt + ?Sized>(
    reader: &R,
    spec: &ResourceSpec,
    max_bytes: u64,
    what: &str,
) -> Result<Vec<u8>> {
    check_spec(spec).map_err(Error::from)?;
    let size = spec.reshdr.original_size;
    if size > max_bytes {
        return Err(Error::corrupt(
            what,
            spec.reshdr.offset,
            format!("{size} bytes exceeds the limit of {max_bytes}"),
        ));
    }
    spec.reshdr.check_within(what, reader.len())?;
    let pool = if spec.reshdr.is_compressed() && spec.compression != Compression::None {
        Some(DecoderPool::new(
            spec.compression,
            usize::try_from(spec.chunk_size_bytes).unwrap_or(usize::MAX),
        )?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    stream(reader, spec, pool.as_ref(), |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })
    .map_err(|f| match f {
        Fault::Layout(Error::Corrupt {
            what: w,
            offset,
            detail,
        }) => Error::Corrupt {
            what: format!("{what}: {w}"),
            offset,
            detail,
        },
        other => other.into(),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_items_are_small_enough_to_share_and_large_enough_to_pay() {
        // 32 KiB chunks: 1 MiB groups when the resource is long enough.
        assert_eq!(chunks_per_item(32 << 10, 100_000, 2), 32);
        // A 33-chunk blob on 2 workers: 4 chunks per item (9 items), not one 32-chunk item.
        assert_eq!(chunks_per_item(32 << 10, 33, 2), 4);
        // 64 MiB LZMS chunks: one each; never 0 whatever the inputs.
        assert_eq!(chunks_per_item(64 << 20, 12, 2), 1);
        assert_eq!(chunks_per_item(0, 0, 0), 1);
        assert_eq!(chunks_per_item(1, u64::MAX, usize::MAX), 1);
    }
}

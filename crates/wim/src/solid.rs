//! Solid resources (WIM version 0xE00, `wimlib-imagex capture --solid`, ESD files): one
//! resource holds many blobs compressed together as one stream.
//!
//! In the blob table a run of consecutive entries flagged SOLID describes one or more solid
//! resources and the blobs inside them. An entry whose original-size field is
//! [`crate::blob_table::SOLID_RESOURCE_MAGIC`] describes a resource (its offset and stored size
//! in the WIM); every other entry of the run is a blob whose *stored-size* field is its size and
//! whose offset counts from the start of the run's resources' uncompressed bytes laid end to end
//! (WIMGAPI's convention). The blob belongs to the first resource it fits in.
//!
//! A solid resource carries its own format, unlike other resources: a 16-byte header (the
//! uncompressed size, the chunk size, the compression format) and then one 4-byte *stored size*
//! per chunk, chunk 0 included (not offsets, as in ordinary resources), then the chunks. A chunk
//! stored at its full uncompressed size is raw. The last chunk's stored size is what remains of
//! the resource, as wimlib reads it. Chunks decode independently, so a blob is read by decoding
//! only the chunks that cover it, and verification decodes chunks in parallel.
//!
// Sources: wimlib src/resource.c (top comment and `read_compressed_wim_resource`),
// include/wimlib/resource.h (`struct alt_chunk_table_header_disk`), src/blob_table.c
// (`read_blob_table`, `load_solid_info`, `assign_blob_to_solid_resource`, `validate_resource`,
// and `write_blob_table_from_blob_list` for the offset convention).

use std::ops::ControlFlow;
use std::sync::Mutex;

use serde::Serialize;
use winre_readat::ReadAt;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::budget::MemoryBudget;
use crate::codec::Compression;
use crate::header::chunk_size_range;
use crate::reshdr::ResourceHeader;
use crate::resource::{
    chunks_per_item, decode_chunk, decode_group, read_fault, ChunkSpan, DecoderPool, Fault,
};
use crate::{Error, Result};

/// Size of the header at the start of a solid resource.
pub const SOLID_HEADER_SIZE: u64 = 16;
/// Size of one chunk table entry (always 4 bytes in a solid resource).
pub const SOLID_ENTRY_SIZE: u64 = 4;

/// The header at the start of a solid resource, as stored.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SolidHeaderDisk {
    /// +0x00 uncompressed size of the resource.
    pub original_size: U64,
    /// +0x08 uncompressed size of every chunk but the last (overrides the WIM header's).
    pub chunk_size: U32,
    /// +0x0C compression format: 0 none, 1 XPRESS, 2 LZX, 3 LZMS (overrides the WIM header's).
    pub compression: U32,
}

const _: () = assert!(size_of::<SolidHeaderDisk>() as u64 == SOLID_HEADER_SIZE);

/// A solid resource as the blob table and its own header describe it. Only the header is read
/// when the WIM is opened; its values are checked when the chunk table is loaded
/// ([`SolidChunks::load`]), so one bad resource does not stop the rest of the WIM from reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SolidResource {
    /// Position of the resource's entry in the blob table.
    pub table_index: usize,
    /// Offset of the resource in the WIM.
    pub offset: u64,
    /// Stored size (header, chunk table and chunks).
    pub size_in_wim: u64,
    /// Uncompressed size, from the resource's header.
    pub original_size: u64,
    /// Chunk size, from the resource's header (unchecked).
    pub chunk_size_bytes: u32,
    /// Compression format number, from the resource's header (unchecked).
    pub compression_format: u32,
}

/// Where a blob inside a solid resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SolidPlace {
    /// Index of the resource in [`crate::blob_table::BlobTable::solid_resources`].
    pub resource: usize,
    /// Offset of the blob in the resource's uncompressed bytes.
    pub offset_bytes: u64,
}

impl SolidResource {
    /// Reads the header of the solid resource that blob table entry `table_index` (stored at
    /// `entry_offset`) describes. Refuses a resource that is not inside the file or is too small
    /// for its header.
    pub fn read<R: ReadAt + ?Sized>(
        reader: &R,
        reshdr: &ResourceHeader,
        table_index: usize,
        entry_offset: u64,
    ) -> Result<Self> {
        let what = format!("solid resource (blob table entry {table_index})");
        reshdr.check_within(&what, reader.len())?;
        if reshdr.size_in_wim < SOLID_HEADER_SIZE {
            return Err(Error::corrupt(
                what,
                entry_offset,
                format!(
                    "stored size {} is too small for the {SOLID_HEADER_SIZE}-byte solid resource header",
                    reshdr.size_in_wim
                ),
            ));
        }
        let mut raw = [0u8; SOLID_HEADER_SIZE as usize];
        reader.read_exact_at(reshdr.offset, &mut raw)?;
        let disk = SolidHeaderDisk::read_from_bytes(&raw[..])
            .map_err(|_| Error::corrupt(what, reshdr.offset, "unreadable header"))?;
        Ok(Self {
            table_index,
            offset: reshdr.offset,
            size_in_wim: reshdr.size_in_wim,
            original_size: disk.original_size.get(),
            chunk_size_bytes: disk.chunk_size.get(),
            compression_format: disk.compression.get(),
        })
    }

    /// The compression format, or an error for a number that names none.
    pub fn compression(&self) -> Result<Compression> {
        match self.compression_format {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Xpress),
            2 => Ok(Compression::Lzx),
            3 => Ok(Compression::Lzms),
            n => Err(Error::corrupt(
                self.what(),
                self.offset.saturating_add(0xC),
                format!(
                    "unknown compression format {n} (expected 0 none, 1 XPRESS, 2 LZX, 3 LZMS)"
                ),
            )),
        }
    }

    fn what(&self) -> String {
        format!(
            "solid resource header (blob table entry {})",
            self.table_index
        )
    }

    /// A decoder pool for this resource's chunks. Refuses compression format 0 (wimlib cannot
    /// read it either) and a codec that is not built in.
    pub fn decoder_pool(&self) -> Result<DecoderPool> {
        let compression = self.compression()?;
        if compression == Compression::None {
            return Err(Error::Unsupported(format!(
                "solid resource at offset {} with compression format 0 (none); wimlib does not read these either",
                self.offset
            )));
        }
        // The chunk size is checked against the format's range first, so an error names this
        // resource rather than the WIM header.
        SolidChunks::check_chunk_size(self, compression)?;
        DecoderPool::new(
            compression,
            usize::try_from(self.chunk_size_bytes).unwrap_or(usize::MAX),
        )
    }
}

/// The checked layout and chunk table of a solid resource: where each chunk is stored.
/// Memory: 8 bytes per chunk; the chunk count is bounded by the stored size (4 table bytes
/// per chunk), hence by the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolidChunks {
    /// Offset of chunk 0's stored bytes in the WIM.
    pub data_offset: u64,
    /// Uncompressed chunk size.
    pub chunk_size: u64,
    /// Uncompressed size of the resource.
    pub original_size: u64,
    /// Start of each chunk relative to `data_offset`, and the end of the last (chunk count + 1
    /// entries).
    bounds: Vec<u64>,
}

impl SolidChunks {
    fn check_chunk_size(res: &SolidResource, compression: Compression) -> Result<()> {
        let size = res.chunk_size_bytes;
        let (min, max) = chunk_size_range(compression);
        if !size.is_power_of_two() || size < min || size > max {
            return Err(Error::corrupt(
                res.what(),
                res.offset.saturating_add(0x8),
                format!(
                    "chunk size {size} is not a power of two in {min}..={max} for {compression:?}"
                ),
            ));
        }
        Ok(())
    }

    /// Checks the header of `res` (compression format, chunk size, a chunk table that fits) and
    /// reads its chunk table, refusing entries that give a chunk a stored size of 0 or more than
    /// its uncompressed size, or that run past the resource. Every refusal is
    /// [`Error::Corrupt`] naming the structure and its offset.
    pub fn load<R: ReadAt + ?Sized>(reader: &R, res: &SolidResource) -> Result<Self> {
        let compression = res.compression()?;
        if compression != Compression::None {
            Self::check_chunk_size(res, compression)?;
        } else if !res.chunk_size_bytes.is_power_of_two() {
            return Err(Error::corrupt(
                res.what(),
                res.offset.saturating_add(0x8),
                format!("chunk size {} is not a power of two", res.chunk_size_bytes),
            ));
        }
        let chunk_size = u64::from(res.chunk_size_bytes);
        let chunk_count = res.original_size.div_ceil(chunk_size);
        let table_offset = res.offset.saturating_add(SOLID_HEADER_SIZE);
        let body = res.size_in_wim.saturating_sub(SOLID_HEADER_SIZE);
        let table_len = chunk_count
            .checked_mul(SOLID_ENTRY_SIZE)
            .filter(|&t| t <= body)
            .ok_or_else(|| {
                Error::corrupt(
                    res.what(),
                    res.offset,
                    format!(
                        "uncompressed size {} in chunks of {chunk_size} needs {chunk_count} chunk table entries, more than the {body} stored bytes after the header can hold",
                        res.original_size
                    ),
                )
            })?;
        let data_len = body.saturating_sub(table_len);
        if data_len < chunk_count || data_len > res.original_size {
            return Err(Error::corrupt(
                res.what(),
                res.offset,
                format!(
                    "{data_len} bytes of chunk data for {chunk_count} chunks and {} bytes uncompressed",
                    res.original_size
                ),
            ));
        }
        // table_len <= size_in_wim, which lies inside the file (checked when the header was read).
        let mut raw = vec![0u8; usize::try_from(table_len).unwrap_or(0)];
        reader
            .read_exact_at(table_offset, &mut raw)
            .map_err(Error::Io)?;
        let mut bounds = Vec::with_capacity(raw.len().saturating_div(4).saturating_add(1));
        let mut start = 0u64;
        bounds.push(0);
        for (i, entry) in (0u64..).zip(raw.chunks_exact(4)) {
            let last = i.saturating_add(1) == chunk_count;
            let stored = if last {
                // wimlib takes the last chunk's size from the resource's size.
                data_len.saturating_sub(start)
            } else {
                entry
                    .try_into()
                    .map_or(0, |b: [u8; 4]| u64::from(u32::from_le_bytes(b)))
            };
            let original = res
                .original_size
                .saturating_sub(i.saturating_mul(chunk_size))
                .min(chunk_size);
            let end = start.saturating_add(stored);
            if stored == 0 || stored > original || end > data_len {
                return Err(Error::corrupt(
                    format!(
                        "solid resource chunk table entry {i} (blob table entry {})",
                        res.table_index
                    ),
                    table_offset.saturating_add(i.saturating_mul(SOLID_ENTRY_SIZE)),
                    format!(
                        "chunk {i} has stored size {stored} (expected 1..={original}) and ends at {end} of {data_len} data bytes"
                    ),
                ));
            }
            bounds.push(end);
            start = end;
        }
        Ok(Self {
            data_offset: table_offset.saturating_add(table_len),
            chunk_size,
            original_size: res.original_size,
            bounds,
        })
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> u64 {
        (self.bounds.len() as u64).saturating_sub(1)
    }

    /// Where chunk `index` is stored, or None past the last chunk.
    pub fn span(&self, index: u64) -> Option<ChunkSpan> {
        let i = usize::try_from(index).ok()?;
        let start = *self.bounds.get(i)?;
        let end = *self.bounds.get(i.checked_add(1)?)?;
        let original = self
            .original_size
            .saturating_sub(index.saturating_mul(self.chunk_size))
            .min(self.chunk_size);
        Some(ChunkSpan {
            index,
            offset: self.data_offset.saturating_add(start),
            stored_len: usize::try_from(end.saturating_sub(start)).ok()?,
            original_len: usize::try_from(original).ok()?,
        })
    }

    /// The chunks that hold uncompressed bytes `offset..offset + len` (empty when `len` is 0).
    pub fn chunks_covering(&self, offset: u64, len: u64) -> std::ops::Range<u64> {
        if len == 0 {
            return 0..0;
        }
        let first = offset.checked_div(self.chunk_size).unwrap_or(0);
        let last = offset
            .saturating_add(len)
            .saturating_sub(1)
            .checked_div(self.chunk_size)
            .unwrap_or(0);
        first..last.saturating_add(1).min(self.chunk_count())
    }

    /// Offset of chunk `index` in the resource's uncompressed bytes.
    pub fn chunk_start(&self, index: u64) -> u64 {
        index.saturating_mul(self.chunk_size)
    }
}

/// The last chunk decoded by [`stream_range`], kept so that reading the many small blobs of one
/// chunk one after another decodes it once. Holds at most one chunk; threads that find it in use
/// decode their own.
#[derive(Debug, Default)]
pub struct ChunkCache {
    slot: Mutex<Option<CachedChunk>>,
}

#[derive(Debug)]
struct CachedChunk {
    resource: usize,
    chunk: u64,
    bytes: Vec<u8>,
}

impl ChunkCache {
    fn take(&self) -> Option<CachedChunk> {
        self.slot.lock().ok().and_then(|mut s| s.take())
    }

    fn put(&self, chunk: Option<CachedChunk>) {
        if let (Ok(mut slot), Some(c)) = (self.slot.lock(), chunk) {
            *slot = Some(c);
        }
    }
}

/// Streams bytes `offset..offset + len` of solid resource number `resource` (laid out as
/// `chunks`) to `sink`, in order, at most one chunk per call, decoding only the chunks that
/// cover the range (through `cache`). Memory: one chunk and one stored chunk.
#[allow(clippy::too_many_arguments)]
pub fn stream_range<R: ReadAt + ?Sized>(
    reader: &R,
    resource: usize,
    chunks: &SolidChunks,
    pool: &DecoderPool,
    cache: &ChunkCache,
    offset: u64,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= chunks.original_size);
    let Some(end) = end else {
        return Err(Fault::Layout(Error::corrupt(
            "blob in solid resource",
            chunks.data_offset,
            format!(
                "bytes {offset}+{len} lie outside the resource's {} bytes",
                chunks.original_size
            ),
        )));
    };
    let mut held = cache.take();
    let mut input = Vec::new();
    for index in chunks.chunks_covering(offset, len) {
        let span = chunks.span(index).ok_or_else(|| {
            Fault::Layout(Error::corrupt(
                "solid resource",
                chunks.data_offset,
                format!("no chunk {index}"),
            ))
        })?;
        let cached = held
            .as_ref()
            .is_some_and(|c| c.resource == resource && c.chunk == index);
        if !cached {
            let mut bytes = held.take().map(|c| c.bytes).unwrap_or_default();
            bytes.resize(span.original_len, 0);
            input.resize(span.stored_len, 0);
            reader
                .read_exact_at(span.offset, &mut input)
                .map_err(read_fault)?;
            decode_chunk(&span, &input, &mut bytes, pool)?;
            held = Some(CachedChunk {
                resource,
                chunk: index,
                bytes,
            });
        }
        let start = chunks.chunk_start(index);
        let lo = usize::try_from(offset.max(start).saturating_sub(start)).unwrap_or(0);
        let hi = usize::try_from(
            end.min(start.saturating_add(span.original_len as u64))
                .saturating_sub(start),
        )
        .unwrap_or(0);
        let piece = held
            .as_ref()
            .and_then(|c| c.bytes.get(lo..hi))
            .unwrap_or_default();
        sink(piece)?;
    }
    cache.put(held);
    Ok(())
}

/// One solid resource for [`decode_parallel`]: its chunk layout and decoders.
pub type SolidJob<'a> = (&'a SolidChunks, &'a DecoderPool);

/// Decodes every chunk of the solid resources `jobs` on `workers` threads ([`crate::pipeline`]:
/// small chunks in groups, no barrier between groups, nor between resources: the next
/// resource's chunks start while the last of this one decodes) and hands each chunk's bytes (or
/// why it could not be read or decoded) to `each(job, span, result)`, in resource and chunk
/// order, on the calling thread. A damaged chunk does not stop the others. Memory: at most
/// `workers + 1` chunks (or groups of about [`crate::resource::ITEM_BYTES`]) with their stored
/// bytes, fewer when `budget` has no room for them (two 64 MiB chunks do not fit the default).
pub fn decode_parallel<R: ReadAt + ?Sized>(
    reader: &R,
    jobs: &[SolidJob<'_>],
    workers: usize,
    budget: &MemoryBudget,
    mut each: impl FnMut(usize, &ChunkSpan, Result<&[u8], Fault>),
) {
    // Items of every job end to end: (job, first chunk, chunks), in order.
    let mut items: Vec<(usize, u64, u64)> = Vec::new();
    for (job, (chunks, _)) in jobs.iter().enumerate() {
        let count = chunks.chunk_count();
        let per_item = chunks_per_item(chunks.chunk_size, count, workers);
        let mut first = 0;
        while first < count {
            items.push((job, first, per_item.min(count.saturating_sub(first))));
            first = first.saturating_add(per_item);
        }
    }
    let spans_of = |item: u64| -> (usize, Vec<ChunkSpan>) {
        let Some(&(job, first, n)) = usize::try_from(item).ok().and_then(|i| items.get(i)) else {
            return (0, Vec::new());
        };
        let spans = jobs.get(job).map_or_else(Vec::new, |(chunks, _)| {
            (first..first.saturating_add(n))
                .filter_map(|i| chunks.span(i))
                .collect()
        });
        (job, spans)
    };
    let cost = |item: u64| {
        spans_of(item).1.iter().fold(0u64, |sum, s| {
            sum.saturating_add(s.original_len as u64)
                .saturating_add(s.stored_len as u64)
        })
    };
    crate::pipeline::decode_in_order(
        items.len() as u64,
        workers,
        budget,
        cost,
        |item, out, input| {
            let (job, spans) = spans_of(item);
            let results = match jobs.get(job) {
                Some((_, pool)) => decode_group(reader, &spans, pool, out, input),
                None => Vec::new(),
            };
            (job, spans.into_iter().zip(results).collect::<Vec<_>>())
        },
        |(job, decoded), out| {
            let mut at = 0usize;
            for (span, result) in decoded {
                let bytes = out
                    .get(at..at.saturating_add(span.original_len))
                    .unwrap_or_default();
                at = at.saturating_add(span.original_len);
                each(job, &span, result.map(|()| bytes));
            }
            ControlFlow::Continue(())
        },
    );
}

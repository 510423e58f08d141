//! Expert Witness Compression Format (EWF, "E01") version 1, as ewfacquire, EnCase and FTK Imager
//! write it: a set of segment files (.E01, .E02, ... .E99, .EAA, ...), each a file header followed
//! by a chain of sections. The media is cut into chunks (sectors per chunk x bytes per sector),
//! each stored zlib-compressed (with zlib's Adler-32) or raw followed by its own Adler-32; "table"
//! sections (mirrored by "table2") list where each chunk starts. "hash" / "digest" keep the MD5 of
//! the whole media.
//!
//! Sources: Joachim Metz, "Expert Witness Compression Format (EWF)" (libyal/libewf
//! documentation), and the same description in the keramics format docs. Read to learn the
//! layout; our own code.
//!
//! Not read: EWF2 (.Ex01) and logical evidence (.L01) sets are refused as unsupported; the
//! EnCase 6.7.1 tables whose 31-bit offsets overflow are reported as corrupt.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};
use winre_readat::{check_bounds, FileReader, ReadAt};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::lru_cache::LruCache;
use super::{ContainerInfo, Disk, Format, OpenOptions};
use crate::{Error, Result};

/// The first 8 bytes of every EWF-E01 / EWF-S01 segment file.
pub(crate) const SIGNATURE: &[u8] = b"EVF\x09\x0d\x0a\xff\x00";
const LOGICAL_SIGNATURE: &[u8] = b"LVF\x09\x0d\x0a\xff\x00";
const EWF2_SIGNATURE: &[u8] = b"EVF2\x0d\x0a\x81\x00";

const FILE_HEADER_BYTES: u64 = 13;
const SECTION_DESCRIPTOR_BYTES: u64 = 76;
const TABLE_HEADER_BYTES: u64 = 24;
/// The high bit of a table entry marks a compressed chunk; the rest is the offset.
const COMPRESSED_BIT: u32 = 0x8000_0000;

/// Largest chunk we decode: 32768 sectors of 512 bytes, the most ewfacquire offers.
const MAX_CHUNK_BYTES: u64 = 16 << 20;
/// A compressed chunk may exceed the chunk by deflate's framing; beyond this it is corrupt.
const COMPRESSED_SLACK_BYTES: u64 = 4096;
/// Segment extensions run E01..E99 then EAA..ZZZ: 99 + 22 x 26 x 26.
const MAX_SEGMENTS: u32 = 99 + 22 * 26 * 26;
/// Bytes of decoded chunks kept for reads that do not start on a chunk boundary. A budget in
/// bytes, not entries: 32 chunks of 16 MiB that inflate from a tiny E01 would hold 512 MiB.
const CHUNK_CACHE_BYTES: u64 = 64 << 20;
/// At most this many cached chunks (ewfacquire's default 32 KiB chunks stay at 32 entries).
const CHUNK_CACHE_MAX_ENTRIES: u64 = 32;

/// How many decoded chunks of `chunk_bytes` the cache holds: the byte budget, at least 2.
fn chunk_cache_entries(chunk_bytes: u64) -> usize {
    let entries = CHUNK_CACHE_BYTES
        .checked_div(chunk_bytes)
        .unwrap_or(CHUNK_CACHE_MAX_ENTRIES)
        .clamp(2, CHUNK_CACHE_MAX_ENTRIES);
    usize::try_from(entries).unwrap_or(2)
}
/// Read size while checking the stored MD5.
const VERIFY_BLOCK_BYTES: usize = 1 << 20;

// Sources: EWF documentation, "File header" (EWF-E01 and EWF-S01).
/// The 13 bytes at the start of each segment file.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FileHeaderDisk {
    signature: [u8; 8],  // +0x00 "EVF\t\r\n\xff\0"
    fields_start: u8,    // +0x08 1
    segment_number: U16, // +0x09 1 for the first file
    fields_end: U16,     // +0x0B 0
}

// Sources: EWF documentation, "Section header" (called a section descriptor here).
/// The 76 bytes that start every section.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SectionDescriptorDisk {
    section_type: [u8; 16], // +0x00 "header", "volume", "table", ... NUL padded
    next_offset: U64,       // +0x10 next section, from the start of the segment file
    size: U64,              // +0x18 section size including these 76 bytes (0 for "next"/"done")
    _padding: [u8; 40],     // +0x20
    checksum: U32,          // +0x48 Adler-32 of +0x00..+0x48
}

// Sources: EWF documentation, "Volume section", EnCase / FTK Imager layout (1052 bytes; "disk"
// and "data" sections are copies). The SMART layout (94 bytes) shares offsets 4..16 and keeps a
// 32-bit sector count.
/// The leading fields of the volume section that the reader needs.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct VolumeDisk {
    media_type: u8,         // +0x00 1 fixed, 0 removable, 3 optical, 0x10 memory
    _unknown: [u8; 3],      // +0x01
    chunk_count: U32,       // +0x04 chunks in all segment files
    sectors_per_chunk: U32, // +0x08 64 by default
    bytes_per_sector: U32,  // +0x0C 512 by default
    sector_count: U64,      // +0x10 (32 bits in SMART, followed by zeros)
}
const VOLUME_E01_BYTES: u64 = 1052;
const VOLUME_SMART_BYTES: u64 = 94;

// Sources: EWF documentation, "Table section", EnCase 6 to 7 layout (older layouts have zeros
// where the base offset is, so entries are then relative to the file start).
/// The 24 bytes before a table's entry array.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TableHeaderDisk {
    entry_count: U32, // +0x00
    _padding1: U32,   // +0x04
    base_offset: U64, // +0x08 entries are relative to this
    _padding2: U32,   // +0x10
    checksum: U32,    // +0x14 Adler-32 of +0x00..+0x14
}

/// Checked media geometry from a volume / disk / data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    chunk_count: u64,
    chunk_bytes: u64,
    bytes_per_sector: u32,
    media_bytes: u64,
}

impl Geometry {
    fn from_disk(raw: &VolumeDisk, smart: bool, what: &str, offset: u64) -> Result<Self> {
        let corrupt = |detail: String| Error::corrupt(what, offset, detail);
        let sectors_per_chunk = raw.sectors_per_chunk.get();
        let bytes_per_sector = raw.bytes_per_sector.get();
        let sector_count = if smart {
            raw.sector_count.get() & u64::from(u32::MAX)
        } else {
            raw.sector_count.get()
        };
        if !(1..=32768).contains(&sectors_per_chunk) {
            return Err(corrupt(format!(
                "{sectors_per_chunk} sectors per chunk, expected 1..=32768"
            )));
        }
        if !bytes_per_sector.is_power_of_two() || !(256..=4096).contains(&bytes_per_sector) {
            return Err(corrupt(format!(
                "{bytes_per_sector} bytes per sector, expected a power of two in 256..=4096"
            )));
        }
        let chunk_bytes = u64::from(sectors_per_chunk).saturating_mul(u64::from(bytes_per_sector));
        if chunk_bytes > MAX_CHUNK_BYTES {
            return Err(Error::Unsupported(format!(
                "EWF chunks of {chunk_bytes} bytes (limit {MAX_CHUNK_BYTES})"
            )));
        }
        let media_bytes = sector_count
            .checked_mul(u64::from(bytes_per_sector))
            .ok_or_else(|| {
                corrupt(format!(
                    "{sector_count} sectors of {bytes_per_sector} bytes overflow"
                ))
            })?;
        let chunk_count = u64::from(raw.chunk_count.get());
        let needed = media_bytes.div_ceil(chunk_bytes);
        if chunk_count != needed {
            return Err(corrupt(format!(
                "{chunk_count} chunks, but {media_bytes} bytes of media in {chunk_bytes}-byte chunks need {needed}"
            )));
        }
        Ok(Self {
            chunk_count,
            chunk_bytes,
            bytes_per_sector,
            media_bytes,
        })
    }

    /// Bytes of media in chunk `index` (the last one may be short).
    fn chunk_len(&self, index: u64) -> u64 {
        self.chunk_bytes.min(
            self.media_bytes
                .saturating_sub(index.saturating_mul(self.chunk_bytes)),
        )
    }
}

/// Where one chunk is stored. 16 bytes: a 64 GiB image of 32 KiB chunks costs 32 MiB.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    /// Byte offset in the segment file.
    offset: u64,
    /// Bytes from `offset` to the next chunk or the end of its sectors section.
    stored_bytes: u32,
    /// Index into the segment list.
    segment: u16,
    compressed: bool,
}

struct Segment {
    file: FileReader,
    name: String,
}

/// The media of an EWF set as a `ReadAt`.
struct EwfReader {
    segments: Vec<Segment>,
    chunks: Vec<Chunk>,
    geometry: Geometry,
    cache: LruCache<Vec<u8>>,
}

fn adler32(data: &[u8]) -> u32 {
    simd_adler32::adler32(&data)
}

fn read_u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

impl EwfReader {
    fn chunk_error(&self, index: u64, chunk: &Chunk, detail: String) -> Error {
        let name = self
            .segments
            .get(usize::from(chunk.segment))
            .map(|s| s.name.as_str())
            .unwrap_or("?");
        Error::corrupt(
            format!("EWF chunk {index} (in {name})"),
            chunk.offset,
            detail,
        )
    }

    /// Reads, checks and (if needed) inflates chunk `index` into a new buffer, for the cache.
    fn decode_chunk(&self, index: u64) -> Result<Vec<u8>> {
        let expected = self.geometry.chunk_len(index);
        let mut data = vec![0u8; usize::try_from(expected).unwrap_or(0)];
        self.decode_chunk_into(index, &mut data)?;
        Ok(data)
    }

    /// Reads, checks and (if needed) inflates chunk `index` into `out`, which must be exactly
    /// the chunk's length: a read that covers whole chunks decodes straight into the caller's
    /// buffer, without the cache and its copy.
    fn decode_chunk_into(&self, index: u64, out: &mut [u8]) -> Result<()> {
        let chunk = usize::try_from(index)
            .ok()
            .and_then(|i| self.chunks.get(i))
            .copied()
            .ok_or_else(|| {
                Error::corrupt("EWF chunk table", 0, format!("no entry for chunk {index}"))
            })?;
        let segment = self
            .segments
            .get(usize::from(chunk.segment))
            .ok_or_else(|| self.chunk_error(index, &chunk, "no such segment".into()))?;
        let expected = self.geometry.chunk_len(index);
        if out.len() as u64 != expected {
            return Err(self.chunk_error(
                index,
                &chunk,
                format!("{} bytes asked of a {expected}-byte chunk", out.len()),
            ));
        }
        if chunk.compressed {
            let mut input = vec![0u8; usize::try_from(chunk.stored_bytes).unwrap_or(0)];
            segment.file.read_exact_at(chunk.offset, &mut input)?;
            let mut inflater = Decompress::new(true);
            let status = inflater
                .decompress(&input, out, FlushDecompress::Finish)
                .map_err(|e| {
                    self.chunk_error(
                        index,
                        &chunk,
                        format!("zlib data or its Adler-32 checksum is wrong: {e}"),
                    )
                })?;
            // `out` holds exactly the chunk: a stream that would inflate to more does not end.
            if status != Status::StreamEnd || inflater.total_out() != expected {
                return Err(self.chunk_error(
                    index,
                    &chunk,
                    format!(
                        "inflates to {} bytes or more ({status:?}), expected {expected}",
                        inflater.total_out()
                    ),
                ));
            }
            Ok(())
        } else {
            let with_checksum = expected.saturating_add(4);
            if with_checksum > u64::from(chunk.stored_bytes) {
                return Err(self.chunk_error(
                    index,
                    &chunk,
                    format!(
                        "{} bytes stored, an uncompressed chunk needs {with_checksum}",
                        chunk.stored_bytes
                    ),
                ));
            }
            segment.file.read_exact_at(chunk.offset, out)?;
            let mut checksum = [0u8; 4];
            segment
                .file
                .read_exact_at(chunk.offset.saturating_add(expected), &mut checksum)?;
            let stored = u32::from_le_bytes(checksum);
            let computed = adler32(out);
            if stored != computed {
                return Err(self.chunk_error(
                    index,
                    &chunk,
                    format!("Adler-32 checksum mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"),
                ));
            }
            Ok(())
        }
    }
}

impl ReadAt for EwfReader {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.geometry.media_bytes)?;
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let index = pos.checked_div(self.geometry.chunk_bytes).unwrap_or(0);
            let within = usize::try_from(pos.checked_rem(self.geometry.chunk_bytes).unwrap_or(0))
                .unwrap_or(usize::MAX);
            // A whole chunk is decoded in place; a part of one goes through the cache.
            let whole = self.geometry.chunk_len(index);
            if within == 0 && whole > 0 && rest.len() as u64 >= whole {
                let (now, later) = rest.split_at_mut(usize::try_from(whole).unwrap_or(0));
                self.decode_chunk_into(index, now)?;
                rest = later;
                pos = pos.saturating_add(whole);
                continue;
            }
            let data = self.cache.get_or_load(index, || self.decode_chunk(index))?;
            let available = data.get(within..).unwrap_or_default();
            let take = available.len().min(rest.len());
            if take == 0 {
                return Err(Error::corrupt(
                    format!("EWF chunk {index}"),
                    0,
                    "decoded chunk is empty",
                )
                .into());
            }
            let (now, later) = rest.split_at_mut(take);
            now.copy_from_slice(available.get(..take).unwrap_or_default());
            rest = later;
            pos = pos.saturating_add(take as u64);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.geometry.media_bytes
    }
}

/// The name of segment `number` (1-based) of the set whose first file is `first`:
/// x.E01 .. x.E99, x.EAA .. x.EZZ, x.FAA .. x.ZZZ (lower case if the first is).
fn segment_path(first: &Path, number: u32) -> Option<PathBuf> {
    if number == 1 {
        return Some(first.to_path_buf());
    }
    let ext = first.extension()?.to_str()?;
    let mut chars = ext.chars();
    let letter = chars.next().filter(char::is_ascii_alphabetic)?;
    if ext.len() != 3 || !chars.all(|c| c.is_ascii_digit()) {
        return None;
    }
    let lower = letter.is_ascii_lowercase();
    let new_ext = if number <= 99 {
        format!("{letter}{number:02}")
    } else {
        let k = number.checked_sub(100)?;
        let first_letter =
            char::from_u32(u32::from(letter.to_ascii_uppercase()).checked_add(k / (26 * 26))?)?;
        if first_letter > 'Z' {
            return None;
        }
        let letter_at = |base: char, step: u32| char::from_u32(u32::from(base).checked_add(step)?);
        let s: String = [
            letter_at(first_letter, 0)?,
            letter_at('A', (k / 26) % 26)?,
            letter_at('A', k % 26)?,
        ]
        .iter()
        .collect();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    Some(first.with_extension(new_ext))
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// What the section walk collects.
#[derive(Default)]
struct SetState {
    geometry: Option<Geometry>,
    chunks: Vec<Chunk>,
    md5: Option<[u8; 16]>,
    error_ranges: u64,
}

/// Reads `len` bytes of a section's data, which the caller has already bounded by the file.
fn read_bytes(file: &FileReader, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
    let Ok(n) = usize::try_from(len) else {
        return Err(Error::corrupt(
            what,
            offset,
            format!("{len} bytes do not fit in memory"),
        ));
    };
    if check_bounds(offset, n, file.len()).is_err() {
        return Err(Error::corrupt(
            what,
            offset,
            format!(
                "{len} bytes needed, past the end of the file ({} bytes)",
                file.len()
            ),
        ));
    }
    let mut bytes = vec![0u8; n];
    file.read_exact_at(offset, &mut bytes)?;
    Ok(bytes)
}

/// Where the chunk area before a table is, for the last entry's size.
#[derive(Clone, Copy)]
struct ChunkArea {
    start: u64,
    end: u64,
}

/// Walks the sections of one segment file. Returns true when the set continues ("next").
fn walk_segment(
    segment_index: u16,
    file: &FileReader,
    name: &str,
    state: &mut SetState,
    notes: &mut Vec<String>,
) -> Result<bool> {
    let mut offset = FILE_HEADER_BYTES;
    let mut sectors: Option<ChunkArea> = None;
    // A table whose checksums failed, waiting for its table2 mirror.
    let mut table_error: Option<Error> = None;
    loop {
        let what = format!("EWF section descriptor in {name}");
        let bytes = read_bytes(file, offset, SECTION_DESCRIPTOR_BYTES, &what).map_err(|_| {
            Error::corrupt(
                &what,
                offset,
                format!(
                    "past the end of the file ({} bytes): the segment is truncated",
                    file.len()
                ),
            )
        })?;
        let raw = SectionDescriptorDisk::ref_from_bytes(bytes.as_slice())
            .map_err(|_| Error::corrupt(&what, offset, "wrong size"))?;
        let computed = adler32(bytes.get(..72).unwrap_or_default());
        if raw.checksum.get() != computed {
            return Err(Error::corrupt(
                &what,
                offset,
                format!(
                    "Adler-32 mismatch: stored 0x{:08x}, computed 0x{computed:08x}",
                    raw.checksum.get()
                ),
            ));
        }
        let kind_len = raw.section_type.iter().position(|b| *b == 0).unwrap_or(16);
        let kind = String::from_utf8_lossy(raw.section_type.get(..kind_len).unwrap_or_default())
            .into_owned();
        let next = raw.next_offset.get();
        let size = raw.size.get();
        let data_start = offset.saturating_add(SECTION_DESCRIPTOR_BYTES);
        let data_len = size.saturating_sub(SECTION_DESCRIPTOR_BYTES);
        let section_end = offset.saturating_add(size.max(SECTION_DESCRIPTOR_BYTES));
        if section_end > file.len() {
            return Err(Error::corrupt(
                format!("EWF {kind} section in {name}"),
                offset,
                format!(
                    "{size} bytes, past the end of the file ({} bytes): the segment is truncated",
                    file.len()
                ),
            ));
        }
        let what = format!("EWF {kind} section in {name}");
        match kind.as_str() {
            "volume" | "disk" | "data" => {
                let smart = data_len < VOLUME_E01_BYTES;
                if data_len < VOLUME_SMART_BYTES {
                    return Err(Error::corrupt(
                        &what,
                        offset,
                        format!("{data_len} bytes of data, expected {VOLUME_E01_BYTES}"),
                    ));
                }
                let body_len = if smart {
                    VOLUME_SMART_BYTES
                } else {
                    VOLUME_E01_BYTES
                };
                let body = read_bytes(file, data_start, body_len, &what)?;
                let (covered, stored) = body.split_at(body.len().saturating_sub(4));
                let (stored, computed) = (read_u32_le(stored), adler32(covered));
                // Some writers leave this checksum at zero (Logicube); others must match.
                if stored != 0 && stored != computed {
                    return Err(Error::corrupt(
                        &what,
                        data_start,
                        format!(
                            "Adler-32 mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"
                        ),
                    ));
                }
                let raw = VolumeDisk::ref_from_prefix(body.as_slice())
                    .map_err(|_| Error::corrupt(&what, data_start, "too short"))?
                    .0;
                let geometry = Geometry::from_disk(raw, smart, &what, data_start)?;
                match state.geometry {
                    None => state.geometry = Some(geometry),
                    Some(known) if known == geometry => {}
                    Some(known) => {
                        return Err(Error::corrupt(
                            &what,
                            data_start,
                            format!(
                                "media geometry {geometry:?} differs from {known:?} seen before"
                            ),
                        ));
                    }
                }
            }
            "sectors" => {
                sectors = Some(ChunkArea {
                    start: data_start,
                    end: section_end,
                })
            }
            "table" => {
                match read_table(segment_index, file, offset, data_len, sectors, state, &what) {
                    Ok(()) => table_error = None,
                    Err(e) => table_error = Some(e),
                }
            }
            "table2" => {
                if let Some(error) = table_error.take() {
                    // The first copy failed its checksums: the mirror takes its place.
                    read_table(segment_index, file, offset, data_len, sectors, state, &what)
                        .map_err(|_| error)?;
                    notes.push(format!(
                        "{name}: a damaged table section was replaced by its table2 mirror"
                    ));
                }
            }
            "hash" | "digest" => {
                let body = read_bytes(file, data_start, 16.min(data_len), &what)?;
                if let Ok(md5) = <[u8; 16]>::try_from(body.as_slice()) {
                    if md5 != [0u8; 16] {
                        state.md5 = Some(md5);
                    }
                }
            }
            "error2" => {
                let body = read_bytes(file, data_start, 4.min(data_len), &what)?;
                state.error_ranges = state
                    .error_ranges
                    .saturating_add(u64::from(read_u32_le(&body)));
            }
            _ => {}
        }
        if kind != "table" {
            if let Some(error) = table_error.take() {
                return Err(error);
            }
        }
        match kind.as_str() {
            "next" => return Ok(true),
            "done" => return Ok(false),
            _ => {}
        }
        // Sections only move forward: this also ends any loop in a damaged chain.
        if next <= offset {
            return Err(Error::corrupt(
                &what,
                offset,
                format!(
                    "next section offset {next} does not move forward (a loop or a damaged chain)"
                ),
            ));
        }
        offset = next;
    }
}

/// Reads a table (or table2) section whose descriptor is at `section_offset`, appending its
/// chunks to `state` once every entry has been checked (a failing table appends nothing).
fn read_table(
    segment_index: u16,
    file: &FileReader,
    section_offset: u64,
    data_len: u64,
    sectors: Option<ChunkArea>,
    state: &mut SetState,
    what: &str,
) -> Result<()> {
    let geometry = state.geometry.ok_or_else(|| {
        Error::corrupt(
            what,
            section_offset,
            "a table comes before any volume section",
        )
    })?;
    let data_start = section_offset.saturating_add(SECTION_DESCRIPTOR_BYTES);
    if data_len < TABLE_HEADER_BYTES {
        return Err(Error::corrupt(
            what,
            section_offset,
            format!("{data_len} bytes, too short for a table header"),
        ));
    }
    let header_bytes = read_bytes(file, data_start, TABLE_HEADER_BYTES, what)?;
    let header = TableHeaderDisk::ref_from_bytes(header_bytes.as_slice())
        .map_err(|_| Error::corrupt(what, data_start, "wrong size"))?;
    let computed = adler32(header_bytes.get(..20).unwrap_or_default());
    if header.checksum.get() != computed {
        return Err(Error::corrupt(
            what,
            data_start,
            format!(
                "table header Adler-32 mismatch: stored 0x{:08x}, computed 0x{computed:08x}",
                header.checksum.get()
            ),
        ));
    }
    let count = u64::from(header.entry_count.get());
    let entries_len = count.saturating_mul(4);
    let remaining = geometry
        .chunk_count
        .saturating_sub(state.chunks.len() as u64);
    if TABLE_HEADER_BYTES.saturating_add(entries_len) > data_len || count > remaining {
        return Err(Error::corrupt(
            what,
            data_start,
            format!("{count} entries do not fit the section ({data_len} bytes) or exceed the {remaining} chunks still expected"),
        ));
    }
    let entries_at = data_start.saturating_add(TABLE_HEADER_BYTES);
    let entries = read_bytes(file, entries_at, entries_len, what)?;
    // Formats with a footer store the Adler-32 of the entry array after it.
    if TABLE_HEADER_BYTES
        .saturating_add(entries_len)
        .saturating_add(4)
        <= data_len
    {
        let footer = read_bytes(file, entries_at.saturating_add(entries_len), 4, what)?;
        let (stored, computed) = (read_u32_le(&footer), adler32(&entries));
        if stored != computed {
            return Err(Error::corrupt(
                what,
                entries_at,
                format!("entry array Adler-32 mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"),
            ));
        }
    }
    let base = header.base_offset.get();
    let section_end = data_start.saturating_add(data_len);
    let offsets: Vec<(u64, bool)> = entries
        .chunks_exact(4)
        .map(|e| {
            let v = read_u32_le(e);
            (
                base.saturating_add(u64::from(v & !COMPRESSED_BIT)),
                v & COMPRESSED_BIT != 0,
            )
        })
        .collect();
    let first_chunk = state.chunks.len();
    // Every entry on its own first, so the message names the entry that is wrong rather than
    // the one before it, whose size it bounds.
    for (i, &(offset, _)) in offsets.iter().enumerate() {
        if offset >= file.len() {
            return Err(Error::corrupt(
                format!(
                    "{what}: entry {i} (chunk {})",
                    first_chunk.saturating_add(i)
                ),
                entries_at.saturating_add((i as u64).saturating_mul(4)),
                format!(
                    "points to offset {offset}, past the end of the file ({} bytes)",
                    file.len()
                ),
            ));
        }
    }
    let max_stored = geometry
        .chunk_bytes
        .saturating_mul(2)
        .saturating_add(COMPRESSED_SLACK_BYTES);
    // Checked into a list of our own, appended only when the whole table is good, so a failing
    // table never leaves half its chunks in the set.
    let mut chunks = Vec::with_capacity(offsets.len());
    for (i, &(offset, compressed)) in offsets.iter().enumerate() {
        let chunk_index = (first_chunk as u64).saturating_add(i as u64);
        let entry_offset = entries_at.saturating_add((i as u64).saturating_mul(4));
        let end = match offsets.get(i.saturating_add(1)) {
            Some(&(next, _)) => next,
            // The last chunk runs to the end of the sectors section holding it, or (older
            // layouts, chunks inside the table section) to the end of this section.
            None => match sectors {
                Some(area) if (area.start..area.end).contains(&offset) => area.end,
                _ if offset > section_offset => section_end,
                _ => section_offset,
            },
        };
        let entry_what = || format!("{what}: entry {i} (chunk {chunk_index})");
        if end <= offset || end > file.len() {
            return Err(Error::corrupt(
                entry_what(),
                entry_offset,
                format!("chunk at offset {offset} would end at {end}: offsets must increase and stay inside the file ({} bytes)", file.len()),
            ));
        }
        let stored = end.saturating_sub(offset).min(max_stored);
        let needed = if compressed {
            1
        } else {
            geometry.chunk_len(chunk_index).saturating_add(4)
        };
        if stored < needed {
            return Err(Error::corrupt(
                entry_what(),
                entry_offset,
                format!("{stored} bytes stored at offset {offset}, {needed} needed"),
            ));
        }
        chunks.push(Chunk {
            offset,
            stored_bytes: u32::try_from(stored).unwrap_or(u32::MAX),
            segment: segment_index,
            compressed,
        });
    }
    state.chunks.append(&mut chunks);
    Ok(())
}

/// Opens an EWF set from its first segment file (x.E01), finding x.E02, ... next to it.
///
/// Reads every segment's section chain and chunk tables at open (checking each table's sizes
/// against its section and the chunk count of the volume section); chunks are read, checked
/// (zlib Adler-32, or the Adler-32 after a raw chunk) and inflated when the media is read, and a
/// failing chunk is an [`Error::Corrupt`] naming its number and file offset. With
/// `options.verify_container`, reads the whole media and compares it with the stored MD5 (a
/// note says when there is none). Refuses EWF2 and logical-evidence sets ([`Error::Unsupported`]),
/// a missing segment, a section chain that does not move forward, and a set whose tables do not
/// cover every chunk.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Disk> {
    let first_name = display_name(path);
    let mut state = SetState::default();
    let mut notes = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut number: u32 = 1;
    loop {
        let segment_path = segment_path(path, number).ok_or_else(|| {
            Error::Unsupported(format!("EWF segment {number} of {first_name}: no segment name follows (the first file should be named *.E01)"))
        })?;
        let name = display_name(&segment_path);
        let file = FileReader::open(&segment_path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound && number > 1 {
                Error::corrupt(
                    format!("EWF segment set of {first_name}"),
                    0,
                    format!("segment {number} ({name}) is missing: segment {} ends with a \"next\" section", number.saturating_sub(1)),
                )
            } else {
                Error::Io(io::Error::new(e.kind(), format!("EWF segment {}: {e}", segment_path.display())))
            }
        })?;
        let header_bytes = read_bytes(
            &file,
            0,
            FILE_HEADER_BYTES,
            &format!("EWF file header of {name}"),
        )?;
        let header = FileHeaderDisk::ref_from_bytes(header_bytes.as_slice())
            .map_err(|_| Error::corrupt("EWF file header", 0, "wrong size"))?;
        if header.signature != *SIGNATURE {
            if header.signature == *LOGICAL_SIGNATURE {
                return Err(Error::Unsupported(format!(
                    "{name} is EWF logical evidence (L01), not a disk image"
                )));
            }
            if header.signature == *EWF2_SIGNATURE {
                return Err(Error::Unsupported(format!(
                    "{name} is EWF version 2 (Ex01)"
                )));
            }
            return Err(Error::corrupt(
                format!("EWF file header of {name}"),
                0,
                "not an EWF segment file (signature)",
            ));
        }
        if u32::from(header.segment_number.get()) != number {
            return Err(Error::corrupt(
                format!("EWF file header of {name}"),
                9,
                format!(
                    "segment number {}, expected {number}",
                    header.segment_number.get()
                ),
            ));
        }
        let index = u16::try_from(segments.len())
            .map_err(|_| Error::Unsupported("more than 65535 EWF segments".into()))?;
        let more = walk_segment(index, &file, &name, &mut state, &mut notes)?;
        segments.push(Segment { file, name });
        if !more {
            break;
        }
        number = number.saturating_add(1);
        if number > MAX_SEGMENTS {
            return Err(Error::Unsupported(format!(
                "EWF sets of more than {MAX_SEGMENTS} segments"
            )));
        }
    }
    let geometry = state
        .geometry
        .ok_or_else(|| Error::corrupt(format!("EWF set {first_name}"), 0, "no volume section"))?;
    if state.chunks.len() as u64 != geometry.chunk_count {
        return Err(Error::corrupt(
            format!("EWF set {first_name}"),
            0,
            format!(
                "the tables list {} chunks, the volume section {}",
                state.chunks.len(),
                geometry.chunk_count
            ),
        ));
    }
    if state.error_ranges > 0 {
        notes.push(format!(
            "{} sector range(s) could not be read at acquisition and hold zeros (error2 section)",
            state.error_ranges
        ));
    }
    let compressed = state.chunks.iter().filter(|c| c.compressed).count();
    notes.push(format!(
        "{} segment file(s), {} chunks of {} bytes ({compressed} compressed)",
        segments.len(),
        geometry.chunk_count,
        geometry.chunk_bytes
    ));
    let reader = Arc::new(EwfReader {
        segments,
        chunks: state.chunks,
        geometry,
        cache: LruCache::new(chunk_cache_entries(geometry.chunk_bytes)),
    });
    match state.md5 {
        Some(md5) => {
            notes.push(format!("stored MD5 {}", hex(&md5)));
            if options.verify_container {
                let computed = media_md5(reader.as_ref())?;
                if computed != md5 {
                    return Err(Error::corrupt(
                        format!("EWF media of {first_name}"),
                        0,
                        format!(
                            "MD5 mismatch: stored {}, computed {}",
                            hex(&md5),
                            hex(&computed)
                        ),
                    ));
                }
                notes.push("MD5 verified: the media matches the stored hash".into());
            }
        }
        None if options.verify_container => {
            media_md5(reader.as_ref())?;
            notes.push("no MD5 stored: only the chunk checksums were verified".into());
        }
        None => notes.push("no MD5 stored".into()),
    }
    Ok(Disk {
        info: ContainerInfo {
            format: Format::Ewf,
            variant: "ewf-e01".into(),
            virtual_size: geometry.media_bytes,
            sector_size: geometry.bytes_per_sector,
            allocated_bytes: None,
            notes,
            chain: Vec::new(),
        },
        reader,
    })
}

/// MD5 of the whole media, read in order (every chunk's checksum is checked on the way).
fn media_md5(reader: &EwfReader) -> Result<[u8; 16]> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; VERIFY_BLOCK_BYTES];
    let mut offset = 0u64;
    let len = reader.len();
    while offset < len {
        let take = usize::try_from(len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let block = buf.get_mut(..take).unwrap_or_default();
        reader.read_exact_at(offset, block)?;
        hasher.update(&*block);
        offset = offset.saturating_add(take as u64);
    }
    Ok(hasher.finalize().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {

    #[test]
    fn chunk_cache_is_bounded_in_bytes() {
        assert_eq!(super::chunk_cache_entries(32 << 10), 32);
        assert_eq!(super::chunk_cache_entries(16 << 20), 4);
        assert_eq!(super::chunk_cache_entries(1 << 30), 2);
        assert_eq!(super::chunk_cache_entries(0), 32);
    }

    use super::*;

    #[test]
    fn segment_names_follow_the_e01_sequence() {
        let first = Path::new("/x/case.E01");
        let name = |n| {
            segment_path(first, n).map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        };
        assert_eq!(name(1).as_deref(), Some("case.E01"));
        assert_eq!(name(2).as_deref(), Some("case.E02"));
        assert_eq!(name(99).as_deref(), Some("case.E99"));
        assert_eq!(name(100).as_deref(), Some("case.EAA"));
        assert_eq!(name(101).as_deref(), Some("case.EAB"));
        assert_eq!(name(126).as_deref(), Some("case.EBA"));
        assert_eq!(name(100 + 26 * 26).as_deref(), Some("case.FAA"));
        assert_eq!(name(MAX_SEGMENTS).as_deref(), Some("case.ZZZ"));
        assert_eq!(name(MAX_SEGMENTS + 1), None);
        assert_eq!(
            segment_path(Path::new("a.e01"), 100).unwrap(),
            Path::new("a.eaa")
        );
        assert_eq!(segment_path(Path::new("a.img"), 2), None);
    }
}

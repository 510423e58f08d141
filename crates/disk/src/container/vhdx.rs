//! VHDX (Hyper-V generation 2 virtual disks): fixed, dynamic and differencing.
//!
//! Layout: a file type identifier at 0, two headers (at 64 and 128 KiB; the valid one with the
//! higher sequence number wins), two copies of the region table (192 and 256 KiB) locating the
//! BAT and the metadata region. The metadata gives the block size, the logical sector size, the
//! virtual size and whether there is a parent. The BAT interleaves one sector-bitmap entry after
//! every `chunk_ratio` payload entries; each payload entry has a state and a 1 MiB-aligned offset.
//!
//! The log is not replayed. When the header names a log, the log region is scanned for entries
//! of that log: none means there is nothing to replay and reading is exact; any means the file
//! was not closed cleanly, and the note in [`ContainerInfo::notes`] says that the most recent
//! writes (data, BAT or metadata) may be missing from what is read.
//
// Sources: Microsoft, [MS-VHDX] "Virtual Hard Disk v2 (VHDX) File Format" v20240423: 2.2 header
// section, 2.3 log, 2.4 blocks, 2.5 BAT, 2.6 metadata region.

use std::sync::Arc;

use winre_readat::ReadAt;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::chain::{parent_path, Chain};
use super::crc32c::crc32c;
use super::lru_cache::LruCache;
use super::mapped::{bit_run, BitOrder, MappedReader, Mapper, Mapping, Run};
use super::{ContainerInfo, Disk, Format, OpenOptions};
use crate::guid::Guid;
use crate::{Error, Result};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
const HEADER_BYTES: usize = 4096;
const REGION_TABLE_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
const REGION_TABLE_BYTES: usize = 64 * 1024;
const METADATA_TABLE_BYTES: usize = 64 * 1024;
/// The spec's limits on table entries.
const MAX_TABLE_ENTRIES: u32 = 2047;
/// The spec's block sizes (1 MiB to 256 MiB) and largest disk (64 TiB).
const MIN_BLOCK_BYTES: u64 = MIB;
const MAX_BLOCK_BYTES: u64 = 256 * MIB;
const MAX_VIRTUAL_BYTES: u64 = 64 << 40;
/// Largest BAT loaded at open (8 Mi entries: 8 TiB at 1 MiB blocks, 64 TiB at 8 MiB).
const MAX_BAT_BYTES: u64 = 64 * MIB;
/// Largest metadata item read (the parent locator is the only variable-size one).
const MAX_ITEM_BYTES: u32 = 64 * 1024;
/// Largest log scanned for pending entries.
const MAX_LOG_SCAN_BYTES: u64 = 256 * MIB;
/// Sector bitmaps of partially present blocks kept in memory.
const BITMAP_CACHE_ENTRIES: usize = 64;
/// Sectors described by one sector bitmap block (1 MiB of bits).
const SECTORS_PER_BITMAP_BLOCK: u64 = 1 << 23;

const REGION_BAT: Guid = Guid::from_fields(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const REGION_METADATA: Guid = Guid::from_fields(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const ITEM_FILE_PARAMETERS: Guid = Guid::from_fields(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const ITEM_VIRTUAL_DISK_SIZE: Guid = Guid::from_fields(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const ITEM_VIRTUAL_DISK_ID: Guid = Guid::from_fields(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const ITEM_LOGICAL_SECTOR_SIZE: Guid = Guid::from_fields(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const ITEM_PHYSICAL_SECTOR_SIZE: Guid = Guid::from_fields(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const ITEM_PARENT_LOCATOR: Guid = Guid::from_fields(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

/// Payload and sector bitmap BAT entry states.
const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
const PAYLOAD_BLOCK_UNDEFINED: u64 = 1;
const PAYLOAD_BLOCK_ZERO: u64 = 2;
const PAYLOAD_BLOCK_UNMAPPED: u64 = 3;
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;
const SB_BLOCK_PRESENT: u64 = 6;

/// A header (4 KiB, little-endian).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HeaderDisk {
    signature: [u8; 4],        // +0x00 "head"
    checksum: U32,             // +0x04 CRC-32C of the 4 KiB, this field as 0
    sequence_number: U64,      // +0x08
    file_write_guid: [u8; 16], // +0x10
    data_write_guid: [u8; 16], // +0x20
    log_guid: [u8; 16],        // +0x30 nil when the log is empty
    log_version: U16,          // +0x40 0
    version: U16,              // +0x42 1
    log_length: U32,           // +0x44
    log_offset: U64,           // +0x48
    reserved: [u8; 4016],      // +0x50
}

/// Region table header (the first 16 of its 64 KiB, little-endian).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RegionTableHeaderDisk {
    signature: [u8; 4], // +0x00 "regi"
    checksum: U32,      // +0x04 CRC-32C of the 64 KiB, this field as 0
    entry_count: U32,   // +0x08 at most 2047
    reserved: U32,      // +0x0C
}

/// Region table entry (32 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RegionEntryDisk {
    guid: [u8; 16],   // +0x00
    file_offset: U64, // +0x10 1 MiB aligned
    length: U32,      // +0x18 1 MiB multiple
    required: U32,    // +0x1C bit 0
}

/// Metadata table header (32 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MetadataTableHeaderDisk {
    signature: [u8; 8],  // +0x00 "metadata"
    reserved: U16,       // +0x08
    entry_count: U16,    // +0x0A at most 2047
    reserved2: [u8; 20], // +0x0C
}

/// Metadata table entry (32 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MetadataEntryDisk {
    item_id: [u8; 16], // +0x00
    offset: U32,       // +0x10 from the start of the metadata region, at least 64 KiB
    length: U32,       // +0x14
    flags: U32,        // +0x18 bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired
    reserved: U32,     // +0x1C
}

/// Log entry header, the first 64 bytes of an entry (only its signature and log GUID are used).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct LogEntryHeaderDisk {
    signature: [u8; 4],       // +0x00 "loge"
    checksum: U32,            // +0x04
    entry_length: U32,        // +0x08
    tail: U32,                // +0x0C
    sequence_number: U64,     // +0x10
    descriptor_count: U32,    // +0x18
    reserved: U32,            // +0x1C
    log_guid: [u8; 16],       // +0x20
    flushed_file_offset: U64, // +0x30
    last_file_offset: U64,    // +0x38
}

/// The header in use.
struct Header {
    data_write_guid: Guid,
    log_guid: Guid,
    log_offset: u64,
    log_length: u64,
}

/// Reads and checks the header at `at`.
fn read_header(file: &dyn ReadAt, at: u64) -> Result<(Header, u64)> {
    let what = if at == HEADER_OFFSETS[0] {
        "VHDX header 1"
    } else {
        "VHDX header 2"
    };
    let mut bytes = vec![0u8; HEADER_BYTES];
    file.read_exact_at(at, &mut bytes)?;
    let raw = HeaderDisk::ref_from_bytes(&bytes).map_err(|_| Error::corrupt(what, at, "short"))?;
    if &raw.signature != b"head" {
        return Err(Error::corrupt(what, at, "no \"head\" signature"));
    }
    let stored = raw.checksum.get();
    let computed = crc32c_with_zeroed_field(&bytes, 4);
    if stored != computed {
        return Err(Error::corrupt(
            what,
            at,
            format!("CRC-32C is 0x{stored:08x}, computed 0x{computed:08x}"),
        ));
    }
    if raw.version.get() != 1 {
        return Err(Error::Unsupported(format!(
            "VHDX header version {}",
            raw.version.get()
        )));
    }
    let header = Header {
        data_write_guid: Guid(raw.data_write_guid),
        log_guid: Guid(raw.log_guid),
        log_offset: raw.log_offset.get(),
        log_length: u64::from(raw.log_length.get()),
    };
    Ok((header, raw.sequence_number.get()))
}

/// CRC-32C of `bytes` with the 4-byte checksum field at `field` taken as zero.
fn crc32c_with_zeroed_field(bytes: &[u8], field: usize) -> u32 {
    let mut copy = bytes.to_vec();
    if let Some(f) = copy.get_mut(field..field.saturating_add(4)) {
        f.fill(0);
    }
    crc32c(&copy)
}

/// The current header: the valid one with the higher sequence number, and a note when one of
/// the two is damaged.
fn current_header(file: &dyn ReadAt) -> Result<(Header, Option<String>)> {
    let [first_at, second_at] = HEADER_OFFSETS;
    match (read_header(file, first_at), read_header(file, second_at)) {
        (Ok((h1, s1)), Ok((h2, s2))) => Ok((if s2 > s1 { h2 } else { h1 }, None)),
        (Ok((h, _)), Err(e)) | (Err(e), Ok((h, _))) => Ok((h, Some(format!("one VHDX header is unusable, the other was used: {e}")))),
        (Err(e1), Err(e2)) => Err(match (e1, e2) {
            (Error::Corrupt { detail: d1, .. }, Error::Corrupt { detail: d2, .. }) => Error::corrupt(
                "VHDX headers",
                first_at,
                format!("both unusable: header 1 at {first_at}: {d1}; header 2 at {second_at}: {d2}"),
            ),
            (e, _) => e,
        }),
    }
}

/// The BAT and metadata regions' locations.
struct Regions {
    bat_at: u64,
    bat_bytes: u64,
    metadata_at: u64,
    metadata_bytes: u64,
}

fn read_region_table(file: &dyn ReadAt, at: u64) -> Result<Regions> {
    let what = "VHDX region table";
    let mut bytes = vec![0u8; REGION_TABLE_BYTES];
    file.read_exact_at(at, &mut bytes)?;
    let (head, rest) = RegionTableHeaderDisk::ref_from_prefix(&bytes)
        .map_err(|_| Error::corrupt(what, at, "short"))?;
    if &head.signature != b"regi" {
        return Err(Error::corrupt(what, at, "no \"regi\" signature"));
    }
    let stored = head.checksum.get();
    let computed = crc32c_with_zeroed_field(&bytes, 4);
    if stored != computed {
        return Err(Error::corrupt(
            what,
            at,
            format!("CRC-32C is 0x{stored:08x}, computed 0x{computed:08x}"),
        ));
    }
    let count = head.entry_count.get();
    if count > MAX_TABLE_ENTRIES {
        return Err(Error::corrupt(
            what,
            at.saturating_add(8),
            format!("{count} entries (at most {MAX_TABLE_ENTRIES})"),
        ));
    }
    let (entries, _) = <[RegionEntryDisk]>::ref_from_prefix_with_elems(rest, count as usize)
        .map_err(|_| Error::corrupt(what, at, format!("{count} entries do not fit")))?;
    let (mut bat, mut metadata) = (None, None);
    let file_len = file.len();
    for (i, entry) in entries.iter().enumerate() {
        let entry_at = at
            .saturating_add(16)
            .saturating_add((i as u64).saturating_mul(32));
        let guid = Guid(entry.guid);
        let (offset, length) = (entry.file_offset.get(), u64::from(entry.length.get()));
        let located = offset % MIB == 0
            && offset >= MIB
            && length % MIB == 0
            && offset
                .checked_add(length)
                .is_some_and(|end| end <= file_len);
        if guid == REGION_BAT || guid == REGION_METADATA {
            if !located {
                return Err(Error::corrupt(
                    format!("VHDX region table entry {i} ({})", if guid == REGION_BAT { "BAT" } else { "metadata" }),
                    entry_at,
                    format!("region of {length} bytes at offset {offset} is not 1 MiB aligned or ends past the end of the file ({file_len} bytes)"),
                ));
            }
            if guid == REGION_BAT {
                bat = Some((offset, length));
            } else {
                metadata = Some((offset, length));
            }
        } else if entry.required.get() & 1 != 0 {
            return Err(Error::Unsupported(format!(
                "VHDX with required region {guid}"
            )));
        }
    }
    match (bat, metadata) {
        (Some((bat_at, bat_bytes)), Some((metadata_at, metadata_bytes))) => Ok(Regions {
            bat_at,
            bat_bytes,
            metadata_at,
            metadata_bytes,
        }),
        _ => Err(Error::corrupt(what, at, "no BAT or no metadata region")),
    }
}

/// What the metadata region says.
struct Metadata {
    block_bytes: u64,
    has_parent: bool,
    /// "LeaveBlocksAllocated": set in fixed VHDX files.
    leave_blocks_allocated: bool,
    virtual_size: u64,
    logical_sector_bytes: u64,
    parent_locator: Option<Vec<u8>>,
}

fn read_metadata(file: &dyn ReadAt, regions: &Regions) -> Result<Metadata> {
    let what = "VHDX metadata table";
    let at = regions.metadata_at;
    let mut table = vec![0u8; METADATA_TABLE_BYTES];
    if regions.metadata_bytes < METADATA_TABLE_BYTES as u64 {
        return Err(Error::corrupt(what, at, "region smaller than its table"));
    }
    file.read_exact_at(at, &mut table)?;
    let (head, rest) = MetadataTableHeaderDisk::ref_from_prefix(&table)
        .map_err(|_| Error::corrupt(what, at, "short"))?;
    if &head.signature != b"metadata" {
        return Err(Error::corrupt(what, at, "no \"metadata\" signature"));
    }
    let count = head.entry_count.get();
    if u32::from(count) > MAX_TABLE_ENTRIES {
        return Err(Error::corrupt(
            what,
            at.saturating_add(10),
            format!("{count} entries (at most {MAX_TABLE_ENTRIES})"),
        ));
    }
    let (entries, _) = <[MetadataEntryDisk]>::ref_from_prefix_with_elems(rest, usize::from(count))
        .map_err(|_| Error::corrupt(what, at, format!("{count} entries do not fit")))?;
    let mut items: Vec<(Guid, u64, Vec<u8>)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_at = at
            .saturating_add(32)
            .saturating_add((i as u64).saturating_mul(32));
        let id = Guid(entry.item_id);
        let known = [
            ITEM_FILE_PARAMETERS,
            ITEM_VIRTUAL_DISK_SIZE,
            ITEM_VIRTUAL_DISK_ID,
            ITEM_LOGICAL_SECTOR_SIZE,
            ITEM_PHYSICAL_SECTOR_SIZE,
            ITEM_PARENT_LOCATOR,
        ];
        if !known.contains(&id) {
            if entry.flags.get() & 4 != 0 {
                return Err(Error::Unsupported(format!(
                    "VHDX with required metadata item {id}"
                )));
            }
            continue;
        }
        let (offset, length) = (entry.offset.get(), entry.length.get());
        let inside = u64::from(offset) >= METADATA_TABLE_BYTES as u64
            && u64::from(offset).saturating_add(u64::from(length)) <= regions.metadata_bytes;
        if length > MAX_ITEM_BYTES || !inside {
            return Err(Error::corrupt(
                format!("VHDX metadata entry {i} ({id})"),
                entry_at,
                format!("item of {length} bytes at region offset {offset} is not inside the {} byte region", regions.metadata_bytes),
            ));
        }
        let mut data = vec![0u8; length as usize];
        let item_at = at.saturating_add(u64::from(offset));
        file.read_exact_at(item_at, &mut data)?;
        items.push((id, item_at, data));
    }
    let find = |id: Guid, name: &str, want: usize| -> Result<(u64, Vec<u8>)> {
        match items.iter().find(|(i, _, _)| *i == id) {
            Some((_, item_at, data)) if data.len() >= want => Ok((*item_at, data.clone())),
            Some((_, item_at, data)) => Err(Error::corrupt(
                format!("VHDX metadata item {name}"),
                *item_at,
                format!("{} bytes, expected {want}", data.len()),
            )),
            None => Err(Error::corrupt(what, at, format!("no {name} item"))),
        }
    };
    let le32 = |d: &[u8], i: usize| {
        d.get(i..i.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    };
    let (params_at, params) = find(ITEM_FILE_PARAMETERS, "file parameters", 8)?;
    let block_bytes = u64::from(le32(&params, 0));
    if !block_bytes.is_power_of_two() || !(MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES).contains(&block_bytes)
    {
        return Err(Error::corrupt(
            "VHDX metadata item file parameters",
            params_at,
            format!("block size {block_bytes} is not a power of two from 1 MiB to 256 MiB"),
        ));
    }
    let has_parent = le32(&params, 4) & 2 != 0;
    let leave_blocks_allocated = le32(&params, 4) & 1 != 0;
    let (sector_at, sector) = find(ITEM_LOGICAL_SECTOR_SIZE, "logical sector size", 4)?;
    let logical_sector_bytes = u64::from(le32(&sector, 0));
    if logical_sector_bytes != 512 && logical_sector_bytes != 4096 {
        return Err(Error::corrupt(
            "VHDX metadata item logical sector size",
            sector_at,
            format!("{logical_sector_bytes} (expected 512 or 4096)"),
        ));
    }
    let (size_at, size) = find(ITEM_VIRTUAL_DISK_SIZE, "virtual disk size", 8)?;
    let virtual_size = size
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    if !virtual_size.is_multiple_of(logical_sector_bytes) || virtual_size > MAX_VIRTUAL_BYTES {
        return Err(Error::corrupt(
            "VHDX metadata item virtual disk size",
            size_at,
            format!("{virtual_size} bytes is not a multiple of the {logical_sector_bytes} byte sector or is above 64 TiB"),
        ));
    }
    let parent_locator = items
        .iter()
        .find(|(i, _, _)| *i == ITEM_PARENT_LOCATOR)
        .map(|(_, _, d)| d.clone());
    Ok(Metadata {
        block_bytes,
        has_parent,
        leave_blocks_allocated,
        virtual_size,
        logical_sector_bytes,
        parent_locator,
    })
}

/// Key/value pairs of a parent locator item (UTF-16LE strings).
fn parent_locator_entries(item: &[u8]) -> Vec<(String, String)> {
    let le16 = |i: usize| {
        item.get(i..i.saturating_add(2))
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
            .unwrap_or(0)
    };
    let le32 = |i: usize| {
        item.get(i..i.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    };
    let text = |offset: u32, length: u16| -> Option<String> {
        let start = offset as usize;
        let bytes = item.get(start..start.checked_add(usize::from(length))?)?;
        let units = bytes
            .chunks_exact(2)
            .map(|c| c.try_into().map(u16::from_le_bytes).unwrap_or(0));
        Some(
            char::decode_utf16(units)
                .map(|c| c.unwrap_or('\u{FFFD}'))
                .collect(),
        )
    };
    // Header: locator type GUID (16), reserved (2), key-value count (2); then 12-byte entries.
    let count = usize::from(le16(18));
    (0..count)
        .filter_map(|i| {
            let at = 20usize.checked_add(i.checked_mul(12)?)?;
            let key = text(le32(at), le16(at.checked_add(8)?))?;
            let value = text(le32(at.checked_add(4)?), le16(at.checked_add(10)?))?;
            Some((key, value))
        })
        .collect()
}

/// Whether the log holds entries of the header's log GUID, i.e. writes that were never replayed.
fn pending_log_entries(file: &dyn ReadAt, header: &Header) -> Result<u64> {
    let (at, length) = (header.log_offset, header.log_length);
    if at % MIB != 0
        || length % MIB != 0
        || at.checked_add(length).is_none_or(|end| end > file.len())
    {
        return Err(Error::corrupt("VHDX header", HEADER_OFFSETS[0], format!("log of {length} bytes at {at} is not 1 MiB aligned or ends past the end of the file")));
    }
    let mut entries = 0u64;
    let mut offset = 0u64;
    let mut bytes = [0u8; 64];
    while offset < length.min(MAX_LOG_SCAN_BYTES) {
        file.read_exact_at(at.saturating_add(offset), &mut bytes)?;
        if let Ok(entry) = LogEntryHeaderDisk::ref_from_bytes(&bytes) {
            if &entry.signature == b"loge" && Guid(entry.log_guid) == header.log_guid {
                entries = entries.saturating_add(1);
            }
        }
        offset = offset.saturating_add(4096);
    }
    Ok(entries)
}

/// Opens a VHDX standing alone: a differencing VHDX's parent is only looked for in
/// `options.parents` ([`super::open`] also follows the parent locator).
pub fn open(file: Arc<dyn ReadAt>, options: &OpenOptions) -> Result<Disk> {
    open_in(file, options, &Chain::top(None, options))
}

/// Opens a VHDX in `chain`. A differencing VHDX opens its parent from the locator's
/// `relative_path` (checked by size and DataWriteGuid against `parent_linkage`).
pub(crate) fn open_in(file: Arc<dyn ReadAt>, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    let (header, note) = current_header(file.as_ref())?;
    let mut notes: Vec<String> = note.into_iter().collect();
    if !header.log_guid.is_zero() {
        let pending = pending_log_entries(file.as_ref(), &header)?;
        notes.push(if pending == 0 {
            format!("VHDX log GUID {} is set but the log holds no entry of it: nothing to replay, reads are exact", header.log_guid)
        } else {
            format!(
                "VHDX log holds {pending} entries of log {} that were not replayed (not closed cleanly): winre does not replay logs, so the most recent writes (data, BAT or metadata) may be missing from what is read",
                header.log_guid
            )
        });
    }
    let regions = match read_region_table(file.as_ref(), REGION_TABLE_OFFSETS[0]) {
        Ok(r) => r,
        Err(Error::Corrupt { detail, .. }) => {
            let r = read_region_table(file.as_ref(), REGION_TABLE_OFFSETS[1])?;
            notes.push(format!(
                "VHDX region table 1 is unusable ({detail}); used region table 2"
            ));
            r
        }
        Err(e) => return Err(e),
    };
    let meta = read_metadata(file.as_ref(), &regions)?;
    let chunk_ratio = SECTORS_PER_BITMAP_BLOCK
        .saturating_mul(meta.logical_sector_bytes)
        .checked_div(meta.block_bytes)
        .unwrap_or(1)
        .max(1);
    let payload_blocks = meta.virtual_size.div_ceil(meta.block_bytes);
    let bat_entries = if meta.has_parent {
        payload_blocks
            .div_ceil(chunk_ratio)
            .saturating_mul(chunk_ratio.saturating_add(1))
    } else {
        payload_blocks.saturating_add(
            payload_blocks
                .saturating_sub(1)
                .checked_div(chunk_ratio)
                .unwrap_or(0),
        )
    };
    let bat_bytes = bat_entries.saturating_mul(8);
    if bat_bytes > regions.bat_bytes {
        return Err(Error::corrupt(
            "VHDX BAT region",
            regions.bat_at,
            format!(
                "{} bytes, a {} byte disk needs {bat_bytes}",
                regions.bat_bytes, meta.virtual_size
            ),
        ));
    }
    if bat_bytes > MAX_BAT_BYTES {
        return Err(Error::Unsupported(format!(
            "VHDX BAT of {bat_bytes} bytes (more than {MAX_BAT_BYTES})"
        )));
    }
    let mut below = Vec::new();
    let parent = if meta.has_parent {
        let entries = meta
            .parent_locator
            .as_deref()
            .map(parent_locator_entries)
            .unwrap_or_default();
        let value = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        // Only the relative path is followed; the absolute ones are shown when it is missing.
        let names: Vec<String> = ["relative_path", "absolute_win32_path", "volume_path"]
            .iter()
            .filter_map(|key| value(key))
            .collect();
        let (parent, links) = chain.open_parent("differencing VHDX", &names, false, options)?;
        let path = std::path::Path::new(parent_path(&links));
        check_parent(path, &parent, value("parent_linkage"), meta.virtual_size)?;
        notes.push(format!(
            "parent {} (recorded as {})",
            path.display(),
            names.first().map_or("?", String::as_str)
        ));
        below = links;
        Some(parent.reader)
    } else {
        None
    };
    let mut raw = vec![
        0u8;
        usize::try_from(bat_bytes)
            .map_err(|_| Error::Unsupported("BAT larger than memory".into()))?
    ];
    file.read_exact_at(regions.bat_at, &mut raw)?;
    let bat: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| c.try_into().map(u64::from_le_bytes).unwrap_or(0))
        .collect();
    let mut present = 0u64;
    for block in 0..payload_blocks {
        let state = bat
            .get(
                usize::try_from(block.saturating_add(block.checked_div(chunk_ratio).unwrap_or(0)))
                    .unwrap_or(usize::MAX),
            )
            .map_or(0, |e| e & 7);
        if state == PAYLOAD_BLOCK_FULLY_PRESENT || state == PAYLOAD_BLOCK_PARTIALLY_PRESENT {
            present = present.saturating_add(1);
        }
    }
    let variant = if meta.has_parent {
        "differencing"
    } else if meta.leave_blocks_allocated {
        "fixed"
    } else {
        "dynamic"
    };
    let map = BlockMap {
        file: Arc::clone(&file),
        bat,
        bat_at: regions.bat_at,
        block_bytes: meta.block_bytes,
        sector_bytes: meta.logical_sector_bytes,
        chunk_ratio,
        virtual_size: meta.virtual_size,
        differencing: meta.has_parent,
        bitmaps: LruCache::new(BITMAP_CACHE_ENTRIES),
    };
    let reader = MappedReader::new(map, file, parent, meta.virtual_size);
    Ok(Disk {
        reader: Arc::new(reader),
        info: ContainerInfo {
            format: Format::Vhdx,
            variant: variant.into(),
            virtual_size: meta.virtual_size,
            sector_size: u32::try_from(meta.logical_sector_bytes).unwrap_or(512),
            allocated_bytes: Some(present.saturating_mul(meta.block_bytes)),
            notes,
            chain: below,
        },
    })
}

/// Refuses a parent of the wrong size, or a VHDX parent whose DataWriteGuid is not the one the
/// child's parent locator links to.
fn check_parent(
    path: &std::path::Path,
    parent: &Disk,
    linkage: Option<String>,
    size: u64,
) -> Result<()> {
    let what = "parent disk";
    if parent.info.virtual_size != size {
        return Err(Error::corrupt(
            what,
            0,
            format!(
                "{} is {} bytes, the differencing VHDX is {size} bytes",
                path.display(),
                parent.info.virtual_size
            ),
        ));
    }
    if let (Format::Vhdx, Some(linkage)) = (parent.info.format, linkage) {
        let file = winre_readat::FileReader::open(path)?;
        let (header, _) = current_header(&file)?;
        let theirs = header.data_write_guid.to_string();
        if !linkage
            .trim_matches(|c| c == '{' || c == '}')
            .eq_ignore_ascii_case(&theirs)
        {
            return Err(Error::corrupt(
                what,
                0,
                format!(
                    "{} has data write GUID {theirs}, the child links to {linkage}",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Guest-to-file map of a VHDX.
struct BlockMap {
    file: Arc<dyn ReadAt>,
    bat: Vec<u64>,
    bat_at: u64,
    block_bytes: u64,
    sector_bytes: u64,
    chunk_ratio: u64,
    virtual_size: u64,
    differencing: bool,
    /// Sector bitmap bytes of one payload block, keyed by their file offset.
    bitmaps: LruCache<Vec<u8>>,
}

impl BlockMap {
    fn entry(&self, index: u64) -> Result<u64> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.bat.get(i))
            .copied()
            .ok_or_else(|| {
                Error::corrupt(
                    format!("VHDX BAT entry {index}"),
                    self.bat_at.saturating_add(index.saturating_mul(8)),
                    "beyond the table",
                )
            })
    }

    /// The part of the sector bitmap that covers payload block `block`.
    fn bitmap_for(&self, block: u64) -> Result<Arc<Vec<u8>>> {
        let chunk = block.checked_div(self.chunk_ratio).unwrap_or(0);
        let index = chunk
            .saturating_mul(self.chunk_ratio.saturating_add(1))
            .saturating_add(self.chunk_ratio);
        let entry = self.entry(index)?;
        let entry_at = self.bat_at.saturating_add(index.saturating_mul(8));
        if entry & 7 != SB_BLOCK_PRESENT {
            return Err(Error::corrupt(
                format!("VHDX BAT entry {index} (sector bitmap)"),
                entry_at,
                format!(
                    "state {} for a chunk with a partially present block",
                    entry & 7
                ),
            ));
        }
        let bitmap_at = (entry >> 20).saturating_mul(MIB);
        let bytes_per_block = self.block_bytes.checked_div(self.sector_bytes).unwrap_or(0) / 8;
        let at = bitmap_at.saturating_add(
            block
                .checked_rem(self.chunk_ratio)
                .unwrap_or(0)
                .saturating_mul(bytes_per_block),
        );
        if bitmap_at < MIB
            || bitmap_at
                .checked_add(MIB)
                .is_none_or(|end| end > self.file.len())
        {
            return Err(Error::corrupt(
                format!("VHDX BAT entry {index} (sector bitmap)"),
                entry_at,
                format!(
                    "bitmap block at {bitmap_at} ends past the end of the file ({} bytes)",
                    self.file.len()
                ),
            ));
        }
        self.bitmaps.get_or_load(at, || -> Result<_> {
            let mut bits = vec![0u8; usize::try_from(bytes_per_block).unwrap_or(0)];
            self.file.read_exact_at(at, &mut bits)?;
            Ok(bits)
        })
    }
}

impl Mapper for BlockMap {
    fn map(&self, guest: u64) -> Result<Mapping> {
        // Block, sector sizes and the chunk ratio are non-zero (checked at open).
        let block = guest.checked_div(self.block_bytes).unwrap_or(0);
        let within = guest.checked_rem(self.block_bytes).unwrap_or(0);
        let block_start = block.saturating_mul(self.block_bytes);
        let block_guest_bytes = self
            .block_bytes
            .min(self.virtual_size.saturating_sub(block_start));
        let rest = block_guest_bytes.saturating_sub(within).max(1);
        let index = block.saturating_add(block.checked_div(self.chunk_ratio).unwrap_or(0));
        let entry = self.entry(index)?;
        let entry_at = self.bat_at.saturating_add(index.saturating_mul(8));
        let what = || format!("VHDX BAT entry {index} (payload block {block})");
        let state = entry & 7;
        let host = (entry >> 20).saturating_mul(MIB);
        let check_host = || -> Result<()> {
            let file_len = self.file.len();
            if host < MIB
                || host
                    .checked_add(block_guest_bytes)
                    .is_none_or(|end| end > file_len)
            {
                return Err(Error::corrupt(what(), entry_at, format!("block at offset {host} (0x{host:x}) is inside the header or ends past the end of the file ({file_len} bytes)")));
            }
            Ok(())
        };
        let run = match state {
            PAYLOAD_BLOCK_NOT_PRESENT if self.differencing => Run::Parent,
            PAYLOAD_BLOCK_NOT_PRESENT
            | PAYLOAD_BLOCK_UNDEFINED
            | PAYLOAD_BLOCK_ZERO
            | PAYLOAD_BLOCK_UNMAPPED => Run::Zero,
            PAYLOAD_BLOCK_FULLY_PRESENT => {
                check_host()?;
                Run::Host(host.saturating_add(within))
            }
            PAYLOAD_BLOCK_PARTIALLY_PRESENT if self.differencing => {
                check_host()?;
                let bits = self.bitmap_for(block)?;
                let first = within.checked_div(self.sector_bytes).unwrap_or(0);
                let sectors = block_guest_bytes.div_ceil(self.sector_bytes);
                let (set, end) = bit_run(&bits, BitOrder::LsbFirst, first, sectors);
                let len = end
                    .saturating_mul(self.sector_bytes)
                    .min(block_guest_bytes)
                    .saturating_sub(within)
                    .max(1);
                let run = if set {
                    Run::Host(host.saturating_add(within))
                } else {
                    Run::Parent
                };
                return Ok(Mapping { run, len });
            }
            other => {
                return Err(Error::corrupt(
                    what(),
                    entry_at,
                    format!("state {other} is not valid here"),
                ))
            }
        };
        Ok(Mapping { run, len: rest })
    }

    fn read_special(&self, _unit: u64, _skip: u64, _buf: &mut [u8]) -> Result<()> {
        Err(Error::Unsupported("VHDX has no special runs".into()))
    }
}

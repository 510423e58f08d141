//! VHD (Virtual PC / Hyper-V generation 1): fixed, dynamic and differencing disks.
//!
//! A fixed VHD is the raw disk followed by a 512-byte footer. A dynamic VHD starts with a copy of
//! the footer, then a dynamic header pointing at the block allocation table (BAT): one 32-bit
//! sector number per block, each allocated block being a sector bitmap (one bit per 512-byte
//! sector, most significant bit first) followed by the block's data. A differencing VHD is laid
//! out like a dynamic one; sectors whose bitmap bit is clear, and unallocated blocks, come from
//! the parent disk.
//!
//! Where this departs from the spec: a dynamic disk's unallocated blocks and clear-bit sectors read
//! as zeros (the spec leaves them "unused"; QEMU and Hyper-V read zeros too).
//
// Sources: Microsoft, "Virtual Hard Disk Image Format Specification", version 1.0 (2006):
// "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block Allocation Table and Data
// Blocks", "Implementing a Differencing Hard Disk".

use std::path::Path;
use std::sync::Arc;

use winre_readat::{ReadAt, Slice};
use zerocopy::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::chain::{parent_path, Chain};
use super::lru_cache::LruCache;
use super::mapped::{bit_run, BitOrder, MappedReader, Mapper, Mapping, Run};
use super::{raw, ContainerInfo, Disk, Format, OpenOptions, VHD_COOKIE};
use crate::{Error, Result};

/// Size of the footer (and of its copy at the start of a dynamic disk).
pub const FOOTER_BYTES: u64 = 512;
/// Size of the dynamic disk header.
const DYNAMIC_HEADER_BYTES: u64 = 1024;
const SECTOR_BYTES: u64 = 512;
/// A BAT entry for a block that is not allocated.
const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Largest block size accepted (the spec's default is 2 MiB; nothing writes more than a few MiB).
/// Caps the sector bitmap read per block.
const MAX_BLOCK_BYTES: u64 = 256 << 20;
/// Largest BAT loaded at open: 16 Mi entries, i.e. 32 TiB at 2 MiB blocks, far beyond the
/// format's 2040 GiB limit. Guards the allocation against a hostile header.
const MAX_BAT_BYTES: u64 = 64 << 20;
/// Longest parent locator read (a path).
const MAX_LOCATOR_BYTES: u32 = 64 << 10;
/// Sector bitmaps kept in memory (each is block_size / 4096 bytes, 512 for 2 MiB blocks).
const BITMAP_CACHE_ENTRIES: usize = 64;

/// The hard disk footer, big-endian.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FooterDisk {
    cookie: [u8; 8],              // +0x00 "conectix"
    features: U32,                // +0x08
    format_version: U32,          // +0x0C 0x00010000
    data_offset: U64,             // +0x10 dynamic header offset; all ones for a fixed disk
    timestamp: U32,               // +0x18 seconds since 2000-01-01
    creator_application: [u8; 4], // +0x1C e.g. "vpc ", "win ", "qemu"
    creator_version: U32,         // +0x20
    creator_host_os: U32,         // +0x24
    original_size: U64,           // +0x28
    current_size: U64,            // +0x30 the guest disk's size in bytes
    disk_geometry: U32,           // +0x38 cylinders:16, heads:8, sectors per track:8
    disk_type: U32,               // +0x3C 2 fixed, 3 dynamic, 4 differencing
    checksum: U32,                // +0x40 one's complement of the byte sum, this field as 0
    unique_id: [u8; 16],          // +0x44
    saved_state: u8,              // +0x54
    reserved: [u8; 427],          // +0x55
}

/// One parent locator entry of the dynamic header.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct ParentLocatorDisk {
    platform_code: [u8; 4], // +0x00 "W2ru" relative / "W2ku" absolute Windows path (UTF-16LE), ...
    platform_data_space: U32, // +0x04 sectors reserved
    platform_data_length: U32, // +0x08 bytes used
    reserved: U32,          // +0x0C
    platform_data_offset: U64, // +0x10 file offset of the path
}

/// The dynamic disk header, big-endian.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DynamicHeaderDisk {
    cookie: [u8; 8],                         // +0x000 "cxsparse"
    data_offset: U64,                        // +0x008 unused, all ones
    table_offset: U64,                       // +0x010 file offset of the BAT
    header_version: U32,                     // +0x018 0x00010000
    max_table_entries: U32,                  // +0x01C
    block_size: U32,                         // +0x020 bytes of data per block
    checksum: U32,                           // +0x024 as the footer's
    parent_unique_id: [u8; 16],              // +0x028
    parent_timestamp: U32,                   // +0x038
    reserved1: U32,                          // +0x03C
    parent_unicode_name: [u8; 512],          // +0x040 UTF-16BE file name of the parent
    parent_locators: [ParentLocatorDisk; 8], // +0x240
    reserved2: [u8; 256],                    // +0x300
}

/// The disk types the footer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

/// A footer whose checksum and fields were checked.
#[derive(Debug, Clone)]
struct Footer {
    disk_type: DiskType,
    data_offset: u64,
    current_size: u64,
    unique_id: [u8; 16],
}

/// One's complement of the sum of all bytes, the checksum field (at `field..field+4`) as zero.
fn vhd_checksum(bytes: &[u8], field: usize) -> u32 {
    let mut sum = 0u32;
    for (i, &b) in bytes.iter().enumerate() {
        if !(field..field.saturating_add(4)).contains(&i) {
            sum = sum.wrapping_add(u32::from(b));
        }
    }
    !sum
}

impl Footer {
    /// Validates the footer read at file offset `at`.
    fn from_disk(bytes: &[u8; 512], at: u64) -> Result<Self> {
        let raw = FooterDisk::ref_from_bytes(bytes)
            .map_err(|_| Error::corrupt("VHD footer", at, "short"))?;
        if raw.cookie != VHD_COOKIE {
            return Err(Error::corrupt("VHD footer", at, "no \"conectix\" cookie"));
        }
        let computed = vhd_checksum(bytes, 0x40);
        if computed != raw.checksum.get() {
            return Err(Error::corrupt(
                "VHD footer",
                at,
                format!(
                    "checksum is 0x{:08x}, the footer's bytes sum to 0x{computed:08x}",
                    raw.checksum.get()
                ),
            ));
        }
        let version = raw.format_version.get();
        if version >> 16 != 1 {
            return Err(Error::Unsupported(format!(
                "VHD format version 0x{version:08x} (only 1.x is defined)"
            )));
        }
        let disk_type = match raw.disk_type.get() {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            other => {
                return Err(Error::corrupt(
                    "VHD footer",
                    at.saturating_add(0x3C),
                    format!("disk type {other} (expected 2, 3 or 4)"),
                ))
            }
        };
        Ok(Footer {
            disk_type,
            data_offset: raw.data_offset.get(),
            current_size: raw.current_size.get(),
            unique_id: raw.unique_id,
        })
    }
}

/// Reads and validates the footer: the one at the end, or for a dynamic or differencing disk
/// whose end is damaged or missing (truncated), the copy at the start. Returns the footer and a
/// note when the copy was used.
fn read_footer(file: &dyn ReadAt) -> Result<(Footer, Option<String>)> {
    let len = file.len();
    let end_at = len.checked_sub(FOOTER_BYTES).ok_or_else(|| {
        Error::corrupt(
            "VHD file",
            0,
            format!("{len} bytes is shorter than a footer"),
        )
    })?;
    let mut bytes = [0u8; 512];
    file.read_exact_at(end_at, &mut bytes)?;
    let at_end = Footer::from_disk(&bytes, end_at);
    if let Ok(footer) = at_end {
        return Ok((footer, None));
    }
    let mut copy = [0u8; 512];
    file.read_exact_at(0, &mut copy)?;
    match (at_end, Footer::from_disk(&copy, 0)) {
        (Err(end_error), Ok(footer)) if footer.disk_type != DiskType::Fixed => {
            let note = format!("VHD footer at the end is unusable ({end_error}); used the copy at offset 0 (file truncated?)");
            Ok((footer, Some(note)))
        }
        (Err(end_error), _) => Err(end_error),
        (Ok(footer), _) => Ok((footer, None)),
    }
}

/// Opens a VHD standing alone: a differencing disk's parent is only looked for in
/// `options.parents` ([`super::open`] also follows the parent locators).
pub fn open(file: Arc<dyn ReadAt>, options: &OpenOptions) -> Result<Disk> {
    open_in(file, options, &Chain::top(None, options))
}

/// Opens a VHD in `chain`. Fixed and dynamic disks open alone; a differencing disk opens its
/// parent from the relative locator (`W2ru`), checked by size and unique id.
pub(crate) fn open_in(file: Arc<dyn ReadAt>, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    let (footer, note) = read_footer(file.as_ref())?;
    let mut notes: Vec<String> = note.into_iter().collect();
    match footer.disk_type {
        DiskType::Fixed => open_fixed(file, &footer, notes),
        DiskType::Dynamic | DiskType::Differencing => {
            let sparse = DynamicDisk::read(file.as_ref(), &footer)?;
            let mut below = Vec::new();
            let parent = if footer.disk_type == DiskType::Differencing {
                let names = sparse.parent_names(file.as_ref());
                let (parent, links) =
                    chain.open_parent("differencing VHD", &names, false, options)?;
                let path = Path::new(parent_path(&links));
                check_parent(path, &parent, &sparse, &footer)?;
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
            let variant = if parent.is_some() {
                "differencing"
            } else {
                "dynamic"
            };
            let allocated = sparse.allocated_blocks().saturating_mul(sparse.block_bytes);
            let map = BlockMap::new(
                Arc::clone(&file),
                sparse,
                footer.current_size,
                footer.disk_type == DiskType::Differencing,
            );
            let reader = MappedReader::new(map, file, parent, footer.current_size);
            Ok(Disk {
                reader: Arc::new(reader),
                info: ContainerInfo {
                    format: Format::Vhd,
                    variant: variant.into(),
                    virtual_size: footer.current_size,
                    sector_size: 512,
                    allocated_bytes: Some(allocated),
                    notes,
                    chain: below,
                },
            })
        }
    }
}

/// A fixed VHD: the disk, then the footer. A footer whose disk does not fit in the file is
/// stale, not a truncated disk: it is what `dd` of the last partition out of a fixed VHD keeps
/// at its end (a truncated fixed VHD has lost its footer). Such a file is read as raw, with a note.
fn open_fixed(file: Arc<dyn ReadAt>, footer: &Footer, notes: Vec<String>) -> Result<Disk> {
    let data_bytes = file.len().saturating_sub(FOOTER_BYTES);
    if footer.current_size > data_bytes {
        let mut disk = raw::from_reader(file);
        disk.info.notes.extend(notes);
        disk.info.notes.push(format!(
            "the file ends with a fixed VHD footer for a disk of {} bytes, more than the {data_bytes} bytes before it: a stale footer (a volume cut out of a VHD?), so the file is read as raw",
            footer.current_size
        ));
        return Ok(disk);
    }
    let size = footer.current_size;
    let reader = Slice::new(file, 0, size)?;
    Ok(Disk {
        reader: Arc::new(reader),
        info: ContainerInfo {
            format: Format::Vhd,
            variant: "fixed".into(),
            virtual_size: size,
            sector_size: 512,
            allocated_bytes: Some(size),
            notes,
            chain: Vec::new(),
        },
    })
}

/// Refuses a parent that is not the one the child was made from (checked by unique id when the
/// parent is a VHD) or whose size differs.
fn check_parent(
    path: &std::path::Path,
    parent: &Disk,
    child: &DynamicDisk,
    footer: &Footer,
) -> Result<()> {
    if parent.info.virtual_size != footer.current_size {
        return Err(Error::corrupt(
            "parent disk",
            0,
            format!(
                "{} is {} bytes, the differencing VHD is {} bytes",
                path.display(),
                parent.info.virtual_size,
                footer.current_size
            ),
        ));
    }
    if parent.info.format == Format::Vhd {
        let file = winre_readat::FileReader::open(path)?;
        let (parent_footer, _) = read_footer(&file)?;
        if parent_footer.unique_id != child.parent_unique_id {
            return Err(Error::corrupt(
                "parent disk",
                0,
                format!(
                    "{} has unique id {}, the differencing VHD expects {}",
                    path.display(),
                    hex(&parent_footer.unique_id),
                    hex(&child.parent_unique_id)
                ),
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The checked dynamic header and its BAT.
struct DynamicDisk {
    bat_at: u64,
    bat: Vec<u32>,
    block_bytes: u64,
    bitmap_bytes: u64,
    parent_unique_id: [u8; 16],
    parent_unicode_name: [u8; 512],
    parent_locators: [ParentLocatorDisk; 8],
}

impl DynamicDisk {
    /// Reads the dynamic header at `footer.data_offset` and the BAT entries the disk size needs.
    fn read(file: &dyn ReadAt, footer: &Footer) -> Result<Self> {
        let len = file.len();
        let at = footer.data_offset;
        let what = "VHD dynamic header";
        if at
            .checked_add(DYNAMIC_HEADER_BYTES)
            .is_none_or(|end| end > len)
        {
            return Err(Error::corrupt(
                "VHD footer",
                0x10,
                format!("dynamic header offset {at} is past the end of the file ({len} bytes)"),
            ));
        }
        let mut bytes = [0u8; 1024];
        file.read_exact_at(at, &mut bytes)?;
        let raw = DynamicHeaderDisk::ref_from_bytes(&bytes)
            .map_err(|_| Error::corrupt(what, at, "short"))?;
        if &raw.cookie != b"cxsparse" {
            return Err(Error::corrupt(what, at, "no \"cxsparse\" cookie"));
        }
        let computed = vhd_checksum(&bytes, 0x24);
        if computed != raw.checksum.get() {
            return Err(Error::corrupt(
                what,
                at,
                format!(
                    "checksum is 0x{:08x}, the header's bytes sum to 0x{computed:08x}",
                    raw.checksum.get()
                ),
            ));
        }
        let block_bytes = u64::from(raw.block_size.get());
        if !block_bytes.is_power_of_two()
            || !(SECTOR_BYTES..=MAX_BLOCK_BYTES).contains(&block_bytes)
        {
            return Err(Error::corrupt(
                what,
                at.saturating_add(0x20),
                format!(
                    "block size {block_bytes} is not a power of two from 512 to {MAX_BLOCK_BYTES}"
                ),
            ));
        }
        let blocks_needed = footer.current_size.div_ceil(block_bytes);
        let max_entries = u64::from(raw.max_table_entries.get());
        if max_entries < blocks_needed {
            return Err(Error::corrupt(
                what,
                at.saturating_add(0x1C),
                format!(
                    "BAT has {max_entries} entries, a {} byte disk needs {blocks_needed}",
                    footer.current_size
                ),
            ));
        }
        let bat_at = raw.table_offset.get();
        let bat_bytes = blocks_needed.saturating_mul(4);
        if bat_bytes > MAX_BAT_BYTES {
            return Err(Error::Unsupported(format!(
                "VHD BAT of {bat_bytes} bytes (more than {MAX_BAT_BYTES})"
            )));
        }
        if bat_at.checked_add(bat_bytes).is_none_or(|end| end > len) {
            return Err(Error::corrupt(what, at.saturating_add(0x10), format!("BAT of {bat_bytes} bytes at {bat_at} ends past the end of the file ({len} bytes)")));
        }
        let mut table = vec![
            0u8;
            usize::try_from(bat_bytes)
                .map_err(|_| Error::Unsupported("BAT larger than memory".into()))?
        ];
        file.read_exact_at(bat_at, &mut table)?;
        let bat = table
            .chunks_exact(4)
            .map(|c| c.try_into().map(u32::from_be_bytes).unwrap_or(UNALLOCATED))
            .collect();
        // One bit per sector, padded to whole sectors.
        let bitmap_bytes = (block_bytes / SECTOR_BYTES)
            .div_ceil(8)
            .next_multiple_of(SECTOR_BYTES);
        Ok(Self {
            bat_at,
            bat,
            block_bytes,
            bitmap_bytes,
            parent_unique_id: raw.parent_unique_id,
            parent_unicode_name: raw.parent_unicode_name,
            parent_locators: raw.parent_locators,
        })
    }

    fn allocated_blocks(&self) -> u64 {
        self.bat.iter().filter(|&&e| e != UNALLOCATED).count() as u64
    }

    /// The parent's names as the child records them, best first: the relative path from the
    /// parent locators (`W2ru`), the absolute one (`W2ku`), then the file name in the header.
    fn parent_names(&self, file: &dyn ReadAt) -> Vec<String> {
        let mut names = Vec::new();
        for wanted in [b"W2ru", b"W2ku"] {
            for locator in &self.parent_locators {
                if &locator.platform_code != wanted {
                    continue;
                }
                let length = locator.platform_data_length.get();
                let at = locator.platform_data_offset.get();
                if length == 0
                    || length > MAX_LOCATOR_BYTES
                    || at
                        .checked_add(u64::from(length))
                        .is_none_or(|end| end > file.len())
                {
                    continue;
                }
                let mut bytes = vec![0u8; length as usize];
                if file.read_exact_at(at, &mut bytes).is_ok() {
                    let units = bytes
                        .chunks_exact(2)
                        .map(|c| c.try_into().map(u16::from_le_bytes).unwrap_or(0));
                    let path: String = char::decode_utf16(units)
                        .map(|c| c.unwrap_or('\u{FFFD}'))
                        .collect();
                    let path = path.trim_end_matches('\0');
                    if !path.is_empty() {
                        names.push(path.to_string());
                    }
                }
            }
        }
        let units = self
            .parent_unicode_name
            .chunks_exact(2)
            .map(|c| c.try_into().map(u16::from_be_bytes).unwrap_or(0))
            .take_while(|&u| u != 0);
        let name: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{FFFD}'))
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
        names
    }
}

/// A sector bitmap, with a shortcut for the common all-set case.
struct Bitmap {
    bits: Vec<u8>,
    all_set: bool,
}

/// Guest-to-file map of a dynamic or differencing VHD.
struct BlockMap {
    file: Arc<dyn ReadAt>,
    disk: DynamicDisk,
    virtual_size: u64,
    differencing: bool,
    bitmaps: LruCache<Bitmap>,
}

impl BlockMap {
    fn new(
        file: Arc<dyn ReadAt>,
        disk: DynamicDisk,
        virtual_size: u64,
        differencing: bool,
    ) -> Self {
        Self {
            file,
            disk,
            virtual_size,
            differencing,
            bitmaps: LruCache::new(BITMAP_CACHE_ENTRIES),
        }
    }

    fn bitmap(&self, at: u64) -> Result<Arc<Bitmap>> {
        self.bitmaps.get_or_load(at, || -> Result<_> {
            let mut bits = vec![0u8; usize::try_from(self.disk.bitmap_bytes).unwrap_or(0)];
            self.file.read_exact_at(at, &mut bits)?;
            let sectors = self.disk.block_bytes / SECTOR_BYTES;
            let used = usize::try_from(sectors.div_ceil(8)).unwrap_or(usize::MAX);
            let all_set = bits
                .get(..used)
                .is_some_and(|b| b.iter().all(|&x| x == 0xFF));
            Ok(Bitmap { bits, all_set })
        })
    }
}

impl Mapper for BlockMap {
    fn map(&self, guest: u64) -> Result<Mapping> {
        let block_bytes = self.disk.block_bytes;
        // block_bytes is a power of two of at least 512 (checked at open).
        let block = guest.checked_div(block_bytes).unwrap_or(0);
        let within = guest.checked_rem(block_bytes).unwrap_or(0);
        let block_start = block.saturating_mul(block_bytes);
        // Guest bytes in this block (the last block may be cut short by the disk size).
        let block_guest_bytes = block_bytes.min(self.virtual_size.saturating_sub(block_start));
        let rest = block_guest_bytes.saturating_sub(within).max(1);
        let entry_at = self.disk.bat_at.saturating_add(block.saturating_mul(4));
        let entry = usize::try_from(block)
            .ok()
            .and_then(|i| self.disk.bat.get(i))
            .copied()
            .ok_or_else(|| {
                Error::corrupt(
                    format!("VHD BAT entry {block}"),
                    entry_at,
                    "beyond the table",
                )
            })?;
        let absent = if self.differencing {
            Run::Parent
        } else {
            Run::Zero
        };
        if entry == UNALLOCATED {
            return Ok(Mapping {
                run: absent,
                len: rest,
            });
        }
        let bitmap_at = u64::from(entry).saturating_mul(SECTOR_BYTES);
        let data_at = bitmap_at.saturating_add(self.disk.bitmap_bytes);
        let file_len = self.file.len();
        let data_end = data_at.checked_add(block_guest_bytes);
        if data_end.is_none_or(|end| end > file_len) {
            return Err(Error::corrupt(
                format!("VHD BAT entry {block}"),
                entry_at,
                format!("block at sector {entry} (offset {bitmap_at}) ends past the end of the file ({file_len} bytes)"),
            ));
        }
        let bitmap = self.bitmap(bitmap_at)?;
        if bitmap.all_set {
            return Ok(Mapping {
                run: Run::Host(data_at.saturating_add(within)),
                len: rest,
            });
        }
        let first = within / SECTOR_BYTES;
        let sectors = block_guest_bytes.div_ceil(SECTOR_BYTES);
        let (set, end) = bit_run(&bitmap.bits, BitOrder::MsbFirst, first, sectors);
        let len = end
            .saturating_mul(SECTOR_BYTES)
            .min(block_guest_bytes)
            .saturating_sub(within)
            .max(1);
        let run = if set {
            Run::Host(data_at.saturating_add(within))
        } else {
            absent
        };
        Ok(Mapping { run, len })
    }

    fn read_special(&self, _unit: u64, _skip: u64, _buf: &mut [u8]) -> Result<()> {
        Err(Error::Unsupported("VHD has no special runs".into()))
    }
}

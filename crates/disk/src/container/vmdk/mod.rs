//! VMware VMDK, read-only: hosted sparse extents (monolithicSparse, twoGbMaxExtentSparse),
//! streamOptimized extents (deflate-compressed grains behind markers, grain directory possibly
//! only in the footer at the end of the file), and text descriptors that stitch FLAT, SPARSE and
//! ZERO extents from files next to the descriptor (monolithicFlat, twoGbMaxExtent*).
//!
//! Sources: VMware "Virtual Disk Format 5.0" technical note (SparseExtentHeader, grain directory
//! and grain tables, stream-optimized markers and footer, descriptor syntax); QEMU's
//! docs and `qemu-img` output for the descriptor variants it writes. Our own code.
//!
//! SESparse extents (ESXi 6.5+), through a descriptor or bare, are read as QEMU reads them (see
//! [`sesparse`]).
//!
//! Departures from the note: grain-table entry 1 means "zero grain" only when header flag bit 2
//! says so; the other ESX-only extent kinds (VMFSSPARSE/COWD, raw device maps) are refused as
//! unsupported rather than guessed at.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use winre_readat::{check_bounds, FileReader, ReadAt, Slice};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::chain::{parent_path, Chain, ChainLink};
use super::lru_cache::LruCache;
use super::{ContainerInfo, Disk, Format, OpenOptions};

mod sesparse;
use crate::{Error, Result};

const SECTOR_BYTES: u64 = 512;
/// "KDMV" read as a little-endian u32.
pub(crate) const SPARSE_MAGIC: [u8; 4] = *b"KDMV";
/// How an SESparse extent starts.
pub(crate) use sesparse::MAGIC as SESPARSE_MAGIC;
/// How a text descriptor starts.
pub(crate) const DESCRIPTOR_SIGNATURE: &[u8] = b"# Disk DescriptorFile";
/// `gdOffset` value meaning "the grain directory is found through the footer at the end".
const GD_AT_END: u64 = u64::MAX;

/// Header flag bits.
const FLAG_NEWLINE_TEST: u32 = 1 << 0;
const FLAG_ZERO_GRAIN_GTE: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const COMPRESSION_DEFLATE: u16 = 1;

/// Largest grain we decode: a grain is buffered whole when compressed. VMware uses 64 KiB.
const MAX_GRAIN_SECTORS: u64 = 32 * 1024; // 16 MiB
/// The note fixes 512 entries per grain table; allow a little more, never a huge allocation.
const MAX_GTES_PER_GT: u32 = 4096;
/// Largest guest we accept (1 PiB): keeps every offset computation far from overflow.
const MAX_CAPACITY_BYTES: u64 = 1 << 50;
/// Largest grain directory loaded at open (16 Mi entries = 8 PiB of 64 KiB grains, if it fit).
const MAX_GD_BYTES: u64 = 64 << 20;
/// Largest descriptor (text) we read; real ones are a few hundred bytes.
const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// Most extents a descriptor may list.
const MAX_EXTENTS: usize = 4096;
/// A compressed grain plus its marker may be a little larger than the grain (deflate stored
/// blocks); anything beyond twice the grain is corrupt.
const COMPRESSED_SLACK_BYTES: u64 = 4096;
/// Grain tables cached per disk (shared by all its sparse extents).
const GT_CACHE_ENTRIES: usize = 64;
/// Most grains cached per disk (shared by all its sparse extents)...
const GRAIN_CACHE_ENTRIES: usize = 16;
/// ...and at most this many bytes of them (but always 2 grains, for reads crossing a boundary).
const GRAIN_CACHE_BUDGET_BYTES: u64 = 64 << 20;
/// Grain directories of all the extents of one disk together, loaded at open.
const MAX_TOTAL_GD_BYTES: u64 = 128 << 20;
/// Cache keys are `extent id * KEY_STRIDE + block number`; grain numbers stay below 2^41
/// (MAX_CAPACITY_BYTES / 512).
const CACHE_KEY_STRIDE: u64 = 1 << 42;

// Sources: Virtual Disk Format 5.0, "Hosted Sparse Extent Header".
/// The 512-byte header at the start of a sparse extent (and its copy in a stream footer).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SparseExtentHeaderDisk {
    magic: [u8; 4],                 // +0x00 "KDMV"
    version: U32,                   // +0x04 1, 2 or 3
    flags: U32,                     // +0x08
    capacity_sectors: U64,          // +0x0C guest size
    grain_sectors: U64,             // +0x14
    descriptor_sector: U64,         // +0x1C embedded descriptor, 0 if none
    descriptor_sectors: U64,        // +0x24
    gtes_per_gt: U32,               // +0x2C 512
    rgd_sector: U64,                // +0x30 redundant grain directory
    gd_sector: U64,                 // +0x38 grain directory, or GD_AT_END
    overhead_sectors: U64,          // +0x40 metadata before the first grain
    unclean_shutdown: u8,           // +0x48
    single_end_line_char: u8,       // +0x49 '\n'
    non_end_line_char: u8,          // +0x4A ' '
    double_end_line_chars: [u8; 2], // +0x4B "\r\n"
    compress_algorithm: U16,        // +0x4D 0 none, 1 deflate
    _pad: [u8; 433],                // +0x4F
}

/// A checked sparse extent header.
#[derive(Debug, Clone)]
struct SparseHeader {
    version: u32,
    flags: u32,
    capacity_sectors: u64,
    grain_sectors: u64,
    descriptor_sector: u64,
    descriptor_sectors: u64,
    gtes_per_gt: u32,
    rgd_sector: u64,
    gd_sector: u64,
    unclean_shutdown: bool,
}

impl SparseHeader {
    /// Validates the on-disk header found at `offset` of `file_name`: the one place its checks live.
    fn from_disk(raw: &SparseExtentHeaderDisk, file_name: &str, offset: u64) -> Result<Self> {
        let what = || format!("VMDK sparse extent header of {file_name}");
        if raw.magic != SPARSE_MAGIC {
            return Err(Error::corrupt(
                what(),
                offset,
                format!("magic is {:02x?}, expected \"KDMV\"", raw.magic),
            ));
        }
        let version = raw.version.get();
        if !(1..=3).contains(&version) {
            return Err(Error::Unsupported(format!(
                "VMDK sparse extent version {version} in {file_name}"
            )));
        }
        let flags = raw.flags.get();
        if flags & FLAG_NEWLINE_TEST != 0
            && (raw.single_end_line_char != b'\n'
                || raw.non_end_line_char != b' '
                || raw.double_end_line_chars != *b"\r\n")
        {
            return Err(Error::corrupt(
                what(),
                offset,
                "the newline test characters were altered: the file was probably copied in text mode (FTP ASCII)",
            ));
        }
        let grain_sectors = raw.grain_sectors.get();
        if !grain_sectors.is_power_of_two() || grain_sectors > MAX_GRAIN_SECTORS {
            return Err(Error::corrupt(
                what(),
                offset,
                format!("grain size {grain_sectors} sectors is not a power of two up to {MAX_GRAIN_SECTORS}"),
            ));
        }
        let capacity_sectors = raw.capacity_sectors.get();
        if capacity_sectors
            .checked_mul(SECTOR_BYTES)
            .is_none_or(|b| b > MAX_CAPACITY_BYTES)
        {
            return Err(Error::corrupt(
                what(),
                offset,
                format!("capacity {capacity_sectors} sectors is larger than the {MAX_CAPACITY_BYTES}-byte limit"),
            ));
        }
        let gtes_per_gt = raw.gtes_per_gt.get();
        if !(1..=MAX_GTES_PER_GT).contains(&gtes_per_gt) {
            return Err(Error::corrupt(
                what(),
                offset,
                format!("{gtes_per_gt} entries per grain table, expected 1..={MAX_GTES_PER_GT} (normally 512)"),
            ));
        }
        let compress_algorithm = raw.compress_algorithm.get();
        if flags & FLAG_COMPRESSED != 0 && compress_algorithm != COMPRESSION_DEFLATE {
            return Err(Error::Unsupported(format!(
                "VMDK compression algorithm {compress_algorithm} in {file_name} (only deflate, 1, is defined)"
            )));
        }
        Ok(Self {
            version,
            flags,
            capacity_sectors,
            grain_sectors,
            descriptor_sector: raw.descriptor_sector.get(),
            descriptor_sectors: raw.descriptor_sectors.get(),
            gtes_per_gt,
            rgd_sector: raw.rgd_sector.get(),
            gd_sector: raw.gd_sector.get(),
            unclean_shutdown: raw.unclean_shutdown != 0,
        })
    }

    fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    fn capacity_bytes(&self) -> u64 {
        // Checked against MAX_CAPACITY_BYTES in from_disk.
        self.capacity_sectors.saturating_mul(SECTOR_BYTES)
    }

    fn grain_bytes(&self) -> u64 {
        self.grain_sectors.saturating_mul(SECTOR_BYTES)
    }
}

/// Reads `buf.len()` bytes of a container structure, turning a read past the end of the file into
/// [`Error::Corrupt`] naming the structure.
fn read_structure(
    file: &dyn ReadAt,
    offset: u64,
    buf: &mut [u8],
    what: impl Fn() -> String,
) -> Result<()> {
    if check_bounds(offset, buf.len(), file.len()).is_err() {
        return Err(Error::corrupt(
            what(),
            offset,
            format!(
                "{} bytes needed, past the end of the file ({} bytes)",
                buf.len(),
                file.len()
            ),
        ));
    }
    file.read_exact_at(offset, buf)?;
    Ok(())
}

fn sectors_to_bytes(sectors: u64, what: impl Fn() -> String) -> Result<u64> {
    sectors
        .checked_mul(SECTOR_BYTES)
        .ok_or_else(|| Error::corrupt(what(), 0, format!("sector number {sectors} overflows")))
}

/// Reads and checks the header of a sparse extent file; for a stream whose grain directory is only
/// in the footer, the footer's copy supplies it.
fn read_sparse_header(file: &dyn ReadAt, file_name: &str) -> Result<SparseHeader> {
    let mut bytes = [0u8; 512];
    read_structure(file, 0, &mut bytes, || {
        format!("VMDK sparse extent header of {file_name}")
    })?;
    let raw = SparseExtentHeaderDisk::ref_from_bytes(bytes.as_slice())
        .map_err(|_| Error::corrupt("VMDK sparse extent header", 0, "wrong size"))?;
    let mut header = SparseHeader::from_disk(raw, file_name, 0)?;
    if header.gd_sector != GD_AT_END {
        return Ok(header);
    }
    // Stream layout: ... footer marker, footer (a header copy with the real gdOffset), EOS marker.
    let footer_at = file.len().checked_sub(1024).filter(|at| *at >= 512).ok_or_else(|| {
        Error::corrupt(
            format!("VMDK stream footer of {file_name}"),
            file.len(),
            "the header says the grain directory is at the end, but the file is too short for a footer: it is truncated",
        )
    })?;
    read_structure(file, footer_at, &mut bytes, || {
        format!("VMDK stream footer of {file_name}")
    })?;
    let raw = SparseExtentHeaderDisk::ref_from_bytes(bytes.as_slice())
        .map_err(|_| Error::corrupt("VMDK stream footer", footer_at, "wrong size"))?;
    if raw.magic != SPARSE_MAGIC {
        return Err(Error::corrupt(
            format!("VMDK stream footer of {file_name}"),
            footer_at,
            "no footer 1024 bytes before the end of the file, where the header says the grain directory is found: the stream is probably truncated",
        ));
    }
    let footer = SparseHeader::from_disk(raw, &format!("{file_name} (footer)"), footer_at)?;
    if footer.gd_sector == GD_AT_END
        || footer.capacity_sectors != header.capacity_sectors
        || footer.grain_sectors != header.grain_sectors
        || footer.gtes_per_gt != header.gtes_per_gt
    {
        return Err(Error::corrupt(
            format!("VMDK stream footer of {file_name}"),
            footer_at,
            "does not match the header or has no grain directory offset",
        ));
    }
    header.gd_sector = footer.gd_sector;
    header.rgd_sector = footer.rgd_sector;
    Ok(header)
}

/// Where a grain's bytes are.
#[derive(Debug, Clone, Copy)]
enum GrainLocation {
    /// Never written: zeros, or the parent's bytes.
    Unallocated,
    /// Explicitly zero (entry 1 with the zero-grain flag).
    Zero,
    /// At this byte offset in the extent file (a marker first, when compressed).
    At(u64),
}

/// One sparse extent file, opened once however many descriptor lines name it: its grain
/// directory in memory.
struct SparseSource {
    file: Arc<dyn ReadAt>,
    file_name: String,
    /// Distinguishes this file's blocks in the caches shared by the disk's extents.
    id: u64,
    capacity_bytes: u64,
    grain_bytes: u64,
    gtes_per_gt: u32,
    compressed: bool,
    zero_grain_gte: bool,
    /// The grain directory's entries, as stored (hosted: grain table sector numbers, 0 = none).
    gd: Vec<u64>,
    gd_offset: u64,
    /// SESparse (64-bit entries, tables and grains in areas of their own), or hosted.
    sesparse: Option<SeSparseAreas>,
}

/// Where an SESparse extent keeps its grain tables and grains, in bytes.
#[derive(Debug, Clone, Copy)]
struct SeSparseAreas {
    tables_at: u64,
    grains_at: u64,
}

impl SparseSource {
    /// Loads the grain directory of `file`; `gd_budget_bytes` is what the disk's grain
    /// directories may still take, reduced by this one.
    fn open(
        file: Arc<dyn ReadAt>,
        file_name: String,
        header: &SparseHeader,
        id: u64,
        gd_budget_bytes: &mut u64,
    ) -> Result<Self> {
        let grains = header.capacity_sectors.div_ceil(header.grain_sectors);
        let gd_entries = grains.div_ceil(u64::from(header.gtes_per_gt));
        let gd_bytes = gd_entries.saturating_mul(4);
        if gd_bytes > MAX_GD_BYTES || gd_bytes > file.len() {
            return Err(Error::corrupt(
                format!("VMDK grain directory of {file_name}"),
                0,
                format!(
                    "{gd_entries} entries ({gd_bytes} bytes) for a capacity of {} sectors exceed the file ({} bytes) or the {MAX_GD_BYTES}-byte limit",
                    header.capacity_sectors,
                    file.len()
                ),
            ));
        }
        *gd_budget_bytes = gd_budget_bytes.checked_sub(gd_bytes).ok_or_else(|| {
            Error::corrupt(
                format!("VMDK grain directory of {file_name}"),
                0,
                format!(
                    "{gd_bytes} bytes would take the disk's grain directories past the MAX_TOTAL_GD_BYTES limit of {MAX_TOTAL_GD_BYTES} bytes"
                ),
            )
        })?;
        let gd_len = usize::try_from(gd_bytes)
            .map_err(|_| Error::Unsupported("grain directory too large".into()))?;
        let load_gd = |sector: u64| -> Result<(Vec<u64>, u64)> {
            let what = || format!("VMDK grain directory of {file_name}");
            let offset = sectors_to_bytes(sector, what)?;
            let mut bytes = vec![0u8; gd_len];
            read_structure(file.as_ref(), offset, &mut bytes, what)?;
            Ok((le_u32s(&bytes).into_iter().map(u64::from).collect(), offset))
        };
        // The redundant copy stands in when the primary is missing or cut off.
        let primary = match header.gd_sector {
            0 => Err(Error::corrupt(
                format!("VMDK sparse extent header of {file_name}"),
                0,
                "no grain directory offset",
            )),
            sector => load_gd(sector),
        };
        let (gd, gd_offset) = match primary {
            Ok(found) => found,
            Err(e) if header.rgd_sector != 0 => load_gd(header.rgd_sector).map_err(|_| e)?,
            Err(e) => return Err(e),
        };
        Ok(Self {
            file,
            file_name,
            id,
            capacity_bytes: header.capacity_bytes(),
            grain_bytes: header.grain_bytes(),
            gtes_per_gt: header.gtes_per_gt,
            compressed: header.compressed(),
            zero_grain_gte: header.flags & FLAG_ZERO_GRAIN_GTE != 0,
            gd,
            gd_offset,
            sesparse: None,
        })
    }

    /// Loads the grain directory of the SESparse extent `file`, like [`SparseSource::open`].
    fn open_sesparse(
        file: Arc<dyn ReadAt>,
        file_name: String,
        id: u64,
        gd_budget_bytes: &mut u64,
    ) -> Result<Self> {
        let header = sesparse::Header::read(file.as_ref(), &file_name)?;
        let what = || format!("SESparse grain directory of {file_name}");
        let grains = header.capacity_bytes.div_ceil(header.grain_bytes);
        let needed = grains
            .div_ceil(u64::from(sesparse::GTES_PER_GT))
            .saturating_mul(8);
        if header.gd_bytes < needed {
            return Err(Error::corrupt(
                what(),
                header.gd_at,
                format!(
                    "{} bytes, too few for a capacity of {} bytes ({needed} needed)",
                    header.gd_bytes, header.capacity_bytes
                ),
            ));
        }
        if needed > MAX_GD_BYTES
            || needed > file.len()
            || header.capacity_bytes > MAX_CAPACITY_BYTES
        {
            return Err(Error::corrupt(
                what(),
                header.gd_at,
                format!(
                    "{needed} bytes for a capacity of {} bytes exceed the file ({} bytes) or the {MAX_GD_BYTES}-byte limit",
                    header.capacity_bytes,
                    file.len()
                ),
            ));
        }
        *gd_budget_bytes = gd_budget_bytes.checked_sub(needed).ok_or_else(|| {
            Error::corrupt(
                what(),
                header.gd_at,
                format!("{needed} bytes would take the disk's grain directories past {MAX_TOTAL_GD_BYTES} bytes"),
            )
        })?;
        // Only the entries the capacity needs are loaded; the rest of the area is never used.
        let mut bytes = vec![0u8; usize::try_from(needed).unwrap_or(0)];
        read_structure(file.as_ref(), header.gd_at, &mut bytes, what)?;
        let gd = bytes
            .chunks_exact(8)
            .map(|c| c.try_into().map(u64::from_le_bytes).unwrap_or(0))
            .collect();
        Ok(Self {
            file,
            file_name,
            id,
            capacity_bytes: header.capacity_bytes,
            grain_bytes: header.grain_bytes,
            gtes_per_gt: sesparse::GTES_PER_GT,
            compressed: false,
            zero_grain_gte: false,
            gd,
            gd_offset: header.gd_at,
            sesparse: Some(SeSparseAreas {
                tables_at: header.tables_at,
                grains_at: header.grains_at,
            }),
        })
    }

    /// The key of block `index` of this file in the disk's caches.
    fn cache_key(&self, index: u64) -> Result<u64> {
        self.id
            .checked_mul(CACHE_KEY_STRIDE)
            .and_then(|base| base.checked_add(index))
            .filter(|_| index < CACHE_KEY_STRIDE)
            .ok_or_else(|| Error::Unsupported(format!("VMDK block {index} of {}", self.file_name)))
    }
}

/// Grain tables and inflated grains of one disk, shared by all its sparse extents so memory is
/// bounded per disk, not per descriptor line.
struct SparseCaches {
    gts: LruCache<Vec<u64>>,
    grains: LruCache<Vec<u8>>,
}

impl SparseCaches {
    /// Caches sized for grains of at most `max_grain_bytes`.
    fn new(max_grain_bytes: u64) -> Self {
        let by_budget = GRAIN_CACHE_BUDGET_BYTES
            .checked_div(max_grain_bytes)
            .unwrap_or(u64::MAX);
        let grain_entries = usize::try_from(by_budget)
            .unwrap_or(usize::MAX)
            .clamp(2, GRAIN_CACHE_ENTRIES);
        Self {
            gts: LruCache::new(GT_CACHE_ENTRIES),
            grains: LruCache::new(grain_entries),
        }
    }
}

/// One sparse extent line: part of a sparse file standing at some place in the guest.
struct SparseExtent {
    source: Arc<SparseSource>,
    caches: Arc<SparseCaches>,
    /// Bytes of the guest this extent supplies (may be less than the header's capacity).
    len: u64,
    /// The parent disk and where this extent starts in it, for unallocated grains.
    parent: Option<(Arc<dyn ReadAt>, u64)>,
}

impl SparseExtent {
    /// The extent supplying `len` bytes (at most the header's capacity) from `source`.
    fn new(
        source: Arc<SparseSource>,
        caches: Arc<SparseCaches>,
        len: u64,
        parent: Option<(Arc<dyn ReadAt>, u64)>,
    ) -> Result<Self> {
        if len > source.capacity_bytes {
            return Err(Error::corrupt(
                format!("VMDK sparse extent {}", source.file_name),
                0,
                format!(
                    "the descriptor gives it {len} bytes, its header only {}",
                    source.capacity_bytes
                ),
            ));
        }
        Ok(Self {
            source,
            caches,
            len,
            parent,
        })
    }

    fn corrupt(&self, what: String, offset: u64, detail: String) -> Error {
        Error::corrupt(
            format!("{what} of {}", self.source.file_name),
            offset,
            detail,
        )
    }

    /// Looks grain number `grain` up in the grain directory and its grain table.
    fn locate(&self, grain: u64) -> Result<GrainLocation> {
        let source = &self.source;
        let per_gt = u64::from(source.gtes_per_gt);
        let gd_index = grain.checked_div(per_gt).unwrap_or(0);
        let gt_index =
            usize::try_from(grain.checked_rem(per_gt).unwrap_or(0)).unwrap_or(usize::MAX);
        let gde = usize::try_from(gd_index)
            .ok()
            .and_then(|i| source.gd.get(i))
            .copied()
            .unwrap_or(0);
        let entry_bytes: u64 = if source.sesparse.is_some() { 8 } else { 4 };
        let entry_offset = source
            .gd_offset
            .saturating_add(gd_index.saturating_mul(entry_bytes));
        let gde_what = || format!("VMDK grain directory entry {gd_index}");
        let gt_offset = match source.sesparse {
            None if gde == 0 => return Ok(GrainLocation::Unallocated),
            None => gde.saturating_mul(SECTOR_BYTES),
            Some(areas) => match sesparse::grain_table_number(gde)
                .map_err(|detail| self.corrupt(gde_what(), entry_offset, detail))?
            {
                None => return Ok(GrainLocation::Unallocated),
                Some(number) => number
                    .saturating_mul(sesparse::GT_BYTES)
                    .saturating_add(areas.tables_at),
            },
        };
        let gt = self.caches.gts.get_or_load(source.cache_key(gd_index)?, || {
            let mut bytes = vec![
                0u8;
                usize::try_from(u64::from(source.gtes_per_gt).saturating_mul(entry_bytes))
                    .unwrap_or(0)
            ];
            if check_bounds(gt_offset, bytes.len(), source.file.len()).is_err() {
                return Err(self.corrupt(
                    gde_what(),
                    entry_offset,
                    format!("points to a grain table at offset {gt_offset}, past the end of the file ({} bytes)", source.file.len()),
                ));
            }
            source.file.read_exact_at(gt_offset, &mut bytes)?;
            Ok(if source.sesparse.is_some() {
                bytes
                    .chunks_exact(8)
                    .map(|c| c.try_into().map(u64::from_le_bytes).unwrap_or(0))
                    .collect()
            } else {
                le_u32s(&bytes).into_iter().map(u64::from).collect()
            })
        })?;
        let gte = gt.get(gt_index).copied().unwrap_or(0);
        let gte_offset = gt_offset.saturating_add(
            u64::try_from(gt_index)
                .unwrap_or(0)
                .saturating_mul(entry_bytes),
        );
        let gte_what = || format!("VMDK grain table entry for grain {grain}");
        let location = match source.sesparse {
            Some(areas) => sesparse::grain_location(gte, areas.grains_at, source.grain_bytes)
                .map_err(|detail| self.corrupt(gte_what(), gte_offset, detail))?,
            None => match gte {
                0 => GrainLocation::Unallocated,
                1 if source.zero_grain_gte => GrainLocation::Zero,
                sector => GrainLocation::At(sector.saturating_mul(SECTOR_BYTES)),
            },
        };
        if let GrainLocation::At(at) = location {
            if at >= source.file.len() {
                return Err(self.corrupt(
                    gte_what(),
                    gte_offset,
                    format!(
                        "points to offset {at}, past the end of the file ({} bytes)",
                        source.file.len()
                    ),
                ));
            }
        }
        Ok(location)
    }

    /// Inflates the compressed grain `grain` whose marker is at `at`.
    fn inflate_grain(&self, grain: u64, at: u64) -> Result<Vec<u8>> {
        let what = || format!("VMDK compressed grain {grain} of {}", self.source.file_name);
        let mut marker = [0u8; 12];
        read_structure(self.source.file.as_ref(), at, &mut marker, what)?;
        let (lba_bytes, size_bytes) = marker.split_at(8);
        let lba = u64::from_le_bytes(lba_bytes.try_into().unwrap_or_default());
        let size = u32::from_le_bytes(size_bytes.try_into().unwrap_or_default());
        let expected_lba = grain.saturating_mul(self.source.grain_bytes / SECTOR_BYTES);
        if lba != expected_lba {
            return Err(Error::corrupt(
                what(),
                at,
                format!("grain marker says sector {lba}, expected {expected_lba}"),
            ));
        }
        let max_size = self
            .source
            .grain_bytes
            .saturating_mul(2)
            .saturating_add(COMPRESSED_SLACK_BYTES);
        if size == 0 || u64::from(size) > max_size {
            return Err(Error::corrupt(
                what(),
                at,
                format!("compressed size {size} is 0 or larger than {max_size}"),
            ));
        }
        let mut input = vec![0u8; usize::try_from(size).unwrap_or(0)];
        read_structure(
            self.source.file.as_ref(),
            at.saturating_add(12),
            &mut input,
            what,
        )?;
        let mut output = vec![0u8; usize::try_from(self.source.grain_bytes).unwrap_or(0)];
        let mut inflater = Decompress::new(true);
        let status = inflater
            .decompress(&input, &mut output, FlushDecompress::Finish)
            .map_err(|e| Error::corrupt(what(), at, format!("deflate stream: {e}")))?;
        let grain_start = grain.saturating_mul(self.source.grain_bytes);
        // Checked against the file's capacity, not this line's length: the cache is shared by
        // every line naming the file.
        let needed = self
            .source
            .grain_bytes
            .min(self.source.capacity_bytes.saturating_sub(grain_start));
        if status != Status::StreamEnd || inflater.total_out() < needed {
            return Err(Error::corrupt(
                what(),
                at,
                format!(
                    "inflates to {} bytes ({status:?}), expected {} bytes ending the stream",
                    inflater.total_out(),
                    self.source.grain_bytes
                ),
            ));
        }
        Ok(output)
    }

    /// Fills `buf` from the parent (or with zeros) for guest range `offset..` of this extent.
    fn read_unallocated(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some((parent, base)) = &self.parent else {
            buf.fill(0);
            return Ok(());
        };
        let absolute = base.saturating_add(offset);
        let available = parent.len().saturating_sub(absolute);
        let take = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let (from_parent, beyond) = buf.split_at_mut(take);
        if !from_parent.is_empty() {
            parent.read_exact_at(absolute, from_parent)?;
        }
        beyond.fill(0);
        Ok(())
    }
}

impl ReadAt for SparseExtent {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let grain = pos.checked_div(self.source.grain_bytes).unwrap_or(0);
            let within = pos.checked_rem(self.source.grain_bytes).unwrap_or(0);
            let take = usize::try_from(self.source.grain_bytes.saturating_sub(within))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            match self.locate(grain)? {
                GrainLocation::Unallocated => self.read_unallocated(pos, now)?,
                GrainLocation::Zero => now.fill(0),
                GrainLocation::At(at) if self.source.compressed => {
                    let data = self
                        .caches
                        .grains
                        .get_or_load(self.source.cache_key(grain)?, || {
                            self.inflate_grain(grain, at)
                        })?;
                    let start = usize::try_from(within).unwrap_or(usize::MAX);
                    let src = data.get(start..start.saturating_add(take)).ok_or_else(|| {
                        io::Error::from(self.corrupt(
                            format!("VMDK compressed grain {grain}"),
                            at,
                            "too short".into(),
                        ))
                    })?;
                    now.copy_from_slice(src);
                }
                GrainLocation::At(at) => {
                    let from = at.saturating_add(within);
                    if check_bounds(from, take, self.source.file.len()).is_err() {
                        return Err(self
                            .corrupt(
                                format!("VMDK grain {grain}"),
                                at,
                                format!(
                                    "ends past the end of the file ({} bytes)",
                                    self.source.file.len()
                                ),
                            )
                            .into());
                    }
                    self.source.file.read_exact_at(from, now)?;
                }
            }
            rest = later;
            pos = pos.saturating_add(take as u64);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    /// Zero grains, and unallocated grains that the parent knows to be zero (or has none for),
    /// are zeros; stored grains are not known.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.len) else {
            return false;
        };
        let mut pos = offset;
        while pos < end {
            let grain = pos.checked_div(self.source.grain_bytes).unwrap_or(0);
            let within = pos.checked_rem(self.source.grain_bytes).unwrap_or(0);
            let take = self
                .source
                .grain_bytes
                .saturating_sub(within)
                .min(end.saturating_sub(pos));
            let zero = match self.locate(grain) {
                Ok(GrainLocation::Zero) => true,
                Ok(GrainLocation::Unallocated) => {
                    self.parent.as_ref().is_none_or(|(parent, base)| {
                        let absolute = base.saturating_add(pos);
                        let inside = parent.len().saturating_sub(absolute).min(take);
                        inside == 0 || parent.known_zero(absolute, inside)
                    })
                }
                Ok(GrainLocation::At(_)) | Err(_) => false,
            };
            if !zero {
                return false;
            }
            pos = pos.saturating_add(take);
        }
        true
    }
}

fn le_u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

/// A run of zeros (a ZERO extent).
struct Zeros(u64);

impl ReadAt for Zeros {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.0)?;
        buf.fill(0);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.0)
    }
}

/// Extents one after the other.
struct Concat {
    /// (guest offset where the part starts, part), in order, none empty.
    parts: Vec<(u64, Arc<dyn ReadAt>)>,
    len: u64,
}

impl ReadAt for Concat {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        let mut index = self
            .parts
            .partition_point(|(start, part)| start.saturating_add(part.len()) <= offset);
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let Some((start, part)) = self.parts.get(index) else {
                return Err(winre_readat::past_end(pos, rest.len(), self.len));
            };
            let within = pos.saturating_sub(*start);
            let take = usize::try_from(part.len().saturating_sub(within))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            part.read_exact_at(within, now)?;
            rest = later;
            pos = pos.saturating_add(take as u64);
            index = index.saturating_add(1);
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.len) else {
            return false;
        };
        let first = self
            .parts
            .partition_point(|(start, part)| start.saturating_add(part.len()) <= offset);
        let mut pos = offset;
        for (start, part) in self.parts.get(first..).unwrap_or_default() {
            if pos >= end {
                break;
            }
            let within = pos.saturating_sub(*start);
            let take = part
                .len()
                .saturating_sub(within)
                .min(end.saturating_sub(pos));
            if !part.known_zero(within, take) {
                return false;
            }
            pos = pos.saturating_add(take);
        }
        pos >= end
    }
}

/// What a descriptor says.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    parent_cid: Option<String>,
    parent_hint: Option<String>,
    extents: Vec<ExtentLine>,
}

/// One extent line: `RW 262144 FLAT "disk-flat.vmdk" 0`.
#[derive(Debug)]
struct ExtentLine {
    sectors: u64,
    kind: String,
    file: Option<String>,
    offset_sectors: u64,
}

impl Descriptor {
    /// Parses descriptor text; `offset` is where it sits in its file, for messages.
    fn parse(text: &str, offset: u64) -> Result<Self> {
        let mut descriptor = Descriptor::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let what = || format!("VMDK descriptor line {}", number.saturating_add(1));
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
                if descriptor.extents.len() >= MAX_EXTENTS {
                    return Err(Error::corrupt(
                        what(),
                        offset,
                        format!("more than {MAX_EXTENTS} extents"),
                    ));
                }
                descriptor.extents.push(
                    Self::parse_extent(line, first.len())
                        .map_err(|d| Error::corrupt(what(), offset, d))?,
                );
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim() {
                "createType" => descriptor.create_type = Some(value),
                "parentCID" => descriptor.parent_cid = Some(value),
                "parentFileNameHint" => descriptor.parent_hint = Some(value),
                _ => {}
            }
        }
        Ok(descriptor)
    }

    fn parse_extent(line: &str, access_len: usize) -> std::result::Result<ExtentLine, String> {
        let rest = line.get(access_len..).unwrap_or_default().trim_start();
        let (sectors, rest) = rest
            .split_once(char::is_whitespace)
            .ok_or("no extent type")?;
        let sectors: u64 = sectors
            .parse()
            .map_err(|_| format!("extent size {sectors:?} is not a number"))?;
        let rest = rest.trim_start();
        let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let rest = rest.trim_start();
        let (file, rest) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let (name, after) = quoted.split_once('"').ok_or("unterminated file name")?;
                (Some(name.to_owned()), after.trim())
            }
            None => (None, rest),
        };
        let offset_sectors = match rest.split_whitespace().next() {
            Some(n) => n
                .parse()
                .map_err(|_| format!("extent offset {n:?} is not a number"))?,
            None => 0,
        };
        Ok(ExtentLine {
            sectors,
            kind: kind.to_owned(),
            file,
            offset_sectors,
        })
    }

    fn has_parent(&self) -> bool {
        self.parent_cid
            .as_deref()
            .is_some_and(|cid| !cid.eq_ignore_ascii_case("ffffffff"))
    }
}

/// Opens the parent of a child disk from its `parentFileNameHint` (or `options.parents`),
/// checking that it is as large as the child.
fn open_parent(
    descriptor: &Descriptor,
    capacity_bytes: u64,
    options: &OpenOptions,
    chain: &Chain,
) -> Result<Option<(Arc<dyn ReadAt>, Vec<ChainLink>)>> {
    if !descriptor.has_parent() {
        return Ok(None);
    }
    let what = format!(
        "VMDK child disk (parentCID {})",
        descriptor.parent_cid.as_deref().unwrap_or("?")
    );
    let names: Vec<String> = descriptor.parent_hint.iter().cloned().collect();
    let (disk, links) = chain.open_parent(&what, &names, false, options)?;
    if disk.info.virtual_size < capacity_bytes {
        return Err(Error::corrupt(
            "VMDK parent disk",
            0,
            format!(
                "{} is {} bytes, the child disk {capacity_bytes} bytes",
                parent_path(&links),
                disk.info.virtual_size
            ),
        ));
    }
    Ok(Some((disk.reader, links)))
}

fn open_file(path: &Path) -> Result<Arc<dyn ReadAt>> {
    let file = FileReader::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("VMDK extent file {}: {e}", path.display()),
        )
    })?;
    Ok(Arc::new(file))
}

/// Opens a VMDK: a sparse extent file (monolithicSparse, streamOptimized, a lone extent of a
/// split disk) or a text descriptor listing extent files relative to its folder.
///
/// Reads the header, the footer of a stream when the grain directory is there, the embedded or
/// text descriptor and every grain directory; grain tables and compressed grains are read later,
/// when the guest is read. Refuses a child disk without `options.parent`
/// ([`Error::NeedsParent`]), ESX-only extent kinds ([`Error::Unsupported`]), and any table or
/// entry that points outside its file ([`Error::Corrupt`], at open or on the read that meets it).
pub fn open(path: &Path, options: &OpenOptions) -> Result<Disk> {
    open_in(path, options, &Chain::top(Some(path), options))
}

/// [`open`] inside a chain being opened.
pub(crate) fn open_in(path: &Path, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    let file = open_file(path)?;
    let mut magic = [0u8; 8];
    let magic_len = usize::try_from(file.len().min(8)).unwrap_or(8);
    let magic = magic.get_mut(..magic_len).unwrap_or_default();
    file.read_exact_at(0, magic)?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut disk = if magic.starts_with(&SPARSE_MAGIC) {
        open_sparse_file(file, path, options, chain)?
    } else if magic == sesparse::MAGIC {
        open_sesparse_file(file, path)?
    } else {
        open_descriptor_file(file.as_ref(), path, &base_dir, options, chain)?
    };
    if options.verify_container {
        disk.info
            .notes
            .push("VMDK stores no hash of the guest: nothing to verify".into());
    }
    Ok(disk)
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn open_sparse_file(
    file: Arc<dyn ReadAt>,
    path: &Path,
    options: &OpenOptions,
    chain: &Chain,
) -> Result<Disk> {
    let name = display_name(path);
    let header = read_sparse_header(file.as_ref(), &name)?;
    let descriptor = read_embedded_descriptor(file.as_ref(), &header, &name)?;
    let len = header.capacity_bytes();
    let (parent, below) = open_parent(&descriptor, len, options, chain)?.unzip();
    let mut notes = Vec::new();
    if header.unclean_shutdown {
        notes.push(
            "VMDK header records an unclean shutdown: the disk may be inconsistent".to_owned(),
        );
    }
    let variant = descriptor.create_type.clone().unwrap_or_else(|| {
        if header.compressed() {
            "streamOptimized"
        } else {
            "sparse extent"
        }
        .to_owned()
    });
    let mut gd_budget_bytes = MAX_TOTAL_GD_BYTES;
    let source = SparseSource::open(file, name, &header, 0, &mut gd_budget_bytes)?;
    let caches = Arc::new(SparseCaches::new(source.grain_bytes));
    let extent = SparseExtent::new(Arc::new(source), caches, len, parent.map(|p| (p, 0)))?;
    if extent.source.compressed && header.flags & FLAG_MARKERS == 0 {
        notes.push("compressed grains without stream markers".to_owned());
    }
    notes.push(format!(
        "sparse extent version {}, grain {} bytes",
        header.version, extent.source.grain_bytes
    ));
    Ok(Disk {
        reader: Arc::new(extent),
        info: ContainerInfo {
            format: Format::Vmdk,
            variant,
            virtual_size: len,
            sector_size: 512,
            allocated_bytes: None,
            notes,
            chain: below.unwrap_or_default(),
        },
    })
}

/// A bare SESparse extent (no descriptor: so no parent either, as Dissect reads one).
fn open_sesparse_file(file: Arc<dyn ReadAt>, path: &Path) -> Result<Disk> {
    let mut gd_budget_bytes = MAX_TOTAL_GD_BYTES;
    let source = SparseSource::open_sesparse(file, display_name(path), 0, &mut gd_budget_bytes)?;
    let len = source.capacity_bytes;
    let caches = Arc::new(SparseCaches::new(source.grain_bytes));
    let extent = SparseExtent::new(Arc::new(source), caches, len, None)?;
    Ok(Disk {
        reader: Arc::new(extent),
        info: ContainerInfo {
            format: Format::Vmdk,
            variant: "seSparse extent".into(),
            virtual_size: len,
            sector_size: 512,
            allocated_bytes: None,
            notes: vec![
                "bare SESparse extent without its descriptor: a snapshot's unwritten grains read as zeros, not from its parent".into(),
            ],
            chain: Vec::new(),
        },
    })
}

fn read_embedded_descriptor(
    file: &dyn ReadAt,
    header: &SparseHeader,
    name: &str,
) -> Result<Descriptor> {
    if header.descriptor_sector == 0 || header.descriptor_sectors == 0 {
        return Ok(Descriptor::default());
    }
    let what = || format!("VMDK embedded descriptor of {name}");
    let offset = sectors_to_bytes(header.descriptor_sector, what)?;
    let size = sectors_to_bytes(header.descriptor_sectors, what)?;
    if size > MAX_DESCRIPTOR_BYTES {
        return Err(Error::corrupt(
            what(),
            offset,
            format!("{size} bytes, more than the {MAX_DESCRIPTOR_BYTES}-byte limit"),
        ));
    }
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    read_structure(file, offset, &mut bytes, what)?;
    let text_len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(bytes.get(..text_len).unwrap_or_default());
    Descriptor::parse(&text, offset)
}

/// Opens each distinct sparse extent file the descriptor names, once, so a descriptor repeating
/// one file on many lines costs one grain directory, and the grain directories of all files
/// together stay under [`MAX_TOTAL_GD_BYTES`].
fn open_sparse_sources(
    descriptor: &Descriptor,
    base_dir: &Path,
    name: &str,
) -> Result<HashMap<PathBuf, Arc<SparseSource>>> {
    let mut sources = HashMap::new();
    let mut gd_budget_bytes = MAX_TOTAL_GD_BYTES;
    for (index, line) in descriptor.extents.iter().enumerate() {
        if !matches!(line.kind.as_str(), "SPARSE" | "SESPARSE") || line.sectors == 0 {
            continue;
        }
        let what = || format!("VMDK extent {index} of {name}");
        let extent_path = extent_file_path(base_dir, line.file.as_deref(), what)?;
        if sources.contains_key(&extent_path) {
            continue;
        }
        let extent_file = open_file(&extent_path)?;
        let extent_name = display_name(&extent_path);
        let id = u64::try_from(sources.len()).unwrap_or(u64::MAX);
        let source = if line.kind == "SESPARSE" {
            SparseSource::open_sesparse(extent_file, extent_name, id, &mut gd_budget_bytes)?
        } else {
            let header = read_sparse_header(extent_file.as_ref(), &extent_name)?;
            SparseSource::open(extent_file, extent_name, &header, id, &mut gd_budget_bytes)?
        };
        sources.insert(extent_path, Arc::new(source));
    }
    Ok(sources)
}

/// Where a descriptor line's extent file is: `file` relative to the descriptor's folder.
fn extent_file_path(
    base_dir: &Path,
    file: Option<&str>,
    what: impl Fn() -> String,
) -> Result<PathBuf> {
    let file = file.ok_or_else(|| Error::corrupt(what(), 0, "no file name"))?;
    // A descriptor from a hostile image must not make us read host files as guest bytes
    // ("/etc/shadow", "../../x"), nor block on a FIFO: only plain relative names of regular files.
    let relative = Path::new(file);
    let plain = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if file.is_empty() || !plain {
        return Err(Error::Unsupported(format!(
            "{}: extent file {file:?} is not a plain name relative to the descriptor's folder",
            what()
        )));
    }
    let path = base_dir.join(relative);
    match std::fs::metadata(&path) {
        Ok(meta) if !meta.is_file() => Err(Error::Unsupported(format!(
            "{}: extent file {} is not a regular file",
            what(),
            path.display()
        ))),
        // A missing file is reported by the open that follows, as before.
        _ => Ok(path),
    }
}

fn open_descriptor_file(
    file: &dyn ReadAt,
    path: &Path,
    base_dir: &Path,
    options: &OpenOptions,
    chain: &Chain,
) -> Result<Disk> {
    let name = display_name(path);
    if file.len() > MAX_DESCRIPTOR_BYTES {
        return Err(Error::corrupt(
            format!("VMDK descriptor {name}"),
            0,
            format!(
                "{} bytes, more than the {MAX_DESCRIPTOR_BYTES}-byte limit for a text descriptor",
                file.len()
            ),
        ));
    }
    let mut bytes = vec![0u8; usize::try_from(file.len()).unwrap_or(0)];
    file.read_exact_at(0, &mut bytes)?;
    if !bytes.starts_with(DESCRIPTOR_SIGNATURE) {
        return Err(Error::corrupt(
            format!("VMDK {name}"),
            0,
            "neither a sparse extent (\"KDMV\") nor a descriptor",
        ));
    }
    let text_len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let descriptor = Descriptor::parse(
        &String::from_utf8_lossy(bytes.get(..text_len).unwrap_or_default()),
        0,
    )?;
    if descriptor.extents.is_empty() {
        return Err(Error::corrupt(
            format!("VMDK descriptor {name}"),
            0,
            "lists no extents",
        ));
    }
    let capacity_bytes = descriptor
        .extents
        .iter()
        .try_fold(0u64, |total, line| {
            line.sectors
                .checked_mul(SECTOR_BYTES)
                .and_then(|bytes| total.checked_add(bytes))
        })
        .unwrap_or(u64::MAX);
    let (parent, below) = open_parent(&descriptor, capacity_bytes, options, chain)?.unzip();
    let sources = open_sparse_sources(&descriptor, base_dir, &name)?;
    let max_grain_bytes = sources
        .values()
        .map(|source| source.grain_bytes)
        .max()
        .unwrap_or(SECTOR_BYTES);
    let caches = Arc::new(SparseCaches::new(max_grain_bytes));
    let mut parts: Vec<(u64, Arc<dyn ReadAt>)> = Vec::with_capacity(descriptor.extents.len());
    let mut total: u64 = 0;
    for (index, line) in descriptor.extents.iter().enumerate() {
        let what = || format!("VMDK extent {index} of {name}");
        let len = sectors_to_bytes(line.sectors, what)?;
        let end = total
            .checked_add(len)
            .filter(|end| *end <= MAX_CAPACITY_BYTES)
            .ok_or_else(|| {
                Error::corrupt(
                    what(),
                    0,
                    format!("extents add up to more than the {MAX_CAPACITY_BYTES}-byte limit"),
                )
            })?;
        let extent_path = || extent_file_path(base_dir, line.file.as_deref(), what);
        let part: Arc<dyn ReadAt> = match line.kind.as_str() {
            "FLAT" | "VMFS" => {
                let extent_path = extent_path()?;
                let extent_file = open_file(&extent_path)?;
                let start = sectors_to_bytes(line.offset_sectors, what)?;
                let available = extent_file.len();
                let slice = Slice::new(extent_file, start, len).map_err(|_| {
                    Error::corrupt(
                        format!("VMDK flat extent {}", extent_path.display()),
                        available,
                        format!("the descriptor needs {len} bytes from offset {start}; the file has {available} bytes"),
                    )
                })?;
                Arc::new(slice)
            }
            "SPARSE" | "SESPARSE" => {
                let source = sources.get(&extent_path()?).ok_or_else(|| {
                    Error::corrupt(what(), 0, "sparse extent file was not opened")
                })?;
                let parent = parent.as_ref().map(|p| (Arc::clone(p), total));
                Arc::new(SparseExtent::new(
                    Arc::clone(source),
                    Arc::clone(&caches),
                    len,
                    parent,
                )?)
            }
            "ZERO" => Arc::new(Zeros(len)),
            other => {
                return Err(Error::Unsupported(format!(
                    "VMDK extent type {other} (extent {index} of {name})"
                )));
            }
        };
        if len > 0 {
            parts.push((total, part));
        }
        total = end;
    }
    Ok(Disk {
        reader: Arc::new(Concat { parts, len: total }),
        info: ContainerInfo {
            format: Format::Vmdk,
            variant: descriptor
                .create_type
                .clone()
                .unwrap_or_else(|| "descriptor".into()),
            virtual_size: total,
            sector_size: 512,
            allocated_bytes: None,
            notes: vec![format!(
                "descriptor with {} extent(s)",
                descriptor.extents.len()
            )],
            chain: below.unwrap_or_default(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_descriptor_lines() {
        let text = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
                    createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n\
                    RW 4192256 FLAT \"a b-f001.vmdk\" 0\nRDONLY 10 ZERO\nRW 8 SPARSE \"x.vmdk\"\n";
        let d = Descriptor::parse(text, 0).unwrap();
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentFlat"));
        assert!(!d.has_parent());
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file.as_deref(), Some("a b-f001.vmdk"));
        assert_eq!(d.extents[0].sectors, 4192256);
        assert_eq!(d.extents[1].kind, "ZERO");
        assert!(d.extents[1].file.is_none());
        assert!(Descriptor::parse("RW x FLAT \"f\"", 0).is_err());
        assert!(Descriptor::parse("RW 1 FLAT \"f", 0).is_err());
        let child =
            Descriptor::parse("parentCID=0badcafe\nparentFileNameHint=\"base.vmdk\"", 0).unwrap();
        assert!(child.has_parent());
    }

    #[test]
    fn concat_reads_across_parts() {
        let a: Arc<dyn ReadAt> = Arc::new(vec![1u8, 2, 3]);
        let b: Arc<dyn ReadAt> = Arc::new(Zeros(2));
        let c: Arc<dyn ReadAt> = Arc::new(vec![9u8]);
        let cat = Concat {
            parts: vec![(0, a), (3, b), (5, c)],
            len: 6,
        };
        let mut buf = [0xffu8; 5];
        cat.read_exact_at(1, &mut buf).unwrap();
        assert_eq!(buf, [2, 3, 0, 0, 9]);
        assert!(cat.read_exact_at(2, &mut buf).is_err());
    }
}

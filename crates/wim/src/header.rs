//! The 208-byte WIM header at the start of the file.
//!
// Sources: wimlib include/wimlib/header.h (`struct wim_header_disk`, `WIM_HDR_FLAG_*`,
// `MAX_IMAGES`), src/header.c (`read_wim_header`) and src/wim.c (compression type and chunk size
// checks, `wim_ctype_info`).

use serde::Serialize;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::codec::Compression;
use crate::reshdr::{ResourceHeader, ResourceHeaderDisk};
use crate::{Error, Result};

/// Size of the header on disk; integrity hashing starts here.
pub const HEADER_SIZE: u64 = 208;
/// Magic of an ordinary WIM.
pub const WIM_MAGIC: [u8; 8] = *b"MSWIM\0\0\0";
/// Magic of a wimlib "pipable" WIM. The header at the start of such a file has empty blob
/// table and XML entries (it was written before them); the complete header, with the same magic,
/// is the last 208 bytes of the file.
pub const PIPABLE_MAGIC: [u8; 8] = *b"WLPWM\0\0\0";
/// Version of ordinary WIMs.
pub const VERSION_DEFAULT: u32 = 0x10D00;
/// Version of WIMs that may hold solid resources (ESD and `wimlib-imagex --solid`).
pub const VERSION_SOLID: u32 = 0xE00;
/// Most images a WIM may hold. wimlib's limit too; it keeps a fuzzed count from driving
/// allocations.
pub const MAX_IMAGES: u32 = 65535;

/// The header as stored: 208 bytes, little-endian, packed.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct HeaderDisk {
    /// +0x00 "MSWIM\0\0\0".
    pub magic: [u8; 8],
    /// +0x08 header size, 208.
    pub header_size: U32,
    /// +0x0C format version: 0x10D00, or 0xE00 for solid WIMs.
    pub version: U32,
    /// +0x10 `HeaderFlags`.
    pub flags: U32,
    /// +0x14 uncompressed chunk size of compressed resources (0 when uncompressed).
    pub chunk_size: U32,
    /// +0x18 GUID, the same in every part of a split WIM.
    pub guid: [u8; 16],
    /// +0x28 part number, from 1.
    pub part_number: U16,
    /// +0x2A number of parts.
    pub total_parts: U16,
    /// +0x2C number of images.
    pub image_count: U32,
    /// +0x30 resource header of the blob ("lookup") table.
    pub blob_table: ResourceHeaderDisk,
    /// +0x48 resource header of the XML data.
    pub xml: ResourceHeaderDisk,
    /// +0x60 resource header of the bootable image's metadata (a copy of its blob table entry).
    pub boot_metadata: ResourceHeaderDisk,
    /// +0x78 index of the bootable image, 0 for none.
    pub boot_index: U32,
    /// +0x7C resource header of the integrity table (only 4-byte aligned).
    pub integrity: ResourceHeaderDisk,
    /// +0x94 unused.
    pub unused: [u8; 60],
}

const _: () = assert!(size_of::<HeaderDisk>() == 208);

/// Header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFlags(pub u32);

impl HeaderFlags {
    /// Resources may be compressed.
    pub const COMPRESSION: u32 = 0x2;
    /// Marked read-only.
    pub const READONLY: u32 = 0x4;
    /// Part of a split WIM.
    pub const SPANNED: u32 = 0x8;
    /// Holds only file data.
    pub const RESOURCE_ONLY: u32 = 0x10;
    /// Holds only metadata.
    pub const METADATA_ONLY: u32 = 0x20;
    /// A writer did not finish.
    pub const WRITE_IN_PROGRESS: u32 = 0x40;
    /// Reparse point fix-ups ("relative path junction") enabled.
    pub const RP_FIX: u32 = 0x80;
    /// XPRESS compression.
    pub const COMPRESS_XPRESS: u32 = 0x2_0000;
    /// LZX compression.
    pub const COMPRESS_LZX: u32 = 0x4_0000;
    /// LZMS compression.
    pub const COMPRESS_LZMS: u32 = 0x8_0000;
    /// A newer XPRESS flag, read as XPRESS.
    pub const COMPRESS_XPRESS_2: u32 = 0x20_0000;

    /// True when any bit of `flag` is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    /// Names of the set flags, for reports.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::COMPRESSION, "compression"),
            (Self::READONLY, "readonly"),
            (Self::SPANNED, "spanned"),
            (Self::RESOURCE_ONLY, "resource_only"),
            (Self::METADATA_ONLY, "metadata_only"),
            (Self::WRITE_IN_PROGRESS, "write_in_progress"),
            (Self::RP_FIX, "rp_fix"),
            (Self::COMPRESS_XPRESS, "xpress"),
            (Self::COMPRESS_LZX, "lzx"),
            (Self::COMPRESS_LZMS, "lzms"),
            (Self::COMPRESS_XPRESS_2, "xpress2"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

/// The checked header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 0x10D00 or 0xE00.
    pub version: u32,
    /// Header flags.
    pub flags: HeaderFlags,
    /// Compression of the WIM's non-solid resources.
    pub compression: Compression,
    /// Uncompressed size of each chunk (0 when the WIM is uncompressed).
    pub chunk_size_bytes: u32,
    /// The GUID, as stored.
    pub guid: [u8; 16],
    /// Part number (1 for single-part WIMs).
    pub part_number: u16,
    /// Number of parts (1 for single-part WIMs).
    pub total_parts: u16,
    /// Number of images according to the header.
    pub image_count: u32,
    /// Where the blob table is.
    pub blob_table: ResourceHeader,
    /// Where the XML data is.
    pub xml: ResourceHeader,
    /// The boot image's metadata resource, as recorded in the header.
    pub boot_metadata: ResourceHeader,
    /// Bootable image (1-based), 0 for none. An index past the image count reads as 0, like
    /// wimlib does.
    pub boot_index: u32,
    /// Where the integrity table is, when there is one.
    pub integrity: Option<ResourceHeader>,
    /// A wimlib pipable WIM ("WLPWM" magic): its compressed resources keep their chunk table
    /// at the end and a size before each chunk (see [`crate::resource::ChunkLayout`]).
    pub pipable: bool,
}

/// Chunk size limits per compression type, as wimlib accepts them (`wim_ctype_info`).
pub(crate) fn chunk_size_range(compression: Compression) -> (u32, u32) {
    match compression {
        Compression::None => (0, 0),
        Compression::Xpress => (4096, 65536),
        Compression::Lzx => (32768, 2 * 1024 * 1024),
        Compression::Lzms => (32768, 1024 * 1024 * 1024),
    }
}

impl TryFrom<&HeaderDisk> for Header {
    type Error = Error;

    /// Checks the magic, size, version, part numbers, image count, compression type and chunk
    /// size. Refuses split WIMs as unsupported. Positions in the file are checked by
    /// [`Header::check_within`], which needs the file length. A pipable WIM's header is
    /// accepted (the caller must take the copy at the end of the file: see
    /// [`crate::wim::read_header`]).
    fn try_from(disk: &HeaderDisk) -> Result<Self> {
        let corrupt = |offset: u64, detail: String| Error::corrupt("WIM header", offset, detail);
        let pipable = disk.magic == PIPABLE_MAGIC;
        if !pipable && disk.magic != WIM_MAGIC {
            return Err(corrupt(
                0,
                format!(
                    "bad magic {:02x?}, expected \"MSWIM\\0\\0\\0\": not a WIM file",
                    disk.magic
                ),
            ));
        }
        let header_size = disk.header_size.get();
        if u64::from(header_size) != HEADER_SIZE {
            return Err(corrupt(
                0x8,
                format!("header size {header_size}, expected {HEADER_SIZE}"),
            ));
        }
        let version = disk.version.get();
        if version != VERSION_DEFAULT && version != VERSION_SOLID {
            return Err(corrupt(
                0xC,
                format!("unknown version 0x{version:x}, expected 0x10d00 or 0xe00"),
            ));
        }
        let part_number = disk.part_number.get();
        let total_parts = disk.total_parts.get();
        if total_parts == 0 || part_number == 0 || part_number > total_parts {
            return Err(corrupt(
                0x28,
                format!("invalid part number {part_number} of {total_parts}"),
            ));
        }
        if total_parts != 1 {
            return Err(Error::Unsupported(format!(
                "split (multi-part) WIM: this file is part {part_number} of {total_parts}; join the parts with `wimlib-imagex join` first"
            )));
        }
        let image_count = disk.image_count.get();
        if image_count > MAX_IMAGES {
            return Err(corrupt(
                0x2C,
                format!("image count {image_count} exceeds the limit of {MAX_IMAGES}"),
            ));
        }
        let flags = HeaderFlags(disk.flags.get());
        // wimlib's order: LZX wins over XPRESS, XPRESS over LZMS.
        let compression = if !flags.has(HeaderFlags::COMPRESSION) {
            Compression::None
        } else if flags.has(HeaderFlags::COMPRESS_LZX) {
            Compression::Lzx
        } else if flags.has(HeaderFlags::COMPRESS_XPRESS | HeaderFlags::COMPRESS_XPRESS_2) {
            Compression::Xpress
        } else if flags.has(HeaderFlags::COMPRESS_LZMS) {
            Compression::Lzms
        } else {
            return Err(corrupt(
                0x10,
                format!(
                    "flags 0x{:x} say compressed but name no compression type",
                    flags.0
                ),
            ));
        };
        let chunk_size_bytes = disk.chunk_size.get();
        let (min, max) = chunk_size_range(compression);
        let power_of_two = chunk_size_bytes == 0 || chunk_size_bytes.is_power_of_two();
        if !power_of_two || chunk_size_bytes < min || chunk_size_bytes > max {
            return Err(corrupt(
                0x14,
                format!("chunk size {chunk_size_bytes} is not a power of two in {min}..={max} for {compression:?}"),
            ));
        }
        let integrity = ResourceHeader::from(&disk.integrity);
        let boot_index = disk.boot_index.get();
        Ok(Self {
            version,
            flags,
            compression,
            chunk_size_bytes,
            guid: disk.guid,
            part_number,
            total_parts,
            image_count,
            blob_table: ResourceHeader::from(&disk.blob_table),
            xml: ResourceHeader::from(&disk.xml),
            boot_metadata: ResourceHeader::from(&disk.boot_metadata),
            boot_index: if boot_index > image_count {
                0
            } else {
                boot_index
            },
            integrity: (!integrity.is_empty()).then_some(integrity),
            pipable,
        })
    }
}

impl Header {
    /// Parses the first 208 bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (disk, _) = HeaderDisk::read_from_prefix(bytes).map_err(|_| {
            Error::corrupt(
                "WIM header",
                0,
                format!(
                    "file holds {} bytes, a header needs {HEADER_SIZE}",
                    bytes.len()
                ),
            )
        })?;
        Self::try_from(&disk)
    }

    /// Checks that the blob table and XML data lie inside a file of `file_len` bytes, after the
    /// header. (The integrity table is checked when it is read, so a damaged one does not stop
    /// the rest of the WIM from being read.)
    pub fn check_within(&self, file_len: u64) -> Result<()> {
        if self.blob_table.is_empty() && self.xml.is_empty() {
            return Err(Error::corrupt(
                "WIM header",
                0x30,
                "no blob table and no XML data: the WIM was never finished (write in progress?)",
            ));
        }
        for (what, reshdr) in [("blob table", self.blob_table), ("XML data", self.xml)] {
            reshdr.check_within(what, file_len)?;
            if reshdr.offset < HEADER_SIZE {
                return Err(Error::corrupt(
                    what,
                    reshdr.offset,
                    "resource overlaps the WIM header",
                ));
            }
        }
        Ok(())
    }

    /// The GUID as 32 lowercase hex digits, in stored byte order (as `wimlib-imagex info` prints it).
    pub fn guid_hex(&self) -> String {
        self.guid.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What `wim info` reports about the header.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderSummary {
    /// Format version (68864 = 0x10D00, 3584 = 0xE00).
    pub version: u32,
    /// Raw flags.
    pub flags: u32,
    /// Names of the set flags.
    pub flag_names: Vec<&'static str>,
    /// "none", "xpress", "lzx" or "lzms".
    pub compression: Compression,
    /// Chunk size in bytes (0 when uncompressed).
    pub chunk_size_bytes: u32,
    /// GUID, hex.
    pub guid: String,
    /// Part number.
    pub part_number: u16,
    /// Number of parts.
    pub total_parts: u16,
    /// Image count.
    pub image_count: u32,
    /// Boot index (0 = none).
    pub boot_index: u32,
    /// Blob table location.
    pub blob_table: ResourceHeader,
    /// XML location.
    pub xml: ResourceHeader,
    /// Boot metadata location.
    pub boot_metadata: ResourceHeader,
    /// Integrity table location, if any.
    pub integrity: Option<ResourceHeader>,
    /// A wimlib pipable WIM (header read from the end of the file).
    pub pipable: bool,
}

impl From<&Header> for HeaderSummary {
    fn from(h: &Header) -> Self {
        Self {
            version: h.version,
            flags: h.flags.0,
            flag_names: h.flags.names(),
            compression: h.compression,
            chunk_size_bytes: h.chunk_size_bytes,
            guid: h.guid_hex(),
            part_number: h.part_number,
            total_parts: h.total_parts,
            image_count: h.image_count,
            boot_index: h.boot_index,
            blob_table: h.blob_table,
            xml: h.xml,
            boot_metadata: h.boot_metadata,
            integrity: h.integrity,
            pipable: h.pipable,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    fn minimal() -> Vec<u8> {
        let mut b = vec![0u8; 208];
        b[..8].copy_from_slice(&WIM_MAGIC);
        b[8..12].copy_from_slice(&208u32.to_le_bytes());
        b[12..16].copy_from_slice(&VERSION_DEFAULT.to_le_bytes());
        b[0x28..0x2A].copy_from_slice(&1u16.to_le_bytes());
        b[0x2A..0x2C].copy_from_slice(&1u16.to_le_bytes());
        b
    }

    #[test]
    fn integrity_header_at_unaligned_offset() {
        let mut b = minimal();
        b[0x7C] = 32; // size 32
        b[0x84..0x8C].copy_from_slice(&0x1234u64.to_le_bytes());
        b[0x8C..0x94].copy_from_slice(&32u64.to_le_bytes());
        let h = Header::parse(&b).unwrap();
        let i = h.integrity.unwrap();
        assert_eq!((i.offset, i.size_in_wim, i.original_size), (0x1234, 32, 32));
    }

    #[test]
    fn refuses_bad_input() {
        let mut b = minimal();
        b[0] = b'X';
        assert!(matches!(Header::parse(&b), Err(Error::Corrupt { .. })));
        let mut b = minimal();
        b[..8].copy_from_slice(&PIPABLE_MAGIC);
        assert!(Header::parse(&b).unwrap().pipable);
        assert!(!Header::parse(&minimal()).unwrap().pipable);
        let mut b = minimal();
        b[0x2A] = 2;
        assert!(matches!(Header::parse(&b), Err(Error::Unsupported(m)) if m.contains("split")));
        let mut b = minimal();
        b[0x2C..0x30].copy_from_slice(&70000u32.to_le_bytes());
        assert!(matches!(
            Header::parse(&b),
            Err(Error::Corrupt { offset: 0x2C, .. })
        ));
        let mut b = minimal();
        b[0x10..0x14]
            .copy_from_slice(&(HeaderFlags::COMPRESSION | HeaderFlags::COMPRESS_LZX).to_le_bytes());
        b[0x14..0x18].copy_from_slice(&4096u32.to_le_bytes());
        assert!(matches!(
            Header::parse(&b),
            Err(Error::Corrupt { offset: 0x14, .. })
        ));
        assert!(Header::parse(&b[..100]).is_err());
    }
}

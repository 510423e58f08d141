//! The on-disk layouts of the partition tables, one definition each, shared by the readers
//! (`gpt.rs`, `mbr.rs`) and the writer (winre-patch's table edits): as the `object` crate keeps
//! a format's definitions apart from its reading and writing, so a field's offset is written
//! down once.
//!
//! Sources: UEFI Specification 2.10, 5.3 (table 5-5 "GPT Header", table 5-6 "GPT Partition
//! Entry"), 5.2.3 (protective MBR); Microsoft, "Master Boot Record" (the 0x1B8 disk signature,
//! the 0x1BE entries, the 0x55AA mark).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The GPT header as stored (table 5-5), 92 bytes; the rest of its sector is reserved.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct GptHeaderDisk {
    /// +0x00 "EFI PART"
    pub signature: [u8; 8],
    /// +0x08 0x00010000
    pub revision: U32,
    /// +0x0C bytes covered by the header CRC, 92..=sector size
    pub header_size: U32,
    /// +0x10 CRC32 of `header_size` bytes with this field zeroed
    pub header_crc32: U32,
    /// +0x14 must be zero
    pub reserved: U32,
    /// +0x18 the LBA this header is at
    pub my_lba: U64,
    /// +0x20 the LBA of the other copy
    pub alternate_lba: U64,
    /// +0x28
    pub first_usable_lba: U64,
    /// +0x30 inclusive
    pub last_usable_lba: U64,
    /// +0x38
    pub disk_guid: [u8; 16],
    /// +0x48 start of this copy's entry array
    pub entries_lba: U64,
    /// +0x50
    pub entry_count: U32,
    /// +0x54 128 x 2^n
    pub entry_size: U32,
    /// +0x58 CRC32 of entry_count x entry_size bytes
    pub entries_crc32: U32,
}

/// Offset of [`GptHeaderDisk::header_crc32`], zeroed while the CRC is computed.
pub const GPT_HEADER_CRC_OFFSET: usize = 0x10;

/// One GPT partition entry as stored (table 5-6); an entry may be longer, the rest is reserved.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct GptEntryDisk {
    /// +0x00 zero for an unused entry
    pub type_guid: [u8; 16],
    /// +0x10
    pub unique_guid: [u8; 16],
    /// +0x20
    pub first_lba: U64,
    /// +0x28 inclusive
    pub last_lba: U64,
    /// +0x30
    pub attributes: U64,
    /// +0x38 UTF-16LE, 36 units, NUL-padded
    pub name: [u8; 72],
}

/// Offset of the 0x55AA mark in an MBR or EBR sector.
pub const MBR_SIGNATURE_OFFSET: usize = 510;
/// Offset of the 32-bit disk signature in the MBR.
pub const MBR_DISK_SIGNATURE_OFFSET: usize = 0x1b8;
/// Offset of the four 16-byte partition entries.
pub const MBR_ENTRIES_OFFSET: usize = 0x1be;
/// Bytes of one MBR partition entry.
pub const MBR_ENTRY_BYTES: usize = 16;

/// One 16-byte MBR partition entry as stored.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct MbrEntryDisk {
    /// +0x00 0x80 active, 0x00 inactive
    pub status: u8,
    /// +0x01 CHS of the first sector (ignored: LBA is authoritative)
    pub chs_first: [u8; 3],
    /// +0x04
    pub type_byte: u8,
    /// +0x05 CHS of the last sector (ignored)
    pub chs_last: [u8; 3],
    /// +0x08 first LBA (relative, for EBR entries)
    pub first_lba: U32,
    /// +0x0C
    pub sectors: U32,
}

/// Offset of MBR entry `index` (0..4).
pub fn mbr_entry_offset(index: usize) -> usize {
    MBR_ENTRIES_OFFSET.saturating_add(index.saturating_mul(MBR_ENTRY_BYTES))
}

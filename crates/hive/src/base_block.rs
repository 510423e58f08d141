//! The base block (file header): the first 4096 bytes of a primary hive file.
//!
//! Sources: Maxim Suhanov, "Windows registry file format specification" (github.com/msuhanov/regf,
//! CC BY 4.0), section "Base block"; the checksum adjustment (-1 -> -2, 0 -> 1) is from the same
//! document. hivex (lib/handle.c) refuses a bad checksum; we open such a hive but report it dirty.

use serde::Serialize;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// Size of the base block; the hive bins data starts right after it.
pub const BASE_BLOCK_BYTES: u64 = 4096;
/// Hive bins (and the base block) come in multiples of this.
pub const HBIN_ALIGN_BYTES: u32 = 4096;
/// The checksum covers this many leading bytes of the base block.
const CHECKSUMMED_BYTES: usize = 508;
/// Oldest and newest writer minor versions read here: 1.2 only lacks fast leaves; 1.1 and
/// earlier use another cell layout, and anything newer than 1.6 is unknown.
const MINOR_VERSIONS: std::ops::RangeInclusive<u32> = 2..=6;

/// The base block's first 512 bytes as stored (little-endian).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BaseBlockDisk {
    /// +0x00 "regf"
    pub signature: [u8; 4],
    /// +0x04 incremented when a write starts
    pub primary_sequence: U32,
    /// +0x08 incremented when a write ends
    pub secondary_sequence: U32,
    /// +0x0C FILETIME of the last write
    pub last_written: U64,
    /// +0x14 writer major version (1)
    pub major_version: U32,
    /// +0x18 writer minor version (3..6)
    pub minor_version: U32,
    /// +0x1C 0 = primary file; log files use other values
    pub file_type: U32,
    /// +0x20 1 = direct memory load
    pub file_format: U32,
    /// +0x24 root key node, relative to the hive bins data
    pub root_cell_offset: U32,
    /// +0x28 size of the hive bins data
    pub hive_bins_data_size: U32,
    /// +0x2C sector size / 512
    pub clustering_factor: U32,
    /// +0x30 UTF-16LE file name, for debugging only
    pub file_name: [u8; 64],
    /// +0x70 reserved (Windows 10 keeps KTM GUIDs here)
    pub reserved: [u8; 396],
    /// +0x1FC XOR-32 of the previous 508 bytes
    pub checksum: U32,
}

/// The hive header, checked.
#[derive(Debug, Clone, Serialize)]
pub struct BaseBlock {
    /// Incremented when a write starts.
    pub primary_sequence: u32,
    /// Incremented when a write completes; differs from the primary one in a dirty hive.
    pub secondary_sequence: u32,
    /// FILETIME (100 ns since 1601) of the last write; not updated since Windows 8.1.
    pub last_written_filetime: u64,
    /// Writer major version (always 1).
    pub major_version: u32,
    /// Writer minor version (3, 4, 5 or 6).
    pub minor_version: u32,
    /// Offset of the root key node, relative to the hive bins data.
    pub root_cell_offset: u32,
    /// Size of the hive bins data that follows the base block.
    pub hive_bins_data_size_bytes: u32,
    /// The checksum stored in the file.
    pub stored_checksum: u32,
    /// The checksum of the bytes as read.
    pub computed_checksum: u32,
    /// The debugging file name the writer stored (often a partial path), lossily decoded.
    pub file_name: String,
}

/// XOR-32 over the first 508 bytes, with the two adjustments Windows makes.
pub fn checksum(bytes: &[u8]) -> u32 {
    let sum = bytes
        .get(..CHECKSUMMED_BYTES)
        .unwrap_or(bytes)
        .chunks_exact(4)
        .map(|w| w.try_into().map(u32::from_le_bytes).unwrap_or(0))
        .fold(0u32, |acc, w| acc ^ w);
    match sum {
        u32::MAX => u32::MAX - 1,
        0 => 1,
        s => s,
    }
}

impl TryFrom<&BaseBlockDisk> for BaseBlock {
    type Error = Error;

    fn try_from(disk: &BaseBlockDisk) -> Result<Self> {
        let corrupt = |detail: String| Error::corrupt("base block", 0, detail);
        if &disk.signature != b"regf" {
            return Err(corrupt(format!(
                "signature is {:02x?}, expected \"regf\"",
                disk.signature
            )));
        }
        let major = disk.major_version.get();
        let minor = disk.minor_version.get();
        if major != 1 || !MINOR_VERSIONS.contains(&minor) {
            return Err(Error::Unsupported(format!(
                "registry hive version {major}.{minor} (this reader handles 1.2 to 1.6)"
            )));
        }
        match disk.file_type.get() {
            0 => {}
            1 | 2 | 6 => {
                return Err(Error::Unsupported(format!(
                    "file type {} is a transaction log (.LOG/.LOG1/.LOG2), not a primary hive file",
                    disk.file_type.get()
                )))
            }
            other => {
                return Err(corrupt(format!(
                    "file type is {other}, expected 0 (primary file)"
                )))
            }
        }
        if disk.file_format.get() != 1 {
            return Err(Error::Unsupported(format!(
                "file format {} (only 1, direct memory load, exists on disk)",
                disk.file_format.get()
            )));
        }
        let bins = disk.hive_bins_data_size.get();
        if bins == 0 || bins & (HBIN_ALIGN_BYTES - 1) != 0 {
            return Err(corrupt(format!(
                "hive bins data size is {bins} bytes, expected a non-zero multiple of {HBIN_ALIGN_BYTES}"
            )));
        }
        let root = disk.root_cell_offset.get();
        if root >= bins {
            return Err(corrupt(format!(
                "root cell offset {root} is past the hive bins data ({bins} bytes)"
            )));
        }
        let name_units: Vec<u16> = disk
            .file_name
            .chunks_exact(2)
            .map(|c| c.try_into().map(u16::from_le_bytes).unwrap_or(0))
            .take_while(|&u| u != 0)
            .collect();
        Ok(BaseBlock {
            primary_sequence: disk.primary_sequence.get(),
            secondary_sequence: disk.secondary_sequence.get(),
            last_written_filetime: disk.last_written.get(),
            major_version: major,
            minor_version: minor,
            root_cell_offset: root,
            hive_bins_data_size_bytes: bins,
            stored_checksum: disk.checksum.get(),
            computed_checksum: 0,
            file_name: String::from_utf16_lossy(&name_units),
        })
    }
}

impl BaseBlock {
    /// Parses and checks the first 512 bytes of a hive file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (disk, _) = BaseBlockDisk::read_from_prefix(bytes).map_err(|_| {
            Error::corrupt(
                "base block",
                0,
                format!("{} bytes, expected at least 512", bytes.len()),
            )
        })?;
        let mut block = BaseBlock::try_from(&disk)?;
        block.computed_checksum = checksum(bytes);
        Ok(block)
    }

    /// What a reader of the primary file alone must know about the hive's consistency.
    pub fn health(&self) -> HiveHealth {
        let sequence_ok = self.primary_sequence == self.secondary_sequence;
        let checksum_ok = self.stored_checksum == self.computed_checksum;
        let dirty = !(sequence_ok && checksum_ok);
        let note = dirty.then(|| {
            let why = match (sequence_ok, checksum_ok) {
                (false, false) => "its sequence numbers differ and its header checksum is wrong",
                (false, true) => "its sequence numbers differ",
                _ => "its header checksum is wrong",
            };
            format!(
                "the hive is dirty ({why}): Windows would replay its transaction logs \
                 (.LOG1/.LOG2) on load, which an offline read of the primary file cannot do, \
                 so the most recent changes may be missing"
            )
        });
        HiveHealth {
            dirty,
            primary_sequence: self.primary_sequence,
            secondary_sequence: self.secondary_sequence,
            checksum_ok,
            note,
        }
    }
}

/// Whether the primary file is self-consistent, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HiveHealth {
    /// True when Windows would consider the hive dirty and recover it from its logs.
    pub dirty: bool,
    /// Base block primary sequence number.
    pub primary_sequence: u32,
    /// Base block secondary sequence number.
    pub secondary_sequence: u32,
    /// Whether the stored header checksum matches the bytes.
    pub checksum_ok: bool,
    /// Why the hive is dirty and what that means for this read, when it is.
    pub note: Option<String>,
}

//! The blob ("lookup") table: one entry per stored resource, naming it by the SHA-1 of its
//! uncompressed bytes.
//!
// Sources: wimlib src/blob_table.c (`struct blob_descriptor_disk`, `read_blob_table`).

use std::collections::HashSet;

use serde::Serialize;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::digest::Sha1Digest;
use crate::header::{Header, VERSION_DEFAULT};
use crate::reshdr::{ResourceFlags, ResourceHeader, ResourceHeaderDisk};
use crate::{Error, Result};

/// Size of one entry on disk.
pub const ENTRY_SIZE: u64 = 50;
/// Largest blob table we load: 20 million entries, far beyond any real WIM, and a bound on the
/// memory a hostile header can make us take.
pub const MAX_BLOB_TABLE_BYTES: u64 = 1_000_000_000;

/// `original_size` of a solid-run entry that describes a solid resource rather than a blob.
pub const SOLID_RESOURCE_MAGIC: u64 = 0x1_0000_0000;

/// A blob table entry as stored: 50 bytes, packed.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct BlobEntryDisk {
    /// +0x00 where the blob's resource is.
    pub reshdr: ResourceHeaderDisk,
    /// +0x18 the part of a split WIM that holds it.
    pub part_number: U16,
    /// +0x1A how many streams refer to it.
    pub ref_count: U32,
    /// +0x1E SHA-1 of the uncompressed bytes.
    pub sha1: [u8; 20],
}

const _: () = assert!(size_of::<BlobEntryDisk>() == 50);

/// A blob table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlobEntry {
    /// Position in the table, from 0.
    pub table_index: usize,
    /// Where and how it is stored.
    pub reshdr: ResourceHeader,
    /// Part number (1 in a single-part WIM).
    pub part_number: u16,
    /// Reference count.
    pub ref_count: u32,
    /// SHA-1 of the uncompressed bytes.
    pub sha1: Sha1Digest,
}

impl BlobEntry {
    /// Uncompressed size of the blob. Inside a solid resource it is the stored-size field (the
    /// original-size field is unused there).
    pub fn size_bytes(&self) -> u64 {
        if self.reshdr.is_solid() {
            self.reshdr.size_in_wim
        } else {
            self.reshdr.original_size
        }
    }

    /// True for an image's metadata resource.
    pub fn is_metadata(&self) -> bool {
        self.reshdr.flags.has(ResourceFlags::METADATA)
    }
}

/// The blob table, sorted out the way wimlib reads it.
#[derive(Debug, Clone, Default)]
pub struct BlobTable {
    /// Every entry that names a blob: non-zero hash, non-zero size, this part, duplicates and
    /// unreferenced metadata left out. Metadata entries included.
    pub blobs: Vec<BlobEntry>,
    /// Metadata resources, one per image, in blob table order (which is how images are matched
    /// to them; their offsets and the XML do not matter).
    pub metadata: Vec<BlobEntry>,
    /// True when some entries belong to solid resources (not read yet).
    pub has_solid: bool,
    /// Entries in the table, all kinds.
    pub entry_count: usize,
    /// Things wimlib would warn about: duplicates, empty entries, surplus metadata.
    pub warnings: Vec<String>,
}

impl BlobTable {
    /// Parses the table's bytes, read from `table_offset` in the WIM (for messages). `header`
    /// gives the version, part number and image count. Refuses a size that is not a whole number
    /// of entries, uncompressed entries whose two sizes differ, metadata with a reference count
    /// other than 1 (corrupt) and metadata in solid resources (unsupported).
    pub fn parse(bytes: &[u8], table_offset: u64, header: &Header) -> Result<Self> {
        let entries = <[BlobEntryDisk]>::ref_from_bytes(bytes).map_err(|_| {
            Error::corrupt(
                "blob table",
                table_offset,
                format!(
                    "size {} is not a multiple of the {ENTRY_SIZE}-byte entry size",
                    bytes.len()
                ),
            )
        })?;
        let mut table = BlobTable {
            entry_count: entries.len(),
            ..Self::default()
        };
        let mut seen = HashSet::new();
        let (mut empty, mut duplicates, mut other_part) = (0usize, 0usize, 0usize);
        for (table_index, disk) in entries.iter().enumerate() {
            let entry_offset = u64::try_from(table_index)
                .ok()
                .and_then(|i| i.checked_mul(ENTRY_SIZE))
                .and_then(|o| o.checked_add(table_offset))
                .unwrap_or(u64::MAX);
            let what = || format!("blob table entry {table_index}");
            let mut reshdr = ResourceHeader::from(&disk.reshdr);
            if header.version == VERSION_DEFAULT {
                // The SOLID flag means nothing before version 0xE00; wimlib clears it too.
                reshdr.flags.0 &= !ResourceFlags::SOLID;
            }
            let entry = BlobEntry {
                table_index,
                reshdr,
                part_number: disk.part_number.get(),
                ref_count: disk.ref_count.get(),
                sha1: Sha1Digest(disk.sha1),
            };
            if reshdr.is_solid() {
                table.has_solid = true;
            } else if !reshdr.is_compressed() && reshdr.size_in_wim != reshdr.original_size {
                return Err(Error::corrupt(
                    what(),
                    entry_offset,
                    format!(
                        "uncompressed resource has stored size {} but original size {}",
                        reshdr.size_in_wim, reshdr.original_size
                    ),
                ));
            }
            if reshdr.is_solid() && reshdr.original_size == SOLID_RESOURCE_MAGIC {
                // Describes a solid resource, not a blob.
                continue;
            }
            if entry.sha1.is_zero() || entry.size_bytes() == 0 {
                empty = empty.saturating_add(1);
                continue;
            }
            if entry.part_number != header.part_number {
                other_part = other_part.saturating_add(1);
                continue;
            }
            if entry.is_metadata() {
                if entry.ref_count == 0 {
                    continue;
                }
                if entry.ref_count != 1 {
                    return Err(Error::corrupt(
                        what(),
                        entry_offset,
                        format!(
                            "metadata resource with reference count {}, expected 1",
                            entry.ref_count
                        ),
                    ));
                }
                if reshdr.is_solid() {
                    return Err(Error::Unsupported(format!(
                        "image metadata inside a solid resource ({})",
                        what()
                    )));
                }
                if u64::try_from(table.metadata.len()).unwrap_or(u64::MAX)
                    >= u64::from(header.image_count)
                {
                    table.warnings.push(format!(
                        "{}: more metadata resources than images; ignored",
                        what()
                    ));
                    continue;
                }
                table.metadata.push(entry);
            } else if !seen.insert(entry.sha1) {
                duplicates = duplicates.saturating_add(1);
                continue;
            }
            table.blobs.push(entry);
        }
        if empty > 0 {
            table.warnings.push(format!(
                "{empty} empty or zero-hash blob table entries ignored"
            ));
        }
        if duplicates > 0 {
            table
                .warnings
                .push(format!("{duplicates} duplicate blob table entries ignored"));
        }
        if other_part > 0 {
            table.warnings.push(format!(
                "{other_part} entries for other parts of a split WIM ignored"
            ));
        }
        Ok(table)
    }
}

//! The blob ("lookup") table: one entry per stored resource, naming it by the SHA-1 of its
//! uncompressed bytes.
//!
// Sources: wimlib src/blob_table.c (`struct blob_descriptor_disk`, `read_blob_table`,
// `assign_blob_to_solid_resource`, `validate_resource`).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::digest::Sha1Digest;
use crate::header::{Header, VERSION_DEFAULT};
use crate::reshdr::{ResourceFlags, ResourceHeader, ResourceHeaderDisk};
use crate::solid::{SolidPlace, SolidResource};
use crate::{Error, Result};
use winre_readat::ReadAt;

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
    /// For a blob inside a solid resource: which one, and where in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solid: Option<SolidPlace>,
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
    /// True when some entries belong to solid resources.
    pub has_solid: bool,
    /// The solid resources, in table order (blobs point into them by index).
    pub solid_resources: Vec<SolidResource>,
    /// Entries in the table, all kinds.
    pub entry_count: usize,
    /// Things wimlib would warn about: duplicates, empty entries, surplus metadata.
    pub warnings: Vec<String>,
}

impl BlobTable {
    /// Parses the table's bytes, read from `table_offset` in the WIM (for messages). `header`
    /// gives the version, part number and image count. Refuses a size that is not a whole number
    /// of entries, uncompressed entries whose two sizes differ, metadata with a reference count
    /// other than 1 (corrupt) and metadata in solid resources (unsupported). A table with solid
    /// entries needs the WIM itself: see [`BlobTable::parse_in`]; this refuses it as unsupported.
    pub fn parse(bytes: &[u8], table_offset: u64, header: &Header) -> Result<Self> {
        Self::parse_with(bytes, table_offset, header, &mut |_, table_index, _| {
            Err(Error::Unsupported(format!(
                "blob table entry {table_index} describes a solid resource; reading it needs the WIM (BlobTable::parse_in)"
            )))
        })
    }

    /// [`BlobTable::parse`] for the WIM in `reader`, which also reads the header of each solid
    /// resource and places every blob of a solid run in its resource. Refuses a blob that fits
    /// in none of its run's resources, or that overlaps another blob.
    pub fn parse_in<R: ReadAt + ?Sized>(
        bytes: &[u8],
        table_offset: u64,
        header: &Header,
        reader: &R,
    ) -> Result<Self> {
        Self::parse_with(
            bytes,
            table_offset,
            header,
            &mut |reshdr, table_index, entry_offset| {
                SolidResource::read(reader, reshdr, table_index, entry_offset)
            },
        )
    }

    fn parse_with(
        bytes: &[u8],
        table_offset: u64,
        header: &Header,
        read_solid: &mut dyn FnMut(&ResourceHeader, usize, u64) -> Result<SolidResource>,
    ) -> Result<Self> {
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
        let entry_offset_of = |table_index: usize| {
            u64::try_from(table_index)
                .ok()
                .and_then(|i| i.checked_mul(ENTRY_SIZE))
                .and_then(|o| o.checked_add(table_offset))
                .unwrap_or(u64::MAX)
        };
        let reshdr_of = |disk: &BlobEntryDisk| {
            let mut reshdr = ResourceHeader::from(&disk.reshdr);
            if header.version == VERSION_DEFAULT {
                // The SOLID flag means nothing before version 0xE00; wimlib clears it too.
                reshdr.flags.0 &= !ResourceFlags::SOLID;
            }
            reshdr
        };
        // The resources of the current solid run: a range of `table.solid_resources`.
        let mut run: Option<std::ops::Range<usize>> = None;
        for (table_index, disk) in entries.iter().enumerate() {
            let entry_offset = entry_offset_of(table_index);
            let what = || format!("blob table entry {table_index}");
            let reshdr = reshdr_of(disk);
            let mut entry = BlobEntry {
                table_index,
                reshdr,
                part_number: disk.part_number.get(),
                ref_count: disk.ref_count.get(),
                sha1: Sha1Digest(disk.sha1),
                solid: None,
            };
            if !reshdr.is_solid() {
                run = None;
            }
            if reshdr.is_solid() {
                table.has_solid = true;
                let resources = match &run {
                    Some(r) => r.clone(),
                    None => {
                        // A new run: read the header of each resource it describes.
                        let first = table.solid_resources.len();
                        for (k, d) in entries.iter().enumerate().skip(table_index) {
                            let r = reshdr_of(d);
                            if !r.is_solid() {
                                break;
                            }
                            if r.original_size == SOLID_RESOURCE_MAGIC {
                                let res = read_solid(&r, k, entry_offset_of(k))?;
                                table.solid_resources.push(res);
                            }
                        }
                        let r = first..table.solid_resources.len();
                        run = Some(r.clone());
                        r
                    }
                };
                if reshdr.original_size != SOLID_RESOURCE_MAGIC {
                    let place = place_in_run(
                        table.solid_resources.get(resources.clone()).unwrap_or_default(),
                        resources.start,
                        reshdr.offset,
                        reshdr.size_in_wim,
                    )
                    .ok_or_else(|| {
                        Error::corrupt(
                            what(),
                            entry_offset,
                            format!(
                                "blob of {} bytes at offset {} fits in none of the {} solid resources of its run",
                                reshdr.size_in_wim,
                                reshdr.offset,
                                resources.len()
                            ),
                        )
                    })?;
                    entry.solid = Some(place);
                }
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
        check_solid_overlaps(&table.blobs, table_offset)?;
        Ok(table)
    }
}

/// Places a blob of `size` bytes at `offset` in the uncompressed bytes of a run's `resources`
/// (laid end to end; the first is number `first`): the first resource it fits in.
fn place_in_run(
    resources: &[SolidResource],
    first: usize,
    offset: u64,
    size: u64,
) -> Option<SolidPlace> {
    let mut offset = offset;
    for (k, res) in resources.iter().enumerate() {
        if offset.checked_add(size)? <= res.original_size {
            return Some(SolidPlace {
                resource: first.checked_add(k)?,
                offset_bytes: offset,
            });
        }
        // A blob that starts in this resource but runs past its end fits nowhere.
        offset = offset.checked_sub(res.original_size)?;
    }
    None
}

/// Refuses blobs of one solid resource that overlap (wimlib's `validate_resource`).
fn check_solid_overlaps(blobs: &[BlobEntry], table_offset: u64) -> Result<()> {
    let mut by_resource: BTreeMap<usize, Vec<&BlobEntry>> = BTreeMap::new();
    for b in blobs {
        if let Some(p) = b.solid {
            by_resource.entry(p.resource).or_default().push(b);
        }
    }
    for list in by_resource.values_mut() {
        list.sort_by_key(|b| b.solid.map_or(0, |p| p.offset_bytes));
        let mut end = 0u64;
        for b in list.iter() {
            let start = b.solid.map_or(0, |p| p.offset_bytes);
            if start < end {
                return Err(Error::corrupt(
                    format!("blob table entry {}", b.table_index),
                    u64::try_from(b.table_index)
                        .ok()
                        .and_then(|i| i.checked_mul(ENTRY_SIZE))
                        .and_then(|o| o.checked_add(table_offset))
                        .unwrap_or(u64::MAX),
                    format!(
                        "blob at offset {start} of its solid resource overlaps the previous blob, which ends at {end}"
                    ),
                ));
            }
            end = start.saturating_add(b.size_bytes());
        }
    }
    Ok(())
}

//! The resource tree: type, then name, then language, then a data entry. Only the path to
//! the version resource is walked, so the depth is fixed at three and a hostile tree that
//! points back at itself cannot make us loop.
//!
//! Sources: Microsoft, "PE Format", section "The .rsrc Section" (Resource Directory Table,
//! Resource Directory Entries, Resource Data Entry).

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{at, Error, Result};
use crate::image::PeImage;

/// Resource type RT_VERSION.
pub const RT_VERSION: u32 = 16;
/// The high bit of an entry's data offset: it points at a subdirectory, not a data entry.
const SUBDIRECTORY_BIT: u32 = 0x8000_0000;
/// The high bit of an entry's name field: it is a string offset, not an integer ID.
const NAME_IS_STRING_BIT: u32 = 0x8000_0000;

/// A resource directory table header (16 bytes), followed by its entries.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DirectoryDisk {
    /// +0x00 reserved
    characteristics: U32,
    /// +0x04 creation time
    time_date_stamp: U32,
    /// +0x08 version
    major_version: U16,
    /// +0x0A version
    minor_version: U16,
    /// +0x0C entries named by string, which come first
    named_count: U16,
    /// +0x0E entries named by integer ID
    id_count: U16,
}

/// A resource directory entry (8 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EntryDisk {
    /// +0x00 integer ID, or string offset with the high bit set
    name: U32,
    /// +0x04 offset from the resource table's start; high bit: a subdirectory
    offset: U32,
}

/// A resource data entry (16 bytes): where a resource's bytes are.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DataEntryDisk {
    /// +0x00 RVA of the data (an RVA, unlike the offsets in directory entries)
    data_rva: U32,
    /// +0x04 size of the data in bytes
    size: U32,
    /// +0x08 code page of the data
    code_page: U32,
    /// +0x0C reserved
    reserved: U32,
}

/// The resource table, as the stored bytes from its start to the end of its section.
struct ResourceTable<'a> {
    bytes: &'a [u8],
    file_offset: usize,
}

impl<'a> ResourceTable<'a> {
    /// The entries of the directory at `offset`, as (name, offset) pairs.
    fn entries(&self, offset: u32) -> Result<Vec<(u32, u32)>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let where_ = self.file_offset.saturating_add(start);
        let (dir, rest) = self
            .bytes
            .get(start..)
            .and_then(|b| DirectoryDisk::read_from_prefix(b).ok())
            .ok_or_else(|| {
                Error::corrupt(
                    "resource directory",
                    at(where_),
                    "runs past the end of its section",
                )
            })?;
        let count =
            usize::from(dir.named_count.get()).saturating_add(usize::from(dir.id_count.get()));
        // Each entry is 8 bytes: a count the section cannot hold is refused before allocating.
        if count.saturating_mul(8) > rest.len() {
            return Err(Error::corrupt(
                "resource directory",
                at(where_),
                format!("{count} entries run past the end of its section"),
            ));
        }
        let mut entries = Vec::with_capacity(count);
        let mut rest = rest;
        for _ in 0..count {
            let (entry, tail) = EntryDisk::read_from_prefix(rest)
                .map_err(|_| Error::corrupt("resource directory", at(where_), "entry cut short"))?;
            entries.push((entry.name.get(), entry.offset.get()));
            rest = tail;
        }
        Ok(entries)
    }

    /// The subdirectory that `entry` points at, or an error if it points at data.
    fn subdirectory(&self, entry: (u32, u32), level: &str) -> Result<u32> {
        if entry.1 & SUBDIRECTORY_BIT == 0 {
            return Err(Error::corrupt(
                "resource directory",
                at(self.file_offset),
                format!("the {level} entry points at data, expected a subdirectory"),
            ));
        }
        Ok(entry.1 & !SUBDIRECTORY_BIT)
    }
}

/// Picks the entry with integer ID `id` if there is one, else the first entry.
fn preferred(entries: &[(u32, u32)], id: u32) -> Option<(u32, u32)> {
    entries
        .iter()
        .find(|(name, _)| *name == id)
        .or_else(|| entries.first())
        .copied()
}

/// The bytes of the first RT_VERSION resource (name ID 1 when present, else the first name; the
/// first language), with their file offset; None when the image has no version resource.
pub fn version_resource<'a>(image: &PeImage<'a>) -> Result<Option<(usize, &'a [u8])>> {
    let Some((rva, _)) = image.resource_directory else {
        return Ok(None);
    };
    let (file_offset, bytes) = image.bytes_from_rva(rva).ok_or_else(|| {
        Error::corrupt(
            "resource table",
            0,
            format!("its RVA 0x{rva:x} is stored in no section"),
        )
    })?;
    let table = ResourceTable { bytes, file_offset };
    let types = table.entries(0)?;
    let Some(version) = types
        .iter()
        .find(|(name, _)| name & NAME_IS_STRING_BIT == 0 && *name == RT_VERSION)
        .copied()
    else {
        return Ok(None);
    };
    let names = table.entries(table.subdirectory(version, "RT_VERSION type")?)?;
    let Some(name) = preferred(&names, 1) else {
        return Ok(None);
    };
    let languages = table.entries(table.subdirectory(name, "version name")?)?;
    let Some((_, data_offset)) = languages.first().copied() else {
        return Ok(None);
    };
    if data_offset & SUBDIRECTORY_BIT != 0 {
        return Err(Error::corrupt(
            "resource directory",
            at(file_offset),
            "the version language entry points at a fourth level, expected a data entry",
        ));
    }
    let start = usize::try_from(data_offset).unwrap_or(usize::MAX);
    let (data, _) = bytes
        .get(start..)
        .and_then(|b| DataEntryDisk::read_from_prefix(b).ok())
        .ok_or_else(|| {
            Error::corrupt(
                "resource data entry",
                at(file_offset.saturating_add(start)),
                "runs past the end of its section",
            )
        })?;
    let (data_file_offset, stored) =
        image.bytes_from_rva(data.data_rva.get()).ok_or_else(|| {
            Error::corrupt(
                "resource data entry",
                at(file_offset.saturating_add(start)),
                format!(
                    "data RVA 0x{:x} is stored in no section",
                    data.data_rva.get()
                ),
            )
        })?;
    let size = usize::try_from(data.size.get()).unwrap_or(usize::MAX);
    let resource = stored.get(..size).ok_or_else(|| {
        Error::corrupt(
            "version resource",
            at(data_file_offset),
            format!("{size} bytes, its section stores {}", stored.len()),
        )
    })?;
    Ok(Some((data_file_offset, resource)))
}

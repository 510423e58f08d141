//! The PE headers a version lookup needs: the resource data directory and the section table
//! that maps its relative virtual addresses (RVAs) to file offsets.
//!
//! Sources: Microsoft, "PE Format" (learn.microsoft.com/windows/win32/debug/pe-format): sections
//! "MS-DOS Stub", "Signature", "COFF File Header", "Optional Header Data Directories" and
//! "Section Table".

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{at, Error, Result};

/// Offset of `e_lfanew`, the file offset of the PE signature, in the MS-DOS header.
const E_LFANEW_OFFSET: usize = 0x3C;
/// Data directory index of the resource table.
const RESOURCE_DIRECTORY_INDEX: u32 = 2;
const PE32_MAGIC: u16 = 0x10B;
const PE32_PLUS_MAGIC: u16 = 0x20B;

/// The COFF file header, after the 4-byte "PE\0\0" signature.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CoffHeaderDisk {
    /// +0x00 target machine
    machine: U16,
    /// +0x02 entries in the section table
    section_count: U16,
    /// +0x04 link time
    time_date_stamp: U32,
    /// +0x08 COFF symbol table (0 in images)
    symbol_table: U32,
    /// +0x0C COFF symbols
    symbol_count: U32,
    /// +0x10 bytes of optional header that follow
    optional_header_size: U16,
    /// +0x12 IMAGE_FILE_* flags
    characteristics: U16,
}

/// One section table entry (40 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SectionHeaderDisk {
    /// +0x00 NUL-padded name
    name: [u8; 8],
    /// +0x08 size once loaded
    virtual_size: U32,
    /// +0x0C RVA of the first byte once loaded
    virtual_address: U32,
    /// +0x10 bytes stored in the file
    raw_size: U32,
    /// +0x14 file offset of those bytes
    raw_offset: U32,
    /// +0x18 relocations, line numbers, their counts and flags (unused here)
    rest: [u8; 16],
}

/// Where a section's stored bytes are, in RVA and in the file.
#[derive(Debug, Clone, Copy)]
struct Section {
    rva: u32,
    raw_offset: u32,
    /// Stored bytes, already clipped to the file's end.
    raw_len: u32,
}

/// A PE image's section map and its resource directory location.
#[derive(Debug)]
pub struct PeImage<'a> {
    bytes: &'a [u8],
    sections: Vec<Section>,
    /// RVA and size of the resource table, when the image has one.
    pub resource_directory: Option<(u32, u32)>,
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let raw = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_le_bytes(raw.try_into().ok()?))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let raw = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

impl<'a> PeImage<'a> {
    /// Reads the MS-DOS header, PE signature, COFF header, optional header data directories
    /// and section table. Refuses a file without "MZ" or "PE\0\0" as [`Error::NotPe`], and
    /// headers that point outside the file as [`Error::Corrupt`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.get(..2) != Some(b"MZ") {
            return Err(Error::NotPe("no \"MZ\" signature at offset 0".into()));
        }
        let pe_offset = u32_at(bytes, E_LFANEW_OFFSET)
            .ok_or_else(|| Error::NotPe("file ends inside the MS-DOS header".into()))?;
        let pe_offset = usize::try_from(pe_offset).unwrap_or(usize::MAX);
        let coff_offset = pe_offset.saturating_add(4);
        if bytes.get(pe_offset..coff_offset) != Some(b"PE\0\0") {
            return Err(Error::NotPe(format!(
                "no \"PE\\0\\0\" signature at offset {pe_offset} (e_lfanew)"
            )));
        }
        let (coff, _) = bytes
            .get(coff_offset..)
            .and_then(|rest| CoffHeaderDisk::read_from_prefix(rest).ok())
            .ok_or_else(|| Error::corrupt("COFF header", at(coff_offset), "file ends inside it"))?;
        let optional_offset = coff_offset.saturating_add(20);
        let optional_size = usize::from(coff.optional_header_size.get());
        let optional = optional_offset
            .checked_add(optional_size)
            .and_then(|end| bytes.get(optional_offset..end))
            .ok_or_else(|| {
                Error::corrupt(
                    "optional header",
                    at(optional_offset),
                    format!("{optional_size} bytes run past the end of the file"),
                )
            })?;
        let resource_directory = Self::resource_directory(optional, optional_offset)?;
        let table_offset = optional_offset.saturating_add(optional_size);
        let count = usize::from(coff.section_count.get());
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let offset = i
                .checked_mul(40)
                .and_then(|o| o.checked_add(table_offset))
                .unwrap_or(usize::MAX);
            let (disk, _) = bytes
                .get(offset..)
                .and_then(|rest| SectionHeaderDisk::read_from_prefix(rest).ok())
                .ok_or_else(|| {
                    Error::corrupt(
                        "section table",
                        at(offset),
                        format!("entry {i} of {count} runs past the end of the file"),
                    )
                })?;
            let raw_offset = disk.raw_offset.get();
            let stored = u64::try_from(bytes.len())
                .unwrap_or(u64::MAX)
                .saturating_sub(u64::from(raw_offset));
            sections.push(Section {
                rva: disk.virtual_address.get(),
                raw_offset,
                raw_len: u32::try_from(stored.min(u64::from(disk.raw_size.get())))
                    .unwrap_or(u32::MAX),
            });
        }
        Ok(Self {
            bytes,
            sections,
            resource_directory,
        })
    }

    /// The resource table's (RVA, size) from the data directories, or None when absent.
    fn resource_directory(optional: &[u8], offset: usize) -> Result<Option<(u32, u32)>> {
        let (count_at, directories_at) = match u16_at(optional, 0) {
            Some(PE32_MAGIC) => (92, 96),
            Some(PE32_PLUS_MAGIC) => (108, 112),
            other => {
                return Err(Error::corrupt(
                    "optional header",
                    at(offset),
                    format!("magic {other:x?}, expected 0x10b (PE32) or 0x20b (PE32+)"),
                ))
            }
        };
        let Some(count) = u32_at(optional, count_at) else {
            return Ok(None);
        };
        if count <= RESOURCE_DIRECTORY_INDEX {
            return Ok(None);
        }
        let entry = usize::try_from(RESOURCE_DIRECTORY_INDEX)
            .unwrap_or(usize::MAX)
            .saturating_mul(8)
            .saturating_add(directories_at);
        let rva = u32_at(optional, entry);
        let size = u32_at(optional, entry.saturating_add(4));
        Ok(match (rva, size) {
            (Some(rva), Some(size)) if rva != 0 && size != 0 => Some((rva, size)),
            _ => None,
        })
    }

    /// The stored bytes from `rva` to the end of the section holding it, with their file offset.
    /// None when no section stores that RVA (it is outside every section, or in the part of a
    /// section that exists only in memory).
    pub fn bytes_from_rva(&self, rva: u32) -> Option<(usize, &'a [u8])> {
        let section = self
            .sections
            .iter()
            .find(|s| rva.checked_sub(s.rva).is_some_and(|into| into < s.raw_len))?;
        let into = rva.checked_sub(section.rva)?;
        let start = usize::try_from(section.raw_offset.checked_add(into)?).ok()?;
        let end = usize::try_from(section.raw_offset.checked_add(section.raw_len)?).ok()?;
        Some((start, self.bytes.get(start..end)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn not_pe() {
        assert!(matches!(PeImage::parse(b""), Err(Error::NotPe(_))));
        assert!(matches!(PeImage::parse(b"MZ"), Err(Error::NotPe(_))));
        let mut dos = vec![0u8; 0x40];
        dos[..2].copy_from_slice(b"MZ");
        dos[0x3C..0x40].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(matches!(PeImage::parse(&dos), Err(Error::NotPe(_))));
    }

    #[test]
    fn optional_header_past_the_end() {
        let mut pe = vec![0u8; 0x60];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        pe[0x44 + 16..0x44 + 18].copy_from_slice(&0xF0u16.to_le_bytes());
        let err = PeImage::parse(&pe).unwrap_err().to_string();
        assert!(err.contains("optional header at offset 88"), "{err}");
    }
}

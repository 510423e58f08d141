//! GUID Partition Table: our own validating reader.
//!
//! Every header field is checked before it is used (signature, revision, header size and CRC,
//! the header's own LBA and its partner's, the usable range, where the entry array sits, the entry
//! size and count against [`MAX_ENTRY_BYTES`] and [`MAX_ENTRY_ARRAY_BYTES`], the entry array CRC),
//! so nothing is allocated or read from an unchecked field. The primary header at LBA 1 is
//! preferred; when it is not valid the backup (at the last LBA, or where the primary says) is used
//! and the result says so. The logical sector size (512 or 4096) is found by where "EFI PART" is.
//!
//! Sources: UEFI Specification 2.10, section 5.3 "GUID Partition Table (GPT) Disk Layout"
//! (tables 5-5 "GPT Header", 5-6 "GPT Partition Entry", the validation rules in 5.3.2) and
//! appendix A (GUID text form: the first three fields are stored little-endian).

use std::fmt;

use serde::Serialize;
use winre_readat::ReadAt;
use zerocopy::FromBytes;

use super::layout::{
    GptEntryDisk as EntryDisk, GptHeaderDisk as HeaderDisk,
    GPT_HEADER_CRC_OFFSET as HEADER_CRC_OFFSET,
};

use crate::{Error, Result};

/// Largest entry size accepted. The spec allows any 128 x 2^n; real tables use 128, a few
/// tools 256. A bigger entry is refused rather than trusted.
pub const MAX_ENTRY_BYTES: u32 = 4096;
/// Largest entry array accepted (8192 entries of 128 bytes). Windows and sgdisk write 16 KiB;
/// the cap keeps a hostile count x size from making us read or allocate more.
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1024 * 1024;
/// The only revision defined (1.0), used by every UEFI version so far.
const REVISION_1_0: u32 = 0x0001_0000;
const SIGNATURE: [u8; 8] = *b"EFI PART";
const HEADER_MIN_BYTES: u32 = 92;

pub use crate::guid::Guid;

/// Which of the two header copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The header at LBA 1 and its entry array.
    Primary,
    /// The header at the last LBA and its entry array.
    Backup,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Primary => "primary",
            Source::Backup => "backup",
        })
    }
}

/// A header whose fields passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Which copy this is.
    pub source: Source,
    /// Logical sector size the header was read with.
    pub sector_size: u32,
    /// Where this header is.
    pub my_lba: u64,
    /// Where the other copy is.
    pub alternate_lba: u64,
    /// First LBA a partition may use.
    pub first_usable_lba: u64,
    /// Last LBA a partition may use (inclusive).
    pub last_usable_lba: u64,
    /// The disk's GUID.
    pub disk_guid: Guid,
    /// Start of this copy's entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub entry_count: u32,
    /// Bytes per entry (a multiple of 128, at most [`MAX_ENTRY_BYTES`]).
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc32: u32,
}

impl Header {
    /// Byte offset of this header on the disk.
    pub fn offset(&self) -> u64 {
        self.my_lba.saturating_mul(u64::from(self.sector_size))
    }

    /// Bytes in the entry array (bounded by [`MAX_ENTRY_ARRAY_BYTES`] once validated).
    pub fn entry_array_bytes(&self) -> u64 {
        u64::from(self.entry_count).saturating_mul(u64::from(self.entry_size))
    }

    /// The last LBA of the disk as this header describes it (where the backup header is).
    pub fn claimed_last_lba(&self) -> u64 {
        match self.source {
            Source::Primary => self.alternate_lba,
            Source::Backup => self.my_lba,
        }
    }
}

/// A header sector to validate: its bytes and where they were read.
pub struct HeaderSector<'a> {
    /// The whole sector (at least 92 bytes; `sector_size` long when read from a disk).
    pub bytes: &'a [u8],
    /// The LBA the sector was read from.
    pub lba: u64,
    /// The logical sector size.
    pub sector_size: u32,
    /// Which copy this is supposed to be.
    pub source: Source,
}

impl TryFrom<HeaderSector<'_>> for Header {
    type Error = Error;

    /// The one place header fields are checked (UEFI 5.3.2 plus our size caps).
    fn try_from(s: HeaderSector<'_>) -> Result<Self> {
        let base = s.lba.saturating_mul(u64::from(s.sector_size));
        let what = format!("GPT header ({}, LBA {})", s.source, s.lba);
        let bad = |field: u64, detail: String| {
            Error::corrupt(what.clone(), base.saturating_add(field), detail)
        };

        let (raw, _) = HeaderDisk::read_from_prefix(s.bytes).map_err(|_| {
            bad(
                0,
                format!(
                    "sector of {} bytes is shorter than a GPT header",
                    s.bytes.len()
                ),
            )
        })?;
        if raw.signature != SIGNATURE {
            return Err(bad(
                0x00,
                format!("signature is {:02x?}, expected \"EFI PART\"", raw.signature),
            ));
        }
        let revision = raw.revision.get();
        if revision != REVISION_1_0 {
            return Err(bad(
                0x08,
                format!("revision is 0x{revision:08x}, expected 0x{REVISION_1_0:08x}"),
            ));
        }
        let header_size = raw.header_size.get();
        if !(HEADER_MIN_BYTES..=s.sector_size).contains(&header_size) {
            return Err(bad(
                0x0c,
                format!(
                    "header size is {header_size}, expected {HEADER_MIN_BYTES}..={}",
                    s.sector_size
                ),
            ));
        }
        let covered = usize::try_from(header_size)
            .ok()
            .and_then(|n| s.bytes.get(..n))
            .ok_or_else(|| {
                bad(
                    0x0c,
                    format!(
                        "header size {header_size} is more than the {} bytes read",
                        s.bytes.len()
                    ),
                )
            })?;
        let stored_crc = raw.header_crc32.get();
        let computed_crc = header_crc(covered);
        if stored_crc != computed_crc {
            return Err(bad(
                0x10,
                format!("header CRC32 is 0x{stored_crc:08x}, computed 0x{computed_crc:08x} over {header_size} bytes"),
            ));
        }
        let my_lba = raw.my_lba.get();
        if my_lba != s.lba {
            return Err(bad(
                0x18,
                format!(
                    "my_lba is {my_lba}, but the header was read from LBA {}",
                    s.lba
                ),
            ));
        }
        let alternate_lba = raw.alternate_lba.get();
        let first_usable_lba = raw.first_usable_lba.get();
        let last_usable_lba = raw.last_usable_lba.get();
        if first_usable_lba > last_usable_lba {
            return Err(bad(0x28, format!("first usable LBA {first_usable_lba} is after last usable LBA {last_usable_lba}")));
        }
        // The usable range lies strictly between the two headers.
        let (low_header, high_header) = match s.source {
            Source::Primary => (my_lba, alternate_lba),
            Source::Backup => (alternate_lba, my_lba),
        };
        if s.source == Source::Backup && alternate_lba != 1 {
            return Err(bad(
                0x20,
                format!("alternate_lba of the backup is {alternate_lba}, expected 1"),
            ));
        }
        if s.source == Source::Primary && my_lba != 1 {
            return Err(bad(
                0x18,
                format!("my_lba of the primary is {my_lba}, expected 1"),
            ));
        }
        if first_usable_lba <= low_header {
            return Err(bad(0x28, format!("first usable LBA {first_usable_lba} is not after the primary header (LBA {low_header})")));
        }
        if last_usable_lba >= high_header {
            return Err(bad(0x30, format!("last usable LBA {last_usable_lba} is not before the backup header (LBA {high_header})")));
        }

        let entry_size = raw.entry_size.get();
        if entry_size == 0 || entry_size % 128 != 0 || entry_size > MAX_ENTRY_BYTES {
            return Err(bad(0x54, format!("entry size is {entry_size}, expected a multiple of 128 up to {MAX_ENTRY_BYTES}")));
        }
        let entry_count = raw.entry_count.get();
        let array_bytes = u64::from(entry_count).saturating_mul(u64::from(entry_size));
        if array_bytes > MAX_ENTRY_ARRAY_BYTES {
            return Err(bad(
                0x50,
                format!(
                    "{entry_count} entries of {entry_size} bytes make {array_bytes} bytes, more than the {MAX_ENTRY_ARRAY_BYTES}-byte cap"
                ),
            ));
        }
        let entries_lba = raw.entries_lba.get();
        let array_sectors = array_bytes.div_ceil(u64::from(s.sector_size));
        let array_end_lba = entries_lba.saturating_add(array_sectors); // exclusive
        let (array_ok, expected) = match s.source {
            Source::Primary => (
                entries_lba > my_lba && array_end_lba <= first_usable_lba,
                format!(
                    "between the header (LBA {my_lba}) and the first usable LBA {first_usable_lba}"
                ),
            ),
            Source::Backup => (
                entries_lba > last_usable_lba && array_end_lba <= my_lba,
                format!(
                    "between the last usable LBA {last_usable_lba} and the header (LBA {my_lba})"
                ),
            ),
        };
        if !array_ok {
            return Err(bad(
                0x48,
                format!(
                    "entry array at LBA {entries_lba} ({array_sectors} sectors) is not {expected}"
                ),
            ));
        }

        Ok(Header {
            source: s.source,
            sector_size: s.sector_size,
            my_lba,
            alternate_lba,
            first_usable_lba,
            last_usable_lba,
            disk_guid: Guid(raw.disk_guid),
            entries_lba,
            entry_count,
            entry_size,
            entries_crc32: raw.entries_crc32.get(),
        })
    }
}

/// CRC32 of a header with its CRC field taken as zero.
fn header_crc(covered: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let (before, rest) = covered.split_at(HEADER_CRC_OFFSET.min(covered.len()));
    hasher.update(before);
    hasher.update(&[0u8; 4]);
    hasher.update(rest.get(4..).unwrap_or_default());
    hasher.finalize()
}

/// One used entry of the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based, as Linux and sgdisk number it: the entry's index + 1 (unused entries keep their numbers).
    pub number: u32,
    /// Partition type.
    pub type_guid: Guid,
    /// This partition's own GUID.
    pub unique_guid: Guid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// The name, up to the first NUL (unpaired surrogates become U+FFFD).
    pub name: String,
}

/// A GPT read from a disk.
#[derive(Debug, Clone)]
pub struct Gpt {
    /// The header used.
    pub header: Header,
    /// Used entries, in array order.
    pub entries: Vec<Entry>,
    /// What was found along the way (backup used, backup damaged, ...).
    pub notes: Vec<String>,
}

/// Reads and validates the header at `lba` (with `sector_size`), then its entry array.
pub fn read_copy(disk: &dyn ReadAt, lba: u64, sector_size: u32, source: Source) -> Result<Gpt> {
    if !matches!(sector_size, 512 | 1024 | 2048 | 4096) {
        return Err(Error::Unsupported(format!(
            "GPT with {sector_size}-byte sectors"
        )));
    }
    let offset = lba.checked_mul(u64::from(sector_size)).ok_or_else(|| {
        Error::corrupt(
            format!("GPT header ({source})"),
            u64::MAX,
            format!("LBA {lba} overflows"),
        )
    })?;
    let mut sector = vec![0u8; usize::try_from(sector_size).unwrap_or(512)];
    disk.read_exact_at(offset, &mut sector).map_err(|e| {
        Error::corrupt(
            format!("GPT header ({source}, LBA {lba})"),
            offset,
            format!("cannot be read: {e}"),
        )
    })?;
    let header = Header::try_from(HeaderSector {
        bytes: &sector,
        lba,
        sector_size,
        source,
    })?;
    let entries = read_entries(disk, &header)?;
    Ok(Gpt {
        header,
        entries,
        notes: Vec::new(),
    })
}

/// Reads the entry array `header` points to, checks its CRC and decodes the used entries.
fn read_entries(disk: &dyn ReadAt, header: &Header) -> Result<Vec<Entry>> {
    let what = format!(
        "GPT entry array ({}, LBA {})",
        header.source, header.entries_lba
    );
    let offset = header
        .entries_lba
        .saturating_mul(u64::from(header.sector_size));
    let bytes = header.entry_array_bytes(); // <= MAX_ENTRY_ARRAY_BYTES, checked in try_from
    let end = offset.saturating_add(bytes);
    if end > disk.len() {
        return Err(Error::corrupt(
            what,
            offset,
            format!(
                "{bytes} bytes end at offset {end}, past the end of the image ({} bytes)",
                disk.len()
            ),
        ));
    }
    let len =
        usize::try_from(bytes).map_err(|_| Error::corrupt(what.clone(), offset, "too large"))?;
    let mut array = vec![0u8; len];
    disk.read_exact_at(offset, &mut array)
        .map_err(|e| Error::corrupt(what.clone(), offset, format!("cannot be read: {e}")))?;
    let computed = crc32fast::hash(&array);
    if computed != header.entries_crc32 {
        return Err(Error::corrupt(
            what,
            offset,
            format!(
                "entry array CRC32 is 0x{computed:08x}, the header says 0x{:08x}",
                header.entries_crc32
            ),
        ));
    }
    let entry_size = usize::try_from(header.entry_size).unwrap_or(128);
    let mut entries = Vec::new();
    for (index, chunk) in array.chunks_exact(entry_size).enumerate() {
        let Ok((raw, _)) = EntryDisk::read_from_prefix(chunk) else {
            continue;
        };
        let type_guid = Guid(raw.type_guid);
        if type_guid.is_zero() {
            continue;
        }
        // index < entry_count <= u32::MAX
        let number = u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1);
        entries.push(Entry {
            number,
            type_guid,
            unique_guid: Guid(raw.unique_guid),
            first_lba: raw.first_lba.get(),
            last_lba: raw.last_lba.get(),
            attributes: raw.attributes.get(),
            name: decode_name(&raw.name),
        });
    }
    Ok(entries)
}

/// UTF-16LE, stopping at the first NUL.
fn decode_name(raw: &[u8; 72]) -> String {
    let units = raw
        .chunks_exact(2)
        .map(|p| <[u8; 2]>::try_from(p).map_or(0, u16::from_le_bytes))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// True when the 8 bytes at `offset` are "EFI PART".
fn signature_at(disk: &dyn ReadAt, offset: u64) -> bool {
    let mut sig = [0u8; 8];
    offset.checked_add(8).is_some_and(|end| end <= disk.len())
        && disk.read_exact_at(offset, &mut sig).is_ok()
        && sig == SIGNATURE
}

/// Finds and reads the GPT of `disk`.
///
/// `sector_size_hint` is the container's logical sector size; 512 and 4096 are both tried, the
/// hint first, and the one with "EFI PART" at LBA 1 wins. Returns `Ok(None)` when no header
/// signature is found at LBA 1 or at the last LBA for either size (the disk has no GPT). When the
/// primary header or its entries are not valid the backup is used and a note says so; when
/// neither copy is valid the error names both failures and their offsets.
pub fn read(disk: &dyn ReadAt, sector_size_hint: u32) -> Result<Option<Gpt>> {
    let sizes: [u32; 2] = if sector_size_hint == 4096 {
        [4096, 512]
    } else {
        [512, 4096]
    };
    let disk_len = disk.len();

    for &ss in &sizes {
        let ss64 = u64::from(ss);
        if !signature_at(disk, ss64) {
            continue;
        }
        let primary_err = match read_copy(disk, 1, ss, Source::Primary) {
            Ok(mut gpt) => {
                check_backup(disk, &mut gpt);
                return Ok(Some(gpt));
            }
            Err(e) => e,
        };
        // The backup: at the last LBA, else where the primary's (possibly damaged) header says.
        let last_lba = disk_len.checked_div(ss64).and_then(|n| n.checked_sub(1));
        let mut tried = Vec::new();
        let mut candidates: Vec<u64> = last_lba.into_iter().collect();
        if let Some(alt) = raw_alternate_lba(disk, ss) {
            if Some(alt) != last_lba {
                candidates.push(alt);
            }
        }
        for lba in candidates {
            match read_copy(disk, lba, ss, Source::Backup) {
                Ok(mut gpt) => {
                    gpt.notes.push(format!(
                        "primary GPT is not valid ({primary_err}); using the backup header at LBA {lba} (offset {})",
                        gpt.header.offset()
                    ));
                    return Ok(Some(gpt));
                }
                Err(e) => tried.push(e.to_string()),
            }
        }
        if tried.is_empty() {
            tried.push(format!(
                "the image ({disk_len} bytes) has no room for a backup header"
            ));
        }
        return Err(Error::corrupt(
            "GPT",
            ss64,
            format!(
                "neither header is valid: primary: {primary_err}; backup: {}",
                tried.join("; ")
            ),
        ));
    }

    // No primary signature at either size: the primary may be wiped; look for a backup.
    let mut failures = Vec::new();
    for &ss in &sizes {
        let ss64 = u64::from(ss);
        let Some(last_lba) = disk_len.checked_div(ss64).and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        if last_lba < 2 || !signature_at(disk, last_lba.saturating_mul(ss64)) {
            continue;
        }
        match read_copy(disk, last_lba, ss, Source::Backup) {
            Ok(mut gpt) => {
                gpt.notes.push(format!(
                    "no primary GPT header (no \"EFI PART\" at offset 512 or 4096); using the backup header at LBA {last_lba} (offset {})",
                    gpt.header.offset()
                ));
                return Ok(Some(gpt));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(None)
    } else {
        Err(Error::corrupt(
            "GPT",
            512,
            format!(
                "no primary header (no \"EFI PART\" at offset 512 or 4096) and the backup is not valid: {}",
                failures.join("; ")
            ),
        ))
    }
}

/// The alternate_lba field of the sector at LBA 1, unchecked: only a place to look for the backup.
fn raw_alternate_lba(disk: &dyn ReadAt, sector_size: u32) -> Option<u64> {
    let mut bytes = [0u8; 92];
    disk.read_exact_at(u64::from(sector_size), &mut bytes)
        .ok()?;
    let (raw, _) = HeaderDisk::read_from_prefix(&bytes).ok()?;
    let alt = raw.alternate_lba.get();
    (alt > 1).then_some(alt)
}

/// With a valid primary, looks at the backup too and notes anything wrong with it.
fn check_backup(disk: &dyn ReadAt, gpt: &mut Gpt) {
    let h = &gpt.header;
    let ss = u64::from(h.sector_size);
    let image_last_lba = disk.len().checked_div(ss).unwrap_or(0).saturating_sub(1);
    let alt = h.alternate_lba;
    let alt_offset = alt.saturating_mul(ss);
    if alt_offset.saturating_add(ss) > disk.len() {
        gpt.notes.push(format!(
            "the primary GPT header puts the backup at LBA {alt} (offset {alt_offset}), past the end of the image ({} bytes): the image is shorter than the partition table claims",
            disk.len()
        ));
        return;
    }
    if alt != image_last_lba {
        gpt.notes.push(format!(
            "the backup GPT header is at LBA {alt}, not at the last LBA of the image ({image_last_lba}): the disk was resized or the image is padded"
        ));
    }
    match read_copy(disk, alt, h.sector_size, Source::Backup) {
        Ok(backup) => {
            let b = &backup.header;
            if b.disk_guid != h.disk_guid
                || b.first_usable_lba != h.first_usable_lba
                || b.last_usable_lba != h.last_usable_lba
                || b.entries_crc32 != h.entries_crc32
                || backup.entries != gpt.entries
            {
                gpt.notes.push(format!(
                    "the backup GPT (LBA {alt}) differs from the primary; the primary is used"
                ));
            }
        }
        Err(e) => gpt.notes.push(format!(
            "the backup GPT is not valid ({e}); the primary is used"
        )),
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

    #[test]
    fn guid_text_is_mixed_endian() {
        let g = Guid([
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ]);
        assert_eq!(g.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            "\"c12a7328-f81f-11d2-ba4b-00a0c93ec93b\""
        );
    }

    #[test]
    fn names_stop_at_nul_and_survive_bad_surrogates() {
        let mut raw = [0u8; 72];
        for (i, u) in "Hé".encode_utf16().chain([0, 'x' as u16]).enumerate() {
            raw[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_name(&raw), "Hé");
        let mut raw = [0u8; 72];
        raw[0..2].copy_from_slice(&0xd800u16.to_le_bytes());
        assert_eq!(decode_name(&raw), "\u{fffd}");
    }

    #[test]
    fn header_crc_skips_its_own_field() {
        let mut h = [7u8; 92];
        let a = header_crc(&h);
        h[0x10..0x14].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(header_crc(&h), a);
        h[0x14] = 0;
        assert_ne!(header_crc(&h), a);
    }
}

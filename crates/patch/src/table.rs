//! Partition table edits: a partition's new first and last sector, written into the GPT
//! (primary and backup headers and entry arrays, with their CRC32s; the backup moved to the
//! disk's end when the disk grows, and the protective MBR resized) or into an MBR entry.
//! Everything else in an entry (type, unique GUID, attributes, name) is kept byte for byte.
//!
//! Sources: UEFI Specification 2.10, 5.3 (GPT header, entry, CRC rules), 5.2.3 (protective
//! MBR); the MBR partition entry layout (start CHS, type, end CHS, first LBA, sectors) as in
//! Microsoft's "Master Boot Record" documentation.

use winre_readat::ReadAt;

use std::mem::{offset_of, size_of};

use winre_disk::partition::layout::{
    mbr_entry_offset, GptEntryDisk, GptHeaderDisk, MbrEntryDisk, GPT_HEADER_CRC_OFFSET,
    MBR_SIGNATURE_OFFSET,
};
use winre_disk::partition::mbr::PROTECTIVE_TYPE;
use zerocopy::FromBytes;

use crate::bytes::{add, div, mul, sub, usize_of};
use crate::error::{Error, Result};
use crate::Write;

/// Largest entry array we rewrite (as the reader's cap).
const MAX_ENTRY_ARRAY_BYTES: u64 = 1024 * 1024;

/// A partition's new extent, in sectors (last is inclusive).
#[derive(Debug, Clone, Copy)]
pub struct NewExtent {
    /// Partition number (GPT entry index + 1, or MBR slot + 1).
    pub number: u32,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
}

/// Rewrites the GPT of `disk` (whose size may be about to become `new_disk_bytes`) with the
/// partitions' new extents. Reads the primary header and its entries (the primary must be
/// valid: a damaged one is for sgdisk to repair first). The fields are winre-disk's layout
/// definitions ([`GptHeaderDisk`], [`GptEntryDisk`]), the ones its reader uses.
pub fn gpt_writes(
    disk: &dyn ReadAt,
    sector: u64,
    new_disk_bytes: u64,
    extents: &[NewExtent],
) -> Result<Vec<Write>> {
    let what = "GPT header";
    let field = |offset: usize| sector.saturating_add(offset as u64);
    let mut header = vec![0u8; usize_of(sector, what)?];
    disk.read_exact_at(sector, &mut header)?;
    let (h, _) = GptHeaderDisk::read_from_prefix(&header)
        .map_err(|_| Error::corrupt(what, sector, "shorter than a GPT header"))?;
    if h.signature != *b"EFI PART" {
        return Err(Error::corrupt(
            what,
            sector,
            "no EFI PART signature at LBA 1",
        ));
    }
    let header_size = h.header_size.get();
    if !(92..=512).contains(&header_size) || u64::from(header_size) > sector {
        return Err(Error::corrupt(
            what,
            field(offset_of!(GptHeaderDisk, header_size)),
            format!("header size {header_size}"),
        ));
    }
    let hs = header_size as usize;
    if header_crc(&header, hs)? != h.header_crc32.get() {
        return Err(Error::corrupt(
            what,
            field(GPT_HEADER_CRC_OFFSET),
            "primary header CRC32 is wrong; repair the table (sgdisk) first",
        ));
    }
    let entries_lba = h.entries_lba.get();
    let count = u64::from(h.entry_count.get());
    let entry_size = u64::from(h.entry_size.get());
    let array_bytes = mul(count, entry_size, what)?;
    if entry_size < size_of::<GptEntryDisk>() as u64 || array_bytes > MAX_ENTRY_ARRAY_BYTES {
        return Err(Error::corrupt(
            what,
            field(offset_of!(GptHeaderDisk, entry_count)),
            format!("{count} entries of {entry_size} bytes"),
        ));
    }
    let mut entries = vec![0u8; usize_of(array_bytes, what)?];
    disk.read_exact_at(mul(entries_lba, sector, what)?, &mut entries)?;
    if crc32fast::hash(&entries) != h.entries_crc32.get() {
        return Err(Error::corrupt(
            "GPT entry array",
            entries_lba.saturating_mul(sector),
            "CRC32 is wrong; repair the table first",
        ));
    }
    let entry_sectors = array_bytes.div_ceil(sector);
    let disk_sectors = div(new_disk_bytes, sector, what)?;
    let last_lba = sub(disk_sectors, 1, "disk size")?;
    let backup_entries_lba = sub(last_lba, entry_sectors, "disk size")?;
    let old_last_usable = h.last_usable_lba.get();
    let old_disk_sectors = div(disk.len(), sector, what)?;
    // Grown: the usable area reaches the new backup array; otherwise it stays.
    let last_usable = if disk_sectors > old_disk_sectors {
        sub(backup_entries_lba, 1, "disk size")?
    } else {
        old_last_usable.min(sub(backup_entries_lba, 1, "disk size")?)
    };
    let first_usable = h.first_usable_lba.get();
    for e in extents {
        let index = u64::from(
            e.number
                .checked_sub(1)
                .ok_or_else(|| Error::corrupt(what, 0, "partition 0"))?,
        );
        if index >= count {
            return Err(Error::corrupt(
                what,
                0,
                format!("no entry for partition {}", e.number),
            ));
        }
        if e.first_lba < first_usable || e.last_lba > last_usable || e.last_lba < e.first_lba {
            return Err(Error::corrupt(
                "new partition extent",
                0,
                format!("partition {} at sectors {}..={} outside the usable {first_usable}..={last_usable}", e.number, e.first_lba, e.last_lba),
            ));
        }
        let at = usize_of(mul(index, entry_size, what)?, what)?;
        let (entry, _) = entries
            .get_mut(at..)
            .and_then(|rest| GptEntryDisk::mut_from_prefix(rest).ok())
            .ok_or_else(|| Error::corrupt("GPT entry array", at as u64, "entry cut short"))?;
        entry.first_lba.set(e.first_lba);
        entry.last_lba.set(e.last_lba);
    }
    let entries_crc = crc32fast::hash(&entries);
    let copy = |my_lba: u64, alternate_lba: u64, entries_at: u64| -> Result<Vec<u8>> {
        let mut bytes = header.clone();
        let (h, _) = GptHeaderDisk::mut_from_prefix(&mut bytes)
            .map_err(|_| Error::corrupt(what, sector, "shorter than a GPT header"))?;
        h.my_lba.set(my_lba);
        h.alternate_lba.set(alternate_lba);
        h.last_usable_lba.set(last_usable);
        h.entries_lba.set(entries_at);
        h.entries_crc32.set(entries_crc);
        let crc = header_crc(&bytes, hs)?;
        let (h, _) = GptHeaderDisk::mut_from_prefix(&mut bytes)
            .map_err(|_| Error::corrupt(what, sector, "shorter than a GPT header"))?;
        h.header_crc32.set(crc);
        Ok(bytes)
    };
    let primary = copy(1, last_lba, entries_lba)?;
    let backup = copy(last_lba, 1, backup_entries_lba)?;
    let mut writes = vec![
        Write {
            offset: mul(entries_lba, sector, what)?,
            bytes: entries.clone(),
        },
        Write {
            offset: sector,
            bytes: primary,
        },
        Write {
            offset: mul(backup_entries_lba, sector, what)?,
            bytes: entries,
        },
        Write {
            offset: mul(last_lba, sector, what)?,
            bytes: backup,
        },
    ];
    if disk_sectors != old_disk_sectors {
        // The protective MBR's 0xEE entry covers the disk (capped at 2^32 - 1 sectors).
        let mut mbr = vec![0u8; 512];
        disk.read_exact_at(0, &mut mbr)?;
        let protective = mbr
            .get_mut(mbr_entry_offset(0)..)
            .and_then(|rest| MbrEntryDisk::mut_from_prefix(rest).ok())
            .map(|(entry, _)| entry)
            .filter(|entry| entry.type_byte == PROTECTIVE_TYPE);
        if let Some(entry) = protective {
            entry
                .sectors
                .set(u32::try_from(last_lba).unwrap_or(u32::MAX));
            writes.push(Write {
                offset: 0,
                bytes: mbr,
            });
        }
    }
    Ok(writes)
}

/// CRC32 of the first `header_size` bytes of a GPT header with its CRC field zeroed.
fn header_crc(header: &[u8], header_size: usize) -> Result<u32> {
    let mut covered = header
        .get(..header_size)
        .ok_or_else(|| Error::corrupt("GPT header", 0, "shorter than its header size"))?
        .to_vec();
    let crc_field = GPT_HEADER_CRC_OFFSET..GPT_HEADER_CRC_OFFSET.saturating_add(4);
    if let Some(field) = covered.get_mut(crc_field) {
        field.fill(0);
    }
    Ok(crc32fast::hash(&covered))
}

/// CHS of `lba` for the 255-head, 63-sector geometry, saturated at 1023/254/63 as Windows does.
fn chs(lba: u64) -> [u8; 3] {
    let c = lba / (255 * 63);
    if c > 1023 {
        return [254, 0xFF, 0xFF];
    }
    let h = (lba / 63) % 255;
    let s = (lba % 63).saturating_add(1);
    [
        h as u8,
        (s as u8) | (((c >> 2) & 0xC0) as u8),
        (c & 0xFF) as u8,
    ]
}

/// Rewrites primary MBR entries (numbers 1-4) with new extents ([`MbrEntryDisk`], the reader's
/// layout).
pub fn mbr_writes(disk: &dyn ReadAt, extents: &[NewExtent]) -> Result<Vec<Write>> {
    let what = "MBR";
    let mut mbr = vec![0u8; 512];
    disk.read_exact_at(0, &mut mbr)?;
    if mbr.get(MBR_SIGNATURE_OFFSET..MBR_SIGNATURE_OFFSET.saturating_add(2))
        != Some([0x55, 0xAA].as_slice())
    {
        return Err(Error::corrupt(
            what,
            MBR_SIGNATURE_OFFSET as u64,
            "no 55 AA signature",
        ));
    }
    for e in extents {
        if !(1..=4).contains(&e.number) {
            return Err(Error::Unsupported(format!(
                "editing logical partition {}",
                e.number
            )));
        }
        let at = mbr_entry_offset(e.number.saturating_sub(1) as usize);
        let first = u32::try_from(e.first_lba)
            .map_err(|_| Error::Unsupported("an MBR partition past 2 TiB".into()))?;
        let sectors = sub(add(e.last_lba, 1, what)?, e.first_lba, what)?;
        let sectors = u32::try_from(sectors)
            .map_err(|_| Error::Unsupported("an MBR partition of 2 TiB or more".into()))?;
        let (entry, _) = mbr
            .get_mut(at..)
            .and_then(|rest| MbrEntryDisk::mut_from_prefix(rest).ok())
            .ok_or_else(|| Error::corrupt(what, at as u64, "entry cut short"))?;
        entry.chs_first = chs(e.first_lba);
        entry.chs_last = chs(e.last_lba);
        entry.first_lba.set(first);
        entry.sectors.set(sectors);
    }
    Ok(vec![Write {
        offset: 0,
        bytes: mbr,
    }])
}

//! Partition table edits: a partition's new first and last sector, written into the GPT
//! (primary and backup headers and entry arrays, with their CRC32s; the backup moved to the
//! disk's end when the disk grows, and the protective MBR resized) or into an MBR entry.
//! Everything else in an entry (type, unique GUID, attributes, name) is kept byte for byte.
//!
//! Sources: UEFI Specification 2.10, 5.3 (GPT header, entry, CRC rules), 5.2.3 (protective
//! MBR); the MBR partition entry layout (start CHS, type, end CHS, first LBA, sectors) as in
//! Microsoft's "Master Boot Record" documentation.

use winre_readat::ReadAt;

use crate::bytes::{add, div, mul, put, put_u32, put_u64, sub, u32_at, u64_at, usize_of};
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
/// valid: a damaged one is for sgdisk to repair first).
pub fn gpt_writes(
    disk: &dyn ReadAt,
    sector: u64,
    new_disk_bytes: u64,
    extents: &[NewExtent],
) -> Result<Vec<Write>> {
    let what = "GPT header";
    let mut header = vec![0u8; usize_of(sector, what)?];
    disk.read_exact_at(sector, &mut header)?;
    if header.get(..8) != Some(b"EFI PART".as_slice()) {
        return Err(Error::corrupt(
            what,
            sector,
            "no EFI PART signature at LBA 1",
        ));
    }
    let header_size = u32_at(&header, 0x0C, what)?;
    if !(92..=512).contains(&header_size) || u64::from(header_size) > sector {
        return Err(Error::corrupt(
            what,
            sector.saturating_add(0x0C),
            format!("header size {header_size}"),
        ));
    }
    let hs = header_size as usize;
    let mut check = header.get(..hs).unwrap_or_default().to_vec();
    put_u32(&mut check, 0x10, 0, what)?;
    if crc32fast::hash(&check) != u32_at(&header, 0x10, what)? {
        return Err(Error::corrupt(
            what,
            sector.saturating_add(0x10),
            "primary header CRC32 is wrong; repair the table (sgdisk) first",
        ));
    }
    let entries_lba = u64_at(&header, 0x48, what)?;
    let count = u64::from(u32_at(&header, 0x50, what)?);
    let entry_size = u64::from(u32_at(&header, 0x54, what)?);
    let array_bytes = mul(count, entry_size, what)?;
    if entry_size < 128 || array_bytes > MAX_ENTRY_ARRAY_BYTES {
        return Err(Error::corrupt(
            what,
            sector.saturating_add(0x50),
            format!("{count} entries of {entry_size} bytes"),
        ));
    }
    let mut entries = vec![0u8; usize_of(array_bytes, what)?];
    disk.read_exact_at(mul(entries_lba, sector, what)?, &mut entries)?;
    if crc32fast::hash(&entries) != u32_at(&header, 0x58, what)? {
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
    let old_last_usable = u64_at(&header, 0x30, what)?;
    let old_disk_sectors = div(disk.len(), sector, what)?;
    // Grown: the usable area reaches the new backup array; otherwise it stays.
    let last_usable = if disk_sectors > old_disk_sectors {
        sub(backup_entries_lba, 1, "disk size")?
    } else {
        old_last_usable.min(sub(backup_entries_lba, 1, "disk size")?)
    };
    let first_usable = u64_at(&header, 0x28, what)?;
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
        put_u64(&mut entries, at.saturating_add(0x20), e.first_lba, what)?;
        put_u64(&mut entries, at.saturating_add(0x28), e.last_lba, what)?;
    }
    let entries_crc = crc32fast::hash(&entries);
    let seal = |h: &mut Vec<u8>| -> Result<()> {
        put_u32(h, 0x58, entries_crc, what)?;
        put_u32(h, 0x10, 0, what)?;
        let crc = crc32fast::hash(h.get(..hs).unwrap_or_default());
        put_u32(h, 0x10, crc, what)
    };
    let mut primary = header.clone();
    put_u64(&mut primary, 0x20, last_lba, what)?;
    put_u64(&mut primary, 0x30, last_usable, what)?;
    seal(&mut primary)?;
    let mut backup = header;
    put_u64(&mut backup, 0x18, last_lba, what)?;
    put_u64(&mut backup, 0x20, 1, what)?;
    put_u64(&mut backup, 0x30, last_usable, what)?;
    put_u64(&mut backup, 0x48, backup_entries_lba, what)?;
    seal(&mut backup)?;
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
        if mbr.get(0x1C2) == Some(&0xEE) {
            let sectors = u32::try_from(last_lba).unwrap_or(u32::MAX);
            put_u32(&mut mbr, 0x1CA, sectors, "protective MBR")?;
            writes.push(Write {
                offset: 0,
                bytes: mbr,
            });
        }
    }
    Ok(writes)
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

/// Rewrites primary MBR entries (numbers 1-4) with new extents.
pub fn mbr_writes(disk: &dyn ReadAt, extents: &[NewExtent]) -> Result<Vec<Write>> {
    let what = "MBR";
    let mut mbr = vec![0u8; 512];
    disk.read_exact_at(0, &mut mbr)?;
    if mbr.get(510..512) != Some([0x55, 0xAA].as_slice()) {
        return Err(Error::corrupt(what, 510, "no 55 AA signature"));
    }
    for e in extents {
        if !(1..=4).contains(&e.number) {
            return Err(Error::Unsupported(format!(
                "editing logical partition {}",
                e.number
            )));
        }
        let at =
            0x1BEusize.saturating_add(16usize.saturating_mul(e.number.saturating_sub(1) as usize));
        let first = u32::try_from(e.first_lba)
            .map_err(|_| Error::Unsupported("an MBR partition past 2 TiB".into()))?;
        let sectors = sub(add(e.last_lba, 1, what)?, e.first_lba, what)?;
        let sectors = u32::try_from(sectors)
            .map_err(|_| Error::Unsupported("an MBR partition of 2 TiB or more".into()))?;
        put(&mut mbr, at.saturating_add(1), &chs(e.first_lba), what)?;
        put(&mut mbr, at.saturating_add(5), &chs(e.last_lba), what)?;
        put_u32(&mut mbr, at.saturating_add(8), first, what)?;
        put_u32(&mut mbr, at.saturating_add(12), sectors, what)?;
    }
    Ok(vec![Write {
        offset: 0,
        bytes: mbr,
    }])
}

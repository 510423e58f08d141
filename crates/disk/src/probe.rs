//! Which file system a partition holds, from its first sector.
//!
//! Only the boot sector is read (512 bytes), so probing every partition of a disk is cheap.
//! BitLocker is recognised before NTFS: an encrypted volume must be named as such, since nothing
//! inside it can be read.
//!
//! Sources: Microsoft, "FAT: General Overview of On-Disk Format" (fatgen103, 2000: the FAT type is
//! decided by the count of clusters alone, < 4085 FAT12, < 65525 FAT16, else FAT32);
//! Microsoft, "exFAT file system specification" (section 3.1: "EXFAT   " at offset 3);
//! the NTFS boot sector ("NTFS    " OEM ID at 3, BPB bytes per sector at 0x0B) as documented in
//! the Linux-NTFS project's NTFS documentation; BitLocker's "-FVE-FS-" signature at offset 3 and
//! ReFS's "ReFS" at 3 with "FSRS" at 0x10 as documented by libyal (libbde, libfsrefs format notes).

use serde::Serialize;
use winre_readat::ReadAt;

/// A file system found by its boot sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    /// NTFS.
    Ntfs,
    /// FAT12.
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32.
    Fat32,
    /// exFAT.
    Exfat,
    /// ReFS.
    Refs,
    /// A BitLocker-encrypted volume (Windows Vista and later format).
    Bitlocker,
    /// Nothing recognised (or the first sector could not be read).
    Unknown,
}

impl Filesystem {
    /// The lowercase name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Filesystem::Ntfs => "ntfs",
            Filesystem::Fat12 => "fat12",
            Filesystem::Fat16 => "fat16",
            Filesystem::Fat32 => "fat32",
            Filesystem::Exfat => "exfat",
            Filesystem::Refs => "refs",
            Filesystem::Bitlocker => "bitlocker",
            Filesystem::Unknown => "unknown",
        }
    }
}

/// Bytes read from the start of a volume.
pub const PROBE_BYTES: usize = 512;

/// Reads the first sector of `volume` and names its file system. A volume too short to hold a
/// boot sector, or one whose first sector cannot be read, is `Unknown`.
pub fn probe(volume: &dyn ReadAt) -> std::io::Result<Filesystem> {
    if volume.len() < PROBE_BYTES as u64 {
        return Ok(Filesystem::Unknown);
    }
    let mut sector = [0u8; PROBE_BYTES];
    volume.read_exact_at(0, &mut sector)?;
    Ok(probe_boot_sector(&sector))
}

/// Names the file system whose boot sector is `sector` (at least 512 bytes).
pub fn probe_boot_sector(sector: &[u8]) -> Filesystem {
    let oem = sector.get(3..11).unwrap_or_default();
    if oem == b"-FVE-FS-" {
        return Filesystem::Bitlocker;
    }
    if oem == b"NTFS    " && plausible_bytes_per_sector(u16_at(sector, 0x0b)) {
        return Filesystem::Ntfs;
    }
    if oem == b"EXFAT   " {
        return Filesystem::Exfat;
    }
    if oem.get(..4) == Some(b"ReFS") && sector.get(0x10..0x14) == Some(b"FSRS") {
        return Filesystem::Refs;
    }
    fat_type(sector).unwrap_or(Filesystem::Unknown)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at.saturating_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

fn plausible_bytes_per_sector(n: u16) -> bool {
    matches!(n, 256 | 512 | 1024 | 2048 | 4096)
}

/// FAT12/16/32 by fatgen103's rules: a sane BPB, then the cluster count decides.
fn fat_type(b: &[u8]) -> Option<Filesystem> {
    // BPB offsets (fatgen103): 0x00 jump, 0x0B bytes/sector, 0x0D sectors/cluster, 0x0E reserved
    // sectors, 0x10 FAT count, 0x11 root entries, 0x13 total sectors (16), 0x15 media,
    // 0x16 FAT size (16), 0x20 total sectors (32), 0x24 FAT size (32, FAT32 only).
    let jump = b.first().copied()?;
    let jump_ok = jump == 0xe9 || (jump == 0xeb && b.get(2).copied() == Some(0x90));
    if !jump_ok || b.get(510..512) != Some(&[0x55, 0xaa][..]) {
        return None;
    }
    let bytes_per_sector = u32::from(u16_at(b, 0x0b));
    let sectors_per_cluster = u32::from(*b.get(0x0d)?);
    let reserved = u32::from(u16_at(b, 0x0e));
    let fats = u32::from(*b.get(0x10)?);
    let root_entries = u32::from(u16_at(b, 0x11));
    let media = *b.get(0x15)?;
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        || !sectors_per_cluster.is_power_of_two()
        || sectors_per_cluster > 128
        || reserved == 0
        || fats == 0
        || !(media == 0xf0 || media >= 0xf8)
    {
        return None;
    }
    let fat_size = match u16_at(b, 0x16) {
        0 => u32_at(b, 0x24),
        n => u32::from(n),
    };
    let total = match u16_at(b, 0x13) {
        0 => u32_at(b, 0x20),
        n => u32::from(n),
    };
    let root_sectors = root_entries.checked_mul(32)?.div_ceil(bytes_per_sector);
    let meta = reserved
        .checked_add(fats.checked_mul(fat_size)?)?
        .checked_add(root_sectors)?;
    let clusters = total.checked_sub(meta)?.checked_div(sectors_per_cluster)?;
    Some(if clusters < 4085 {
        Filesystem::Fat12
    } else if clusters < 65525 {
        Filesystem::Fat16
    } else {
        Filesystem::Fat32
    })
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

    fn sector_with(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[at..at + bytes.len()].copy_from_slice(bytes);
        s
    }

    #[test]
    fn signatures() {
        // Hand-made boot sectors with the documented signatures (no tool here writes these).
        assert_eq!(
            probe_boot_sector(&sector_with(3, b"-FVE-FS-")),
            Filesystem::Bitlocker
        );
        assert_eq!(
            probe_boot_sector(&sector_with(3, b"EXFAT   ")),
            Filesystem::Exfat
        );
        let mut refs = sector_with(3, b"ReFS\0\0\0\0");
        refs[0x10..0x14].copy_from_slice(b"FSRS");
        assert_eq!(probe_boot_sector(&refs), Filesystem::Refs);
        let mut ntfs = sector_with(3, b"NTFS    ");
        assert_eq!(
            probe_boot_sector(&ntfs),
            Filesystem::Unknown,
            "NTFS needs a sane BPB"
        );
        ntfs[0x0b..0x0d].copy_from_slice(&512u16.to_le_bytes());
        assert_eq!(probe_boot_sector(&ntfs), Filesystem::Ntfs);
        assert_eq!(probe_boot_sector(&[0u8; 512]), Filesystem::Unknown);
        assert_eq!(probe_boot_sector(&[0xffu8; 512]), Filesystem::Unknown);
        assert_eq!(probe_boot_sector(&[]), Filesystem::Unknown);
    }

    #[test]
    fn short_volume_is_unknown() {
        assert_eq!(probe(&vec![0u8; 100]).unwrap(), Filesystem::Unknown);
    }
}

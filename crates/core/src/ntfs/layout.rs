//! The NTFS boot sector as stored, one definition shared by the reader ([`super::NtfsVolume`]
//! checks its fields before the `ntfs` crate opens the volume) and the writer (winre-patch's
//! resize reads the geometry from it and sets the total sectors and hidden sectors), so each
//! field's offset is written down once.
//!
// Sources: Linux-NTFS documentation, "Files - $Boot" (flatcap.github.io/linux-ntfs); [MS-FSCC]
// does not document the boot sector; ntfs-3g's layout.h names the same fields.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The OEM ID at +0x03 of every NTFS boot sector.
pub const NTFS_OEM_ID: [u8; 8] = *b"NTFS    ";

/// The first 0x54 bytes of the NTFS boot sector (the BIOS parameter block and the NTFS
/// extension); boot code and the 0x55AA mark follow.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct BootSectorDisk {
    /// +0x00 jump instruction
    pub jump: [u8; 3],
    /// +0x03 "NTFS    "
    pub oem_id: [u8; 8],
    /// +0x0B bytes per sector: 512, 1024, 2048 or 4096
    pub bytes_per_sector: U16,
    /// +0x0D sectors per cluster; above 0x80 it is 2^(256 - value)
    pub sectors_per_cluster: u8,
    /// +0x0E must be zero on NTFS
    pub reserved_sectors: U16,
    /// +0x10 FAT fields, zero on NTFS
    pub unused_fat: [u8; 5],
    /// +0x15 media descriptor
    pub media: u8,
    /// +0x16 zero on NTFS
    pub unused_sectors_per_fat: U16,
    /// +0x18
    pub sectors_per_track: U16,
    /// +0x1A
    pub heads: U16,
    /// +0x1C the partition's first sector on the disk
    pub hidden_sectors: U32,
    /// +0x20 zero on NTFS
    pub unused_large_sectors: U32,
    /// +0x24 drive number, flags, extended signature 0x80, reserved
    pub unused_drive: [u8; 4],
    /// +0x28 sectors of the volume (the partition's sectors minus the backup boot sector's)
    pub total_sectors: U64,
    /// +0x30 first cluster of $MFT
    pub mft_lcn: U64,
    /// +0x38 first cluster of $MFTMirr
    pub mftmirr_lcn: U64,
    /// +0x40 clusters per MFT record; negative: 2^-value bytes
    pub clusters_per_record: u8,
    /// +0x41
    pub reserved_1: [u8; 3],
    /// +0x44 clusters per index record, same encoding
    pub clusters_per_index_record: u8,
    /// +0x45
    pub reserved_2: [u8; 3],
    /// +0x48
    pub serial_number: U64,
    /// +0x50
    pub checksum: U32,
}

impl BootSectorDisk {
    /// Sectors per cluster, decoded (`None` for 0 or a shift past 63).
    pub fn sectors_per_cluster(&self) -> Option<u64> {
        let raw = self.sectors_per_cluster;
        if raw > 0x80 {
            1u64.checked_shl(256u32.saturating_sub(u32::from(raw)))
        } else {
            (raw != 0).then_some(u64::from(raw))
        }
    }

    /// Bytes per MFT record, decoded from +0x40 for `cluster_bytes` clusters.
    pub fn record_bytes(&self, cluster_bytes: u64) -> Option<u64> {
        let raw = self.clusters_per_record as i8;
        if raw < 0 {
            1u64.checked_shl(u32::from(raw.unsigned_abs()))
        } else {
            u64::from(raw.unsigned_abs()).checked_mul(cluster_bytes)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn fields_sit_where_the_documentation_says() {
        assert_eq!(size_of::<BootSectorDisk>(), 0x54);
        assert_eq!(offset_of!(BootSectorDisk, bytes_per_sector), 0x0B);
        assert_eq!(offset_of!(BootSectorDisk, hidden_sectors), 0x1C);
        assert_eq!(offset_of!(BootSectorDisk, total_sectors), 0x28);
        assert_eq!(offset_of!(BootSectorDisk, mftmirr_lcn), 0x38);
        assert_eq!(offset_of!(BootSectorDisk, clusters_per_record), 0x40);
        assert_eq!(offset_of!(BootSectorDisk, checksum), 0x50);
    }
}

//! VMware SESparse extents (ESXi 6.5+ / VMFS-6 snapshots and disks over 2 TiB): the layout of
//! their headers and table entries. The tables are read by the sparse extent code of the parent
//! module, with 64-bit entries.
//!
//! The format is not documented by VMware. Layout as QEMU's block/vmdk.c reads it (and Fox-IT
//! Dissect's vmdk parser): a 512-byte constant header at offset 0 whose fields are 64-bit
//! little-endian, sizes and offsets in 512-byte sectors; a volatile header; a grain directory of
//! 64-bit entries (0 = no grain table, 0x1000_0000_xxxx_xxxx = grain table number x); grain
//! tables of 4096 64-bit entries whose top nibble is the grain's state (0 never written,
//! 1 unmapped, 2 zero, 3 stored; for 3 the grain number is bits 0..48 shifted up by 12 plus bits
//! 48..60). QEMU accepts only version 0x2_0000_0001 with 4 KiB grains, 64-sector grain tables,
//! no flags and a volatile header that asks for no journal replay; so do we. Our own code.

use winre_readat::ReadAt;
use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::{read_structure, GrainLocation, SECTOR_BYTES};
use crate::{Error, Result};

/// The first 8 bytes of an SESparse extent: the constant header's magic 0xCAFEBABE (u64, LE).
pub(crate) const MAGIC: [u8; 8] = 0xcafe_babe_u64.to_le_bytes();
const VOLATILE_MAGIC: u64 = 0xcafe_cafe;
const VERSION: u64 = 0x2_0000_0001;
/// Grain size and grain table size in sectors, the only ones in use.
const GRAIN_SECTORS: u64 = 8;
const GT_SECTORS: u64 = 64;
/// Entries of a grain table (64 sectors of 8-byte entries).
pub(crate) const GTES_PER_GT: u32 = 4096;

/// Grain directory entry of an allocated grain table: this in the top 32 bits.
const GDE_ALLOCATED: u64 = 0x1000_0000;
/// The grain table entry's state, in its top nibble.
const GTE_STATE_SHIFT: u32 = 60;
const GTE_UNALLOCATED: u64 = 0;
const GTE_UNMAPPED: u64 = 1;
const GTE_ZERO: u64 = 2;
const GTE_STORED: u64 = 3;

/// The constant header, at offset 0 (512 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ConstHeaderDisk {
    magic: U64,                  // +0x000 0xCAFEBABE
    version: U64,                // +0x008 0x2_0000_0001
    capacity_sectors: U64,       // +0x010 guest size
    grain_sectors: U64,          // +0x018 8
    grain_table_sectors: U64,    // +0x020 64
    flags: U64,                  // +0x028 0
    reserved: [U64; 4],          // +0x030
    volatile_header_sector: U64, // +0x050
    volatile_header_sectors: U64,
    journal_header_sector: U64, // +0x060
    journal_header_sectors: U64,
    journal_sector: U64, // +0x070
    journal_sectors: U64,
    grain_dir_sector: U64, // +0x080
    grain_dir_sectors: U64,
    grain_tables_sector: U64, // +0x090
    grain_tables_sectors: U64,
    free_bitmap_sector: U64, // +0x0A0
    free_bitmap_sectors: U64,
    backmap_sector: U64, // +0x0B0
    backmap_sectors: U64,
    grains_sector: U64, // +0x0C0
    grains_sectors: U64,
    _pad: [u8; 304], // +0x0D0
}

/// The volatile header (512 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct VolatileHeaderDisk {
    magic: U64, // 0xCAFECAFE
    free_gt_number: U64,
    next_txn_seq_number: U64,
    replay_journal: U64, // non-zero: the journal must be replayed first
    _pad: [u8; 480],
}

/// A checked SESparse header: where the tables and grains are, in bytes.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) capacity_bytes: u64,
    pub(crate) grain_bytes: u64,
    pub(crate) gd_at: u64,
    pub(crate) gd_bytes: u64,
    pub(crate) tables_at: u64,
    pub(crate) grains_at: u64,
}

fn bytes_of(sectors: u64, what: &str, name: &str) -> Result<u64> {
    sectors.checked_mul(SECTOR_BYTES).ok_or_else(|| {
        Error::corrupt(
            format!("SESparse header of {name}"),
            0,
            format!("{what} at sector {sectors} is past any file"),
        )
    })
}

impl Header {
    /// Reads and checks both headers of the SESparse extent `file` (named `name` in errors).
    pub(crate) fn read(file: &dyn ReadAt, name: &str) -> Result<Self> {
        let what = || format!("SESparse constant header of {name}");
        let mut bytes = [0u8; 512];
        read_structure(file, 0, &mut bytes, what)?;
        let raw = ConstHeaderDisk::read_from_bytes(&bytes)
            .map_err(|_| Error::corrupt(what(), 0, "short header"))?;
        if raw.magic.get().to_le_bytes() != MAGIC {
            return Err(Error::corrupt(
                what(),
                0,
                format!("magic 0x{:016x}, expected 0xcafebabe", raw.magic.get()),
            ));
        }
        let unsupported =
            |detail: String| Error::Unsupported(format!("VMDK SESparse extent {name}: {detail}"));
        if raw.version.get() != VERSION {
            return Err(unsupported(format!(
                "version 0x{:x} (only 0x{VERSION:x} is known)",
                raw.version.get()
            )));
        }
        if raw.grain_sectors.get() != GRAIN_SECTORS || raw.grain_table_sectors.get() != GT_SECTORS {
            return Err(unsupported(format!(
                "grains of {} sectors and grain tables of {} (only {GRAIN_SECTORS} and {GT_SECTORS} are known)",
                raw.grain_sectors.get(),
                raw.grain_table_sectors.get()
            )));
        }
        if raw.flags.get() != 0 || raw.reserved.iter().any(|r| r.get() != 0) {
            return Err(unsupported(format!(
                "flags 0x{:x} or reserved fields set",
                raw.flags.get()
            )));
        }
        let capacity_bytes = bytes_of(raw.capacity_sectors.get(), "capacity", name)?;
        let volatile_at = bytes_of(raw.volatile_header_sector.get(), "volatile header", name)?;
        let mut volatile = [0u8; 512];
        let volatile_what = || format!("SESparse volatile header of {name}");
        read_structure(file, volatile_at, &mut volatile, volatile_what)?;
        let volatile = VolatileHeaderDisk::read_from_bytes(&volatile)
            .map_err(|_| Error::corrupt(volatile_what(), volatile_at, "short header"))?;
        if volatile.magic.get() != VOLATILE_MAGIC {
            return Err(Error::corrupt(
                volatile_what(),
                volatile_at,
                format!("magic 0x{:016x}, expected 0xcafecafe", volatile.magic.get()),
            ));
        }
        if volatile.replay_journal.get() != 0 {
            return Err(unsupported(
                "the journal must be replayed first (the snapshot was not closed cleanly)".into(),
            ));
        }
        Ok(Self {
            capacity_bytes,
            grain_bytes: GRAIN_SECTORS * SECTOR_BYTES,
            gd_at: bytes_of(raw.grain_dir_sector.get(), "grain directory", name)?,
            gd_bytes: bytes_of(raw.grain_dir_sectors.get(), "grain directory", name)?,
            tables_at: bytes_of(raw.grain_tables_sector.get(), "grain tables", name)?,
            grains_at: bytes_of(raw.grains_sector.get(), "grains", name)?,
        })
    }
}

/// Bytes of one grain table.
pub(crate) const GT_BYTES: u64 = GT_SECTORS * SECTOR_BYTES;

/// The number of the grain table a grain directory entry points to; `None` for no table.
pub(crate) fn grain_table_number(gde: u64) -> std::result::Result<Option<u64>, String> {
    if gde == 0 {
        return Ok(None);
    }
    if gde >> 32 != GDE_ALLOCATED {
        return Err(format!(
            "entry 0x{gde:016x} is neither 0 nor 0x10000000_xxxxxxxx"
        ));
    }
    Ok(Some(gde & 0xffff_ffff))
}

/// Where a grain is, from its grain table entry: stored grains are numbered from the start of
/// the grain area (`grains_at`), each `grain_bytes` long.
pub(crate) fn grain_location(
    gte: u64,
    grains_at: u64,
    grain_bytes: u64,
) -> std::result::Result<GrainLocation, String> {
    match gte >> GTE_STATE_SHIFT {
        GTE_UNALLOCATED if gte == 0 => Ok(GrainLocation::Unallocated),
        GTE_UNMAPPED | GTE_ZERO => Ok(GrainLocation::Zero),
        GTE_STORED => {
            let number =
                ((gte & 0x0fff_0000_0000_0000) >> 48) | ((gte & 0x0000_ffff_ffff_ffff) << 12);
            number
                .checked_mul(grain_bytes)
                .and_then(|at| at.checked_add(grains_at))
                .map(GrainLocation::At)
                .ok_or_else(|| format!("entry 0x{gte:016x} points past any file"))
        }
        _ => Err(format!("entry 0x{gte:016x} has an unknown state")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_as_qemu_reads_them() {
        assert_eq!(grain_table_number(0).unwrap(), None);
        assert_eq!(grain_table_number(0x1000_0000_0000_0007).unwrap(), Some(7));
        assert!(grain_table_number(0x2000_0000_0000_0007).is_err());
        assert!(matches!(
            grain_location(0, 0, 4096).unwrap(),
            GrainLocation::Unallocated
        ));
        assert!(grain_location(5, 0, 4096).is_err());
        assert!(matches!(
            grain_location(0x2000_0000_0000_0000, 0, 4096).unwrap(),
            GrainLocation::Zero
        ));
        // Grain number 0x123 << 12 | 0x456: low bits 48..60, high bits 0..48.
        let gte = 0x3000_0000_0000_0000 | (0x456 << 48) | 0x123;
        match grain_location(gte, 1 << 20, 4096).unwrap() {
            GrainLocation::At(at) => assert_eq!(at, (1 << 20) + ((0x123 << 12) | 0x456) * 4096),
            other => panic!("{other:?}"),
        }
    }
}

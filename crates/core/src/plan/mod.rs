//! `winre plan`: whether the WinRE volume must grow to hold a WinRE update, by how much, and
//! how: the layout case, the ordered steps, the partition table before and after, and the
//! equivalent diskpart + reagentc script for doing it inside Windows (KB5028997).
//!
//! A [`Plan`] is plain data. `winre plan` renders it; `winre resize --apply` carries out its
//! [`Plan::steps`] in order, and must refuse a plan whose verdict is not [`Verdict::Offline`].
//!
//! Units: every byte quantity ends in `_bytes`, sector numbers in `_lba` (logical sectors of the
//! disk, [`Plan::sector_size`] bytes each), cluster counts in `_clusters`. All partition starts
//! and ends a plan creates are multiples of [`ALIGN_BYTES`].
//!
// Sources: Microsoft KB5028997 ("Instructions to manually resize your partition to install the
// WinRE update"); Microsoft's sample script in "Add an update package to Windows RE", section
// "Extend the Windows RE partition" (the layout rules, see docs in /work/shared/reference); the
// Linux-NTFS documentation for the boot sector and $Bitmap (flatcap.github.io/linux-ntfs).

use serde::Serialize;

/// Partition starts and ends are aligned to 1 MiB, as Windows setup and diskpart place them.
pub const ALIGN_BYTES: u64 = 1 << 20;

/// The GPT type of a Windows recovery partition (KB5028997: `id=de94bba4-...`).
pub const RECOVERY_TYPE_GUID: &str = "de94bba4-06d1-4d40-a16a-bfd50179d6ac";

/// The GPT attributes KB5028997 gives a new recovery partition: bit 0 (platform required) and
/// bit 63 (no drive letter).
pub const RECOVERY_GPT_ATTRIBUTES: u64 = 0x8000_0000_0000_0001;

/// The MBR type byte of a Windows recovery partition (KB5028997: `id=27`).
pub const RECOVERY_MBR_TYPE: u8 = 0x27;

/// A resize plan for one disk image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The image path as given.
    pub source: String,
    /// "gpt" or "mbr".
    pub scheme: String,
    /// Logical sector size of the disk in bytes: the unit of every `_lba` field.
    pub sector_size: u32,
    /// Size of the guest disk in bytes.
    pub disk_size_bytes: u64,
    /// Size of the guest disk after the steps (larger than `disk_size_bytes` only in the
    /// `grow_image` case).
    pub disk_size_after_bytes: u64,
    /// The layout, as Microsoft's extend script classifies it.
    pub case: LayoutCase,
    /// Whether anything is needed, and whether winre can do it offline.
    pub verdict: Verdict,
    /// Free bytes the WinRE volume must have (default 262,144,000, Microsoft's "250MB").
    pub required_free_bytes: u64,
    /// Partition number (as `partitions_before[].number`) of the OS volume, if found.
    pub os_partition: Option<u32>,
    /// Partition number of the recovery partition that holds (or would hold) WinRE.
    pub recovery_partition: Option<u32>,
    /// Free bytes on the WinRE volume now (clear `$Bitmap` bits times the cluster size).
    pub free_before_bytes: Option<u64>,
    /// Free bytes on the WinRE volume after the plan's steps (same count, predicted).
    pub free_after_bytes: Option<u64>,
    /// `required_free_bytes - free_before_bytes`, or 0.
    pub shortfall_bytes: u64,
    /// How many bytes the recovery partition grows (a multiple of [`ALIGN_BYTES`]); 0 when
    /// nothing is needed.
    pub grow_by_bytes: u64,
    /// How many bytes the OS partition shrinks (a multiple of [`ALIGN_BYTES`]); 0 when it stays.
    pub shrink_os_by_bytes: u64,
    /// The NTFS arithmetic of growing the recovery volume; `null` when it does not grow.
    pub recovery_growth: Option<VolumeGrowth>,
    /// Unallocated bytes next to the recovery partition, as the plan saw them.
    pub unallocated: Unallocated,
    /// What the OS volume's last clusters hold, when the plan shrinks (or would shrink) it.
    pub os_tail: Option<OsTail>,
    /// The partition table now, in disk order.
    pub partitions_before: Vec<PlanPartition>,
    /// The partition table after the steps, in disk order.
    pub partitions_after: Vec<PlanPartition>,
    /// What to do, in order. Empty when nothing is needed. For a manual verdict: what an admin
    /// would do (for information; `winre resize` refuses).
    pub steps: Vec<Step>,
    /// The same change done inside the running Windows, as KB5028997 does it: reagentc and a
    /// diskpart script, one command a line. Empty when nothing is needed.
    pub windows_script: Vec<String>,
    /// Things worth knowing that do not change the verdict.
    pub notes: Vec<String>,
}

/// The layout, following the cases of Microsoft's extend script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutCase {
    /// The WinRE volume already has the required free space.
    EnoughFree,
    /// Unallocated space directly after the recovery partition (e.g. an enlarged VM disk): grow
    /// the partition's end and the NTFS volume in place.
    FreeAfterRecovery,
    /// The recovery partition is the last one and growing the image file was allowed
    /// (`--grow-image`): make the disk longer, then grow the partition's end and the NTFS volume
    /// into the added space.
    GrowImage,
    /// Unallocated space directly before the recovery partition (between the OS and recovery
    /// partitions): move the recovery volume down, then grow it.
    FreeBeforeRecovery,
    /// The recovery partition follows the OS partition with too little space between: shrink the
    /// OS volume, move the recovery volume down into the freed space, grow it.
    ShrinkOs,
    /// The recovery partition lies before the OS partition: a new recovery partition after the
    /// OS is needed (manual).
    RecoveryBeforeOs,
    /// WinRE sits on the OS volume, with no recovery partition: a new recovery partition is
    /// needed (manual).
    WinreOnOsVolume,
    /// Another partition follows the OS partition before the recovery partition, or follows the
    /// recovery partition, with no unallocated space to use (manual).
    NotAdjacent,
    /// No WinRE to make room for (not found, or disabled with no recovery partition).
    NoWinre,
}

/// Whether a change is needed and who can make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The WinRE volume has enough free space (exit 0).
    NothingNeeded,
    /// A change is needed and `winre resize --apply` can make it offline (exit 1).
    Offline,
    /// A change is needed that winre will not make offline (exit 3).
    Manual {
        /// Machine-readable reason.
        reason: ManualReason,
        /// The reason in a sentence, with the numbers.
        why: String,
    },
}

/// Why a plan needs manual work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualReason {
    /// The recovery partition lies before the OS partition.
    RecoveryBeforeOs,
    /// WinRE is on the OS volume.
    WinreOnOsVolume,
    /// No WinRE was found.
    NoWinre,
    /// WinRE is disabled (Microsoft's script stops too): enable it first.
    WinreDisabled,
    /// The OS volume is BitLocker-encrypted: it cannot be shrunk offline.
    Bitlocker,
    /// The OS volume was hibernated (Fast Startup): writing to it offline loses data.
    OsHibernated,
    /// A volume to be written has the NTFS dirty flag set: chkdsk must run in Windows first.
    VolumeDirty,
    /// The clusters the OS volume would give up are in use: files must move first.
    OsTailInUse,
    /// The OS volume would fall below its smallest possible size.
    OsTooSmall,
    /// An MBR disk with four primary partitions and none to delete: no slot for a new one.
    MbrNoFreeSlot,
    /// The recovery partition is not next to the OS partition or free space.
    NotAdjacent,
    /// Something winre does not handle offline (a logical MBR partition, a non-NTFS volume,
    /// clusters larger than the alignment, ...); `why` says what.
    Unsupported,
}

/// One partition, before or after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanPartition {
    /// Partition number (GPT entry index + 1; MBR slot 1-4, logical from 5); a new partition
    /// gets the first free one.
    pub number: u32,
    /// esp, msr, basic_data, recovery, ldm, extended or other.
    pub kind: String,
    /// GPT type GUID (lowercase), or the MBR type byte as 0xNN.
    #[serde(rename = "type")]
    pub type_id: String,
    /// GPT unique partition GUID (lowercase); `null` on MBR or for a new partition.
    pub guid: Option<String>,
    /// GPT attributes as 0x%016x; `null` on MBR.
    pub attributes: Option<String>,
    /// First byte on the disk.
    pub start_bytes: u64,
    /// Length in bytes.
    pub size_bytes: u64,
    /// First sector.
    pub start_lba: u64,
    /// Last sector, inclusive (as sgdisk prints it).
    pub end_lba: u64,
    /// Length in sectors.
    pub size_sectors: u64,
    /// ntfs, fat32, bitlocker, ... (from the boot sector; "new" for a partition the plan makes).
    pub filesystem: String,
    /// What the plan does to it: unchanged, shrunk, grown, moved (moved and grown), created.
    pub change: PartitionChange,
}

/// What a plan does to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionChange {
    /// Left as it is.
    Unchanged,
    /// Its end moves down (the OS partition).
    Shrunk,
    /// Its end moves up, its start stays.
    Grown,
    /// Its start moves down and its size grows (its contents are copied to the new start).
    MovedAndGrown,
    /// A new partition.
    Created,
    /// Deleted (manual plans only).
    Deleted,
}

/// One step of a plan, in order. Each step leaves the disk consistent for the next; a step
/// names partitions by their number in `partitions_before`, which no step changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Make the guest disk (the image file) `new_len_bytes` long, growing only: the GPT's
    /// backup header and entries move to the new end (with the next steps' extents).
    GrowImage {
        /// The disk's new size in bytes (a multiple of [`ALIGN_BYTES`]).
        new_len_bytes: u64,
    },
    /// Shrink the NTFS volume of `partition` so that it fills a partition of `new_size_bytes`:
    /// boot sector total sectors = `new_total_sectors` (the partition's sectors minus the last,
    /// which takes the backup boot sector), `new_total_clusters` clusters, `$Bitmap` cut to
    /// match. Every cluster from `new_total_clusters` up must be free (the plan checked).
    ShrinkNtfs {
        /// Partition number.
        partition: u32,
        /// The partition size the volume will fill.
        new_size_bytes: u64,
        /// Boot sector `total sectors` (in NTFS sectors, `bytes_per_sector` each).
        new_total_sectors: u64,
        /// Clusters of the shrunk volume.
        new_total_clusters: u64,
        /// The NTFS sector size (boot sector +0x0B).
        bytes_per_sector: u32,
    },
    /// Copy the partition's first `len_bytes` from disk byte `from_byte` to `to_byte`
    /// (`to_byte < from_byte`: copy front to back, so overlapping ranges are safe). The NTFS boot
    /// sector's hidden-sectors field (+0x1C) must then say the new start.
    MovePartition {
        /// Partition number.
        partition: u32,
        /// Current first byte on the disk.
        from_byte: u64,
        /// New first byte on the disk.
        to_byte: u64,
        /// Bytes to copy (the whole current partition).
        len_bytes: u64,
    },
    /// Set the partition's entry (GPT primary and backup with their CRCs, or the MBR slot) to
    /// `start_lba..=end_lba`, keeping its type, unique GUID, attributes and name.
    SetPartitionExtent {
        /// Partition number.
        partition: u32,
        /// New first sector.
        start_lba: u64,
        /// New last sector, inclusive.
        end_lba: u64,
    },
    /// Grow the NTFS volume of `partition` to fill a partition of `new_size_bytes`: boot sector
    /// total sectors, a new backup boot sector in the partition's last sector, `$Bitmap`
    /// extended to `new_total_clusters` bits (its new clusters allocated from the added space),
    /// `$MFTMirr` kept consistent.
    GrowNtfs {
        /// Partition number.
        partition: u32,
        /// The partition size the volume will fill.
        new_size_bytes: u64,
        /// Boot sector `total sectors` (in NTFS sectors).
        new_total_sectors: u64,
        /// Clusters of the grown volume.
        new_total_clusters: u64,
        /// The NTFS sector size.
        bytes_per_sector: u32,
    },
    /// Rewrite ReAgent.xml's `<WinreLocation offset="...">` (the recovery partition's byte
    /// offset on the disk) on the OS volume.
    UpdateReagentOffset {
        /// Partition holding ReAgent.xml (the OS volume).
        partition: u32,
        /// Its path on that volume.
        path: String,
        /// The offset it holds now.
        old_offset_bytes: u64,
        /// The offset it must hold.
        new_offset_bytes: u64,
    },
    /// MBR disks only: the BCD names partitions by disk signature and byte offset, so every
    /// device element naming the moved recovery partition (the WinRE loader's ramdisk device and
    /// osdevice, the ramdisk options' SDI device) must get the new offset.
    UpdateBcdPartitionOffset {
        /// Partition holding the BCD store.
        partition: u32,
        /// Its path on that volume.
        path: String,
        /// The offset the elements hold now.
        old_offset_bytes: u64,
        /// The offset they must hold.
        new_offset_bytes: u64,
    },
    /// Manual plans only: create a new recovery partition and format it NTFS, then put WinRE
    /// on it (`reagentc /enable` does, inside Windows).
    CreatePartition {
        /// The partition number it gets.
        partition: u32,
        /// First sector.
        start_lba: u64,
        /// Last sector, inclusive.
        end_lba: u64,
        /// GPT type GUID or MBR type byte as 0xNN.
        type_id: String,
        /// GPT attributes as 0x%016x; `null` on MBR.
        attributes: Option<String>,
    },
    /// Manual plans only: delete a partition (the old recovery partition).
    DeletePartition {
        /// Partition number.
        partition: u32,
    },
}

/// The NTFS arithmetic of growing the recovery volume (see `grow.rs` for the formula).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VolumeGrowth {
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// NTFS bytes per sector.
    pub bytes_per_sector: u32,
    /// Clusters now.
    pub clusters_before: u64,
    /// Clusters after growing.
    pub clusters_after: u64,
    /// Free clusters now.
    pub free_clusters_before: u64,
    /// Free clusters after growing (added clusters minus the ones `$Bitmap` takes).
    pub free_clusters_after: u64,
    /// Clusters `$Bitmap` occupies now (its allocated size).
    pub bitmap_clusters_before: u64,
    /// Clusters `$Bitmap` needs for `clusters_after` bits.
    pub bitmap_clusters_after: u64,
}

/// Unallocated space around the recovery partition (usable: inside the GPT's usable LBAs or the
/// disk, and 1 MiB aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Unallocated {
    /// Between the end of the partition before the recovery partition (in disk order) and its
    /// start.
    pub before_recovery_bytes: u64,
    /// Between the end of the recovery partition and the next partition, or the end of the
    /// usable area (the GPT backup entries and header are not usable).
    pub after_recovery_bytes: u64,
}

/// What the last clusters of the OS volume hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsTail {
    /// OS partition number.
    pub partition: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Clusters of the OS volume now.
    pub total_clusters: u64,
    /// Clusters the volume keeps after the wanted shrink.
    pub keep_clusters: u64,
    /// Clusters in `keep_clusters..total_clusters` that are in use (0: the shrink is possible).
    pub used_tail_clusters: u64,
    /// The highest cluster in use, `null` when none is.
    pub last_used_cluster: Option<u64>,
    /// The largest shrink, in bytes (a multiple of [`ALIGN_BYTES`]), that moves no data: every
    /// cluster past the new end is free and the backup boot sector fits.
    pub largest_shrink_bytes: u64,
    /// Files with clusters in the tail, as paths (at most [`MAX_NAMED_FILES`]).
    pub tail_files: Vec<TailFile>,
    /// Files with clusters in the tail beyond those named.
    pub more_tail_files: u64,
    /// True when the MFT walk stopped at its cap ([`MAX_MFT_RECORDS`]) before the end.
    pub walk_truncated: bool,
}

/// A file holding clusters in the OS volume's tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TailFile {
    /// Its path (`\...`), or `MFT record N` when its name cannot be resolved.
    pub path: String,
    /// MFT record number.
    pub record: u64,
    /// Its clusters in the tail.
    pub tail_clusters: u64,
}

/// Most files named in [`OsTail::tail_files`].
pub const MAX_NAMED_FILES: usize = 20;

/// Most MFT records the tail walk reads (a big Windows volume has a few hundred thousand).
pub const MAX_MFT_RECORDS: u64 = 4_000_000;

impl Plan {
    /// The process exit code of `winre plan`: 0 nothing needed, 1 a change winre can make
    /// offline, 3 manual work (2, an error, is the CLI's).
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::NothingNeeded => 0,
            Verdict::Offline => 1,
            Verdict::Manual { .. } => 3,
        }
    }
}

mod build;
pub mod grow;
mod script;
pub mod tail;

pub use build::{plan_disk, plan_path, PlanOptions, NEW_VOLUME_METADATA_BYTES};

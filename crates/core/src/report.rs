//! The scan report: what `winre scan` found in one disk image, as plain data.
//!
//! The JSON field names are a public contract (README, "winre scan --json"): change them only on
//! purpose. Byte quantities are plain integers in bytes; GPT attributes are a hex string because
//! a 64-bit value does not survive a JSON reader that uses doubles.

use serde::Serialize;

use crate::file_versions::FileVersion;
use crate::history::HistoryReport;
use crate::problem::Problem;
use crate::updates::{TableId, UpdateStatus};
use crate::version::WinreVersion;

/// One disk image, scanned.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// The image file and its container.
    pub source: SourceInfo,
    /// The partition table.
    pub partition_table: TableSummary,
    /// Every partition, in table order.
    pub partitions: Vec<PartitionSummary>,
    /// NTFS volumes that hold `Windows\System32` (numbers of `partitions[]`).
    pub os_partitions: Vec<u32>,
    /// Where WinRE is and what it is.
    pub winre: WinreReport,
    /// Free space of the volume that holds (or would hold) WinRE; `null` when there is none.
    pub recovery_space: Option<RecoverySpace>,
    /// Known WinRE updates for the WinRE build family, and whether the image has each.
    pub updates: Vec<UpdateStatus>,
    /// The update table that judged `updates`: its date and SHA-256.
    pub update_table: TableId,
    /// With `--history`: the update history, servicing state and a verdict per update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryReport>,
    /// Findings: a stable machine code and one human-readable sentence each.
    pub problems: Vec<Problem>,
    /// Bytes read from the image to produce this report.
    pub stats: ReadSummary,
}

/// The image file and its container.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// The path as given.
    pub path: String,
    /// raw, vhd, vhdx, vmdk, qcow2 or ewf.
    pub format: String,
    /// The container's variant (e.g. "dynamic"), where it has one.
    pub variant: String,
    /// Size of the guest disk in bytes.
    pub disk_size: u64,
    /// Logical sector size in bytes.
    pub sector_size: u32,
    /// The parents of a differencing image that were opened, nearest first (empty for a disk
    /// that stands alone): `path`, `format`, `recorded` (the name the child records), `given`
    /// (true when named with --parent).
    pub chain: Vec<winre_disk::container::ChainLink>,
}

/// The partition table's own facts.
#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    /// gpt, mbr or none.
    pub scheme: String,
    /// GPT disk GUID (lowercase, no braces); `null` on MBR.
    pub disk_guid: Option<String>,
    /// MBR disk signature as 0xXXXXXXXX; `null` on GPT.
    pub disk_signature: Option<String>,
}

/// One partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    /// 1-based number as Windows and Linux count it (GPT entry index; MBR 1-4, logical from 5).
    pub number: u32,
    /// esp, msr, basic_data, recovery, ldm, extended or other.
    pub kind: String,
    /// GPT type GUID, or the MBR type byte as 0xNN.
    #[serde(rename = "type")]
    pub type_id: String,
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// GPT attributes as 0x%016x; `null` on MBR.
    pub attributes: Option<String>,
    /// GPT partition name; `null` on MBR or when empty.
    pub name: Option<String>,
    /// ntfs, fat12, fat16, fat32, exfat, refs, bitlocker or unknown (from the boot sector).
    pub filesystem: String,
}

/// WinRE status, as `reagentc /info` would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WinreStatus {
    /// Winre.wim is where ReAgent.xml and the BCD point, and ReAgent.xml says enabled.
    Enabled,
    /// Winre.wim exists but WinRE is switched off (ReAgent.xml InstallState 0).
    Disabled,
    /// No Winre.wim anywhere winre looks.
    NotFound,
}

/// Where WinRE is and what it is.
#[derive(Debug, Clone, Serialize)]
pub struct WinreReport {
    /// enabled, disabled or not_found.
    pub status: WinreStatus,
    /// Number of the partition that holds Winre.wim, or `null`.
    pub partition: Option<u32>,
    /// Path of Winre.wim on that volume, as found (e.g. `\Recovery\WindowsRE\Winre.wim`).
    pub path: Option<String>,
    /// How it was found: reagent, bcd, recovery_partition, os_recovery_folder or os_system32.
    pub found_by: Option<String>,
    /// The version winre believes: the WIM XML's, else the registry's claim.
    pub version: Option<WinreVersion>,
    /// Each source of the version.
    pub version_sources: VersionSources,
    /// The WIM's header facts; `null` when no Winre.wim was found.
    pub wim: Option<WimSummary>,
    /// ReAgent.xml; `null` when there is none.
    pub reagent: Option<ReagentSummary>,
    /// The BCD store's WinRE entry; `null` when no store was read.
    pub bcd: Option<BcdSummary>,
}

/// Each source of the WinRE version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionSources {
    /// MAJOR.MINOR.BUILD.SPBUILD of image 1 in the WIM's XML.
    pub wim_xml: Option<WinreVersion>,
    /// `WinREVersion` in the SOFTWARE hive (a claim, often written by scripts).
    pub registry: Option<WinreVersion>,
    /// The version resources of `winpeshl.exe` and `winload.efi` inside image 1 (what
    /// Microsoft's scripts read), each judged against the XML.
    pub files: Vec<FileVersion>,
}

/// Winre.wim's header facts.
#[derive(Debug, Clone, Serialize)]
pub struct WimSummary {
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file (with `--hash`), else `null`.
    pub sha256: Option<String>,
    /// none, xpress, lzx or lzms.
    pub compression: String,
    /// Whether the WIM uses solid resources (version 0xE00).
    pub solid: bool,
    /// Compression chunk size in bytes (0 when uncompressed).
    pub chunk_size: u32,
    /// Number of images.
    pub images: u32,
    /// Whether the WIM carries an integrity table.
    pub integrity_table: bool,
    /// Number of data runs of the file on its NTFS volume (1 = contiguous).
    pub data_runs: usize,
}

/// ReAgent.xml's fields that matter.
#[derive(Debug, Clone, Serialize)]
pub struct ReagentSummary {
    /// InstallState: 1 enabled, 0 disabled.
    pub install_state: Option<u32>,
    /// WinreLocation path (the folder, e.g. `\Recovery\WindowsRE`).
    pub location_path: Option<String>,
    /// WinreLocation offset: the byte offset of the partition on the disk.
    pub location_offset: Option<u64>,
    /// WinreBCD id: the BCD object of the WinRE loader.
    pub bcd_id: Option<String>,
    /// Where the ReAgent.xml read was: "partition N:\path".
    pub found_at: String,
}

/// The BCD store's WinRE entry.
#[derive(Debug, Clone, Serialize)]
pub struct BcdSummary {
    /// Where the store was: "partition N:\path".
    pub found_at: String,
    /// The default OS loader's recoverysequence.
    pub recovery_sequence: Vec<String>,
    /// The WinRE loader's ramdisk image path.
    pub ramdisk_path: Option<String>,
}

/// Free space of the volume that holds WinRE.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverySpace {
    /// Partition number.
    pub partition: u32,
    /// Volume size in bytes (clusters times cluster size).
    pub size: u64,
    /// Free bytes: clear bits of `$Bitmap` times the cluster size.
    pub free: u64,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Free bytes a WinRE update needs (default 262,144,000, Microsoft's "250 MB").
    pub required_free: u64,
    /// How many bytes are missing; 0 when there is enough.
    pub shortfall: u64,
}

/// What the scan read from the image.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReadSummary {
    /// Bytes read.
    pub bytes_read: u64,
    /// Read calls.
    pub read_calls: u64,
    /// Range requests sent, for an image read over a URL (absent for a local file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Bytes received over the network, for an image read over a URL (absent for a local file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_fetched: Option<u64>,
}

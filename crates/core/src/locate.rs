//! Finding WinRE inside a disk: the OS volumes, ReAgent.xml, the BCD store, the registry's claim,
//! and Winre.wim itself, in the order Windows' own tools would find it.
//!
//! Winre.wim is looked for, in order: where ReAgent.xml says (`WinreLocation`, its partition
//! matched by byte offset), where the BCD's WinRE loader says (its ramdisk path, on the partition
//! its device names), `\Recovery\WindowsRE\Winre.wim` on any recovery-type partition, the same
//! path on an OS volume, then `\Windows\System32\Recovery\Winre.wim` on an OS volume (where
//! `reagentc /disable` leaves it). Names compare case-insensitively, as on Windows.
//!
//! Everything is read in place through [`winre_readat::ReadAt`]: volumes are windows of the disk,
//! files are their NTFS data runs. Nothing is copied out to be read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use winre_disk::container::Disk;
use winre_disk::partition::{self, Kind, Partition, PartitionTable, Scheme};
use winre_disk::probe::Filesystem;
use winre_readat::ReadAt;

use crate::bcd::{self, BcdDevice, BcdWinre};
use crate::ntfs::{FileHandle, NtfsVolume};
use crate::problem::{Problem, ProblemCode};
use crate::reagent::{self, ReagentConfig};
use crate::software::{self, SoftwareVersions};
use crate::{fat, Error, Result};

/// Where ReAgent.xml lives on an OS volume.
pub const REAGENT_PATH: &str = r"\Windows\System32\Recovery\ReAgent.xml";
/// The SOFTWARE hive on an OS volume.
pub const SOFTWARE_HIVE_PATH: &str = r"\Windows\System32\config\SOFTWARE";
/// The BCD store on the EFI system partition.
pub const ESP_BCD_PATH: &str = r"\EFI\Microsoft\Boot\BCD";
/// The BCD store on the active partition of an MBR (BIOS) disk.
pub const BIOS_BCD_PATH: &str = r"\Boot\BCD";
/// The usual WinRE folder on a recovery (or OS) volume.
pub const WINRE_FOLDER: &str = r"\Recovery\WindowsRE";
/// Where `reagentc /disable` leaves Winre.wim on the OS volume.
pub const DISABLED_WIM_PATH: &str = r"\Windows\System32\Recovery\Winre.wim";

/// Largest BCD store read (real ones are tens of KiB).
pub const MAX_BCD_BYTES: u64 = 16 << 20;

/// How Winre.wim was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// ReAgent.xml's WinreLocation.
    Reagent,
    /// The BCD WinRE loader's ramdisk path.
    Bcd,
    /// `\Recovery\WindowsRE\Winre.wim` on a recovery-type partition.
    RecoveryPartition,
    /// `\Recovery\WindowsRE\Winre.wim` on the OS volume.
    OsRecoveryFolder,
    /// `\Windows\System32\Recovery\Winre.wim` on the OS volume (WinRE disabled).
    OsSystem32,
}

impl FoundBy {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            FoundBy::Reagent => "reagent",
            FoundBy::Bcd => "bcd",
            FoundBy::RecoveryPartition => "recovery_partition",
            FoundBy::OsRecoveryFolder => "os_recovery_folder",
            FoundBy::OsSystem32 => "os_system32",
        }
    }
}

/// A Winre.wim, found.
#[derive(Debug)]
pub struct FoundWim {
    /// Number of the partition that holds it.
    pub partition: u32,
    /// Its path on that volume, as looked up.
    pub path: String,
    /// How it was found.
    pub found_by: FoundBy,
    /// Its volume.
    pub volume: Arc<NtfsVolume>,
    /// The file.
    pub file: FileHandle,
}

/// ReAgent.xml, read, and where.
#[derive(Debug, Clone)]
pub struct FoundReagent {
    /// Its fields.
    pub config: ReagentConfig,
    /// Partition number.
    pub partition: u32,
    /// Path on that volume.
    pub path: String,
}

/// The BCD store's WinRE entry, read, and where.
#[derive(Debug, Clone)]
pub struct FoundBcd {
    /// Its WinRE-related fields.
    pub winre: BcdWinre,
    /// Partition number.
    pub partition: u32,
    /// Path on that volume.
    pub path: String,
}

/// A disk opened for inspection: its partition table and its NTFS volumes, opened on demand and
/// kept. One per image, used from one thread.
pub struct DiskView {
    /// The disk (usually through a [`winre_readat::Counting`]).
    pub disk: Disk,
    /// Its partition table.
    pub table: PartitionTable,
    volumes: RefCell<HashMap<u32, Arc<NtfsVolume>>>,
}

impl std::fmt::Debug for DiskView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskView")
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl DiskView {
    /// Reads the partition table of `disk`. A disk without a table that starts with a file
    /// system boot sector (a volume imaged on its own) is taken as one partition, number 1,
    /// spanning the whole disk.
    pub fn open(disk: Disk) -> Result<Self> {
        let table = partition::read_table(&disk)?;
        let mut view = Self {
            disk,
            table,
            volumes: RefCell::new(HashMap::new()),
        };
        if view.table.info.scheme == Scheme::None {
            if let Some(volume) = bare_volume(&view.disk)? {
                view.table.partitions.push(volume);
                view.set_bare_volume_kind();
            }
        }
        Ok(view)
    }

    /// True when the disk has no partition table and partition 1 is the whole disk.
    pub fn is_bare_volume(&self) -> bool {
        self.table.info.scheme == Scheme::None && !self.table.partitions.is_empty()
    }

    /// The kind of a bare volume, from what is on it: NTFS with `\Recovery\WindowsRE` and no
    /// `\Windows` is a recovery volume; FAT with the BCD store is an ESP; else basic data.
    fn set_bare_volume_kind(&mut self) {
        let Some(part) = self.table.partitions.first() else {
            return;
        };
        let kind = match part.filesystem {
            Filesystem::Ntfs => match self.ntfs(part.number) {
                Ok(Some(volume)) => {
                    let has = |path: &str| matches!(volume.lookup(path), Ok(Some(_)));
                    if has(WINRE_FOLDER) && !has(r"\Windows") {
                        Kind::Recovery
                    } else {
                        Kind::BasicData
                    }
                }
                _ => Kind::BasicData,
            },
            Filesystem::Fat12 | Filesystem::Fat16 | Filesystem::Fat32 => {
                match self.read_small_file(part, ESP_BCD_PATH, MAX_BCD_BYTES) {
                    Ok(Some(_)) => Kind::Esp,
                    _ => Kind::BasicData,
                }
            }
            _ => Kind::Other,
        };
        if let Some(part) = self.table.partitions.first_mut() {
            part.kind = kind;
        }
    }

    /// The partition numbered `number`.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.table.partitions.iter().find(|p| p.number == number)
    }

    /// The partition's bytes.
    pub fn partition_reader(&self, number: u32) -> Result<Arc<dyn ReadAt>> {
        let part = self
            .partition(number)
            .ok_or_else(|| Error::NotFound(format!("partition {number}")))?;
        Ok(Arc::new(part.reader(&self.disk)?))
    }

    /// The NTFS volume on partition `number`, opened once; `None` when its boot sector is not
    /// NTFS.
    pub fn ntfs(&self, number: u32) -> Result<Option<Arc<NtfsVolume>>> {
        if let Some(volume) = self.volumes.borrow().get(&number) {
            return Ok(Some(Arc::clone(volume)));
        }
        let Some(part) = self.partition(number) else {
            return Ok(None);
        };
        if part.filesystem != Filesystem::Ntfs {
            return Ok(None);
        }
        let volume = Arc::new(NtfsVolume::open(self.partition_reader(number)?)?);
        self.volumes
            .borrow_mut()
            .insert(number, Arc::clone(&volume));
        Ok(Some(volume))
    }

    /// NTFS partitions holding a `Windows\System32` directory, in table order. A volume that
    /// cannot be read is skipped and reported in `problems`.
    pub fn os_partitions(&self, problems: &mut Vec<Problem>) -> Vec<u32> {
        let mut found = Vec::new();
        for part in &self.table.partitions {
            if part.filesystem != Filesystem::Ntfs {
                continue;
            }
            let probe = || -> Result<bool> {
                let Some(volume) = self.ntfs(part.number)? else {
                    return Ok(false);
                };
                Ok(volume.lookup(r"\Windows\System32")?.is_some())
            };
            match probe() {
                Ok(true) => found.push(part.number),
                Ok(false) => {}
                Err(e) => problems.push(Problem::new(
                    ProblemCode::VolumeUnreadable,
                    format!(
                        "partition {}: NTFS volume could not be read: {e}",
                        part.number
                    ),
                )),
            }
        }
        found
    }

    /// ReAgent.xml from the first OS volume that has one.
    pub fn reagent(&self, os_partitions: &[u32]) -> Result<Option<FoundReagent>> {
        for &number in os_partitions {
            let Some(volume) = self.ntfs(number)? else {
                continue;
            };
            let Some(bytes) =
                volume.read_small_file(REAGENT_PATH, reagent::MAX_REAGENT_BYTES as u64)?
            else {
                continue;
            };
            let config = reagent::parse_reagent(&bytes).map_err(|e| {
                Error::corrupt(
                    format!("ReAgent.xml on partition {number} ({REAGENT_PATH})"),
                    0,
                    e.to_string(),
                )
            })?;
            return Ok(Some(FoundReagent {
                config,
                partition: number,
                path: REAGENT_PATH.to_string(),
            }));
        }
        Ok(None)
    }

    /// The version values of the first OS volume's SOFTWARE hive (`WinREVersion` and the OS
    /// build). The hive is read in place: only the cells on the way to the values.
    pub fn software_versions(&self, os_partitions: &[u32]) -> Result<Option<SoftwareVersions>> {
        for &number in os_partitions {
            let Some(volume) = self.ntfs(number)? else {
                continue;
            };
            let Some(file) = volume.open_file(SOFTWARE_HIVE_PATH)? else {
                continue;
            };
            let hive = winre_hive::Hive::open(file.data_reader()?).map_err(software::hive_error)?;
            return software::read_software_versions(&hive).map(Some);
        }
        Ok(None)
    }

    /// The BCD store: `\EFI\Microsoft\Boot\BCD` on the ESP (GPT), or `\Boot\BCD` on the active
    /// partition (MBR), or wherever one of those paths exists.
    pub fn bcd(&self) -> Result<Option<FoundBcd>> {
        let mut candidates: Vec<(&Partition, &str)> = Vec::new();
        for part in &self.table.partitions {
            if part.kind == Kind::Esp {
                candidates.push((part, ESP_BCD_PATH));
            }
        }
        for part in &self.table.partitions {
            if part.active == Some(true) {
                candidates.push((part, BIOS_BCD_PATH));
            }
        }
        if self.table.info.scheme == Scheme::Mbr && candidates.is_empty() {
            for part in &self.table.partitions {
                candidates.push((part, BIOS_BCD_PATH));
            }
        }
        for (part, path) in candidates {
            let Some(bytes) = self.read_small_file(part, path, MAX_BCD_BYTES)? else {
                continue;
            };
            let what = || format!("BCD store on partition {} ({path})", part.number);
            let hive = winre_hive::Hive::open(bytes)
                .map_err(|e| Error::corrupt(what(), 0, e.to_string()))?;
            let winre =
                bcd::read_bcd_winre(&hive).map_err(|e| Error::corrupt(what(), 0, e.to_string()))?;
            return Ok(Some(FoundBcd {
                winre,
                partition: part.number,
                path: path.to_string(),
            }));
        }
        Ok(None)
    }

    /// A small file from an NTFS or FAT partition; `None` when absent or another file system.
    fn read_small_file(
        &self,
        part: &Partition,
        path: &str,
        cap_bytes: u64,
    ) -> Result<Option<Vec<u8>>> {
        match part.filesystem {
            Filesystem::Ntfs => match self.ntfs(part.number)? {
                Some(volume) => volume.read_small_file(path, cap_bytes),
                None => Ok(None),
            },
            Filesystem::Fat12 | Filesystem::Fat16 | Filesystem::Fat32 => {
                fat::read_small_file(self.partition_reader(part.number)?, path, cap_bytes)
            }
            _ => Ok(None),
        }
    }

    /// Finds Winre.wim (see the module documentation for the order). Volumes that cannot be read
    /// on the way are reported in `problems` and skipped.
    pub fn locate(
        &self,
        reagent: Option<&FoundReagent>,
        bcd: Option<&FoundBcd>,
        os_partitions: &[u32],
        problems: &mut Vec<Problem>,
    ) -> Option<FoundWim> {
        let mut candidates: Vec<(u32, String, FoundBy)> = Vec::new();
        if let Some(r) = reagent {
            let path = r.config.location_path.as_deref().unwrap_or_default();
            match r.config.location_offset {
                Some(offset) if offset != 0 && !path.is_empty() => {
                    match self.table.partitions.iter().find(|p| p.start_bytes == offset) {
                        Some(part) => candidates.push((part.number, join(path, "Winre.wim"), FoundBy::Reagent)),
                        None => problems.push(Problem::new(ProblemCode::ReagentOffsetMismatch, format!(
                            "ReAgent.xml points WinRE at the partition starting at byte {offset}, but no partition starts there"
                        ))),
                    }
                }
                _ => {}
            }
        }
        if let Some((parent, path)) = bcd.and_then(|b| ramdisk(&b.winre)) {
            for number in self.partitions_for_device(parent) {
                candidates.push((number, path.clone(), FoundBy::Bcd));
            }
        }
        for part in &self.table.partitions {
            if part.kind == Kind::Recovery {
                candidates.push((
                    part.number,
                    join(WINRE_FOLDER, "Winre.wim"),
                    FoundBy::RecoveryPartition,
                ));
            }
        }
        for &number in os_partitions {
            candidates.push((
                number,
                join(WINRE_FOLDER, "Winre.wim"),
                FoundBy::OsRecoveryFolder,
            ));
        }
        for &number in os_partitions {
            candidates.push((number, DISABLED_WIM_PATH.to_string(), FoundBy::OsSystem32));
        }
        for (number, path, found_by) in candidates {
            let attempt = || -> Result<Option<FoundWim>> {
                let Some(volume) = self.ntfs(number)? else {
                    return Ok(None);
                };
                let Some(file) = volume.open_file(&path)? else {
                    return Ok(None);
                };
                Ok(Some(FoundWim {
                    partition: number,
                    path: path.clone(),
                    found_by,
                    volume,
                    file,
                }))
            };
            match attempt() {
                Ok(Some(found)) => return Some(found),
                Ok(None) => {}
                Err(e) => {
                    let line = Problem::new(
                        ProblemCode::VolumeUnreadable,
                        format!("partition {number}: could not look for {path}: {e}"),
                    );
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
        }
        None
    }

    /// The partitions a BCD device may name: the GPT partition with that unique GUID, the MBR
    /// partition at that offset; for the boot device or one not decoded, every recovery and
    /// NTFS partition.
    fn partitions_for_device(&self, device: &BcdDevice) -> Vec<u32> {
        if let BcdDevice::Partition {
            partition_guid,
            partition_offset_bytes,
            ..
        } = device
        {
            let by_guid = partition_guid.as_deref().and_then(|want| {
                self.table.partitions.iter().find(|p| {
                    p.unique_guid
                        .as_ref()
                        .is_some_and(|g| same_guid(&g.to_string(), want))
                })
            });
            let by_offset = partition_offset_bytes.and_then(|offset| {
                self.table
                    .partitions
                    .iter()
                    .find(|p| p.start_bytes == offset)
            });
            if let Some(part) = by_guid.or(by_offset) {
                return vec![part.number];
            }
        }
        let mut numbers: Vec<u32> = self
            .table
            .partitions
            .iter()
            .filter(|p| p.kind == Kind::Recovery)
            .map(|p| p.number)
            .collect();
        numbers.extend(
            self.table
                .partitions
                .iter()
                .filter(|p| p.kind != Kind::Recovery && p.filesystem == Filesystem::Ntfs)
                .map(|p| p.number),
        );
        numbers
    }
}

/// The whole disk as partition 1, when it starts with a file system boot sector.
fn bare_volume(disk: &Disk) -> Result<Option<Partition>> {
    let filesystem = winre_disk::probe::probe(disk.reader.as_ref())?;
    if filesystem == Filesystem::Unknown {
        return Ok(None);
    }
    let size_bytes = disk.reader.len();
    let sector = u64::from(disk.info.sector_size.max(1));
    let size_sectors = size_bytes / sector;
    Ok(Some(Partition {
        number: 1,
        type_guid: None,
        mbr_type: None,
        unique_guid: None,
        kind: Kind::Other,
        start_lba: 0,
        end_lba: size_sectors.saturating_sub(1),
        size_sectors,
        start_bytes: 0,
        size_bytes,
        attributes: None,
        attribute_names: Vec::new(),
        name: None,
        active: None,
        logical: None,
        filesystem,
        problems: Vec::new(),
    }))
}

/// The WinRE loader's ramdisk: the device holding the image and the image path.
pub fn ramdisk(bcd: &BcdWinre) -> Option<(&BcdDevice, String)> {
    let loader = bcd.winre_loader.as_ref()?;
    for element in [loader.os_device.as_ref(), loader.device.as_ref()]
        .into_iter()
        .flatten()
    {
        if let BcdDevice::Ramdisk { path, parent } = &element.device {
            return Some((parent.as_ref(), path.clone()));
        }
    }
    None
}

/// `folder\name` with one separator.
fn join(folder: &str, name: &str) -> String {
    format!("{}\\{name}", folder.trim_end_matches(['\\', '/']))
}

/// GUIDs compare without braces and case.
fn same_guid(a: &str, b: &str) -> bool {
    let trim = |s: &str| s.trim_matches(['{', '}']).to_ascii_lowercase();
    trim(a) == trim(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_compares() {
        assert_eq!(
            join(r"\Recovery\WindowsRE\", "Winre.wim"),
            r"\Recovery\WindowsRE\Winre.wim"
        );
        assert_eq!(
            join(r"\Recovery\WindowsRE", "Winre.wim"),
            r"\Recovery\WindowsRE\Winre.wim"
        );
        assert!(same_guid(
            "{EC9E2CDA-63D3-11EE-BD2C-AF2423A570B6}",
            "ec9e2cda-63d3-11ee-bd2c-af2423a570b6"
        ));
        assert!(!same_guid(
            "{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}",
            "ec9e2cdb-63d3-11ee-bd2c-af2423a570b6"
        ));
    }
}

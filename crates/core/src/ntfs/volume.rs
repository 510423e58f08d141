//! An NTFS volume: its boot sector, its `$UpCase` table, and path lookup from the root.
//!
//! The `ntfs` crate does the parsing; it reads through `Read + Seek`, so every operation makes its
//! own cursor over the shared partition (with a read budget, see `cursor.rs`). The [`Ntfs`] state (boot sector values and `$UpCase`)
//! is read once and shared, so a volume can serve many threads at once.
//!
// Sources: the `ntfs` crate (boot sector, MFT, indexes, $UpCase collation); the Linux-NTFS
// documentation (flatcap.github.io/linux-ntfs) for the boot sector fields.

use std::mem::offset_of;
use std::sync::Arc;

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::NtfsIndexRoot;
use ntfs::{Ntfs, NtfsAttributeType, NtfsFile, NtfsFileFlags};
use winre_readat::ReadAt;
use zerocopy::FromBytes;

use super::cursor::NtfsCursor;
use super::file::FileHandle;
use super::layout::{BootSectorDisk, NTFS_OEM_ID};
use super::record;
use crate::error::{Error, Result};

/// One name in a directory; see [`NtfsVolume::list_directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The name.
    pub name: String,
    /// Its MFT record number.
    pub record: u64,
    /// True for a directory.
    pub is_directory: bool,
    /// The modification time its index entry records (FILETIME; the directory's copy, which
    /// Windows updates lazily).
    pub modified_filetime: u64,
}

/// Most path components we follow; deeper paths are refused (Windows' MAX_PATH is far below).
pub const MAX_PATH_COMPONENTS: usize = 128;

/// Longest file name NTFS stores, in UTF-16 code units.
const MAX_NAME_UNITS: usize = 255;

/// The MFT record number of the root directory.
const ROOT_RECORD: u64 = 5;

/// Size of a boot sector.
const BOOT_SECTOR_BYTES: u64 = 512;

/// Index record sizes we accept: the `ntfs` crate allocates one record of this size per index
/// node it reads, before any read can fail (Windows writes 4096).
const INDEX_RECORD_BYTES: std::ops::RangeInclusive<u32> = 512..=64 * 1024;

/// An open NTFS volume, read-only.
pub struct NtfsVolume {
    partition: Arc<dyn ReadAt>,
    ntfs: Ntfs,
    label: Option<String>,
}

impl std::fmt::Debug for NtfsVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfsVolume")
            .field("cluster_size", &self.ntfs.cluster_size())
            .field("total_clusters", &self.total_clusters())
            .field("serial", &format_args!("{:016x}", self.serial()))
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl NtfsVolume {
    /// Opens the NTFS volume that fills `partition`: checks the boot sector, reads `$UpCase`
    /// (needed for case-insensitive lookups) and the volume label.
    ///
    /// Refuses, with [`Error::Corrupt`] naming the offset, a partition that is too short, a boot
    /// sector without the NTFS signature or with impossible geometry, and a volume that claims
    /// more bytes than the partition holds (a truncated image).
    pub fn open(partition: Arc<dyn ReadAt>) -> Result<Self> {
        let what = "NTFS boot sector";
        if partition.len() < BOOT_SECTOR_BYTES {
            return Err(Error::corrupt(
                what,
                0,
                format!("the partition has only {} bytes", partition.len()),
            ));
        }
        let mut boot = [0u8; BOOT_SECTOR_BYTES as usize];
        partition.read_exact_at(0, &mut boot)?;
        let oem = BootSectorDisk::ref_from_prefix(boot.as_slice())
            .map(|(b, _)| b.oem_id)
            .unwrap_or_default();
        let oem = oem.as_slice();
        if oem != NTFS_OEM_ID {
            return Err(Error::corrupt(
                what,
                offset_of!(BootSectorDisk, oem_id) as u64,
                format!(
                    "OEM ID is {:?}, expected \"NTFS    \": not an NTFS volume",
                    String::from_utf8_lossy(oem)
                ),
            ));
        }
        let mut fs = NtfsCursor::new(Arc::clone(&partition));
        let mut ntfs = Ntfs::new(&mut fs).map_err(|e| Error::corrupt(what, 0, e.to_string()))?;
        // The crate allows records of up to 127 clusters and allocates that much for every
        // record it opens, starting with $UpCase: check the size before anything is read.
        let record_bytes = ntfs.file_record_size();
        if !record_bytes.is_power_of_two()
            || !(512..=record::MAX_RECORD_BYTES).contains(&record_bytes)
        {
            return Err(Error::corrupt(
                what,
                offset_of!(BootSectorDisk, clusters_per_record) as u64,
                format!(
                    "the clusters-per-MFT-record field gives {record_bytes} bytes per record, expected a power of two from 512 to {}",
                    record::MAX_RECORD_BYTES
                ),
            ));
        }
        if ntfs.size() > partition.len() {
            return Err(Error::corrupt(
                what,
                offset_of!(BootSectorDisk, total_sectors) as u64,
                format!(
                    "the volume claims {} bytes but the partition holds only {} (truncated image?)",
                    ntfs.size(),
                    partition.len()
                ),
            ));
        }
        let mft = ntfs
            .mft_position()
            .value()
            .map_or(u64::MAX, std::num::NonZeroU64::get);
        if mft >= ntfs.size() {
            return Err(Error::corrupt(
                what,
                offset_of!(BootSectorDisk, mft_lcn) as u64,
                format!(
                    "the MFT at byte {mft} lies outside the volume of {} bytes",
                    ntfs.size()
                ),
            ));
        }
        ntfs.read_upcase_table(&mut fs)
            .map_err(|e| Error::ntfs("$UpCase table", e))?;
        // The label is cosmetic: a damaged $Volume record does not stop the volume from opening.
        let label = match ntfs.volume_name(&mut fs) {
            Some(Ok(name)) => Some(name.name().to_string_lossy()),
            _ => None,
        };
        Ok(Self {
            partition,
            ntfs,
            label,
        })
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.ntfs.cluster_size()
    }

    /// Clusters in the volume, as the boot sector gives them (its sector count times the sector
    /// size, divided by the cluster size, rounded down, as Windows and ntfs-3g count them).
    pub fn total_clusters(&self) -> u64 {
        self.ntfs
            .size()
            .checked_div(u64::from(self.ntfs.cluster_size()))
            .unwrap_or(0)
    }

    /// Bytes in the volume according to its boot sector.
    pub fn size_bytes(&self) -> u64 {
        self.ntfs.size()
    }

    /// The 64-bit volume serial number from the boot sector.
    pub fn serial(&self) -> u64 {
        self.ntfs.serial_number()
    }

    /// The volume label (`$Volume`'s `$VOLUME_NAME`), when it has one and it could be read.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// NTFS bytes per sector (boot sector +0x0B).
    pub fn bytes_per_sector(&self) -> u32 {
        u32::from(self.ntfs.sector_size())
    }

    /// Bytes per MFT record.
    pub fn record_size(&self) -> u32 {
        self.ntfs.file_record_size()
    }

    /// The partition this volume reads from.
    pub fn partition(&self) -> &Arc<dyn ReadAt> {
        &self.partition
    }

    pub(crate) fn cursor(&self) -> NtfsCursor {
        NtfsCursor::new(Arc::clone(&self.partition))
    }

    /// Reads MFT record `record`, checking that it is in use and that its non-resident attribute
    /// headers fit in it (the `ntfs` crate reads them unchecked).
    pub(crate) fn file<'n>(&'n self, fs: &mut NtfsCursor, record: u64) -> Result<NtfsFile<'n>> {
        self.file_record(fs, record, true)?.ok_or_else(|| {
            Error::corrupt(
                format!("MFT record {record}"),
                0,
                "the record is not in use",
            )
        })
    }

    /// As [`file`](Self::file), but `None` for a record that is not in use (for walks over the
    /// whole MFT).
    pub(crate) fn file_if_in_use<'n>(
        &'n self,
        fs: &mut NtfsCursor,
        record: u64,
    ) -> Result<Option<NtfsFile<'n>>> {
        self.file_record(fs, record, false)
    }

    fn file_record<'n>(
        &'n self,
        fs: &mut NtfsCursor,
        record: u64,
        require_in_use: bool,
    ) -> Result<Option<NtfsFile<'n>>> {
        let what = || format!("MFT record {record}");
        let file = self
            .ntfs
            .file(fs, record)
            .map_err(|e| Error::ntfs(what(), e))?;
        let record_offset = byte_position(file.position());
        if !file.flags().contains(NtfsFileFlags::IN_USE) {
            if require_in_use {
                return Err(Error::corrupt(
                    what(),
                    record_offset,
                    "the record is not in use (a stale reference?)",
                ));
            }
            return Ok(None);
        }
        let mut non_resident = Vec::new();
        for attribute in file.attributes_raw() {
            let attribute = attribute.map_err(|e| Error::ntfs(what(), e))?;
            if !attribute.is_resident() {
                non_resident
                    .push(byte_position(attribute.position()).saturating_sub(record_offset));
            }
        }
        record::check_non_resident_headers(
            self.partition.as_ref(),
            record_offset,
            self.record_size(),
            &non_resident,
        )?;
        Ok(Some(file))
    }

    /// Finds `path` from the root directory and returns its MFT record number, or `None` when a
    /// component does not exist (or a component before the last is not a directory).
    ///
    /// Components are separated by `\` or `/`; empty components and `.` are skipped, `..` is
    /// refused. Names compare case-insensitively through the volume's `$UpCase` table, as
    /// Windows compares them (8.3 short names match too). Reparse points (junctions, symbolic
    /// links) are not followed.
    pub fn lookup(&self, path: &str) -> Result<Option<u64>> {
        let components = split_path(path)?;
        let mut fs = self.cursor();
        let mut record = ROOT_RECORD;
        for name in components {
            let dir = self.file(&mut fs, record)?;
            if !dir.is_directory() {
                return Ok(None);
            }
            check_index_record_size(&dir, &mut fs, record)?;
            let index = dir
                .directory_index(&mut fs)
                .map_err(|e| Error::ntfs(format!("directory index of MFT record {record}"), e))?;
            let mut finder = index.finder();
            let reference = match NtfsFileNameIndex::find(&mut finder, &self.ntfs, &mut fs, name) {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::ntfs(
                        format!("directory index of MFT record {record}, looking up {name:?}"),
                        e,
                    ))
                }
                Some(Ok(entry)) => entry.file_reference(),
            };
            let next = reference.file_record_number();
            let child = self.file(&mut fs, next)?;
            let wanted = reference.sequence_number();
            if wanted != 0 && child.sequence_number() != wanted {
                return Err(Error::corrupt(
                    format!("directory index of MFT record {record}"),
                    byte_position(child.position()),
                    format!(
                        "entry {name:?} points at MFT record {next} with sequence number {wanted}, but the record has {}",
                        child.sequence_number()
                    ),
                ));
            }
            record = next;
        }
        Ok(Some(record))
    }

    /// The names in the directory at `path` (Win32 or POSIX names; DOS 8.3 aliases left out),
    /// with whether each is a directory and its `$FILE_NAME` modification time (a FILETIME):
    /// `None` when `path` does not exist or is no directory. At most `max_entries` are returned.
    pub fn list_directory(
        &self,
        path: &str,
        max_entries: usize,
    ) -> Result<Option<Vec<DirectoryEntry>>> {
        let Some(record) = self.lookup(path)? else {
            return Ok(None);
        };
        let mut fs = self.cursor();
        let dir = self.file(&mut fs, record)?;
        if !dir.is_directory() {
            return Ok(None);
        }
        check_index_record_size(&dir, &mut fs, record)?;
        let what = || format!("directory index of MFT record {record} ({path})");
        let index = dir
            .directory_index(&mut fs)
            .map_err(|e| Error::ntfs(what(), e))?;
        let mut entries = index.entries();
        let mut found = Vec::new();
        while let Some(entry) = entries.next(&mut fs) {
            let entry = entry.map_err(|e| Error::ntfs(what(), e))?;
            let Some(key) = entry.key() else { continue };
            let name = key.map_err(|e| Error::ntfs(what(), e))?;
            if name.namespace() == ntfs::structured_values::NtfsFileNamespace::Dos {
                continue;
            }
            if found.len() >= max_entries {
                break;
            }
            found.push(DirectoryEntry {
                name: name.name().to_string_lossy(),
                record: entry.file_reference().file_record_number(),
                is_directory: name.is_directory(),
                modified_filetime: name.modification_time().nt_timestamp(),
            });
        }
        Ok(Some(found))
    }

    /// Opens the file at `path` (see [`lookup`](Self::lookup)): `None` when it does not exist.
    /// Refuses a directory. The returned handle reads the file's unnamed `$DATA` stream.
    pub fn open_file(&self, path: &str) -> Result<Option<FileHandle>> {
        match self.lookup(path)? {
            None => Ok(None),
            Some(record) => FileHandle::open(self, record, path).map(Some),
        }
    }

    /// The `$VOLUME_INFORMATION` flags of `$Volume` (bit 0: dirty), as stored.
    pub fn volume_flags(&self) -> Result<u16> {
        let mut fs = NtfsCursor::new(Arc::clone(&self.partition));
        let info = self
            .ntfs
            .volume_info(&mut fs)
            .map_err(|e| Error::ntfs("$Volume $VOLUME_INFORMATION", e))?;
        Ok(info.flags().bits())
    }

    /// Opens MFT record `record` as a file (system files such as `$Bitmap`, record 6).
    pub fn open_record(&self, record: u64) -> Result<FileHandle> {
        FileHandle::open(self, record, &format!("MFT record {record}"))
    }

    /// Reads a whole small file (ReAgent.xml and the like): `None` when it does not exist;
    /// [`Error::Corrupt`] when it is larger than `cap_bytes`.
    pub fn read_small_file(&self, path: &str, cap_bytes: u64) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.open_file(path)? else {
            return Ok(None);
        };
        if file.size() > cap_bytes {
            return Err(Error::corrupt(
                format!("file {path}"),
                file.record_offset(),
                format!(
                    "it is {} bytes, more than the {cap_bytes} bytes expected of it",
                    file.size()
                ),
            ));
        }
        let reader = file.data_reader()?;
        let len = usize::try_from(file.size())
            .map_err(|_| Error::Unsupported(format!("{path} does not fit in memory")))?;
        let mut bytes = vec![0u8; len];
        reader.read_exact_at(0, &mut bytes)?;
        Ok(Some(bytes))
    }
}

/// Refuses a directory whose `$I30` index root gives an index record size the `ntfs` crate would
/// allocate unchecked (up to 4 GiB per index node, even when the node's run is sparse and reads
/// nothing). Looks at the same attribute `NtfsFile::directory_index` picks: the first `$I30`
/// `$INDEX_ROOT`; when there is none, `directory_index` reports that.
fn check_index_record_size(dir: &NtfsFile, fs: &mut NtfsCursor, record: u64) -> Result<()> {
    let what = || format!("$INDEX_ROOT of MFT record {record}");
    let mut attributes = dir.attributes();
    while let Some(item) = attributes.next(fs) {
        let item = item.map_err(|e| Error::ntfs(what(), e))?;
        let attribute = item.to_attribute().map_err(|e| Error::ntfs(what(), e))?;
        let is_index_root = attribute.ty().ok() == Some(NtfsAttributeType::IndexRoot)
            && attribute.name().is_ok_and(|name| name == "$I30");
        if !is_index_root {
            continue;
        }
        let root = attribute
            .resident_structured_value::<NtfsIndexRoot>()
            .map_err(|e| Error::ntfs(what(), e))?;
        let bytes = root.index_record_size();
        if !bytes.is_power_of_two() || !INDEX_RECORD_BYTES.contains(&bytes) {
            return Err(Error::corrupt(
                what(),
                byte_position(root.position()),
                format!(
                    "index record size is {bytes} bytes, expected a power of two from {} to {}",
                    INDEX_RECORD_BYTES.start(),
                    INDEX_RECORD_BYTES.end()
                ),
            ));
        }
        return Ok(());
    }
    Ok(())
}

/// A byte position in the volume as the `ntfs` crate reports it (0 when it has none).
pub(crate) fn byte_position(position: ntfs::types::NtfsPosition) -> u64 {
    position.value().map_or(0, std::num::NonZeroU64::get)
}

/// Splits a Windows or POSIX style path into its names.
fn split_path(path: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    for name in path.split(['\\', '/']) {
        match name {
            "" | "." => continue,
            ".." => return Err(Error::Unsupported(format!("path {path:?} contains \"..\""))),
            _ => {}
        }
        if name.encode_utf16().count() > MAX_NAME_UNITS {
            return Err(Error::Unsupported(format!(
                "a name in {path:?} is longer than NTFS allows"
            )));
        }
        if names.len() >= MAX_PATH_COMPONENTS {
            return Err(Error::Unsupported(format!(
                "path {path:?} has more than {MAX_PATH_COMPONENTS} components"
            )));
        }
        names.push(name);
    }
    Ok(names)
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
    fn paths_split_on_both_separators() {
        assert_eq!(
            split_path(r"Windows\System32/Recovery\\ReAgent.xml").unwrap(),
            ["Windows", "System32", "Recovery", "ReAgent.xml"]
        );
        assert_eq!(split_path(r"\.\a").unwrap(), ["a"]);
        assert!(split_path("").unwrap().is_empty());
        assert!(split_path(r"a\..\b").is_err());
        assert!(split_path(&"x".repeat(256)).is_err());
        assert!(split_path(&"a/".repeat(200)).is_err());
    }
}

//! A file on an NTFS volume, read in place: its unnamed `$DATA` stream as byte extents of the
//! partition (the data runs), so a 500 MiB Winre.wim is read where it lies, never copied out.
//!
//! The `ntfs` crate finds the attributes and decodes the data runs; we gather the runs of every
//! fragment of `$DATA` (a very fragmented file spreads them over several MFT records, listed in
//! its `$ATTRIBUTE_LIST`), check that they join up, and cut them at the valid data length so the
//! bytes past it read as zeros, as Windows returns them.
//!
// Sources: the `ntfs` crate (attributes, attribute lists, data runs); Linux-NTFS documentation
// ("Attribute - $ATTRIBUTE_LIST", "Data runs"), flatcap.github.io/linux-ntfs; [MS-FSCC] 2.6 for
// the FILE_ATTRIBUTE_* values.

use std::sync::Arc;

use ntfs::structured_values::NtfsAttributeList;
use ntfs::{NtfsAttribute, NtfsAttributeFlags, NtfsAttributeType, NtfsFile};
use winre_readat::{Extent, Extents, ReadAt};

use super::cursor::NtfsCursor;
use super::record;
use super::volume::{byte_position, NtfsVolume};
use crate::error::{Error, Result};

/// Most `$ATTRIBUTE_LIST` entries we walk (a file in a million fragments has a few thousand).
const MAX_LIST_ENTRIES: usize = 65_536;

/// Most data runs we keep for one file.
const MAX_RUNS: usize = 1 << 20;

/// One data run: `clusters` clusters of the file from `vcn` on, at `lcn` on the volume, or a
/// sparse hole (`lcn == None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRun {
    /// First virtual cluster (cluster of the file) of the run.
    pub vcn: u64,
    /// First logical cluster (cluster of the volume), `None` for a hole.
    pub lcn: Option<u64>,
    /// Length in clusters.
    pub clusters: u64,
}

/// The attribute flags of the `$DATA` stream that change how its bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct FileAttributes {
    /// NTFS (LZNT1) compressed.
    pub compressed: bool,
    /// EFS encrypted.
    pub encrypted: bool,
    /// Sparse: some runs may be holes.
    pub sparse: bool,
}

impl FileAttributes {
    fn from_flags(flags: u16) -> Self {
        let has = |flag: NtfsAttributeFlags| flags & flag.bits() != 0;
        Self {
            compressed: has(NtfsAttributeFlags::COMPRESSED),
            encrypted: has(NtfsAttributeFlags::ENCRYPTED),
            sparse: has(NtfsAttributeFlags::SPARSE),
        }
    }
}

#[derive(Debug, Clone)]
enum FileData {
    /// Stored inside the MFT record.
    Resident(Arc<Vec<u8>>),
    /// Stored in clusters; the runs, in VCN order, joined up.
    NonResident(Vec<DataRun>),
}

/// The four `$STANDARD_INFORMATION` times of a file (FILETIMEs; 0 when the record has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileTimes {
    /// Created.
    pub created: u64,
    /// Data last modified.
    pub modified: u64,
    /// MFT record last changed.
    pub mft_modified: u64,
    /// Last accessed.
    pub accessed: u64,
}

/// An open file: its sizes, its `$DATA` flags and where its bytes are.
#[derive(Clone)]
pub struct FileHandle {
    path: String,
    record: u64,
    record_offset: u64,
    size_bytes: u64,
    valid_data_bytes: u64,
    allocated_bytes: u64,
    attributes: FileAttributes,
    standard_attributes: u32,
    times: FileTimes,
    in_attribute_list: bool,
    cluster_size: u64,
    data: FileData,
    partition: Arc<dyn ReadAt>,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.path)
            .field("record", &self.record)
            .field("size_bytes", &self.size_bytes)
            .field("valid_data_bytes", &self.valid_data_bytes)
            .field("attributes", &self.attributes)
            .field("runs", &self.data_runs().len())
            .finish_non_exhaustive()
    }
}

/// What [`FileHandle::open`] gathers about one fragment of `$DATA`.
struct Fragment {
    header: record::NonResidentHeader,
    runs: Vec<DataRun>,
}

impl FileHandle {
    /// Reads MFT record `record` and the layout of its unnamed `$DATA`. `path` names the file in
    /// messages.
    pub(crate) fn open(volume: &NtfsVolume, record: u64, path: &str) -> Result<Self> {
        let mut fs = volume.cursor();
        let file = volume.file(&mut fs, record)?;
        let record_offset = byte_position(file.position());
        if file.is_directory() {
            return Err(Error::Unsupported(format!(
                "{path} is a directory, not a file"
            )));
        }
        let info = file.info().ok();
        let standard_attributes = info.as_ref().map_or(0, |i| i.file_attributes().bits());
        let times = info
            .as_ref()
            .map_or_else(FileTimes::default, |i| FileTimes {
                created: i.creation_time().nt_timestamp(),
                modified: i.modification_time().nt_timestamp(),
                mft_modified: i.mft_record_modification_time().nt_timestamp(),
                accessed: i.access_time().nt_timestamp(),
            });
        let cluster_size = u64::from(volume.cluster_size());
        let ntfs_error = |e| Error::ntfs(format!("attributes of {path} (MFT record {record})"), e);

        // The base record's own unnamed $DATA, and its $ATTRIBUTE_LIST if it has one.
        let mut list = None;
        let mut base_data = None;
        for attribute in file.attributes_raw() {
            let attribute = attribute.map_err(ntfs_error)?;
            match attribute.ty() {
                Ok(NtfsAttributeType::AttributeList) => list = Some(attribute),
                Ok(NtfsAttributeType::Data) if base_data.is_none() && is_unnamed(&attribute) => {
                    base_data = Some(attribute)
                }
                _ => {}
            }
        }

        let mut fragments = Vec::new();
        let in_attribute_list = list.is_some();
        if let Some(list) = list {
            // Every fragment of the unnamed $DATA, wherever it lives, by (record, instance).
            let list: NtfsAttributeList = list.structured_value(&mut fs).map_err(ntfs_error)?;
            let mut entries = list.entries();
            let mut wanted = Vec::new();
            let mut seen = 0usize;
            while let Some(entry) = entries.next(&mut fs) {
                let entry = entry.map_err(ntfs_error)?;
                seen = seen.saturating_add(1);
                if seen > MAX_LIST_ENTRIES {
                    return Err(Error::corrupt(
                        format!("$ATTRIBUTE_LIST of {path}"),
                        record_offset,
                        format!("more than {MAX_LIST_ENTRIES} entries"),
                    ));
                }
                if entry.ty().ok() == Some(NtfsAttributeType::Data) && entry.name_length() == 0 {
                    let reference = entry.base_file_reference();
                    wanted.push((
                        reference.file_record_number(),
                        reference.sequence_number(),
                        entry.instance(),
                    ));
                }
            }
            if wanted.is_empty() {
                return Err(Error::corrupt(
                    format!("file {path}"),
                    record_offset,
                    "no unnamed $DATA attribute",
                ));
            }
            for (fragment_record, sequence, instance) in wanted {
                if fragment_record == record {
                    let attribute = find_instance(&file, instance, path)?;
                    fragments.push(read_fragment(volume, &mut fs, &file, &attribute, path)?);
                } else {
                    let extension = volume.file(&mut fs, fragment_record)?;
                    if sequence != 0 && extension.sequence_number() != sequence {
                        return Err(Error::corrupt(
                            format!("$ATTRIBUTE_LIST of {path}"),
                            record_offset,
                            format!(
                                "it names MFT record {fragment_record} with sequence number {sequence}, but the record has {}",
                                extension.sequence_number()
                            ),
                        ));
                    }
                    let attribute = find_instance(&extension, instance, path)?;
                    fragments.push(read_fragment(
                        volume, &mut fs, &extension, &attribute, path,
                    )?);
                }
            }
        } else {
            let Some(attribute) = base_data else {
                return Err(Error::corrupt(
                    format!("file {path}"),
                    record_offset,
                    "no unnamed $DATA attribute",
                ));
            };
            if attribute.is_resident() {
                let value = attribute.value(&mut fs).map_err(ntfs_error)?;
                let bytes = match value {
                    ntfs::attribute_value::NtfsAttributeValue::Resident(resident) => {
                        resident.data().to_vec()
                    }
                    _ => {
                        return Err(Error::corrupt(
                            format!("$DATA of {path}"),
                            record_offset,
                            "resident value expected",
                        ))
                    }
                };
                let len = bytes.len() as u64;
                let flags = attribute.flags().bits();
                return Ok(Self {
                    path: path.to_owned(),
                    record,
                    record_offset,
                    size_bytes: len,
                    valid_data_bytes: len,
                    allocated_bytes: len,
                    attributes: FileAttributes::from_flags(flags),
                    standard_attributes,
                    times,
                    in_attribute_list,
                    cluster_size,
                    data: FileData::Resident(Arc::new(bytes)),
                    partition: Arc::clone(volume.partition()),
                });
            }
            fragments.push(read_fragment(volume, &mut fs, &file, &attribute, path)?);
        }

        // Join the fragments in VCN order; the first one carries the sizes.
        fragments.sort_by_key(|f| f.header.lowest_vcn);
        let what = format!("data runs of {path}");
        let Some(first) = fragments.first() else {
            return Err(Error::corrupt(what, record_offset, "no $DATA fragment"));
        };
        let header = first.header;
        let mut runs = Vec::new();
        let mut next_vcn = 0u64;
        for fragment in fragments {
            if fragment.header.lowest_vcn != next_vcn {
                return Err(Error::corrupt(
                    what,
                    record_offset,
                    format!(
                        "a $DATA fragment starts at VCN {}, expected {next_vcn}",
                        fragment.header.lowest_vcn
                    ),
                ));
            }
            next_vcn = fragment.header.end_vcn;
            if runs.len().saturating_add(fragment.runs.len()) > MAX_RUNS {
                return Err(Error::Unsupported(format!(
                    "{path} has more than {MAX_RUNS} data runs"
                )));
            }
            runs.extend(fragment.runs);
        }
        let mapped_bytes = next_vcn.checked_mul(cluster_size).ok_or_else(|| {
            Error::corrupt(
                &what,
                record_offset,
                format!("{next_vcn} clusters overflow"),
            )
        })?;
        let attributes = FileAttributes::from_flags(header.flags);
        if header.initialized_bytes > header.data_bytes {
            return Err(Error::corrupt(
                &what,
                record_offset,
                format!(
                    "valid data length {} exceeds the data size {}",
                    header.initialized_bytes, header.data_bytes
                ),
            ));
        }
        // Compressed streams map fewer clusters than their size; everything else maps at least it.
        if !attributes.compressed && header.data_bytes > mapped_bytes {
            return Err(Error::corrupt(
                &what,
                record_offset,
                format!(
                    "data size {} exceeds the {mapped_bytes} bytes its runs map",
                    header.data_bytes
                ),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            record,
            record_offset,
            size_bytes: header.data_bytes,
            valid_data_bytes: header.initialized_bytes,
            allocated_bytes: header.allocated_bytes,
            attributes,
            standard_attributes,
            times,
            in_attribute_list,
            cluster_size,
            data: FileData::NonResident(runs),
            partition: Arc::clone(volume.partition()),
        })
    }

    /// The path (or "MFT record N") the file was opened by.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Its MFT record number.
    pub fn record_number(&self) -> u64 {
        self.record
    }

    /// Byte offset of its MFT record in the volume (for messages).
    pub fn record_offset(&self) -> u64 {
        self.record_offset
    }

    /// The size of the unnamed `$DATA` stream in bytes (what `dir` shows).
    pub fn size(&self) -> u64 {
        self.size_bytes
    }

    /// The valid data length: bytes from here to [`size`](Self::size) read as zeros.
    pub fn valid_data_length(&self) -> u64 {
        self.valid_data_bytes
    }

    /// Bytes allocated to the stream (clusters times cluster size; the value length if resident).
    pub fn allocated_size(&self) -> u64 {
        self.allocated_bytes
    }

    /// Compressed / encrypted / sparse flags of the `$DATA` attribute.
    pub fn attributes(&self) -> FileAttributes {
        self.attributes
    }

    /// The FILE_ATTRIBUTE_* bits of `$STANDARD_INFORMATION` (0 if unreadable).
    pub fn standard_attributes(&self) -> u32 {
        self.standard_attributes
    }

    /// Its `$STANDARD_INFORMATION` times.
    pub fn times(&self) -> FileTimes {
        self.times
    }

    /// True when the file has an `$ATTRIBUTE_LIST` (its attributes span several MFT records).
    pub fn has_attribute_list(&self) -> bool {
        self.in_attribute_list
    }

    /// True when `$DATA` is stored inside the MFT record.
    pub fn is_resident(&self) -> bool {
        matches!(self.data, FileData::Resident(_))
    }

    /// The data runs, in VCN order (empty when resident).
    pub fn data_runs(&self) -> &[DataRun] {
        match &self.data {
            FileData::Resident(_) => &[],
            FileData::NonResident(runs) => runs,
        }
    }

    /// The file's bytes as a [`ReadAt`] over the partition (or over the resident bytes): holes
    /// and the bytes past the valid data length read as zeros.
    ///
    /// Refuses NTFS-compressed and EFS-encrypted streams with [`Error::Unsupported`]: their
    /// clusters do not hold the file's bytes.
    pub fn data_reader(&self) -> Result<Extents<Arc<dyn ReadAt>>> {
        if self.attributes.compressed {
            return Err(Error::Unsupported(format!(
                "{} is NTFS-compressed (LZNT1), which winre does not decompress; uncompress it on Windows (compact /u) first",
                self.path
            )));
        }
        if self.attributes.encrypted {
            return Err(Error::Unsupported(format!(
                "{} is EFS-encrypted; winre cannot read its bytes",
                self.path
            )));
        }
        match &self.data {
            FileData::Resident(bytes) => {
                let source: Arc<dyn ReadAt> = bytes.clone();
                let len = source.len();
                Ok(Extents::new(
                    source,
                    [Extent {
                        source_offset: Some(0),
                        len,
                    }],
                    len,
                )?)
            }
            FileData::NonResident(runs) => {
                let extents = valid_extents(
                    runs,
                    self.cluster_size,
                    self.valid_data_bytes,
                    self.partition.len(),
                )
                .map_err(|detail| {
                    Error::corrupt(
                        format!("data runs of {}", self.path),
                        self.record_offset,
                        detail,
                    )
                })?;
                Ok(Extents::new(
                    Arc::clone(&self.partition),
                    extents,
                    self.size_bytes,
                )?)
            }
        }
    }
}

/// The byte extents that hold the first `valid_bytes` of a stream: runs past the valid data
/// length are dropped and the last one is cut, so the rest reads as zeros.
pub(crate) fn valid_extents(
    runs: &[DataRun],
    cluster_size: u64,
    valid_bytes: u64,
    volume_bytes: u64,
) -> std::result::Result<Vec<Extent>, String> {
    let mut extents = Vec::new();
    let mut remaining = valid_bytes;
    for run in runs {
        if remaining == 0 {
            break;
        }
        let run_bytes = run
            .clusters
            .checked_mul(cluster_size)
            .ok_or("run length overflows")?;
        let source_offset = match run.lcn {
            None => None,
            Some(lcn) => {
                let start = lcn
                    .checked_mul(cluster_size)
                    .ok_or("run position overflows")?;
                if start
                    .checked_add(run_bytes)
                    .is_none_or(|end| end > volume_bytes)
                {
                    return Err(format!(
                        "run at VCN {} (LCN {lcn}, {} clusters) ends past the end of the volume",
                        run.vcn, run.clusters
                    ));
                }
                Some(start)
            }
        };
        let len = run_bytes.min(remaining);
        extents.push(Extent { source_offset, len });
        remaining = remaining.saturating_sub(len);
    }
    if remaining != 0 {
        return Err(format!(
            "the runs end {remaining} bytes short of the valid data length {valid_bytes}"
        ));
    }
    Ok(extents)
}

fn is_unnamed(attribute: &NtfsAttribute) -> bool {
    attribute.name_length() == 0
}

/// The `$DATA` attribute with `instance` in `file`'s own record.
fn find_instance<'n, 'f>(
    file: &'f NtfsFile<'n>,
    instance: u16,
    path: &str,
) -> Result<NtfsAttribute<'n, 'f>> {
    for attribute in file.attributes_raw() {
        let attribute = attribute.map_err(|e| Error::ntfs(format!("attributes of {path}"), e))?;
        if attribute.instance() == instance && attribute.ty().ok() == Some(NtfsAttributeType::Data)
        {
            return Ok(attribute);
        }
    }
    Err(Error::corrupt(
        format!("$ATTRIBUTE_LIST of {path}"),
        byte_position(file.position()),
        format!(
            "MFT record {} has no $DATA attribute with instance {instance}",
            file.file_record_number()
        ),
    ))
}

/// The header fields and data runs of one non-resident `$DATA` attribute.
fn read_fragment(
    volume: &NtfsVolume,
    fs: &mut NtfsCursor,
    file: &NtfsFile,
    attribute: &NtfsAttribute,
    path: &str,
) -> Result<Fragment> {
    let record_offset = byte_position(file.position());
    let what = format!(
        "$DATA of {path} in MFT record {}",
        file.file_record_number()
    );
    if attribute.is_resident() {
        return Err(Error::corrupt(
            what,
            record_offset,
            "a fragment of a spread-out $DATA is resident",
        ));
    }
    let attribute_offset = byte_position(attribute.position()).saturating_sub(record_offset);
    let header = record::non_resident_header(
        volume.partition().as_ref(),
        record_offset,
        volume.record_size(),
        attribute_offset,
    )?;
    let value = attribute
        .value(fs)
        .map_err(|e| Error::ntfs(what.clone(), e))?;
    let ntfs::attribute_value::NtfsAttributeValue::NonResident(value) = value else {
        return Err(Error::corrupt(
            what,
            record_offset,
            "non-resident value expected",
        ));
    };
    let cluster_size = u64::from(volume.cluster_size());
    let mut runs = Vec::new();
    let mut vcn = header.lowest_vcn;
    for run in value.data_runs() {
        let run = run.map_err(|e| Error::ntfs(format!("data runs of {what}"), e))?;
        if runs.len() >= MAX_RUNS {
            return Err(Error::Unsupported(format!(
                "{path} has more than {MAX_RUNS} data runs"
            )));
        }
        let clusters = run.allocated_size().checked_div(cluster_size).unwrap_or(0);
        // The crate reports a hole as "no position" (it also would for LCN 0, which only $Boot uses).
        let lcn = run
            .data_position()
            .value()
            .map(|byte| byte.get().checked_div(cluster_size).unwrap_or(0));
        runs.push(DataRun { vcn, lcn, clusters });
        vcn = vcn
            .checked_add(clusters)
            .ok_or_else(|| Error::corrupt(&what, record_offset, "VCNs overflow"))?;
    }
    if vcn != header.end_vcn {
        return Err(Error::corrupt(
            what,
            record_offset,
            format!(
                "its runs map VCNs {}..{vcn}, but its header says {}..{}",
                header.lowest_vcn, header.lowest_vcn, header.end_vcn
            ),
        ));
    }
    Ok(Fragment { header, runs })
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
    fn flags_decode() {
        assert_eq!(
            FileAttributes::from_flags(0x0001),
            FileAttributes {
                compressed: true,
                encrypted: false,
                sparse: false
            }
        );
        assert_eq!(
            FileAttributes::from_flags(0xc000),
            FileAttributes {
                compressed: false,
                encrypted: true,
                sparse: true
            }
        );
    }

    #[test]
    fn extents_stop_at_the_valid_data_length() {
        let runs = [
            DataRun {
                vcn: 0,
                lcn: Some(10),
                clusters: 2,
            },
            DataRun {
                vcn: 2,
                lcn: None,
                clusters: 1,
            },
            DataRun {
                vcn: 3,
                lcn: Some(4),
                clusters: 3,
            },
        ];
        let e = valid_extents(&runs, 100, 350, 10_000).unwrap();
        assert_eq!(
            e,
            [
                Extent {
                    source_offset: Some(1000),
                    len: 200
                },
                Extent {
                    source_offset: None,
                    len: 100
                },
                Extent {
                    source_offset: Some(400),
                    len: 50
                },
            ]
        );
        assert!(valid_extents(&runs, 100, 0, 10_000).unwrap().is_empty());
        assert!(valid_extents(&runs, 100, 601, 10_000)
            .unwrap_err()
            .contains("short"));
        assert!(valid_extents(&runs, 100, 600, 1_000)
            .unwrap_err()
            .contains("past the end"));
        assert!(valid_extents(
            &[DataRun {
                vcn: 0,
                lcn: Some(u64::MAX),
                clusters: 1
            }],
            4096,
            1,
            u64::MAX
        )
        .is_err());
    }

    /// A compressed or encrypted stream is refused, with its path in the message.
    #[test]
    fn compressed_and_encrypted_are_refused() {
        let mut file = FileHandle {
            path: r"\Recovery\WindowsRE\Winre.wim".into(),
            record: 70,
            record_offset: 0,
            size_bytes: 10,
            valid_data_bytes: 10,
            allocated_bytes: 4096,
            attributes: FileAttributes::from_flags(0x0001),
            standard_attributes: 0,
            times: FileTimes::default(),
            in_attribute_list: false,
            cluster_size: 4096,
            data: FileData::NonResident(vec![DataRun {
                vcn: 0,
                lcn: Some(1),
                clusters: 1,
            }]),
            partition: Arc::new(vec![0u8; 8192]),
        };
        let e = file.data_reader().err().unwrap().to_string();
        assert!(e.contains("Winre.wim is NTFS-compressed"), "{e}");
        file.attributes = FileAttributes::from_flags(0x4000);
        let e = file.data_reader().err().unwrap().to_string();
        assert!(e.contains("EFS-encrypted"), "{e}");
        file.attributes = FileAttributes::default();
        assert_eq!(file.data_reader().unwrap().len(), 10);
    }
}

//! Partition tables: GPT (our own validating reader, primary then backup) and MBR, turned into
//! one list of [`Partition`]s with their kind and the file system found in each.
//!
//! [`read_table`] decides the scheme: a valid GPT header (at LBA 1, or the backup) means GPT; an
//! MBR with a 0xEE entry but no valid GPT is an error naming both headers' failures; a file
//! system boot sector at LBA 0 means a disk without a table; else an MBR with its 0x55AA mark.

use std::sync::Arc;

use serde::{Serialize, Serializer};
use winre_readat::{ReadAt, Slice};

use crate::container::{ContainerInfo, Disk, Format};
use crate::probe::{self, Filesystem};
use crate::{Error, Result};

pub mod gpt;
pub mod kind;
pub mod layout;
pub mod mbr;

pub use gpt::Guid;
pub use kind::Kind;

/// The partitioning scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// GUID Partition Table.
    Gpt,
    /// Master Boot Record.
    Mbr,
    /// No partition table.
    None,
}

/// Facts about the table itself (serialized as the report's `partition_table`).
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// gpt, mbr or none.
    pub scheme: Scheme,
    /// The logical sector size the table's LBAs are in.
    pub sector_size: u32,
    /// GPT: the disk GUID.
    pub disk_guid: Option<Guid>,
    /// GPT: which header was used, "primary" or "backup".
    pub gpt_source: Option<gpt::Source>,
    /// GPT: number of entries the array holds (used or not).
    pub gpt_entry_count: Option<u32>,
    /// GPT: first LBA partitions may use.
    pub first_usable_lba: Option<u64>,
    /// GPT: last LBA partitions may use (inclusive).
    pub last_usable_lba: Option<u64>,
    /// MBR: the disk signature at 0x1B8, as "0x5eed1e55" (sfdisk's label-id).
    #[serde(serialize_with = "hex_u32")]
    pub disk_signature: Option<u32>,
    /// Things found while reading (backup used, chain loops, hybrid MBR, truncated image, ...).
    pub notes: Vec<String>,
}

/// One partition.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// As Linux and sgdisk number it: GPT entry index + 1; MBR slot 1..=4, logicals from 5.
    pub number: u32,
    /// GPT: the type GUID.
    pub type_guid: Option<Guid>,
    /// MBR: the type byte.
    pub mbr_type: Option<u8>,
    /// GPT: the partition's own GUID.
    pub unique_guid: Option<Guid>,
    /// What the partition is for.
    pub kind: Kind,
    /// First sector.
    pub start_lba: u64,
    /// Last sector (inclusive), as sgdisk prints it.
    pub end_lba: u64,
    /// Length in sectors.
    pub size_sectors: u64,
    /// Byte offset on the disk.
    pub start_bytes: u64,
    /// Length in bytes.
    pub size_bytes: u64,
    /// GPT: the attribute bits, as "0x8000000000000001" (a JSON number would lose bit 63 in many parsers).
    #[serde(serialize_with = "hex_u64")]
    pub attributes: Option<u64>,
    /// GPT: names of the attribute bits set.
    pub attribute_names: Vec<&'static str>,
    /// GPT: the partition name.
    pub name: Option<String>,
    /// MBR: status byte 0x80.
    pub active: Option<bool>,
    /// MBR: inside an extended partition.
    pub logical: Option<bool>,
    /// File system found by its boot sector.
    pub filesystem: Filesystem,
    /// What is wrong with this partition (outside the usable area, overlapping, past the end).
    pub problems: Vec<String>,
}

fn hex_u32<S: Serializer>(v: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(&format_args!("0x{v:08x}")),
        None => s.serialize_none(),
    }
}

fn hex_u64<S: Serializer>(v: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(&format_args!("0x{v:016x}")),
        None => s.serialize_none(),
    }
}

impl Partition {
    /// The partition's bytes as a window over the disk. Fails when the partition reaches past the
    /// end of the image.
    pub fn reader(&self, disk: &Disk) -> std::io::Result<Slice<Arc<dyn ReadAt>>> {
        Slice::new(Arc::clone(&disk.reader), self.start_bytes, self.size_bytes)
    }
}

/// A partition table and its partitions.
#[derive(Debug, Clone)]
pub struct PartitionTable {
    /// The table's own facts.
    pub info: TableInfo,
    /// Partitions in table order (GPT: array order; MBR: primaries, then logicals).
    pub partitions: Vec<Partition>,
}

impl PartitionTable {
    /// The partition with Linux number `number`.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

/// What `winre disk info` reports: the container, the table and the partitions.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// Container facts.
    pub container: ContainerInfo,
    /// Table facts.
    pub partition_table: TableInfo,
    /// The partitions.
    pub partitions: Vec<Partition>,
}

/// Reads `disk`'s partition table and probes each partition's file system.
pub fn report(disk: &Disk) -> Result<DiskReport> {
    let table = read_table(disk)?;
    Ok(DiskReport {
        container: disk.info.clone(),
        partition_table: table.info,
        partitions: table.partitions,
    })
}

/// Reads the partition table of `disk` (GPT, else MBR, else none) and probes each partition.
///
/// Fails when the disk's first sector cannot be read, or when the disk should be GPT (a
/// protective MBR, or an "EFI PART" signature) but neither header is valid. Damage that still
/// leaves a usable table (backup used, EBR chain loop, partitions past the end of the image,
/// overlaps) is reported in notes and per-partition problems instead.
pub fn read_table(disk: &Disk) -> Result<PartitionTable> {
    let reader: &dyn ReadAt = disk.reader.as_ref();
    let container_ss = disk.info.sector_size;
    let mut sector0 = [0u8; 512];
    reader
        .read_exact_at(0, &mut sector0)
        .map_err(|e| Error::corrupt("first sector (MBR)", 0, format!("cannot be read: {e}")))?;
    let mbr = mbr::parse(reader, &sector0, container_ss);

    if let Some(gpt) = gpt::read(reader, container_ss)? {
        return Ok(from_gpt(disk, gpt, &mbr));
    }
    let mut table = match mbr {
        mbr::Sector0::Table(m) if m.protective => {
            return Err(Error::corrupt(
                "GPT",
                0,
                "the MBR is protective (type 0xEE) but there is no GPT header at LBA 1 or at the last LBA for 512- or 4096-byte sectors",
            ));
        }
        // A boot sector at LBA 0 wins over a 0x55AA mark: it is a volume without a table.
        _ if probe::probe_boot_sector(&sector0) != Filesystem::Unknown => none_table(
            container_ss,
            format!(
                "no partition table: the disk starts with a {} boot sector (a whole-disk volume)",
                probe::probe_boot_sector(&sector0).name()
            ),
        ),
        mbr::Sector0::Table(m) => from_mbr(disk, m),
        mbr::Sector0::NotATable(why) => none_table(
            container_ss,
            format!("no partition table: sector 0 has 0x55AA but {why}"),
        ),
        mbr::Sector0::NoSignature => none_table(
            container_ss,
            "no partition table (no 0x55AA mark, no GPT header)".into(),
        ),
    };
    finish(disk, &mut table);
    Ok(table)
}

fn none_table(sector_size: u32, note: String) -> PartitionTable {
    PartitionTable {
        info: TableInfo {
            scheme: Scheme::None,
            sector_size,
            disk_guid: None,
            gpt_source: None,
            gpt_entry_count: None,
            first_usable_lba: None,
            last_usable_lba: None,
            disk_signature: None,
            notes: vec![note],
        },
        partitions: Vec::new(),
    }
}

fn from_gpt(disk: &Disk, gpt: gpt::Gpt, mbr: &mbr::Sector0) -> PartitionTable {
    let h = &gpt.header;
    let mut notes = gpt.notes.clone();
    match mbr {
        mbr::Sector0::Table(m) if m.protective && m.entries.len() > 1 => {
            notes.push(
                "hybrid MBR: the protective MBR also lists other partitions; the GPT is used"
                    .into(),
            );
        }
        mbr::Sector0::Table(m) if m.protective => {}
        _ => notes.push("no protective MBR (no 0xEE entry at LBA 0); the GPT is used".into()),
    }
    if h.sector_size != disk.info.sector_size && disk.info.format != Format::Raw {
        notes.push(format!(
            "the GPT is laid out for {}-byte sectors but the container says {}",
            h.sector_size, disk.info.sector_size
        ));
    }
    let ss = u64::from(h.sector_size);
    let partitions = gpt
        .entries
        .iter()
        .map(|e| {
            let mut problems = Vec::new();
            if e.last_lba < e.first_lba {
                problems.push(format!(
                    "ends (LBA {}) before it starts (LBA {})",
                    e.last_lba, e.first_lba
                ));
            } else if e.first_lba < h.first_usable_lba || e.last_lba > h.last_usable_lba {
                problems.push(format!(
                    "LBA {}..={} is outside the usable area {}..={}",
                    e.first_lba, e.last_lba, h.first_usable_lba, h.last_usable_lba
                ));
            }
            let kind = kind::from_gpt_type(&e.type_guid);
            let size_sectors = e
                .last_lba
                .checked_sub(e.first_lba)
                .map_or(0, |n| n.saturating_add(1));
            Partition {
                number: e.number,
                type_guid: Some(e.type_guid),
                mbr_type: None,
                unique_guid: Some(e.unique_guid),
                kind,
                start_lba: e.first_lba,
                end_lba: e.last_lba,
                size_sectors,
                start_bytes: e.first_lba.saturating_mul(ss),
                size_bytes: size_sectors.saturating_mul(ss),
                attributes: Some(e.attributes),
                attribute_names: kind::gpt_attribute_names(e.attributes, kind),
                name: Some(e.name.clone()),
                active: None,
                logical: None,
                filesystem: Filesystem::Unknown,
                problems,
            }
        })
        .collect();
    let mut table = PartitionTable {
        info: TableInfo {
            scheme: Scheme::Gpt,
            sector_size: h.sector_size,
            disk_guid: Some(h.disk_guid),
            gpt_source: Some(h.source),
            gpt_entry_count: Some(h.entry_count),
            first_usable_lba: Some(h.first_usable_lba),
            last_usable_lba: Some(h.last_usable_lba),
            disk_signature: None,
            notes,
        },
        partitions,
    };
    finish(disk, &mut table);
    table
}

fn from_mbr(disk: &Disk, m: mbr::Mbr) -> PartitionTable {
    let ss = u64::from(disk.info.sector_size);
    let partitions = m
        .entries
        .into_iter()
        .map(|e| Partition {
            number: e.number,
            type_guid: None,
            mbr_type: Some(e.type_byte),
            unique_guid: None,
            kind: kind::from_mbr_type(e.type_byte),
            start_lba: e.first_lba,
            end_lba: e.first_lba.saturating_add(e.sectors).saturating_sub(1),
            size_sectors: e.sectors,
            start_bytes: e.first_lba.saturating_mul(ss),
            size_bytes: e.sectors.saturating_mul(ss),
            attributes: None,
            attribute_names: Vec::new(),
            name: None,
            active: Some(e.active),
            logical: Some(e.logical),
            filesystem: Filesystem::Unknown,
            problems: e.problems,
        })
        .collect();
    PartitionTable {
        info: TableInfo {
            scheme: Scheme::Mbr,
            sector_size: disk.info.sector_size,
            disk_guid: None,
            gpt_source: None,
            gpt_entry_count: None,
            first_usable_lba: None,
            last_usable_lba: None,
            disk_signature: Some(m.disk_signature),
            notes: m.notes,
        },
        partitions,
    }
}

/// Checks common to both schemes (overlaps, past the end of the image) and probes file systems.
fn finish(disk: &Disk, table: &mut PartitionTable) {
    let disk_len = disk.reader.len();
    let mut truncated = false;
    for p in &mut table.partitions {
        let end = p.start_bytes.checked_add(p.size_bytes);
        if end.is_none_or(|end| end > disk_len) {
            truncated = true;
            p.problems.push(format!(
                "ends at byte {}, past the end of the image ({disk_len} bytes)",
                end.map_or_else(|| "(overflow)".to_string(), |e| e.to_string())
            ));
        }
        if p.kind == Kind::Extended || p.size_bytes == 0 {
            continue;
        }
        match p
            .reader(disk)
            .map_err(Error::from)
            .and_then(|r| probe::probe(&r).map_err(Error::from))
        {
            Ok(fs) => p.filesystem = fs,
            Err(e) if end.is_some_and(|end| end <= disk_len) => {
                p.problems.push(format!("first sector cannot be read: {e}"));
            }
            Err(_) => {
                // Past the end: probe what is there, if the start is inside the image.
                if let Ok(r) = Slice::new(
                    Arc::clone(&disk.reader),
                    p.start_bytes,
                    disk_len.saturating_sub(p.start_bytes),
                ) {
                    p.filesystem = probe::probe(&r).unwrap_or(Filesystem::Unknown);
                }
            }
        }
    }
    if truncated {
        table.info.notes.push(format!(
            "the image ({disk_len} bytes) is shorter than its partitions: reads past its end will fail"
        ));
    }
    // Overlaps: sort by start, compare each partition with the furthest-reaching one before it.
    let mut order: Vec<usize> = (0..table.partitions.len()).collect();
    order.sort_by_key(|&i| table.partitions.get(i).map(|p| (p.start_lba, p.number)));
    let mut reach: Option<(u64, u32)> = None; // (exclusive end LBA, number)
    let mut overlaps = Vec::new();
    for &i in &order {
        let Some(p) = table.partitions.get(i) else {
            continue;
        };
        if p.kind == Kind::Extended || p.size_sectors == 0 {
            continue;
        }
        let end = p.start_lba.saturating_add(p.size_sectors);
        if let Some((reach_end, other)) = reach {
            if p.start_lba < reach_end {
                overlaps.push((i, other));
            }
        }
        if reach.is_none_or(|(reach_end, _)| end > reach_end) {
            reach = Some((end, p.number));
        }
    }
    for (i, other) in overlaps {
        if let Some(p) = table.partitions.get_mut(i) {
            p.problems.push(format!("overlaps partition {other}"));
        }
    }
}

//! Master Boot Record: four primary entries, extended partitions as chains of EBRs holding the
//! logical partitions (numbered from 5, as Linux numbers them), the disk signature and the
//! active flag. An entry of type 0xEE is a protective MBR: the disk is GPT.
//!
//! Sources: Microsoft, "Master Boot Record" (Windows Server 2003 technical reference: the 0x1B8
//! disk signature, 0x1BE entries, the 0x55AA mark); the EBR chain rules as Linux follows them
//! (block/partitions/msdos.c: an EBR's data entries are relative to that EBR, its link entry is
//! relative to the start of the extended partition; entries with zero sectors are unused).

use std::collections::HashSet;

use winre_readat::ReadAt;
use zerocopy::FromBytes;

use super::kind::is_mbr_extended;
use super::layout::{
    mbr_entry_offset, MbrEntryDisk as EntryDisk,
    MBR_DISK_SIGNATURE_OFFSET as DISK_SIGNATURE_OFFSET, MBR_SIGNATURE_OFFSET as SIGNATURE_OFFSET,
};

/// Most EBRs followed in one chain. Linux stops at 256 partitions per disk.
pub const MAX_EBRS: usize = 256;
/// The protective type that marks a GPT disk.
pub const PROTECTIVE_TYPE: u8 = 0xee;

/// A partition from the MBR or an EBR, with its LBA made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1..=4 for primary slots, 5 onwards for logical partitions.
    pub number: u32,
    /// The type byte.
    pub type_byte: u8,
    /// Status byte 0x80.
    pub active: bool,
    /// True for a partition inside an extended partition.
    pub logical: bool,
    /// Absolute first LBA.
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// What is wrong with this entry.
    pub problems: Vec<String>,
}

/// An MBR partition table.
#[derive(Debug, Clone, Default)]
pub struct Mbr {
    /// The 32-bit disk signature at 0x1B8.
    pub disk_signature: u32,
    /// True when an entry has type 0xEE (the disk should have a GPT).
    pub protective: bool,
    /// Used entries: primaries by slot, then logicals in chain order.
    pub entries: Vec<Entry>,
    /// What was found along the way (chain loops, EBRs past the end, ...).
    pub notes: Vec<String>,
}

/// How sector 0 reads as an MBR.
#[derive(Debug)]
pub enum Sector0 {
    /// No 0x55AA mark.
    NoSignature,
    /// 0x55AA, but a status byte is neither 0x00 nor 0x80: a boot sector, not a table.
    NotATable(String),
    /// A table.
    Table(Mbr),
}

fn entries_of(sector: &[u8]) -> [Option<EntryDisk>; 4] {
    let at = |i: usize| {
        let start = mbr_entry_offset(i);
        sector
            .get(start..)
            .and_then(|s| EntryDisk::read_from_prefix(s).ok())
            .map(|(e, _)| e)
    };
    [at(0), at(1), at(2), at(3)]
}

fn has_signature(sector: &[u8]) -> bool {
    sector.get(SIGNATURE_OFFSET..SIGNATURE_OFFSET.saturating_add(2)) == Some(&[0x55, 0xaa][..])
}

/// Reads the MBR in `sector0` (the first 512 bytes of the disk) and follows any extended chain
/// on `disk`, with LBAs in units of `sector_size`. Never fails: damage in the chain becomes a note.
pub fn parse(disk: &dyn ReadAt, sector0: &[u8], sector_size: u32) -> Sector0 {
    if !has_signature(sector0) {
        return Sector0::NoSignature;
    }
    let slots = entries_of(sector0);
    for (slot, entry) in slots.iter().enumerate() {
        if let Some(e) = entry {
            if e.status != 0x00 && e.status != 0x80 {
                return Sector0::NotATable(format!(
                    "entry {} has status byte 0x{:02x} (expected 0x00 or 0x80)",
                    slot.saturating_add(1),
                    e.status
                ));
            }
        }
    }
    let disk_signature = sector0
        .get(DISK_SIGNATURE_OFFSET..DISK_SIGNATURE_OFFSET.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes);
    let mut mbr = Mbr {
        disk_signature,
        ..Mbr::default()
    };
    let mut extended = Vec::new();
    for (number, entry) in (1u32..).zip(slots.iter()) {
        let Some(e) = entry else { continue };
        if e.type_byte == 0 || e.sectors.get() == 0 {
            continue;
        }
        if e.type_byte == PROTECTIVE_TYPE {
            mbr.protective = true;
        }
        let parsed = Entry {
            number,
            type_byte: e.type_byte,
            active: e.status == 0x80,
            logical: false,
            first_lba: u64::from(e.first_lba.get()),
            sectors: u64::from(e.sectors.get()),
            problems: Vec::new(),
        };
        if is_mbr_extended(e.type_byte) {
            extended.push(parsed.clone());
        }
        mbr.entries.push(parsed);
    }
    if mbr.entries.iter().filter(|e| e.active).count() > 1 {
        mbr.notes
            .push("more than one primary partition is marked active".into());
    }
    if extended.len() > 1 {
        mbr.notes.push(format!(
            "{} extended partitions (only one is expected)",
            extended.len()
        ));
    }
    let mut next_number = 5u32;
    let mut visited = HashSet::new();
    for ext in &extended {
        follow_chain(
            disk,
            ext,
            sector_size,
            &mut next_number,
            &mut visited,
            &mut mbr,
        );
    }
    Sector0::Table(mbr)
}

/// Walks the EBR chain of extended partition `ext`, appending its logical partitions.
fn follow_chain(
    disk: &dyn ReadAt,
    ext: &Entry,
    sector_size: u32,
    next_number: &mut u32,
    visited: &mut HashSet<u64>,
    mbr: &mut Mbr,
) {
    let ext_end = ext.first_lba.saturating_add(ext.sectors);
    let mut ebr_lba = ext.first_lba;
    loop {
        if visited.len() >= MAX_EBRS {
            mbr.notes.push(format!(
                "EBR chain longer than {MAX_EBRS} links: stopped following it at LBA {ebr_lba}"
            ));
            return;
        }
        if !visited.insert(ebr_lba) {
            mbr.notes.push(format!(
                "EBR chain loops back to LBA {ebr_lba}: stopped following it"
            ));
            return;
        }
        let offset = ebr_lba.saturating_mul(u64::from(sector_size));
        let mut sector = [0u8; 512];
        if let Err(e) = disk.read_exact_at(offset, &mut sector) {
            mbr.notes.push(format!(
                "EBR at LBA {ebr_lba} (offset {offset}) cannot be read: {e}"
            ));
            return;
        }
        if !has_signature(&sector) {
            mbr.notes.push(format!(
                "EBR at LBA {ebr_lba} (offset {offset}) has no 0x55AA mark: chain ends there"
            ));
            return;
        }
        let mut link = None;
        for e in entries_of(&sector).into_iter().flatten() {
            if e.sectors.get() == 0 || e.type_byte == 0 {
                continue;
            }
            if is_mbr_extended(e.type_byte) {
                // The first link entry leads on; its start is relative to the extended partition.
                link.get_or_insert(ext.first_lba.saturating_add(u64::from(e.first_lba.get())));
                continue;
            }
            let first_lba = ebr_lba.saturating_add(u64::from(e.first_lba.get()));
            let sectors = u64::from(e.sectors.get());
            let mut problems = Vec::new();
            if first_lba.saturating_add(sectors) > ext_end || first_lba <= ebr_lba {
                problems.push(format!(
                    "lies outside its extended partition (LBA {}..{ext_end}) or over its EBR (LBA {ebr_lba})",
                    ext.first_lba
                ));
            }
            mbr.entries.push(Entry {
                number: *next_number,
                type_byte: e.type_byte,
                active: e.status == 0x80,
                logical: true,
                first_lba,
                sectors,
                problems,
            });
            *next_number = next_number.saturating_add(1);
        }
        match link {
            Some(next) => ebr_lba = next,
            None => return,
        }
    }
}

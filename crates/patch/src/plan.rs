//! Which [`Action`]s make the WinRE volume hold the required free space, following the cases of
//! Microsoft's extend script (KB5028997): grow into unallocated space after the recovery
//! partition (or into a grown image file), else move the recovery partition down into free
//! space before it, else shrink the OS volume (when its tail is free) and move down into that.
//!
//! This is the apply side's own small planner. `winre plan` (winre_core::plan) describes the
//! same cases for people; the two agree on the action names.

use serde::Serialize;
use winre_core::report::ScanReport;
use winre_disk::partition::{Partition, PartitionTable, Scheme};
use winre_disk::probe::Filesystem;

use crate::apply::{extent, Action};
use crate::bytes::{add, align_up, div_ceil, mul, sub};
use crate::error::{Error, Result};

/// Partition boundaries are kept on 1 MiB, as Windows places them.
pub const ALIGN_BYTES: u64 = 1 << 20;

/// Options of a resize.
#[derive(Debug, Clone, Copy)]
pub struct ResizeOptions {
    /// Free bytes the WinRE volume must have.
    pub required_free_bytes: u64,
    /// Allowed to make a raw image file longer to get room after the last partition.
    pub grow_image: bool,
}

/// The outcome of planning.
#[derive(Debug, Clone, Serialize)]
pub struct ResizePlan {
    /// free_after_recovery, grow_image, free_before_recovery, shrink_os, or enough_free.
    pub case: String,
    /// The recovery partition.
    pub recovery_partition: u32,
    /// Free bytes now.
    pub free_before_bytes: u64,
    /// Free bytes required.
    pub required_free_bytes: u64,
    /// Bytes the recovery partition grows.
    pub grow_by_bytes: u64,
    /// Bytes the OS partition shrinks.
    pub shrink_os_by_bytes: u64,
    /// The actions, in order (empty when nothing is needed).
    pub actions: Vec<Action>,
}

/// Plans from a scan of the image and its partition table. `disk_len` is the guest disk size.
/// Refuses (with the reason) layouts this code does not change.
pub fn plan(
    scan: &ScanReport,
    table: &PartitionTable,
    disk_len: u64,
    options: ResizeOptions,
) -> Result<ResizePlan> {
    let space = scan.recovery_space.as_ref().ok_or_else(|| {
        Error::Unsupported(
            "no WinRE volume with free space to measure (WinRE not found, or on FAT)".into(),
        )
    })?;
    if scan.os_partitions.contains(&space.partition) {
        return Err(Error::Unsupported(
            "WinRE is on the OS volume: a new recovery partition is needed (reagentc /disable, diskpart, reagentc /enable on Windows)".into(),
        ));
    }
    let r = table.partition(space.partition).ok_or_else(|| {
        Error::corrupt(
            "partition table",
            0,
            format!("no partition {}", space.partition),
        )
    })?;
    let free = space.free;
    let required = options.required_free_bytes;
    let mut out = ResizePlan {
        case: "enough_free".into(),
        recovery_partition: r.number,
        free_before_bytes: free,
        required_free_bytes: required,
        grow_by_bytes: 0,
        shrink_os_by_bytes: 0,
        actions: Vec::new(),
    };
    if free >= required {
        return Ok(out);
    }
    if r.filesystem != Filesystem::Ntfs {
        return Err(Error::Unsupported(format!(
            "the WinRE volume is {:?}, not NTFS",
            r.filesystem
        )));
    }
    let sector = u64::from(table.info.sector_size);
    let cs = u64::from(space.cluster_size);
    if cs > ALIGN_BYTES {
        return Err(Error::Unsupported(format!("{cs}-byte clusters")));
    }
    // Clusters short, plus the $Bitmap clusters the growth adds, plus one spare.
    let short = div_ceil(required.saturating_sub(free), cs, "shortfall")?;
    let bitmap = div_ceil(div_ceil(short, 8, "bitmap")?, cs, "bitmap")?;
    let grow = align_up(
        mul(add(short, add(bitmap, 2, "grow")?, "grow")?, cs, "grow")?,
        ALIGN_BYTES,
        "grow",
    )?;
    out.grow_by_bytes = grow;
    let r_end = add(r.start_bytes, r.size_bytes, "partition end")?;
    let mut parts: Vec<&Partition> = table.partitions.iter().collect();
    parts.sort_by_key(|p| p.start_bytes);
    let usable_end = match table.info.scheme {
        Scheme::Gpt => add(
            mul(
                table.info.last_usable_lba.unwrap_or(0),
                sector,
                "usable end",
            )?,
            sector,
            "usable end",
        )?,
        _ => disk_len,
    };
    let next_start = parts
        .iter()
        .filter(|p| p.start_bytes >= r_end)
        .map(|p| p.start_bytes)
        .min()
        .unwrap_or(usable_end);
    let after = next_start.saturating_sub(r_end);
    let new_size = add(r.size_bytes, grow, "new size")?;
    if after >= grow {
        out.case = "free_after_recovery".into();
        out.actions
            .push(extent(r.number, r.start_bytes, new_size, sector)?);
        out.actions.push(Action::GrowNtfs {
            partition: r.number,
            new_size_bytes: new_size,
        });
        return Ok(out);
    }
    let is_last = next_start == usable_end;
    if options.grow_image && is_last {
        // The backup GPT (header and a 16 KiB+ array) moves to the new end.
        let gpt_tail = if table.info.scheme == Scheme::Gpt {
            add(ALIGN_BYTES, 0, "tail")?
        } else {
            0
        };
        let new_len = align_up(
            add(add(r_end, grow, "image")?, gpt_tail, "image")?,
            ALIGN_BYTES,
            "image",
        )?;
        out.case = "grow_image".into();
        out.actions.push(Action::GrowImage {
            new_len_bytes: new_len.max(disk_len),
        });
        out.actions
            .push(extent(r.number, r.start_bytes, new_size, sector)?);
        out.actions.push(Action::GrowNtfs {
            partition: r.number,
            new_size_bytes: new_size,
        });
        return Ok(out);
    }
    if table.info.scheme == Scheme::Mbr {
        return Err(Error::Unsupported(
            "moving a recovery partition on an MBR disk (its BCD entry names the partition by byte offset); free space after it, or --grow-image when it is the last partition".into(),
        ));
    }
    let prev = parts
        .iter()
        .filter(|p| add(p.start_bytes, p.size_bytes, "end").is_ok_and(|e| e <= r.start_bytes))
        .max_by_key(|p| p.start_bytes.saturating_add(p.size_bytes))
        .ok_or_else(|| Error::Unsupported("the recovery partition is the first partition: a new recovery partition after the OS is needed".into()))?;
    if !scan.os_partitions.contains(&prev.number) {
        return Err(Error::Unsupported(format!(
            "the partition before the recovery partition ({}) is not the OS volume, and there is not enough free space around the recovery partition",
            prev.number
        )));
    }
    if prev.filesystem == Filesystem::Bitlocker {
        return Err(Error::Refused(
            "the OS volume is BitLocker-encrypted: it cannot be shrunk offline".into(),
        ));
    }
    let prev_end = add(prev.start_bytes, prev.size_bytes, "end")?;
    let gap = sub(r.start_bytes, prev_end, "gap")?;
    let new_start = sub(r.start_bytes, grow, "new start")?;
    if gap < grow {
        let shrink = align_up(grow.saturating_sub(gap), ALIGN_BYTES, "shrink")?;
        let os_new = sub(prev.size_bytes, shrink, "OS size")?;
        out.case = "shrink_os".into();
        out.shrink_os_by_bytes = shrink;
        out.actions.push(Action::ShrinkNtfs {
            partition: prev.number,
            new_size_bytes: os_new,
        });
        out.actions
            .push(extent(prev.number, prev.start_bytes, os_new, sector)?);
    } else {
        out.case = "free_before_recovery".into();
    }
    out.actions.push(Action::MovePartition {
        partition: r.number,
        from_byte: r.start_bytes,
        to_byte: new_start,
        len_bytes: r.size_bytes,
    });
    out.actions
        .push(extent(r.number, new_start, new_size, sector)?);
    out.actions.push(Action::GrowNtfs {
        partition: r.number,
        new_size_bytes: new_size,
    });
    if let Some(reagent) = &scan.winre.reagent {
        if reagent.location_offset == Some(r.start_bytes) {
            out.actions.push(Action::UpdateReagentOffset {
                partition: prev.number,
                new_offset_bytes: new_start,
            });
        }
    }
    Ok(out)
}

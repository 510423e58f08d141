//! Carrying out a patch: every write is computed from the image as it is, the regions they
//! overwrite are journaled (and synced), then the writes are made in order (grow the file, move
//! partitions front to back, metadata), synced, read back and compared, and the journal is
//! marked complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use winre_core::ntfs::NtfsVolume;
use winre_core::plan::{Plan, Step, Verdict};
use winre_disk::partition::{PartitionTable, Scheme};
use winre_readat::Slice;

use crate::bytes::{add, div, usize_of};
use crate::error::{Error, Result};
use crate::image::ImageFile;
use crate::journal::{Journal, Region, WriteObserver};
use crate::table::NewExtent;
use crate::{ntfs, reagent, table, Write};

/// Bytes copied per step when moving a partition (also the journal's piece size for it).
pub const MOVE_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// A move of bytes to a lower offset.
#[derive(Debug, Clone, Copy)]
struct Move {
    from: u64,
    to: u64,
    len: u64,
}

/// What a patch will write, computed before anything is written.
#[derive(Debug, Default)]
pub struct Prepared {
    new_len: Option<u64>,
    moves: Vec<Move>,
    writes: Vec<(String, Write)>,
    /// One line per change, for the report.
    pub changes: Vec<String>,
    /// The plan's steps, each checked against the image (empty when nothing is needed).
    pub steps: Vec<Step>,
}

impl Prepared {
    /// The image regions the patch overwrites, merged, within the current disk.
    pub fn regions(&self, disk_len: u64) -> Vec<Region> {
        let mut spans: Vec<(u64, u64)> = self
            .moves
            .iter()
            .map(|m| (m.to, m.to.saturating_add(m.len)))
            .chain(
                self.writes
                    .iter()
                    .map(|(_, w)| (w.offset, w.offset.saturating_add(w.bytes.len() as u64))),
            )
            .map(|(a, b)| (a.min(disk_len), b.min(disk_len)))
            .filter(|(a, b)| a < b)
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
            .into_iter()
            .map(|(a, b)| Region {
                offset: a,
                len: b.saturating_sub(a),
            })
            .collect()
    }
}

/// Computes every write of `plan`'s steps, in order, from the image as it is; nothing is
/// written. The plan is `winre plan`'s (winre_core::plan): only an offline verdict is carried
/// out, and each step is checked against what the writer finds (a move's extent, the NTFS
/// volume's sector and cluster counts, the free clusters a grow leaves, ReAgent.xml's old
/// offset), so the writer refuses rather than write something the plan did not say.
pub fn prepare(image: &ImageFile, table: &PartitionTable, plan: &Plan) -> Result<Prepared> {
    match &plan.verdict {
        Verdict::NothingNeeded => return Ok(Prepared::default()),
        Verdict::Offline => {}
        Verdict::Manual { why, .. } => {
            return Err(Error::Refused(format!("the plan needs manual work: {why}")))
        }
    }
    if u64::from(table.info.sector_size) != u64::from(plan.sector_size)
        || image.disk_len() != plan.disk_size_bytes
    {
        return Err(Error::Refused(format!(
            "the image changed since it was planned: {} bytes with {}-byte sectors, the plan says {} bytes with {}-byte sectors",
            image.disk_len(),
            table.info.sector_size,
            plan.disk_size_bytes,
            plan.sector_size
        )));
    }
    let reader = image.reader()?;
    let sector = u64::from(table.info.sector_size);
    let mut out = Prepared::default();
    let mut extents = Vec::new();
    // Where each partition's bytes are after the moves so far: number -> (origin, now).
    let mut placed: Vec<(u32, u64, u64)> = Vec::new();
    let part = |n: u32| {
        table
            .partition(n)
            .ok_or_else(|| Error::corrupt("patch", 0, format!("no partition {n}")))
    };
    for step in &plan.steps {
        match step {
            &Step::GrowImage { new_len_bytes } => {
                if new_len_bytes <= image.disk_len() {
                    return Err(Error::Unsupported("shrinking the image file".into()));
                }
                out.new_len = Some(new_len_bytes);
                out.changes.push(format!(
                    "image file grown from {} to {new_len_bytes} bytes",
                    image.disk_len()
                ));
            }
            &Step::MovePartition {
                partition,
                from_byte,
                to_byte,
                len_bytes,
            } => {
                let p = part(partition)?;
                if from_byte != p.start_bytes
                    || len_bytes != p.size_bytes
                    || to_byte >= from_byte
                    || to_byte.checked_rem(sector) != Some(0)
                {
                    return Err(Error::corrupt(
                        "patch",
                        0,
                        format!("move of partition {partition} from {from_byte} to {to_byte} ({len_bytes} bytes) does not match its extent {}+{}", p.start_bytes, p.size_bytes),
                    ));
                }
                out.moves.push(Move {
                    from: from_byte,
                    to: to_byte,
                    len: len_bytes,
                });
                placed.push((partition, from_byte, to_byte));
                out.changes.push(format!(
                    "partition {partition} moved from byte {from_byte} to byte {to_byte} ({len_bytes} bytes copied)"
                ));
            }
            &Step::SetPartitionExtent {
                partition,
                start_lba,
                end_lba,
            } => {
                let p = part(partition)?;
                extents.push(NewExtent {
                    number: partition,
                    first_lba: start_lba,
                    last_lba: end_lba,
                });
                out.changes.push(format!(
                    "partition {partition}: sectors {}..={} -> {start_lba}..={end_lba}",
                    p.start_lba, p.end_lba
                ));
            }
            &Step::ShrinkNtfs {
                partition,
                new_size_bytes,
                new_total_sectors,
                new_total_clusters,
                bytes_per_sector,
            }
            | &Step::GrowNtfs {
                partition,
                new_size_bytes,
                new_total_sectors,
                new_total_clusters,
                bytes_per_sector,
            } => {
                let p = part(partition)?;
                let (origin, now) = placed
                    .iter()
                    .find(|(n, _, _)| *n == partition)
                    .map_or((p.start_bytes, p.start_bytes), |&(_, o, n)| (o, n));
                let volume = Slice::new(Arc::clone(&reader), origin, p.size_bytes)?;
                let moved_to = if now != origin {
                    Some(div(now, sector, "move")?)
                } else {
                    None
                };
                let target = ntfs::NtfsTarget {
                    partition_bytes: new_size_bytes,
                    total_sectors: new_total_sectors,
                    total_clusters: new_total_clusters,
                    bytes_per_sector,
                };
                let resize = ntfs::plan_resize(&volume, &target, moved_to)?;
                let grow = matches!(step, Step::GrowNtfs { .. });
                if grow != (resize.new_clusters > resize.old_clusters) {
                    return Err(Error::corrupt(
                        "patch",
                        0,
                        format!("{step:?} does not match the volume's size"),
                    ));
                }
                if grow {
                    check_free_after(plan, partition, &resize)?;
                }
                let label = if grow { "grown" } else { "shrunk" };
                out.changes.push(format!(
                    "NTFS on partition {partition} {label}: {} -> {} clusters of {} bytes",
                    resize.old_clusters, resize.new_clusters, resize.cluster_bytes
                ));
                for w in resize.writes {
                    out.writes.push((
                        format!("NTFS partition {partition}"),
                        Write {
                            offset: add(now, w.offset, "NTFS write")?,
                            bytes: w.bytes,
                        },
                    ));
                }
            }
            Step::UpdateReagentOffset {
                partition,
                path,
                old_offset_bytes,
                new_offset_bytes,
            } => {
                let (partition, new_offset_bytes) = (*partition, *new_offset_bytes);
                let p = part(partition)?;
                let volume = NtfsVolume::open(Arc::new(Slice::new(
                    Arc::clone(&reader),
                    p.start_bytes,
                    p.size_bytes,
                )?))?;
                let Some((old, writes)) = reagent::offset_writes(&volume, path, new_offset_bytes)?
                else {
                    return Err(Error::corrupt(
                        "patch",
                        0,
                        format!("no {path} on partition {partition}"),
                    ));
                };
                if old != *old_offset_bytes {
                    return Err(Error::Refused(format!(
                        "{path} on partition {partition} holds WinreLocation offset {old}, the plan says {old_offset_bytes}: plan again"
                    )));
                }
                out.changes.push(format!(
                    "{path} on partition {partition}: WinreLocation offset {old} -> {new_offset_bytes}"
                ));
                for w in writes {
                    out.writes.push((
                        "ReAgent.xml".into(),
                        Write {
                            offset: add(p.start_bytes, w.offset, "ReAgent.xml write")?,
                            bytes: w.bytes,
                        },
                    ));
                }
            }
            Step::UpdateBcdPartitionOffset { .. } => {
                return Err(Error::Unsupported(
                    "rewriting the BCD's partition offsets (needed to move a recovery partition on an MBR disk)".into(),
                ))
            }
            Step::CreatePartition { .. } | Step::DeletePartition { .. } => {
                return Err(Error::Refused(format!(
                    "plan step {step:?}: creating or deleting partitions is done inside Windows (the plan's windows_script)"
                )))
            }
        }
    }
    out.steps = plan.steps.clone();
    if !extents.is_empty() || out.new_len.is_some() {
        let new_disk = out.new_len.unwrap_or(image.disk_len());
        let writes = match table.info.scheme {
            Scheme::Gpt => table::gpt_writes(reader.as_ref(), sector, new_disk, &extents)?,
            Scheme::Mbr => table::mbr_writes(reader.as_ref(), &extents)?,
            other => return Err(Error::Unsupported(format!("a {other:?} partition table"))),
        };
        for w in writes {
            out.writes.push(("partition table".into(), w));
        }
    }
    // Overlapping writes would make the read-back check meaningless: refuse them.
    let mut spans: Vec<(u64, u64)> = out
        .writes
        .iter()
        .map(|(_, w)| (w.offset, w.offset.saturating_add(w.bytes.len() as u64)))
        .collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| matches!(w, [a, b] if b.0 < a.1)) {
        return Err(Error::corrupt(
            "patch",
            w.first().map_or(0, |a| a.0),
            "two writes overlap",
        ));
    }
    Ok(out)
}

/// What happened during the apply, for progress bars and crash tests.
pub trait Observer {
    /// A write of `bytes` to the journal (`journal`) or the image was made.
    fn wrote(&mut self, journal: bool, bytes: u64);
    /// Moving: `done` of `total` bytes.
    fn moving(&mut self, done: u64, total: u64) {
        let _ = (done, total);
    }
}

struct JournalWrites<'a>(&'a mut dyn Observer);

impl WriteObserver for JournalWrites<'_> {
    fn wrote(&mut self, bytes: u64) {
        self.0.wrote(true, bytes);
    }
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The journal file.
    pub journal: PathBuf,
    /// Bytes in the journal file.
    pub journal_bytes: u64,
    /// Bytes of original data saved in it (zero regions are saved as a length only).
    pub journal_saved_bytes: u64,
    /// Bytes written to the image (moves and metadata).
    pub image_bytes_written: u64,
    /// Bytes the moves copied (written or already equal).
    pub moved_bytes: u64,
    /// Move chunks not written because the destination already held the same bytes.
    pub move_chunks_skipped: u64,
    /// Image writes made.
    pub image_writes: u64,
    /// The guest disk's size after.
    pub disk_size_bytes: u64,
    /// One line per change.
    pub changes: Vec<String>,
    /// The steps carried out: the plan's, in its order.
    pub steps: Vec<Step>,
}

/// Journals and applies `prepared` to `image`. On success the journal is complete; on a failed
/// write or read-back the error is returned and the journal stays sealed for `undo`.
pub fn apply(
    image: &mut ImageFile,
    prepared: Prepared,
    journal_path: &Path,
    observer: &mut dyn Observer,
) -> Result<ApplyReport> {
    let regions = prepared.regions(image.disk_len());
    image.check_writable(&regions)?;
    let mut journal = Journal::begin(
        image,
        journal_path,
        &regions,
        prepared.new_len,
        &mut JournalWrites(observer),
    )?;
    let mut report = ApplyReport {
        journal: journal_path.to_path_buf(),
        journal_bytes: 0,
        journal_saved_bytes: 0,
        image_bytes_written: 0,
        moved_bytes: 0,
        move_chunks_skipped: 0,
        image_writes: 0,
        disk_size_bytes: image.disk_len(),
        changes: prepared.changes.clone(),
        steps: prepared.steps.clone(),
    };
    if let Some(len) = prepared.new_len {
        image.set_len(len)?;
        observer.wrote(false, 0);
    }
    let total: u64 = prepared.moves.iter().map(|m| m.len).sum();
    let mut crcs = Vec::new();
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for m in &prepared.moves {
        let mut done = 0u64;
        while done < m.len {
            let n = m.len.saturating_sub(done).min(MOVE_CHUNK_BYTES);
            src.resize(usize_of(n, "move")?, 0);
            dst.resize(src.len(), 0);
            image.read_at(add(m.from, done, "move")?, &mut src)?;
            let to = add(m.to, done, "move")?;
            image.read_at(to, &mut dst)?;
            crcs.push((to, n, crc32fast::hash(&src)));
            if src == dst {
                report.move_chunks_skipped = report.move_chunks_skipped.saturating_add(1);
            } else {
                image.write_at(to, &src)?;
                report.image_bytes_written = report.image_bytes_written.saturating_add(n);
                report.image_writes = report.image_writes.saturating_add(1);
                observer.wrote(false, n);
            }
            done = done.saturating_add(n);
            report.moved_bytes = report.moved_bytes.saturating_add(n);
            observer.moving(report.moved_bytes, total);
        }
    }
    image.sync()?;
    for &(at, n, crc) in &crcs {
        dst.resize(usize_of(n, "move")?, 0);
        image.read_at(at, &mut dst)?;
        if crc32fast::hash(&dst) != crc {
            return Err(Error::Verify(format!(
                "moved bytes at {at} ({n} bytes) do not read back; the image is half-patched: run winre undo"
            )));
        }
    }
    for (_, w) in &prepared.writes {
        image.write_at(w.offset, &w.bytes)?;
        report.image_bytes_written = report
            .image_bytes_written
            .saturating_add(w.bytes.len() as u64);
        report.image_writes = report.image_writes.saturating_add(1);
        observer.wrote(false, w.bytes.len() as u64);
    }
    image.sync()?;
    for (what, w) in &prepared.writes {
        dst.resize(w.bytes.len(), 0);
        image.read_at(w.offset, &mut dst)?;
        if dst != w.bytes {
            return Err(Error::Verify(format!(
                "{what}: {} bytes at {} do not read back; the image is half-patched: run winre undo",
                w.bytes.len(),
                w.offset
            )));
        }
    }
    journal.complete()?;
    report.journal_bytes = journal.bytes();
    report.journal_saved_bytes = journal.payload_bytes();
    report.disk_size_bytes = image.disk_len();
    Ok(report)
}

/// A grown recovery volume must leave the free clusters the plan predicted
/// ([`Plan::recovery_growth`]): the writer counts them in the `$Bitmap` it will write.
fn check_free_after(plan: &Plan, partition: u32, resize: &ntfs::NtfsResize) -> Result<()> {
    let Some(growth) = plan
        .recovery_growth
        .filter(|_| plan.recovery_partition == Some(partition))
    else {
        return Ok(());
    };
    let free = resize
        .free_bytes_after
        .checked_div(resize.cluster_bytes)
        .unwrap_or(0);
    if free != growth.free_clusters_after || resize.new_clusters != growth.clusters_after {
        return Err(Error::Refused(format!(
            "the plan and the NTFS writer disagree about partition {partition}: the plan predicts {} clusters, {} free; the new $Bitmap gives {}, {} free; nothing was written",
            growth.clusters_after, growth.free_clusters_after, resize.new_clusters, free
        )));
    }
    Ok(())
}

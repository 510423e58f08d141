//! Building a [`Plan`] from a disk: find the OS volume, WinRE and its volume as the scan does,
//! measure the free space, classify the layout, and compute the numbers of each case.
//!
//! The cases, in the order they are tried once the WinRE volume is short of free space (the
//! rules of Microsoft's extend script, made offline):
//!
//! 1. WinRE on the OS volume, or a recovery partition before the OS partition: a new recovery
//!    partition after the OS partition is needed (manual; Microsoft's rule 2 sizes it as the old
//!    partition plus the required free space).
//! 2. Unallocated space right after the recovery partition, enough for the growth: grow in place.
//!    Else, when the recovery partition is the last one and growing the image file is allowed
//!    (`--grow-image`), that comes first: make the disk longer and grow into the added space.
//! 3. Unallocated space right before it, enough: move the volume down and grow it.
//! 4. The recovery partition directly follows the OS partition: shrink the OS volume by what the
//!    space between them lacks, move the recovery volume down, grow it.
//! 5. Anything else: manual.
//!
//! An offline plan also needs: WinRE enabled (Microsoft's script stops otherwise), an OS volume
//! that is not BitLocker-encrypted or hibernated when the plan writes to it (shrink, ReAgent.xml),
//! and, for a shrink, a free OS tail.

use std::path::Path;

use winre_disk::container::{self, Disk, OpenOptions};
use winre_disk::partition::{Kind, Partition, Scheme};
use winre_disk::probe::Filesystem;

use super::grow::{self, align_down, align_up, NtfsFacts};
use super::tail;
use super::{
    LayoutCase, ManualReason, OsTail, PartitionChange, Plan, PlanPartition, Step, Unallocated,
    Verdict, VolumeGrowth, ALIGN_BYTES, RECOVERY_GPT_ATTRIBUTES, RECOVERY_MBR_TYPE,
    RECOVERY_TYPE_GUID,
};
use crate::locate::{self, DiskView, FoundBcd, FoundBy, FoundReagent};
use crate::ntfs::{state, NtfsVolume};
use crate::problem::{Problem, ProblemCode};
use crate::updates::REQUIRED_FREE_BYTES;
use crate::{Error, Result};

/// Room a freshly formatted recovery volume needs beside Winre.wim and the free space, for a
/// manual plan that creates one: NTFS metadata ($MFT, $LogFile, $Bitmap, ...) of a volume of a
/// few hundred MiB formatted by Windows takes a few MiB; this is a generous allowance, not a
/// measurement.
pub const NEW_VOLUME_METADATA_BYTES: u64 = 16 << 20;

/// Where `\hiberfil.sys` is on the OS volume.

/// What `winre plan` is asked.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Free bytes the WinRE volume must have.
    pub required_free_bytes: u64,
    /// The image file may be made longer when the recovery partition is the last one
    /// (`--grow-image`); preferred then over moving the partition or shrinking the OS.
    pub grow_image: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            required_free_bytes: REQUIRED_FREE_BYTES,
            grow_image: false,
        }
    }
}

/// Opens the image at `path` (any container winre reads) and plans it.
pub fn plan_path(path: &Path, options: &PlanOptions) -> Result<Plan> {
    let disk = container::open(path, &OpenOptions::default())?;
    plan_disk(&path.display().to_string(), disk, options)
}

/// Plans an opened disk; `label` is the path shown in the plan. Refuses a disk without a
/// partition table ([`Error::Unsupported`]); everything else that stands in the way becomes a
/// manual verdict.
pub fn plan_disk(label: &str, disk: Disk, options: &PlanOptions) -> Result<Plan> {
    let view = DiskView::open(disk)?;
    let scheme = match view.table.info.scheme {
        Scheme::Gpt => "gpt",
        Scheme::Mbr => "mbr",
        Scheme::None => {
            return Err(Error::Unsupported(
                "the disk has no partition table: there is no recovery partition to plan for"
                    .to_string(),
            ))
        }
    };
    let mut planner = Planner::new(label, scheme, &view, options)?;
    planner.run()?;
    Ok(planner.plan)
}

/// The state of one planning run.
struct Planner<'v> {
    view: &'v DiskView,
    plan: Plan,
    sector: u64,
    usable_start: u64,
    usable_end: u64,
    /// Partitions in disk order.
    sorted: Vec<&'v Partition>,
    reagent: Option<FoundReagent>,
    bcd: Option<FoundBcd>,
    /// Reasons for a manual verdict, the first one wins.
    blockers: Vec<(ManualReason, String)>,
    /// [`PlanOptions::grow_image`].
    grow_image: bool,
}

impl<'v> Planner<'v> {
    fn new(label: &str, scheme: &str, view: &'v DiskView, options: &PlanOptions) -> Result<Self> {
        let info = &view.table.info;
        let sector = u64::from(info.sector_size);
        if sector == 0 {
            return Err(Error::corrupt("partition table", 0, "sector size 0"));
        }
        let disk_size = view.disk.info.virtual_size;
        let (usable_start, usable_end) = match (info.first_usable_lba, info.last_usable_lba) {
            // The GPT's usable LBAs leave out the primary and backup headers and entry arrays.
            (Some(first), Some(last)) => (
                first.saturating_mul(sector),
                last.saturating_add(1).saturating_mul(sector).min(disk_size),
            ),
            // MBR: everything after sector 0, up to 2^32 sectors (32-bit LBAs).
            _ => (sector, disk_size.min(sector.saturating_mul(1 << 32))),
        };
        let mut sorted: Vec<&Partition> = view.table.partitions.iter().collect();
        sorted.sort_by_key(|p| p.start_bytes);
        let partitions_before = sorted
            .iter()
            .map(|p| plan_partition(p, sector, PartitionChange::Unchanged))
            .collect::<Vec<_>>();
        Ok(Self {
            view,
            plan: Plan {
                source: label.to_string(),
                scheme: scheme.to_string(),
                sector_size: info.sector_size,
                disk_size_bytes: disk_size,
                disk_size_after_bytes: disk_size,
                case: LayoutCase::NoWinre,
                verdict: Verdict::NothingNeeded,
                required_free_bytes: options.required_free_bytes,
                os_partition: None,
                recovery_partition: None,
                free_before_bytes: None,
                free_after_bytes: None,
                shortfall_bytes: 0,
                grow_by_bytes: 0,
                shrink_os_by_bytes: 0,
                recovery_growth: None,
                unallocated: Unallocated::default(),
                os_tail: None,
                partitions_after: partitions_before.clone(),
                partitions_before,
                steps: Vec::new(),
                windows_script: Vec::new(),
                notes: Vec::new(),
            },
            sector,
            usable_start,
            usable_end,
            sorted,
            reagent: None,
            bcd: None,
            blockers: Vec::new(),
            grow_image: options.grow_image,
        })
    }

    fn run(&mut self) -> Result<()> {
        let view = self.view;
        let mut notes = Vec::new();
        let os_partitions = view.os_partitions(&mut notes);
        self.reagent = view.reagent(&os_partitions).unwrap_or_else(|e| {
            notes.push(Problem::new(
                ProblemCode::ReagentUnreadable,
                format!("ReAgent.xml could not be read: {e}"),
            ));
            None
        });
        self.bcd = view.bcd().unwrap_or_else(|e| {
            notes.push(Problem::new(
                ProblemCode::BcdUnreadable,
                format!("BCD store could not be read: {e}"),
            ));
            None
        });
        let found = view.locate(
            self.reagent.as_ref(),
            self.bcd.as_ref(),
            &os_partitions,
            &mut notes,
        );
        self.plan.notes.extend(notes.into_iter().map(|p| p.message));

        // The OS partition: the first NTFS volume with \Windows\System32, else (its contents
        // cannot be read) the first BitLocker partition.
        let os = os_partitions.first().copied().or_else(|| {
            self.sorted
                .iter()
                .find(|p| p.filesystem == Filesystem::Bitlocker)
                .map(|p| p.number)
        });
        self.plan.os_partition = os;

        let enabled = match (
            &found,
            self.reagent.as_ref().and_then(|r| r.config.enabled()),
        ) {
            (None, _) => false,
            (Some(_), Some(false)) => false,
            (Some(f), None) => f.found_by != FoundBy::OsSystem32,
            (Some(_), Some(true)) => true,
        };
        let recovery_kind = self
            .sorted
            .iter()
            .find(|p| p.kind == Kind::Recovery && p.filesystem == Filesystem::Ntfs)
            .map(|p| p.number);
        let on_os = found
            .as_ref()
            .is_some_and(|f| enabled && Some(f.partition) == os);
        let recovery = match &found {
            Some(f) if enabled && !on_os => Some(f.partition),
            Some(f) if !enabled => {
                recovery_kind.or((Some(f.partition) != os).then_some(f.partition))
            }
            None => recovery_kind,
            _ => None,
        };
        if !enabled {
            self.plan.notes.push(if found.is_some() {
                "WinRE is disabled (ReAgent.xml InstallState 0)".to_string()
            } else {
                "no Winre.wim found".to_string()
            });
        }

        if on_os {
            let wim_size = found.as_ref().map_or(0, |f| f.file.size());
            return self.new_partition_plan(LayoutCase::WinreOnOsVolume, None, wim_size);
        }
        let Some(recovery) = recovery else {
            self.plan.case = LayoutCase::NoWinre;
            self.blockers.push((
                ManualReason::NoWinre,
                "no Winre.wim and no recovery partition: there is no WinRE to make room for"
                    .to_string(),
            ));
            self.finish();
            return Ok(());
        };
        self.plan.recovery_partition = Some(recovery);
        let rec = self
            .partition(recovery)
            .ok_or_else(|| Error::NotFound(format!("partition {recovery}")))?;
        let volume = self.view.ntfs(recovery)?.ok_or_else(|| {
            Error::Unsupported(format!(
                "the recovery partition {recovery} does not hold an NTFS volume"
            ))
        })?;
        let facts = ntfs_facts(&volume)?;
        let free = facts
            .free_clusters
            .saturating_mul(u64::from(facts.cluster_size));
        let required = self.plan.required_free_bytes;
        self.plan.free_before_bytes = Some(free);
        self.plan.free_after_bytes = Some(free);
        self.plan.shortfall_bytes = required.saturating_sub(free);
        self.plan.unallocated = self.unallocated(rec);
        if free >= required {
            self.plan.case = LayoutCase::EnoughFree;
            if !enabled {
                self.plan.notes.push(format!(
                    "the recovery partition {recovery} has enough free space for when WinRE is enabled again (reagentc /enable)"
                ));
            }
            self.finish();
            return Ok(());
        }
        if !enabled {
            self.blockers.push((
                ManualReason::WinreDisabled,
                "WinRE is disabled: Microsoft's procedure starts from an enabled WinRE; enable it inside Windows (reagentc /enable), then plan again".to_string(),
            ));
        }
        if rec.logical == Some(true) {
            self.blockers.push((
                ManualReason::Unsupported,
                format!("the recovery partition {recovery} is a logical partition inside an extended partition: winre does not rewrite EBR chains"),
            ));
        }
        self.check_volume_clean(recovery);
        let os_part = os.and_then(|n| self.partition(n));
        if let Some(os_part) = os_part {
            if rec.start_bytes < os_part.start_bytes {
                return self.new_partition_plan(LayoutCase::RecoveryBeforeOs, Some(rec), 0);
            }
        }
        self.grow_plan(rec, &facts, os_part)
    }

    /// Cases 2 to 5: grow the recovery volume where it is.
    fn grow_plan(
        &mut self,
        rec: &'v Partition,
        facts: &NtfsFacts,
        os: Option<&'v Partition>,
    ) -> Result<()> {
        let cluster = u64::from(facts.cluster_size);
        let align = ALIGN_BYTES.max(cluster);
        let required = self.plan.required_free_bytes;
        // The clusters missing, in bytes: where the search for an aligned size starts.
        let deficit = grow::required_clusters(required, facts.cluster_size)
            .saturating_sub(facts.free_clusters)
            .saturating_mul(cluster);
        let rec_end = rec.start_bytes.saturating_add(rec.size_bytes);
        let index = self.sorted.iter().position(|p| p.number == rec.number);
        let prev = index
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.sorted.get(i).copied());
        let next = index
            .and_then(|i| i.checked_add(1))
            .and_then(|i| self.sorted.get(i).copied());
        let after_limit = align_down(
            next.map_or(self.usable_end, |p| p.start_bytes)
                .min(self.usable_end),
            align,
        );
        let before_limit = align_up(
            prev.map_or(self.usable_start, |p| {
                p.start_bytes.saturating_add(p.size_bytes)
            })
            .max(self.usable_start),
            align,
        )
        .unwrap_or(u64::MAX);

        // Case 2: the end moves up.
        let grown_end = align_up(rec_end.saturating_add(deficit), align);
        let after = grow::smallest_growth(facts, required, |k| {
            let end = grown_end?.checked_add(k.checked_mul(align)?)?;
            (end <= after_limit).then(|| end.saturating_sub(rec.start_bytes))
        });
        if let Some(size) = after {
            self.plan.case = LayoutCase::FreeAfterRecovery;
            return self.apply_growth(rec, facts, rec.start_bytes, size, None);
        }
        if self.grow_image && next.is_none() {
            return self.grow_image_plan(rec, facts, grown_end);
        }
        // Cases 3 and 4: the start moves down.
        let lowered_start = rec
            .start_bytes
            .checked_sub(deficit)
            .map(|s| align_down(s, align));
        let start_for = |k: u64| lowered_start?.checked_sub(k.checked_mul(align)?);
        if let Some(size) = grow::smallest_growth(facts, required, |k| {
            let start = start_for(k)?;
            (start >= before_limit).then(|| rec_end.saturating_sub(start))
        }) {
            self.plan.case = LayoutCase::FreeBeforeRecovery;
            let start = rec_end.saturating_sub(size);
            return self.apply_growth(rec, facts, start, size, None);
        }
        let os_precedes = matches!((prev, os), (Some(p), Some(o)) if p.number == o.number);
        let Some(os) = os.filter(|_| os_precedes) else {
            self.plan.case = LayoutCase::NotAdjacent;
            self.blockers.push((
                ManualReason::NotAdjacent,
                format!(
                    "the recovery partition {} does not follow the OS partition, and the unallocated space next to it ({} bytes before, {} after) is less than it needs (short by {} bytes)",
                    rec.number,
                    self.plan.unallocated.before_recovery_bytes,
                    self.plan.unallocated.after_recovery_bytes,
                    self.plan.shortfall_bytes
                ),
            ));
            self.finish();
            return Ok(());
        };
        // Case 4: the recovery volume moves into the OS partition's end.
        self.plan.case = LayoutCase::ShrinkOs;
        let floor = os.start_bytes.saturating_add(align);
        let Some(size) = grow::smallest_growth(facts, required, |k| {
            let start = start_for(k)?;
            (start >= floor).then(|| rec_end.saturating_sub(start))
        }) else {
            self.blockers.push((
                ManualReason::OsTooSmall,
                format!(
                    "the OS partition {} is too small to give the recovery partition the {} bytes it lacks",
                    os.number, self.plan.shortfall_bytes
                ),
            ));
            self.finish();
            return Ok(());
        };
        let start = rec_end.saturating_sub(size);
        self.apply_growth(rec, facts, start, size, Some(os))
    }

    /// The recovery partition is last and the image may grow: the smallest aligned growth of its
    /// end, on a disk made long enough for it and (GPT) the backup header and entries after it.
    fn grow_image_plan(
        &mut self,
        rec: &'v Partition,
        facts: &NtfsFacts,
        grown_end: Option<u64>,
    ) -> Result<()> {
        let align = ALIGN_BYTES.max(u64::from(facts.cluster_size));
        let disk_size = self.plan.disk_size_bytes;
        // What follows the usable area now (GPT: backup entries and header); it moves along.
        let tail_bytes = disk_size.saturating_sub(self.usable_end);
        // MBR: 32-bit sector numbers.
        let limit = match self.plan.scheme.as_str() {
            "mbr" => self.sector.saturating_mul(1 << 32),
            _ => u64::MAX,
        };
        self.plan.case = LayoutCase::GrowImage;
        let Some(size) = grow::smallest_growth(facts, self.plan.required_free_bytes, |k| {
            let end = grown_end?.checked_add(k.checked_mul(align)?)?;
            (end <= limit).then(|| end.saturating_sub(rec.start_bytes))
        }) else {
            self.blockers.push((
                ManualReason::Unsupported,
                format!(
                    "the recovery partition {} cannot grow far enough within the disk's addressable size",
                    rec.number
                ),
            ));
            self.finish();
            return Ok(());
        };
        let end = rec.start_bytes.saturating_add(size);
        let new_len = align_up(end.saturating_add(tail_bytes), ALIGN_BYTES)
            .ok_or_else(|| Error::Unsupported("the grown disk size overflows".to_string()))?
            .max(disk_size);
        self.plan.disk_size_after_bytes = new_len;
        self.apply_growth(rec, facts, rec.start_bytes, size, None)?;
        if new_len > disk_size {
            self.plan.steps.insert(
                0,
                Step::GrowImage {
                    new_len_bytes: new_len,
                },
            );
            self.plan.windows_script.insert(
                0,
                format!(
                    "rem First make the virtual disk {new_len} bytes long (qemu-img resize, Resize-VHD, or the hypervisor's disk settings); then, inside Windows:"
                ),
            );
        }
        Ok(())
    }

    /// Fills in the numbers, steps and table of a growth of `rec` to `start..start+size`,
    /// shrinking `os` to end at `start` when given.
    fn apply_growth(
        &mut self,
        rec: &'v Partition,
        facts: &NtfsFacts,
        start: u64,
        size: u64,
        os: Option<&'v Partition>,
    ) -> Result<()> {
        let (clusters_after, free_after, bitmap_after) = grow::grown(size, facts)
            .ok_or_else(|| Error::Unsupported("growth arithmetic overflowed".to_string()))?;
        let cluster = u64::from(facts.cluster_size);
        self.plan.grow_by_bytes = size.saturating_sub(rec.size_bytes);
        self.plan.free_after_bytes = Some(free_after.saturating_mul(cluster));
        self.plan.recovery_growth = Some(VolumeGrowth {
            cluster_size: facts.cluster_size,
            bytes_per_sector: facts.bytes_per_sector,
            clusters_before: facts.total_clusters,
            clusters_after,
            free_clusters_before: facts.free_clusters,
            free_clusters_after: free_after,
            bitmap_clusters_before: facts.bitmap_allocated_bytes.div_ceil(cluster.max(1)),
            bitmap_clusters_after: bitmap_after,
        });
        let moved = start != rec.start_bytes;
        let mut steps = Vec::new();

        if let Some(os) = os {
            let os_end = os.start_bytes.saturating_add(os.size_bytes);
            let new_os_size = start.saturating_sub(os.start_bytes);
            self.plan.shrink_os_by_bytes = os_end.saturating_sub(start);
            self.check_os_writable(os, "shrink it");
            match self.view.ntfs(os.number)? {
                Some(volume) => {
                    let os_facts = ntfs_facts(&volume)?;
                    let os_tail = self.os_tail(os, &volume, &os_facts, new_os_size)?;
                    if os_tail.used_tail_clusters > 0 {
                        self.blockers.push((
                            ManualReason::OsTailInUse,
                            tail_why(os, &os_tail, self.plan.shrink_os_by_bytes),
                        ));
                    }
                    self.plan.os_tail = Some(os_tail);
                    steps.push(Step::ShrinkNtfs {
                        partition: os.number,
                        new_size_bytes: new_os_size,
                        new_total_sectors: grow::total_sectors_for(new_os_size, &os_facts)
                            .unwrap_or(0),
                        new_total_clusters: grow::clusters_for(new_os_size, &os_facts).unwrap_or(0),
                        bytes_per_sector: os_facts.bytes_per_sector,
                    });
                }
                None => {
                    // BitLocker (already a blocker) or another file system.
                    if os.filesystem != Filesystem::Bitlocker {
                        self.blockers.push((
                            ManualReason::Unsupported,
                            format!(
                                "the OS partition {} is not NTFS ({}): winre shrinks only NTFS",
                                os.number,
                                os.filesystem.name()
                            ),
                        ));
                    }
                }
            }
            steps.push(self.extent_step(os.number, os.start_bytes, new_os_size));
            self.set_after(
                os.number,
                os.start_bytes,
                new_os_size,
                PartitionChange::Shrunk,
            );
        }
        if moved {
            steps.push(Step::MovePartition {
                partition: rec.number,
                from_byte: rec.start_bytes,
                to_byte: start,
                len_bytes: rec.size_bytes,
            });
        }
        steps.push(self.extent_step(rec.number, start, size));
        steps.push(Step::GrowNtfs {
            partition: rec.number,
            new_size_bytes: size,
            new_total_sectors: grow::total_sectors_for(size, facts).unwrap_or(0),
            new_total_clusters: clusters_after,
            bytes_per_sector: facts.bytes_per_sector,
        });
        if moved {
            self.fixups_for_move(rec, start, &mut steps);
        }
        self.set_after(
            rec.number,
            start,
            size,
            if moved {
                PartitionChange::MovedAndGrown
            } else {
                PartitionChange::Grown
            },
        );
        self.plan.steps = steps;
        self.plan.windows_script = super::script::grow_script(&self.plan, rec, start, size, os);
        self.finish();
        Ok(())
    }

    /// ReAgent.xml and (MBR) BCD entries that name the recovery partition by its byte offset.
    fn fixups_for_move(&mut self, rec: &Partition, start: u64, steps: &mut Vec<Step>) {
        match self.reagent.clone() {
            Some(r) if r.config.location_offset == Some(rec.start_bytes) => {
                if let Some(os) = self.partition(r.partition) {
                    self.check_os_writable(os, "update its ReAgent.xml");
                }
                steps.push(Step::UpdateReagentOffset {
                    partition: r.partition,
                    path: r.path.clone(),
                    old_offset_bytes: rec.start_bytes,
                    new_offset_bytes: start,
                });
            }
            Some(r) => self.plan.notes.push(format!(
                "ReAgent.xml's WinreLocation offset is {} (not the recovery partition's {}): left as it is",
                r.config.location_offset.unwrap_or(0),
                rec.start_bytes
            )),
            None => self.plan.notes.push(
                "no ReAgent.xml was read: after the move, run reagentc /info inside Windows to check the WinRE location".to_string(),
            ),
        }
        if self.plan.scheme != "mbr" {
            return;
        }
        let Some(bcd) = &self.bcd else {
            return;
        };
        let names_old_offset = locate::ramdisk(&bcd.winre).is_some_and(|(parent, _)| {
            matches!(parent, crate::bcd::BcdDevice::Partition { partition_offset_bytes: Some(o), .. } if *o == rec.start_bytes)
        });
        if names_old_offset {
            steps.push(Step::UpdateBcdPartitionOffset {
                partition: bcd.partition,
                path: bcd.path.clone(),
                old_offset_bytes: rec.start_bytes,
                new_offset_bytes: start,
            });
        }
    }

    /// Case 1: a new recovery partition at the end of the OS partition (manual). `old` is the
    /// recovery partition before the OS (deleted unless it is the ESP), `wim_size` Winre.wim's
    /// size when WinRE is on the OS volume.
    fn new_partition_plan(
        &mut self,
        case: LayoutCase,
        old: Option<&'v Partition>,
        wim_size: u64,
    ) -> Result<()> {
        self.plan.case = case;
        // A new volume's free space depends on how Windows formats it: not predicted.
        self.plan.free_after_bytes = None;
        let required = self.plan.required_free_bytes;
        // Microsoft's rule 2: the old partition's size plus the required free space; with no
        // old partition, Winre.wim plus the free space plus room for the new volume's metadata.
        let wanted = match old {
            Some(p) => p.size_bytes.saturating_add(required),
            None => wim_size
                .saturating_add(required)
                .saturating_add(NEW_VOLUME_METADATA_BYTES),
        };
        let size = align_up(wanted, ALIGN_BYTES).unwrap_or(u64::MAX);
        self.plan.grow_by_bytes = size.saturating_sub(old.map_or(0, |p| p.size_bytes));
        let (reason, why) = match old {
            Some(p) => (
                ManualReason::RecoveryBeforeOs,
                format!(
                    "the recovery partition {} lies before the OS partition: it cannot grow in place; a new {} MiB recovery partition after the OS partition is needed (Microsoft's rule for this layout), made inside Windows",
                    p.number,
                    size / ALIGN_BYTES
                ),
            ),
            None => (
                ManualReason::WinreOnOsVolume,
                format!(
                    "WinRE is on the OS volume: a new {} MiB recovery partition after the OS partition is needed, made inside Windows (reagentc moves Winre.wim onto it)",
                    size / ALIGN_BYTES
                ),
            ),
        };
        let Some(os) = self.plan.os_partition.and_then(|n| self.partition(n)) else {
            self.blockers.push((reason, why));
            self.finish();
            return Ok(());
        };
        let os_end = os.start_bytes.saturating_add(os.size_bytes);
        if os_end.saturating_sub(os.start_bytes) < size.saturating_add(ALIGN_BYTES) {
            self.blockers.push((reason, why));
            self.blockers.push((
                ManualReason::OsTooSmall,
                format!(
                    "the OS partition {} ({} bytes) is too small to give up {size} bytes",
                    os.number, os.size_bytes
                ),
            ));
            self.finish();
            return Ok(());
        }
        let start = align_down(os_end.saturating_sub(size), ALIGN_BYTES);
        let new_os_size = start.saturating_sub(os.start_bytes);
        self.plan.shrink_os_by_bytes = os_end.saturating_sub(start);
        let mut steps = Vec::new();
        if let Some(volume) = self.view.ntfs(os.number)? {
            let os_facts = ntfs_facts(&volume)?;
            self.plan.os_tail = Some(self.os_tail(os, &volume, &os_facts, new_os_size)?);
            steps.push(Step::ShrinkNtfs {
                partition: os.number,
                new_size_bytes: new_os_size,
                new_total_sectors: grow::total_sectors_for(new_os_size, &os_facts).unwrap_or(0),
                new_total_clusters: grow::clusters_for(new_os_size, &os_facts).unwrap_or(0),
                bytes_per_sector: os_facts.bytes_per_sector,
            });
        }
        steps.push(self.extent_step(os.number, os.start_bytes, new_os_size));
        self.set_after(
            os.number,
            os.start_bytes,
            new_os_size,
            PartitionChange::Shrunk,
        );
        // Microsoft deletes the old recovery partition, unless it is the ESP.
        let deleted = old.filter(|p| p.kind != Kind::Esp);
        if let Some(p) = deleted {
            steps.push(Step::DeletePartition {
                partition: p.number,
            });
            self.mark_deleted(p.number);
        }
        let number = self.free_partition_number(deleted.map(|p| p.number));
        let (first, last) = self.lbas(start, size);
        let gpt = self.plan.scheme == "gpt";
        let type_id = if gpt {
            RECOVERY_TYPE_GUID.to_string()
        } else {
            format!("0x{RECOVERY_MBR_TYPE:02x}")
        };
        let attributes = gpt.then(|| format!("0x{RECOVERY_GPT_ATTRIBUTES:016x}"));
        match number {
            Some(number) => {
                steps.push(Step::CreatePartition {
                    partition: number,
                    start_lba: first,
                    end_lba: last,
                    type_id: type_id.clone(),
                    attributes: attributes.clone(),
                });
                self.plan.partitions_after.push(PlanPartition {
                    number,
                    kind: "recovery".to_string(),
                    type_id,
                    guid: None,
                    attributes,
                    start_bytes: start,
                    size_bytes: size,
                    start_lba: first,
                    end_lba: last,
                    size_sectors: size.checked_div(self.sector).unwrap_or(0),
                    filesystem: "new".to_string(),
                    change: PartitionChange::Created,
                });
                self.plan.partitions_after.sort_by_key(|p| p.start_bytes);
                self.blockers.push((reason, why));
            }
            None => self.blockers.push((
                ManualReason::MbrNoFreeSlot,
                format!("{why}; but the MBR has four primary partitions and none is deleted, so there is no slot for it (convert a partition to logical, or the disk to GPT, first)"),
            )),
        }
        self.plan.steps = steps;
        self.plan.windows_script =
            super::script::new_partition_script(&self.plan, os, old, deleted.is_some(), size);
        self.finish();
        Ok(())
    }

    /// Records a blocker when volume `number` has its dirty flag set: it needs chkdsk in Windows
    /// before anything writes to it.
    fn check_volume_clean(&mut self, number: u32) {
        let Some(volume) = self.view.ntfs(number).ok().flatten() else {
            return;
        };
        match volume.volume_flags() {
            Ok(flags) if flags & state::VOLUME_IS_DIRTY != 0 => self.blockers.push((
                ManualReason::VolumeDirty,
                format!("partition {number} has the NTFS dirty flag set ($Volume): it was not cleanly unmounted; boot Windows (it runs chkdsk) and shut it down fully before resizing"),
            )),
            Ok(_) => {}
            Err(e) => self
                .plan
                .notes
                .push(format!("the $Volume flags of partition {number} could not be read: {e}")),
        }
    }

    /// Records why the OS volume cannot be written offline, if it cannot.
    fn check_os_writable(&mut self, os: &Partition, doing: &str) {
        if os.filesystem == Filesystem::Bitlocker {
            self.blockers.push((
                ManualReason::Bitlocker,
                format!("the OS partition {} is BitLocker-encrypted: winre cannot {doing} offline; do it inside Windows (the script below), or decrypt first", os.number),
            ));
            return;
        }
        self.check_volume_clean(os.number);
        match self.view.ntfs(os.number).ok().flatten().map(|v| state::hibernation(&v)) {
            Some(Ok(Some(magic))) => self.blockers.push((
                ManualReason::OsHibernated,
                format!("the OS volume (partition {}) is hibernated (\\hiberfil.sys starts with {magic:?}, e.g. Fast Startup): writing to it offline would be lost or corrupt it on resume; boot Windows and shut it down fully (shutdown /s /t 0) first", os.number),
            )),
            Some(Err(e)) => self
                .plan
                .notes
                .push(format!("\\hiberfil.sys on partition {} could not be read: {e}", os.number)),
            _ => {}
        }
    }

    /// What the OS volume's tail holds for a shrink to `new_size` bytes.
    fn os_tail(
        &mut self,
        os: &Partition,
        volume: &NtfsVolume,
        facts: &NtfsFacts,
        new_size: u64,
    ) -> Result<OsTail> {
        let keep = grow::clusters_for(new_size, facts)
            .unwrap_or(0)
            .min(facts.total_clusters);
        let occupancy = tail::occupancy(volume, keep)?;
        let cluster = u64::from(facts.cluster_size);
        // The smallest partition that keeps every used cluster, with its last sector for the
        // backup boot sector, ending on an alignment boundary.
        let needed = occupancy
            .last_used_cluster
            .map_or(0, |c| c.saturating_add(1))
            .saturating_mul(cluster)
            .saturating_add(u64::from(facts.bytes_per_sector));
        let smallest_end =
            align_up(os.start_bytes.saturating_add(needed), ALIGN_BYTES).unwrap_or(u64::MAX);
        let os_end = os.start_bytes.saturating_add(os.size_bytes);
        let largest_shrink = align_down(os_end.saturating_sub(smallest_end), ALIGN_BYTES);
        let mut os_tail = OsTail {
            partition: os.number,
            cluster_size: facts.cluster_size,
            total_clusters: facts.total_clusters,
            keep_clusters: keep,
            used_tail_clusters: occupancy.used_tail_clusters,
            last_used_cluster: occupancy.last_used_cluster,
            largest_shrink_bytes: largest_shrink,
            tail_files: Vec::new(),
            more_tail_files: 0,
            walk_truncated: false,
        };
        if occupancy.used_tail_clusters > 0 {
            let walk = tail::files_in(volume, keep, facts.total_clusters)?;
            if walk.unreadable_records > 0 {
                self.plan.notes.push(format!(
                    "{} MFT records of the OS volume could not be read while looking for the files in its tail",
                    walk.unreadable_records
                ));
            }
            os_tail.tail_files = walk.files;
            os_tail.more_tail_files = walk.more;
            os_tail.walk_truncated = walk.truncated;
        }
        Ok(os_tail)
    }

    /// The unallocated space next to `rec`, as the plan may use it.
    fn unallocated(&self, rec: &Partition) -> Unallocated {
        let index = self.sorted.iter().position(|p| p.number == rec.number);
        let prev_end = index
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.sorted.get(i))
            .map_or(self.usable_start, |p| {
                p.start_bytes.saturating_add(p.size_bytes)
            })
            .max(self.usable_start);
        let next_start = index
            .and_then(|i| i.checked_add(1))
            .and_then(|i| self.sorted.get(i))
            .map_or(self.usable_end, |p| p.start_bytes)
            .min(self.usable_end);
        let rec_end = rec.start_bytes.saturating_add(rec.size_bytes);
        Unallocated {
            before_recovery_bytes: rec
                .start_bytes
                .saturating_sub(align_up(prev_end, ALIGN_BYTES).unwrap_or(u64::MAX)),
            after_recovery_bytes: align_down(next_start, ALIGN_BYTES).saturating_sub(rec_end),
        }
    }

    /// The verdict from the blockers, once the steps are known.
    fn finish(&mut self) {
        self.plan.verdict = match self.blockers.first() {
            Some((reason, why)) => Verdict::Manual {
                reason: *reason,
                why: why.clone(),
            },
            None if self.plan.steps.is_empty() => Verdict::NothingNeeded,
            None => Verdict::Offline,
        };
        for (_, why) in self.blockers.iter().skip(1) {
            self.plan.notes.push(format!("also: {why}"));
        }
        if matches!(self.plan.verdict, Verdict::NothingNeeded) {
            self.plan.free_after_bytes = self.plan.free_before_bytes;
        }
    }

    fn partition(&self, number: u32) -> Option<&'v Partition> {
        self.view
            .table
            .partitions
            .iter()
            .find(|p| p.number == number)
    }

    /// First and last LBA of `start..start+size`.
    fn lbas(&self, start: u64, size: u64) -> (u64, u64) {
        let first = start.checked_div(self.sector).unwrap_or(0);
        let last = start
            .saturating_add(size)
            .checked_div(self.sector)
            .unwrap_or(0)
            .saturating_sub(1);
        (first, last)
    }

    /// The step that sets partition `number`'s table entry to `size` bytes from byte `start`.
    fn extent_step(&self, number: u32, start: u64, size: u64) -> Step {
        let (start_lba, end_lba) = self.lbas(start, size);
        Step::SetPartitionExtent {
            partition: number,
            start_lba,
            end_lba,
        }
    }

    fn set_after(&mut self, number: u32, start: u64, size: u64, change: PartitionChange) {
        let (first, last) = self.lbas(start, size);
        let sectors = size.checked_div(self.sector).unwrap_or(0);
        if let Some(p) = self
            .plan
            .partitions_after
            .iter_mut()
            .find(|p| p.number == number)
        {
            p.start_bytes = start;
            p.size_bytes = size;
            p.start_lba = first;
            p.end_lba = last;
            p.size_sectors = sectors;
            p.change = change;
        }
        if let Some(p) = self
            .plan
            .partitions_before
            .iter_mut()
            .find(|p| p.number == number)
        {
            p.change = change;
        }
        self.plan.partitions_after.sort_by_key(|p| p.start_bytes);
    }

    fn mark_deleted(&mut self, number: u32) {
        self.plan.partitions_after.retain(|p| p.number != number);
        if let Some(p) = self
            .plan
            .partitions_before
            .iter_mut()
            .find(|p| p.number == number)
        {
            p.change = PartitionChange::Deleted;
        }
    }

    /// The number a new partition gets: GPT, the first unused entry; MBR, the first free
    /// primary slot (`freed` counts as free). `None` when there is none.
    fn free_partition_number(&self, freed: Option<u32>) -> Option<u32> {
        let used =
            |n: u32| Some(n) != freed && self.view.table.partitions.iter().any(|p| p.number == n);
        let limit = match self.plan.scheme.as_str() {
            "gpt" => self.view.table.info.gpt_entry_count.unwrap_or(128),
            _ => 4,
        };
        (1..=limit).find(|&n| !used(n))
    }
}

/// The numbers of an NTFS volume the arithmetic needs.
pub(crate) fn ntfs_facts(volume: &NtfsVolume) -> Result<NtfsFacts> {
    let space = volume.free_space()?;
    let bitmap = volume.open_record(6)?;
    Ok(NtfsFacts {
        bytes_per_sector: volume.bytes_per_sector(),
        cluster_size: volume.cluster_size(),
        total_clusters: space.total_clusters,
        free_clusters: space.free_clusters,
        bitmap_allocated_bytes: bitmap.allocated_size(),
    })
}

fn tail_why(os: &Partition, tail: &OsTail, shrink: u64) -> String {
    let mut names: Vec<&str> = tail.tail_files.iter().map(|f| f.path.as_str()).collect();
    names.truncate(5);
    let more = (tail.tail_files.len() as u64)
        .saturating_add(tail.more_tail_files)
        .saturating_sub(names.len() as u64);
    format!(
        "the OS volume (partition {}) must shrink by {} MiB, but {} of the clusters it would give up are in use ({}{}); the largest shrink without moving data is {} MiB. Shrink it inside Windows (diskpart moves the files; the script below) or free the space first",
        os.number,
        shrink / ALIGN_BYTES,
        tail.used_tail_clusters,
        names.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() },
        tail.largest_shrink_bytes / ALIGN_BYTES
    )
}

/// A partition as a plan shows it.
fn plan_partition(p: &Partition, sector: u64, change: PartitionChange) -> PlanPartition {
    PlanPartition {
        number: p.number,
        kind: crate::scan::kind_name(p.kind).to_string(),
        type_id: match (&p.type_guid, p.mbr_type) {
            (Some(g), _) => g.to_string().to_ascii_lowercase(),
            (None, Some(t)) => format!("0x{t:02x}"),
            (None, None) => String::new(),
        },
        guid: p
            .unique_guid
            .as_ref()
            .map(|g| g.to_string().to_ascii_lowercase()),
        attributes: p.attributes.map(|a| format!("0x{a:016x}")),
        start_bytes: p.start_bytes,
        size_bytes: p.size_bytes,
        start_lba: p.start_lba,
        end_lba: p.end_lba,
        size_sectors: p.size_bytes.checked_div(sector).unwrap_or(0),
        filesystem: p.filesystem.name().to_string(),
        change,
    }
}

//! `winre plan IMAGE`: whether the WinRE volume must grow for WinRE updates, by how much and
//! how, read-only. Exit 0 nothing needed, 1 a change `winre resize --apply` can make offline,
//! 3 manual work (the reason is printed), 2 the image could not be read.

use std::path::PathBuf;

use clap::Args;
use winre_core::plan::{self, Plan, PlanOptions, PlanPartition, Step, Verdict};

use winre_disk::container;

use super::source::{self, ParentArgs};
use crate::cli::size::parse_size;
use crate::cli::Exit;

/// Arguments of `winre plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// Disk image (raw, VHD, VHDX, VMDK, qcow2, E01).
    pub image: PathBuf,
    /// Free space the WinRE volume needs: 250MiB, 300M (MiB), 262144000 (bytes), 1GiB.
    #[arg(long, value_parser = parse_size, default_value = "262144000")]
    pub min_free: u64,
    /// The plan as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub parents: ParentArgs,
    #[command(flatten)]
    pub journal: source::JournalArgs,
    /// The image file may be made longer when the recovery partition is the last one (as
    /// `winre resize --grow-image`): then that is the plan.
    #[arg(long)]
    pub grow_image: bool,
}

pub fn run(args: &PlanArgs) -> anyhow::Result<Exit> {
    let options = PlanOptions {
        required_free_bytes: args.min_free,
        grow_image: args.grow_image,
    };
    source::warn_journal(&args.image, args.journal.journal.as_deref());
    let disk = container::open(&args.image, &args.parents.options())
        .map_err(|e| source::with_parent_hint(e).context(args.image.display().to_string()))?;
    let plan = plan::plan_disk(&args.image.display().to_string(), disk, &options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::cli::json::stamped(&plan))?
        );
    } else {
        crate::cli::output::print(&render(&plan))?;
    }
    Ok(match plan.verdict {
        Verdict::NothingNeeded => Exit::Ok,
        Verdict::Offline => Exit::Finding,
        Verdict::Manual { .. } => Exit::Refused,
    })
}

/// The plan as text for people.
fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let verdict = match &plan.verdict {
        Verdict::NothingNeeded => "nothing to do".to_string(),
        Verdict::Offline => {
            "a change is needed; `winre resize --apply` can make it offline".to_string()
        }
        Verdict::Manual { reason, why } => format!(
            "manual work needed ({}): {why}",
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
    };
    let case = serde_json::to_value(plan.case)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    line(format!("{}: {case}: {verdict}", plan.source));
    if let Some(rec) = plan.recovery_partition {
        line(format!(
            "  WinRE volume:  partition {rec}, {} bytes free, {} required{}",
            opt(plan.free_before_bytes),
            plan.required_free_bytes,
            if plan.shortfall_bytes > 0 {
                format!(" (short by {} bytes)", plan.shortfall_bytes)
            } else {
                String::new()
            }
        ));
    }
    if plan.grow_by_bytes > 0 {
        line(format!(
            "  grow by:       {} bytes ({} MiB){}",
            plan.grow_by_bytes,
            plan.grow_by_bytes >> 20,
            if plan.shrink_os_by_bytes > 0 {
                format!(
                    "; the OS partition shrinks by {} bytes ({} MiB)",
                    plan.shrink_os_by_bytes,
                    plan.shrink_os_by_bytes >> 20
                )
            } else {
                String::new()
            }
        ));
        if let Some(free) = plan.free_after_bytes {
            line(format!("  free after:    {free} bytes"));
        }
    }
    if let Some(g) = &plan.recovery_growth {
        line(format!(
            "  NTFS:          {} -> {} clusters of {} bytes; $Bitmap {} -> {} clusters; free {} -> {} clusters",
            g.clusters_before,
            g.clusters_after,
            g.cluster_size,
            g.bitmap_clusters_before,
            g.bitmap_clusters_after,
            g.free_clusters_before,
            g.free_clusters_after
        ));
    }
    if plan.recovery_partition.is_some() {
        line(format!(
            "  unallocated:   {} bytes before the recovery partition, {} after",
            plan.unallocated.before_recovery_bytes, plan.unallocated.after_recovery_bytes
        ));
    }
    if let Some(t) = &plan.os_tail {
        line(format!(
            "  OS tail:       partition {}: {} of its clusters past cluster {} in use; last used cluster {}; largest shrink without moving data {} bytes ({} MiB)",
            t.partition,
            t.used_tail_clusters,
            t.keep_clusters,
            t.last_used_cluster.map_or("none".to_string(), |c| c.to_string()),
            t.largest_shrink_bytes,
            t.largest_shrink_bytes >> 20
        ));
        for f in &t.tail_files {
            line(format!(
                "                 {} ({} clusters)",
                f.path, f.tail_clusters
            ));
        }
        if t.more_tail_files > 0 {
            line(format!(
                "                 and {} more files",
                t.more_tail_files
            ));
        }
    }
    if !plan.steps.is_empty() {
        line("Steps:".to_string());
        for (i, step) in plan.steps.iter().enumerate() {
            line(format!("  {}. {}", i.saturating_add(1), describe(step)));
        }
    }
    line("Partitions (before):".to_string());
    table(&plan.partitions_before, &mut line);
    if plan.partitions_after != plan.partitions_before {
        line("Partitions (after):".to_string());
        table(&plan.partitions_after, &mut line);
    }
    if !plan.windows_script.is_empty() {
        line("The same inside Windows (KB5028997):".to_string());
        for l in &plan.windows_script {
            line(format!("  {l}"));
        }
    }
    for note in &plan.notes {
        line(format!("  note: {note}"));
    }
    out
}

fn table(parts: &[PlanPartition], line: &mut impl FnMut(String)) {
    line(format!(
        "  {:>3} {:<10} {:>14} {:>14} {:>12} {:>12} {:>12}  {:<9} {}",
        "#", "kind", "start", "size", "start_lba", "end_lba", "sectors", "fs", "change"
    ));
    for p in parts {
        let change = serde_json::to_value(p.change)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        line(format!(
            "  {:>3} {:<10} {:>14} {:>14} {:>12} {:>12} {:>12}  {:<9} {}",
            p.number,
            p.kind,
            p.start_bytes,
            p.size_bytes,
            p.start_lba,
            p.end_lba,
            p.size_sectors,
            p.filesystem,
            change
        ));
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::GrowImage { new_len_bytes } => {
            format!("make the image file (the guest disk) {new_len_bytes} bytes long")
        }
        Step::ShrinkNtfs {
            partition,
            new_size_bytes,
            new_total_sectors,
            new_total_clusters,
            ..
        } => format!(
            "shrink the NTFS volume of partition {partition} to fill {new_size_bytes} bytes ({new_total_sectors} sectors, {new_total_clusters} clusters)"
        ),
        Step::MovePartition {
            partition,
            from_byte,
            to_byte,
            len_bytes,
        } => format!(
            "move partition {partition}: copy {len_bytes} bytes from byte {from_byte} to byte {to_byte}"
        ),
        Step::SetPartitionExtent {
            partition,
            start_lba,
            end_lba,
        } => format!("set partition {partition} to sectors {start_lba}..={end_lba}"),
        Step::GrowNtfs {
            partition,
            new_size_bytes,
            new_total_sectors,
            new_total_clusters,
            ..
        } => format!(
            "grow the NTFS volume of partition {partition} to fill {new_size_bytes} bytes ({new_total_sectors} sectors, {new_total_clusters} clusters)"
        ),
        Step::UpdateReagentOffset {
            partition,
            path,
            old_offset_bytes,
            new_offset_bytes,
        } => format!(
            "ReAgent.xml (partition {partition}, {path}): WinreLocation offset {old_offset_bytes} -> {new_offset_bytes}"
        ),
        Step::UpdateBcdPartitionOffset {
            partition,
            path,
            old_offset_bytes,
            new_offset_bytes,
        } => format!(
            "BCD (partition {partition}, {path}): WinRE device offset {old_offset_bytes} -> {new_offset_bytes}"
        ),
        Step::CreatePartition {
            partition,
            start_lba,
            end_lba,
            type_id,
            ..
        } => format!(
            "create recovery partition {partition} at sectors {start_lba}..={end_lba}, type {type_id}, and format it NTFS"
        ),
        Step::DeletePartition { partition } => format!("delete partition {partition}"),
        Step::CopyWinre {
            from_partition,
            from_path,
            to_partition,
            to_path,
            size_bytes,
        } => format!(
            "copy Winre.wim ({size_bytes} bytes) from partition {from_partition} ({from_path}) to partition {to_partition} ({to_path})"
        ),
        Step::SetReagentLocation {
            partition,
            path,
            location_path,
            old_offset_bytes,
            new_offset_bytes,
        } => format!(
            "ReAgent.xml (partition {partition}, {path}): WinreLocation path {location_path}, offset {old_offset_bytes} -> {new_offset_bytes} (reagentc /setreimage)"
        ),
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or("?".to_string(), |v| v.to_string())
}

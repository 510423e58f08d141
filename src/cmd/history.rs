//! `winre history IMAGE...`: what happened to each WinRE update of the image's build family, with
//! the evidence Windows left on the OS volume (event logs, servicing state, PowerShell history);
//! and `winre updates`: the update table in use.

use std::fmt::Write;
use std::path::PathBuf;

use clap::Args;
use winre_core::history::HistoryReport;
use winre_core::report::ScanReport;
use winre_core::scan::ScanOptions;
use winre_core::updates;

use super::scan::{outcome_json, scan_all, Outcome};
use super::source::{ParentArgs, RemoteArgs};
use crate::cli::threads::ThreadsArg;
use crate::cli::Exit;

/// Arguments of `winre history`.
#[derive(Args)]
pub struct HistoryArgs {
    /// Disk images: local paths or URLs (https://..., s3://BUCKET/KEY, az://ACCOUNT/CONTAINER/BLOB).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// One JSON object per image per line (the scan record with its `history`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub parents: ParentArgs,
}

/// Exit 0 when every image was read, 2 when any could not be (as `winre scan`).
pub fn run(args: &HistoryArgs) -> anyhow::Result<Exit> {
    let options = ScanOptions {
        history: true,
        ..ScanOptions::default()
    };
    let mut failed = false;
    for outcome in scan_all(
        &args.images,
        args.threads,
        &options,
        &args.remote,
        &args.parents,
        None,
    )? {
        if args.json {
            println!("{}", outcome_json(&outcome)?);
        }
        match &outcome {
            Outcome::Report(report, _) => {
                if !args.json {
                    print!("{}", render_report(report));
                }
            }
            Outcome::Failed(path, error) => {
                failed = true;
                if !args.json {
                    println!("{}\n  error: {error}\n", path.display());
                }
            }
        }
    }
    Ok(if failed { Exit::Unreadable } else { Exit::Ok })
}

fn render_report(r: &ScanReport) -> String {
    let mut s = String::new();
    let version = r
        .winre
        .version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(s, "{}: WinRE {version}", r.source.path);
    if let Some(h) = &r.history {
        s.push_str(&render_history(h));
    }
    if !r.problems.is_empty() {
        let _ = writeln!(s, "  Scan problems:");
        for p in &r.problems {
            let _ = writeln!(s, "    - {p}");
        }
    }
    s.push('\n');
    s
}

/// The history section of `winre history` and `winre scan --history`.
pub fn render_history(h: &HistoryReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  Update table:         {} (sha256 {})",
        h.table.date.as_deref().unwrap_or("undated"),
        h.table.sha256
    );
    match h.family {
        Some(f) => {
            let _ = writeln!(s, "  Verdicts (WinRE build family {f}):");
        }
        None => {
            let _ = writeln!(s, "  Verdicts: none (the WinRE version is not known)");
        }
    }
    for v in &h.verdicts {
        let min = v
            .min_version
            .map(|m| m.to_string())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(s, "    {:<30} >= {min:<18} {}", v.verdict.name(), v.title);
        for e in &v.evidence {
            let _ = writeln!(s, "        {e}");
        }
    }
    if h.servicing.pending_restart {
        let _ = writeln!(s, "  Servicing waits for a restart:");
        for m in &h.servicing.markers {
            let _ = writeln!(s, "    {} ({})", m.what, m.detail);
        }
    } else {
        let _ = writeln!(s, "  Servicing waits for a restart: no");
    }
    let _ = writeln!(
        s,
        "  Windows Update history ({} events):",
        h.update_history.len()
    );
    for u in &h.update_history {
        let _ = writeln!(
            s,
            "    {} #{:<7} {:<17} {:<11} {}",
            u.time,
            u.record_id,
            u.kind,
            u.error_code.as_deref().unwrap_or(""),
            u.title
        );
    }
    if !h.winre_agent.is_empty() {
        let _ = writeln!(s, "  WinREAgent events:");
        for a in &h.winre_agent {
            let _ = writeln!(
                s,
                "    {} #{:<7} {} {}{}{}",
                a.time,
                a.record_id,
                a.event_id,
                a.kind,
                a.version
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default(),
                a.error_phase
                    .map(|p| format!(" phase {p} code {}", a.error_code.as_deref().unwrap_or("?")))
                    .unwrap_or_default()
            );
        }
    }
    if !h.powershell.is_empty() {
        let _ = writeln!(
            s,
            "  PowerShell lines that download and run code (reported, not judged):"
        );
        for f in &h.powershell {
            let _ = writeln!(
                s,
                "    {:?} {} line {} (modified {}): {}",
                f.pattern,
                f.file,
                f.line_number,
                f.modified.as_deref().unwrap_or("?"),
                f.line
            );
        }
    }
    for p in &h.problems {
        let _ = writeln!(s, "  - {p}");
    }
    s
}

/// Arguments of `winre updates`.
#[derive(Args)]
pub struct UpdatesArgs {
    /// Only the updates of this WinRE build family (19041, 22621, 26100, ...); an OS build such
    /// as 19045 or 22631 selects its family.
    #[arg(long)]
    pub family: Option<u32>,
    /// One JSON object: the table's date and checksum, and its rows.
    #[arg(long)]
    pub json: bool,
}

/// Lists the table in use.
pub fn run_updates(args: &UpdatesArgs) -> anyhow::Result<Exit> {
    let table = updates::active_table();
    let family = args.family.map(updates::family_of);
    let rows: Vec<_> = table
        .rows
        .iter()
        .filter(|r| family.is_none_or(|f| r.family_build == f))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "update_table": table.id,
                "updates": rows,
            }))?
        );
        return Ok(Exit::Ok);
    }
    println!(
        "update table {} ({}; sha256 {}), {} rows",
        table.id.date.as_deref().unwrap_or("undated"),
        table.id.origin,
        table.id.sha256,
        rows.len()
    );
    for r in rows {
        println!(
            "{:<6} {:<11} {:<19} {:<12} {:<9} {}",
            r.family_build,
            r.release_date,
            r.min_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.threshold_kind.name(),
            if r.confirmed { "confirmed" } else { "reported" },
            r.title
        );
        println!(
            "       source: {}{}",
            r.source,
            r.source_url
                .as_deref()
                .map(|u| format!(" <{u}>"))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}

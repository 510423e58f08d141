//! `winre scan IMAGE...`: where WinRE is, its version, free space and verdicts, per image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use rayon::prelude::*;
use winre_core::problem::{Problem, ProblemCode};
use winre_core::report::{ScanReport, WinreStatus};
use winre_core::scan::{self, ScanOptions};

use super::source::{self, JournalArgs, ParentArgs, RemoteArgs};
use crate::cli::color::{paint, Tone};
use crate::cli::size::{human, parse_size, plural};
use crate::cli::threads::ThreadsArg;

use super::scan_list;
use crate::cli::{exit, json, output, Exit};

/// Arguments of `winre scan`.
#[derive(Args)]
pub struct ScanArgs {
    /// Disk images (raw, VHD, VHDX, VMDK, qcow2, E01): local paths, or URLs read in place
    /// (https://..., s3://BUCKET/KEY, az://ACCOUNT/CONTAINER/BLOB).
    #[arg(required_unless_present = "from_list", conflicts_with = "from_list")]
    pub images: Vec<PathBuf>,
    /// Read the images from FILE, one a line (`-`: stdin; blank lines and `#` comments skipped),
    /// and write JSON Lines, in list order.
    #[arg(long, value_name = "FILE")]
    pub from_list: Option<PathBuf>,
    /// Scan only shard K of N (K from 0): the list items whose index modulo N is K.
    #[arg(long, value_name = "K/N", value_parser = scan_list::Shard::parse, requires = "from_list")]
    pub shard: Option<scan_list::Shard>,
    /// Write the JSON Lines to FILE (via FILE.partial, renamed when the run completes).
    #[arg(short, long, value_name = "FILE", requires = "from_list")]
    pub output: Option<PathBuf>,
    /// Overwrite the -o file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    /// One JSON object per image per line instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// Free space the WinRE volume needs: 250MiB, 262144000, 1GiB.
    #[arg(long, value_parser = parse_size, default_value = "262144000")]
    pub min_free: u64,
    /// Also read the whole Winre.wim and give its SHA-256.
    #[arg(long)]
    pub hash: bool,
    /// Also verify Winre.wim in place (every blob and every image tree, in parallel): adds
    /// `winre.wim.verify` and a `wim_corrupt` problem when it fails.
    #[arg(long)]
    pub verify: bool,
    /// Also read the event logs, servicing state and PowerShell history, and give a verdict per
    /// WinRE update (as `winre history`).
    #[arg(long)]
    pub history: bool,
    /// Print bytes read and time taken per image on stderr (for URLs also the requests made
    /// and bytes fetched).
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub parents: ParentArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
}

/// One image's outcome.
pub enum Outcome {
    /// Scanned.
    Report(Box<ScanReport>, f64),
    /// Could not be read.
    Failed(PathBuf, String),
}

/// Scans `images` in parallel (no more threads than images), results in the order given.
pub fn scan_all(
    images: &[PathBuf],
    threads: ThreadsArg,
    options: &ScanOptions,
    remote: &RemoteArgs,
    parents: &ParentArgs,
    journal: Option<&Path>,
) -> anyhow::Result<Vec<Outcome>> {
    let pool = threads.pool(images.len())?;
    Ok(pool.install(|| {
        images
            .par_iter()
            .map(|path| scan_one(path, options, remote, parents, journal))
            .collect()
    }))
}

/// Scans one image, a local path or a URL; every image of `winre scan`, listed or not, goes
/// through here. A `winre resize` journal next to the image (or `journal`) becomes a problem.
pub fn scan_one(
    path: &Path,
    options: &ScanOptions,
    remote: &RemoteArgs,
    parents: &ParentArgs,
    journal: Option<&Path>,
) -> Outcome {
    let started = Instant::now();
    let scanned = scan_input(path, options, remote, parents);
    let notice = source::journal_notice(path, journal);
    let scanned = match (scanned, notice) {
        (Ok(mut report), Some(notice)) => {
            report
                .problems
                .push(Problem::new(ProblemCode::ResizeJournal, notice));
            Ok(report)
        }
        (Err(e), Some(notice)) => Err(format!("{e}; {notice}")),
        (scanned, None) => scanned,
    };
    match scanned {
        Ok(report) => Outcome::Report(Box::new(report), started.elapsed().as_secs_f64() * 1000.0),
        // A URL is shown redacted, in error records too.
        Err(e) => Outcome::Failed(PathBuf::from(source::label(path)), e),
    }
}

/// Scans the image at a local path or a URL; the report of a URL names it redacted and counts
/// the requests made.
fn scan_input(
    url: &Path,
    options: &ScanOptions,
    remote: &RemoteArgs,
    parents: &ParentArgs,
) -> Result<ScanReport, String> {
    let opened =
        source::open_disk(url, &parents.options(), remote).map_err(|e| format!("{e:#}"))?;
    let mut report =
        scan::scan_disk(&opened.label, &opened.disk, options).map_err(|e| e.to_string())?;
    if let Some(reader) = &opened.remote {
        let fetched = reader.stats();
        report.stats.requests = Some(fetched.requests);
        report.stats.bytes_fetched = Some(fetched.bytes_fetched);
    }
    Ok(report)
}

/// The one JSON line `--json` prints for an outcome (without the newline).
pub fn outcome_json(outcome: &Outcome) -> serde_json::Result<String> {
    match outcome {
        Outcome::Report(report, _) => serde_json::to_string(&json::stamped(report.as_ref())),
        Outcome::Failed(path, error) => serde_json::to_string(&json::stamped(&serde_json::json!({
            "source": { "path": path.display().to_string() },
            "error": error,
        }))),
    }
}

/// The `--stats` line for a scanned image (for a URL also the requests made and bytes fetched).
pub fn stats_line(report: &ScanReport, ms: f64) -> String {
    let fetched = match (report.stats.requests, report.stats.bytes_fetched) {
        (Some(requests), Some(bytes)) => format!(
            "; fetched {bytes} bytes ({:.2} MiB) in {requests} requests",
            bytes as f64 / 1048576.0
        ),
        _ => String::new(),
    };
    format!(
        "{}: read {} bytes ({:.2} MiB) in {} reads, {ms:.1} ms{fetched}",
        report.source.path,
        report.stats.bytes_read,
        report.stats.bytes_read as f64 / 1048576.0,
        report.stats.read_calls
    )
}

pub fn run(args: &ScanArgs) -> anyhow::Result<Exit> {
    let options = ScanOptions {
        required_free_bytes: args.min_free,
        hash: args.hash,
        verify: args.verify,
        history: args.history,
    };
    // clap's `requires` is not enforced beside the positional IMAGEs: check here.
    if args.from_list.is_none() {
        let alone = [
            (args.output.is_some(), "-o/--output"),
            (args.shard.is_some(), "--shard"),
        ];
        if let Some((_, flag)) = alone.iter().find(|(given, _)| *given) {
            return Err(exit::usage(format!(
                "{flag} works only with --from-list (scan IMAGE... prints to stdout)"
            )));
        }
    }
    if let Some(list) = &args.from_list {
        if !args.parents.parents.is_empty() {
            return Err(crate::cli::exit::usage(
                "--parent names the parents of the images given on the command line; with \
                 --from-list each image's chain is followed from its recorded names",
            ));
        }
        return scan_list::run(
            &scan_list::ListArgs {
                list,
                shard: args.shard,
                threads: args.threads,
                output: args.output.as_deref(),
                force: args.force,
                stats: args.stats,
                remote: &args.remote,
            },
            &options,
        );
    }
    let outcomes = scan_all(
        &args.images,
        args.threads,
        &options,
        &args.remote,
        &args.parents,
        args.journal.journal.as_deref(),
    )?;
    let mut failed = false;
    let mut code = Exit::Ok;
    for outcome in &outcomes {
        if args.json {
            output::print(&format!("{}\n", outcome_json(outcome)?))?;
        }
        match outcome {
            Outcome::Report(report, ms) => {
                code = code.max(exit_code_of(report));
                if !args.json {
                    output::print(&render_text(report))?;
                }
                if args.stats {
                    eprintln!("{}", stats_line(report, *ms));
                }
            }
            Outcome::Failed(path, error) => {
                failed = true;
                if !args.json {
                    output::print(&format!("{}\n  error: {error}\n\n", path.display()))?;
                }
            }
        }
    }
    Ok(if failed { Exit::Unreadable } else { code })
}

/// The exit code a scanned image asks for: 2 when it is not a disk image, 1 when it is damaged
/// (truncated, nothing readable), else 0.
pub fn exit_code_of(report: &ScanReport) -> Exit {
    match report
        .problems
        .iter()
        .filter_map(|p| p.code.scan_exit_code())
        .max()
    {
        Some(2) => Exit::Unreadable,
        Some(_) => Exit::Finding,
        None => Exit::Ok,
    }
}

/// The text summary, in the spirit of `reagentc /info`.
pub fn render_text(r: &ScanReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}, {}, {}-byte sectors, {})",
        r.source.path,
        r.source.format,
        human(r.source.disk_size),
        r.source.sector_size,
        r.partition_table.scheme.to_uppercase()
    );
    for link in &r.source.chain {
        let how = if link.given {
            "given with --parent".to_string()
        } else {
            format!("recorded as {:?}", link.recorded)
        };
        let format = serde_json::to_value(link.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(s, "  Parent:               {} ({format}, {how})", link.path);
    }
    let status = match r.winre.status {
        WinreStatus::Enabled => "Enabled",
        WinreStatus::Disabled => "Disabled",
        WinreStatus::NotFound => "Not found",
    };
    let _ = writeln!(s, "  Windows RE status:    {status}");
    if let (Some(part), Some(path)) = (r.winre.partition, &r.winre.path) {
        let by = r.winre.found_by.as_deref().unwrap_or("?");
        let _ = writeln!(
            s,
            "  Windows RE location:  partition {part}, {path} (found by {by})"
        );
    }
    if let Some(id) = r.winre.reagent.as_ref().and_then(|x| x.bcd_id.as_deref()) {
        let _ = writeln!(s, "  BCD identifier:       {id}");
    }
    let wim = r
        .winre
        .version_sources
        .wim_xml
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into());
    let reg = r
        .winre
        .version_sources
        .registry
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(
        s,
        "  WinRE version:        {wim} (WIM XML); registry claims {reg}"
    );
    if let Some(w) = &r.winre.wim {
        let _ = writeln!(
            s,
            "  Winre.wim:            {} bytes, {}, {}, {}{}",
            w.size,
            w.compression,
            plural(u64::from(w.images), "image", "images"),
            plural(w.data_runs as u64, "data run", "data runs"),
            w.sha256
                .as_deref()
                .map(|h| format!(", SHA-256 {h}"))
                .unwrap_or_default()
        );
    }
    if let Some(v) = r.winre.wim.as_ref().and_then(|w| w.verify.as_ref()) {
        let verdict = if v.intact {
            format!("intact ({} blobs)", v.blobs_checked)
        } else {
            format!("CORRUPT: {}", winre_core::scan::verify_summary(v))
        };
        let _ = writeln!(s, "  Verified:             {verdict}");
    }
    if let Some(space) = &r.recovery_space {
        let verdict = if space.shortfall == 0 {
            "enough".to_string()
        } else {
            paint(&format!("short by {}", human(space.shortfall)), Tone::Warn)
        };
        let _ = writeln!(
            s,
            "  Free space:           partition {}: {} free of {} (needs {}): {verdict}",
            space.partition,
            human(space.free),
            human(space.size),
            human(space.required_free)
        );
    }
    if !r.updates.is_empty() {
        let _ = writeln!(s, "  Updates:");
        for u in &r.updates {
            let state = match u.installed {
                Some(true) => "installed",
                Some(false) => "not installed",
                None => "unknown",
            };
            let min = u
                .min_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into());
            // The title can carry a note ("KB5034441 (CVE-2024-20666)"): keep it last.
            let _ = writeln!(s, "    {state:<14} >= {min:<18} {}", u.title);
        }
    }
    for f in &r.winre.version_sources.files {
        let shown = match (&f.error, &f.file_version, &f.product_version) {
            (Some(e), _, _) => format!("unreadable ({e})"),
            (None, Some(file), Some(product)) => format!("file {file}, product {product}"),
            _ => "no fixed version".to_string(),
        };
        let _ = writeln!(s, "  {:<21} {shown}", format!("{}:", file_name(&f.path)));
    }
    if let Some(h) = &r.history {
        s.push_str(&super::history::render_history(h));
    }
    if r.problems.is_empty() {
        let _ = writeln!(s, "  Problems:             none");
    } else {
        let _ = writeln!(s, "  Problems:");
        for p in &r.problems {
            let _ = writeln!(s, "    - {p}");
        }
    }
    s.push('\n');
    s
}

fn file_name(path: &str) -> &str {
    path.rsplit('\\').next().unwrap_or(path)
}

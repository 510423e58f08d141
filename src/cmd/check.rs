//! `winre check IMAGE...`: pass or fail each image against a WinRE requirement, for pipelines.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use winre_core::problem::ProblemCode;
use winre_core::scan::{self, Requirement, ScanOptions};
use winre_core::updates;
use winre_core::version::WinreVersion;

use super::scan::{scan_all, Outcome};
use super::source::{JournalArgs, ParentArgs, RemoteArgs};
use crate::cli::color::{paint, Tone};
use crate::cli::size::parse_size;
use crate::cli::threads::ThreadsArg;
use crate::cli::{exit, json, output, Exit};

/// Arguments of `winre check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Disk images: local paths or URLs (https://..., s3://BUCKET/KEY, az://ACCOUNT/CONTAINER/BLOB).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// WinRE must have this update (e.g. KB5057589).
    #[arg(long, conflicts_with = "min_version")]
    pub kb: Option<String>,
    /// With --kb: pass only when the update's verdict (as `winre history` gives it) is
    /// installed; pending a restart, reported failed, failed and not offered all fail.
    #[arg(long, requires = "kb")]
    pub require_installed: bool,
    /// WinRE must be at least this version (e.g. 10.0.19041.5728).
    #[arg(long)]
    pub min_version: Option<WinreVersion>,
    /// Free space the WinRE volume needs: 250MiB, 262144000, 1GiB.
    #[arg(long, value_parser = parse_size, default_value = "262144000")]
    pub min_free: u64,
    /// Also verify Winre.wim in place; a corrupt Winre.wim fails the check.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// One JSON document on stdout: `pass` and, per image, `pass`, `reasons[]` or `error`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub parents: ParentArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
}

/// `check --json`: the whole run.
#[derive(Serialize)]
struct CheckReport {
    /// Every image read and passed.
    pass: bool,
    images: Vec<Verdict>,
}

/// One image's verdict.
#[derive(Serialize)]
struct Verdict {
    path: String,
    pass: bool,
    /// Why it fails, one sentence each (empty when it passes or could not be read).
    reasons: Vec<String>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Exit 0 when every image passes, 1 when any fails (one line per reason), 2 when any cannot be
/// read.
pub fn run(args: &CheckArgs) -> anyhow::Result<Exit> {
    if let Some(kb) = &args.kb {
        known_kb(kb)?;
    }
    let options = ScanOptions {
        required_free_bytes: args.min_free,
        history: args.require_installed,
        verify: args.verify,
        ..ScanOptions::default()
    };
    let requirement = Requirement {
        min_version: args.min_version,
        kb: args.kb.clone(),
        min_free_bytes: Some(args.min_free),
        require_installed: args.require_installed,
    };
    let mut unreadable = false;
    let mut failed = false;
    let mut verdicts = Vec::new();
    for outcome in scan_all(
        &args.images,
        args.threads,
        &options,
        &args.remote,
        &args.parents,
        args.journal.journal.as_deref(),
    )? {
        match outcome {
            Outcome::Report(report, _) => {
                for p in report
                    .problems
                    .iter()
                    .filter(|p| p.code == ProblemCode::ResizeJournal)
                {
                    eprintln!("{}: note: {}", report.source.path, p.message);
                }
                let reasons = scan::check(&report, &requirement);
                failed |= !reasons.is_empty();
                if args.json {
                    verdicts.push(Verdict {
                        path: report.source.path.clone(),
                        pass: reasons.is_empty(),
                        reasons,
                        error: None,
                    });
                } else if reasons.is_empty() {
                    output::print(&format!(
                        "{}: {}\n",
                        report.source.path,
                        paint("pass", Tone::Good)
                    ))?;
                } else {
                    for reason in reasons {
                        output::print(&format!(
                            "{}: {}: {reason}\n",
                            report.source.path,
                            paint("FAIL", Tone::Bad)
                        ))?;
                    }
                }
            }
            Outcome::Failed(path, error) if args.json => {
                unreadable = true;
                verdicts.push(Verdict {
                    path: path.display().to_string(),
                    pass: false,
                    reasons: Vec::new(),
                    error: Some(error),
                });
            }
            Outcome::Failed(path, error) => {
                unreadable = true;
                output::print(&format!(
                    "{}: {}: {error}\n",
                    path.display(),
                    paint("ERROR", Tone::Bad)
                ))?;
            }
        }
    }
    if args.json {
        json::print_line(&json::stamped(&CheckReport {
            pass: !failed && !unreadable,
            images: verdicts,
        }))?;
    }
    Ok(if unreadable {
        Exit::Unreadable
    } else if failed {
        Exit::Finding
    } else {
        Exit::Ok
    })
}

/// Refuses (usage error, before any image is read) a KB that is not in winre's table, listing
/// the ones that are.
fn known_kb(kb: &str) -> anyhow::Result<()> {
    let wanted = updates::normalize_kb(kb);
    let mut known: Vec<&str> = updates::known_updates()
        .iter()
        .filter_map(|u| u.kb.as_deref())
        .collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&wanted.as_str()) {
        return Ok(());
    }
    Err(exit::usage(format!(
        "--kb {kb}: {wanted} is not in winre's table of WinRE updates; known: {}",
        known.join(", ")
    )))
}

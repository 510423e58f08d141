//! `winre check IMAGE...`: pass or fail each image against a WinRE requirement, for pipelines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use winre_core::problem::ProblemCode;
use winre_core::scan::{self, Requirement, ScanOptions};
use winre_core::version::WinreVersion;

use super::scan::{parse_size, scan_all, Outcome};
use super::source::{JournalArgs, RemoteArgs};

/// Arguments of `winre check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Disk images: local paths or URLs (https://..., s3://BUCKET/KEY, az://ACCOUNT/CONTAINER/BLOB).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// WinRE must have this update (e.g. KB5057589).
    #[arg(long, conflicts_with = "min_version")]
    pub kb: Option<String>,
    /// WinRE must be at least this version (e.g. 10.0.19041.5728).
    #[arg(long)]
    pub min_version: Option<WinreVersion>,
    /// Free space the WinRE volume needs: 250MiB, 262144000, 1GiB.
    #[arg(long, value_parser = parse_size, default_value = "262144000")]
    pub min_free: u64,
    /// Also verify Winre.wim in place; a corrupt Winre.wim fails the check.
    #[arg(long)]
    pub verify: bool,
    /// Images checked at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub journal: JournalArgs,
}

/// Exit 0 when every image passes, 1 when any fails (one line per reason), 2 when any cannot be
/// read.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = ScanOptions {
        required_free_bytes: args.min_free,
        hash: false,
        verify: args.verify,
    };
    let requirement = Requirement {
        min_version: args.min_version,
        kb: args.kb.clone(),
        min_free_bytes: Some(args.min_free),
    };
    let mut unreadable = false;
    let mut failed = false;
    for outcome in scan_all(
        &args.images,
        args.jobs,
        &options,
        &args.remote,
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
                if reasons.is_empty() {
                    println!("{}: pass", report.source.path);
                } else {
                    failed = true;
                    for reason in reasons {
                        println!("{}: FAIL: {reason}", report.source.path);
                    }
                }
            }
            Outcome::Failed(path, error) => {
                unreadable = true;
                println!("{}: ERROR: {error}", path.display());
            }
        }
    }
    Ok(if unreadable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

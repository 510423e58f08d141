//! `winre report merge|html FILE.jsonl...`: what many scans found, for people and spreadsheets.

mod html;
mod records;
mod summary;

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::output;
use crate::cli::size::plural;
use crate::cli::Exit;
use anyhow::Context;
use clap::{Args, Subcommand};

/// `winre report` subcommands.
#[derive(Subcommand)]
pub enum ReportCommand {
    /// Summarize JSON Lines from `winre scan`: counts by WinRE status, version, update and free
    /// space, and the unreadable images; optionally one CSV row per image.
    Merge(MergeArgs),
    /// Write one self-contained HTML page (no network) with charts and a sortable table.
    Html(HtmlArgs),
}

/// Arguments of `winre report merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// JSON Lines files written by `winre scan --json` or `--from-list` (`-`: stdin).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Also write one CSV row per image to this file (`-`: stdout).
    #[arg(long, value_name = "OUT")]
    pub csv: Option<PathBuf>,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Overwrite the CSV file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `winre report html`.
#[derive(Args)]
pub struct HtmlArgs {
    /// JSON Lines files written by `winre scan --json` or `--from-list` (`-`: stdin).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The page to write (`-`: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Overwrite the page if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Lines that are not scan records shown on stderr; the rest are counted.
const MALFORMED_SHOWN: usize = 5;

/// Exit 0 when every line was a scan record, 2 when some were not (they are named on stderr and
/// left out). Error records of unreadable images are counted, not an error of the report.
pub fn run(command: &ReportCommand) -> anyhow::Result<Exit> {
    let (inputs, output, force) = match command {
        ReportCommand::Merge(a) => (&a.inputs, a.csv.as_deref(), a.force),
        ReportCommand::Html(a) => (&a.inputs, Some(a.output.as_path()), a.force),
    };
    if let Some(path) = output {
        output::check_new(path, force)?;
    }
    let loaded = records::load(inputs)?;
    for line in loaded.malformed.iter().take(MALFORMED_SHOWN) {
        eprintln!("winre: {line}");
    }
    if let Some(more) = loaded
        .malformed
        .len()
        .checked_sub(MALFORMED_SHOWN)
        .filter(|&n| n > 0)
    {
        eprintln!(
            "winre: ... and {}",
            plural(
                more as u64,
                "more line that is not a scan record",
                "more lines that are not scan records"
            )
        );
    }
    for file in &loaded.given_up {
        eprintln!("winre: {file}");
    }
    if loaded.rows.is_empty() {
        anyhow::bail!(
            "no scan records in {}: nothing written (the input must be the JSON Lines of `winre scan --json` or `--from-list`)",
            inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let summary = summary::summarize(&loaded);
    match command {
        ReportCommand::Merge(args) => {
            if let Some(csv) = &args.csv {
                write_to(csv, args.force, |out| summary::write_csv(&loaded.rows, out))?;
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::cli::json::stamped(&summary))?
                );
            } else {
                output::print(&summary::render_text(&summary))?;
            }
        }
        ReportCommand::Html(args) => {
            let page = html::render(&summary, &loaded.rows);
            write_to(&args.output, args.force, |out| {
                out.write_all(page.as_bytes())
            })?;
        }
    }
    Ok(if loaded.malformed.is_empty() {
        Exit::Ok
    } else {
        Exit::Unreadable
    })
}

/// Writes a file through a buffer (`-`: stdout), naming it in any error.
fn write_to(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let name = path.display();
    if output::is_stdout(path) {
        let mut out = BufWriter::new(io::stdout().lock());
        write(&mut out).and_then(|()| out.flush())
    } else {
        let file = output::create(path, force)?;
        let mut out = BufWriter::new(file);
        write(&mut out).and_then(|()| out.flush())
    }
    .with_context(|| format!("writing {name}"))
}

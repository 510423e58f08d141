//! `winre report merge|html FILE.jsonl...`: what many scans found, for people and spreadsheets.

mod html;
mod records;
mod summary;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
}

/// Arguments of `winre report html`.
#[derive(Args)]
pub struct HtmlArgs {
    /// JSON Lines files written by `winre scan --json` or `--from-list` (`-`: stdin).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The page to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Exit 0 when every line was a scan record, 2 when some were not (they are named on stderr and
/// left out). Error records of unreadable images are counted, not an error of the report.
pub fn run(command: &ReportCommand) -> anyhow::Result<Exit> {
    let inputs = match command {
        ReportCommand::Merge(a) => &a.inputs,
        ReportCommand::Html(a) => &a.inputs,
    };
    let loaded = records::load(inputs)?;
    for line in &loaded.malformed {
        eprintln!("winre: {line}");
    }
    let summary = summary::summarize(&loaded);
    match command {
        ReportCommand::Merge(args) => {
            if let Some(csv) = &args.csv {
                write_to(csv, |out| summary::write_csv(&loaded.rows, out))?;
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::cli::json::stamped(&summary))?
                );
            } else {
                print!("{}", summary::render_text(&summary));
            }
        }
        ReportCommand::Html(args) => {
            let page = html::render(&summary, &loaded.rows);
            write_to(&args.output, |out| out.write_all(page.as_bytes()))?;
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
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let name = path.display();
    if path == Path::new("-") {
        let mut out = BufWriter::new(io::stdout().lock());
        write(&mut out).and_then(|()| out.flush())
    } else {
        let file = File::create(path).with_context(|| format!("creating {name}"))?;
        let mut out = BufWriter::new(file);
        write(&mut out).and_then(|()| out.flush())
    }
    .with_context(|| format!("writing {name}"))
}

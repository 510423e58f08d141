//! `winre extract IMAGE -o winre.wim`: copy Winre.wim out of a disk image, with its SHA-256.
//!
//! stdout carries exactly `HASH  FILE` per file written, what `sha256sum -c` reads; where each
//! came from goes to stderr (or into `--json`). `-o -` streams Winre.wim to stdout (never to a
//! terminal), and its hash line then goes to stderr.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};
use winre_core::locate::REAGENT_PATH;
use winre_core::scan;
use winre_disk::container;

use super::source::{self, ParentArgs};
use winre_readat::ReadAt;

use crate::cli::output::{self, is_stdout};
use crate::cli::progress::Progress;
use crate::cli::{exit, json, ui, Exit};

/// Arguments of `winre extract`.
#[derive(Args)]
pub struct ExtractArgs {
    /// The disk image.
    pub image: PathBuf,
    /// Where to write Winre.wim (`-`: stdout, not a terminal).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Also write the OS volume's ReAgent.xml here.
    #[arg(long)]
    pub reagent: Option<PathBuf>,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
    /// One JSON document on stdout: each file's path, size, SHA-256 and where it came from.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub parents: ParentArgs,
    #[command(flatten)]
    pub journal: source::JournalArgs,
}

/// One file written, as `--json` reports it.
#[derive(Serialize)]
struct Written {
    /// The output path as given (`-` for stdout).
    path: String,
    size: u64,
    sha256: String,
    /// The partition and path inside the image it was copied from.
    partition: u32,
    source_path: String,
}

#[derive(Serialize)]
struct ExtractReport<'a> {
    image: &'a str,
    files: Vec<Written>,
}

pub fn run(args: &ExtractArgs) -> anyhow::Result<Exit> {
    if is_stdout(&args.output) {
        if args.json {
            return Err(exit::usage(
                "-o - and --json both want stdout: write the WIM to a file",
            ));
        }
        if io::stdout().is_terminal() {
            return Err(exit::usage(
                "-o -: refusing to write a WIM to a terminal; redirect stdout to a file or a pipe",
            ));
        }
    }
    for path in std::iter::once(&args.output).chain(args.reagent.as_ref()) {
        output::check_new(path, args.force)?;
    }
    source::warn_journal(&args.image, args.journal.journal.as_deref());
    let disk = container::open(&args.image, &args.parents.options())
        .map_err(|e| source::with_parent_hint(e).context(args.image.display().to_string()))?;
    let located = scan::locate_disk(&args.image.display().to_string(), disk)?;
    let reader = located.wim.file.data_reader()?;
    let (digest, len) = if is_stdout(&args.output) {
        copy(&reader, &mut io::stdout().lock(), "-")?
    } else {
        let mut out = BufWriter::new(output::create(&args.output, args.force)?);
        let copied = copy(&reader, &mut out, &args.output.display().to_string())?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("writing {}", args.output.display()))?;
        copied
    };
    let mut files = vec![Written {
        path: args.output.display().to_string(),
        size: len,
        sha256: digest,
        partition: located.wim.partition,
        source_path: located.wim.path.clone(),
    }];
    if let Some(path) = &args.reagent {
        let Some(found) = &located.reagent else {
            bail!(
                "{}: no {REAGENT_PATH} on its OS volume",
                args.image.display()
            );
        };
        let volume = located
            .view
            .ntfs(found.partition)?
            .with_context(|| format!("partition {} is no longer NTFS", found.partition))?;
        let bytes = volume
            .read_small_file(&found.path, winre_core::reagent::MAX_REAGENT_BYTES as u64)?
            .with_context(|| format!("{} vanished", found.path))?;
        let mut file = output::create(path, args.force)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(Written {
            path: path.display().to_string(),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(&bytes)),
            partition: found.partition,
            source_path: found.path.clone(),
        });
    }
    if args.json {
        json::print_line(&json::stamped(&ExtractReport {
            image: &args.image.display().to_string(),
            files,
        }))?;
        return Ok(Exit::Ok);
    }
    let mut stdout = io::stdout().lock();
    for f in &files {
        // sha256sum's format: the hash, two spaces, the file name. With `-o -` the WIM is on
        // stdout, so its line goes to stderr.
        let line = format!("{}  {}", f.sha256, f.path);
        if f.path == "-" {
            eprintln!("{line}");
        } else {
            writeln!(stdout, "{line}")?;
        }
        if !ui::quiet() {
            eprintln!(
                "winre: {}: {} bytes from partition {} {}",
                f.path, f.size, f.partition, f.source_path
            );
        }
    }
    stdout.flush()?;
    Ok(Exit::Ok)
}

/// Copies everything `reader` holds to `out` in 1 MiB pieces; returns its SHA-256 and length.
fn copy(reader: &dyn ReadAt, out: &mut impl Write, shown: &str) -> anyhow::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let len = reader.len();
    let progress = Progress::bytes("extracting", len);
    let mut offset = 0u64;
    while offset < len {
        let take = (len - offset).min(buf.len() as u64) as usize;
        let piece = &mut buf[..take];
        reader
            .read_exact_at(offset, piece)
            .with_context(|| format!("reading Winre.wim at offset {offset}"))?;
        hasher.update(&*piece);
        out.write_all(piece)
            .with_context(|| format!("writing {shown}"))?;
        offset += take as u64;
        progress.set(offset, len);
    }
    out.flush().with_context(|| format!("writing {shown}"))?;
    progress.finish();
    Ok((hex(&hasher.finalize()), len))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

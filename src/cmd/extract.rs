//! `winre extract IMAGE -o winre.wim`: copy Winre.wim out of a disk image, with its SHA-256.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::Exit;
use anyhow::{bail, Context};
use clap::Args;
use sha2::{Digest, Sha256};
use winre_core::locate::REAGENT_PATH;
use winre_core::scan;
use winre_disk::container;

use super::source::{self, ParentArgs};
use winre_readat::ReadAt;

/// Arguments of `winre extract`.
#[derive(Args)]
pub struct ExtractArgs {
    /// The disk image.
    pub image: PathBuf,
    /// Where to write Winre.wim.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Also write the OS volume's ReAgent.xml here.
    #[arg(long)]
    pub reagent: Option<PathBuf>,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub parents: ParentArgs,
    #[command(flatten)]
    pub journal: super::source::JournalArgs,
}

pub fn run(args: &ExtractArgs) -> anyhow::Result<Exit> {
    for path in std::iter::once(&args.output).chain(args.reagent.as_ref()) {
        if !args.force && path.exists() {
            bail!("{} exists; pass --force to overwrite it", path.display());
        }
    }
    super::source::warn_journal(&args.image, args.journal.journal.as_deref());
    let disk = container::open(&args.image, &args.parents.options())
        .map_err(|e| source::with_parent_hint(e).context(args.image.display().to_string()))?;
    let located = scan::locate_disk(&args.image.display().to_string(), disk)?;
    let reader = located.wim.file.data_reader()?;
    let mut out = BufWriter::new(create(&args.output, args.force)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let len = reader.len();
    let mut offset = 0u64;
    while offset < len {
        let take = (len - offset).min(buf.len() as u64) as usize;
        let piece = &mut buf[..take];
        reader
            .read_exact_at(offset, piece)
            .with_context(|| format!("reading Winre.wim at offset {offset}"))?;
        hasher.update(&*piece);
        out.write_all(piece)
            .with_context(|| format!("writing {}", args.output.display()))?;
        offset += take as u64;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", args.output.display()))?;
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "{digest}  {}  ({len} bytes, partition {} {})",
        args.output.display(),
        located.wim.partition,
        located.wim.path
    );
    if let Some(path) = &args.reagent {
        let Some(found) = &located.reagent else {
            bail!("the image has no {REAGENT_PATH} on its OS volume");
        };
        let volume = located
            .view
            .ntfs(found.partition)?
            .with_context(|| format!("partition {} is no longer NTFS", found.partition))?;
        let bytes = volume
            .read_small_file(&found.path, winre_core::reagent::MAX_REAGENT_BYTES as u64)?
            .with_context(|| format!("{} vanished", found.path))?;
        let mut file = create(path, args.force)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "{digest}  {}  ({} bytes, partition {} {})",
            path.display(),
            bytes.len(),
            found.partition,
            found.path
        );
    }
    Ok(Exit::Ok)
}

fn create(path: &Path, force: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

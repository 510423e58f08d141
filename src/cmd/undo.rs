//! `winre undo IMAGE [--journal FILE]`: restore an image from the journal of `winre resize`.
//!
//! Exit codes: 0 restored (or nothing to restore), 2 unreadable, 3 refused (the journal belongs
//! to another file, is damaged so a full restore is impossible, or the image is open elsewhere),
//! 4 the restored bytes did not read back.

use std::path::PathBuf;

use clap::Args;
use winre_patch::journal;
use winre_patch::undo;

use super::resize::exit_for;
use crate::cli::Exit;

/// Arguments of `winre undo`.
#[derive(Args)]
pub struct UndoArgs {
    /// The disk image that was resized.
    pub image: PathBuf,
    /// The journal (default: IMAGE.winre-journal).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Allow writing a block device.
    #[arg(long)]
    pub device: bool,
    /// A JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &UndoArgs) -> anyhow::Result<Exit> {
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::default_path(&args.image));
    match undo::undo(&args.image, &journal_path, args.device) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::cli::json::stamped(&report))?
                );
            } else if report.image_was_untouched {
                println!(
                    "{}: the resize stopped before writing the image; nothing to restore",
                    args.image.display()
                );
            } else if report.regions_restored == 0 {
                println!(
                    "{}: already restored from {}",
                    args.image.display(),
                    journal_path.display()
                );
            } else {
                println!(
                    "{}: restored {} regions ({} bytes){}",
                    args.image.display(),
                    report.regions_restored,
                    report.bytes_restored,
                    report
                        .truncated_to
                        .map(|l| format!(", file cut back to {l} bytes"))
                        .unwrap_or_default()
                );
            }
            Ok(Exit::Ok)
        }
        Err(e) => {
            eprintln!("winre: {e}");
            let code = match e {
                winre_patch::Error::Corrupt { .. } => Exit::Refused,
                ref other => exit_for(other),
            };
            Ok(code)
        }
    }
}

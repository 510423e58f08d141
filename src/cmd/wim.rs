//! `winre wim ...`: standalone WIM files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// `winre wim` subcommands.
#[derive(Subcommand)]
pub enum WimCommand {
    /// Header fields, compression, integrity table and each image's XML fields and version.
    Info {
        /// The WIM file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: &WimCommand) -> anyhow::Result<ExitCode> {
    match command {
        WimCommand::Info { .. } => anyhow::bail!("wim info: not implemented yet"),
    }
}

//! `winre disk ...`: containers and partition tables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// `winre disk` subcommands.
#[derive(Subcommand)]
pub enum DiskCommand {
    /// The container and the partition table, like `sgdisk -p` with kinds and filesystems.
    Info {
        /// The disk image.
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: &DiskCommand) -> anyhow::Result<ExitCode> {
    match command {
        DiskCommand::Info { .. } => anyhow::bail!("disk info: not implemented yet"),
    }
}

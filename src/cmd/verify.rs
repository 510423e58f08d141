//! `winre verify FILE`: integrity table and every blob's SHA-1.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `winre verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The WIM file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("verify: not implemented yet")
}

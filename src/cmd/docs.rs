//! `winre completions SHELL` and `winre man DIR`: shell completions and man pages, generated
//! from the same clap definitions as the parser.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::cli::{output, Exit};

/// Arguments of `winre completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish.
    pub shell: clap_complete::Shell,
}

/// Arguments of `winre man`.
#[derive(Args)]
pub struct ManArgs {
    /// Directory to write winre.1 and one winre-COMMAND.1 per command into (created if missing).
    pub dir: PathBuf,
}

/// Prints the completion script for `shell` on stdout.
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> anyhow::Result<Exit> {
    // Into memory first: generate() panics on a write error, such as a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "winre", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Ok)
}

/// Writes the man pages into `args.dir`.
pub fn man(args: &ManArgs, command: clap::Command) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(command, &args.dir)
        .with_context(|| format!("writing the man pages into {}", args.dir.display()))?;
    Ok(Exit::Ok)
}

//! `winre`: inspect and patch the Windows Recovery Environment inside Windows disk images, offline.
//!
//! Each subcommand lives in `src/cmd/`: it parses its arguments, calls a library crate for a
//! report struct, renders it as text or JSON, and returns the exit code. Exit codes: 0 all good,
//! 1 a finding (corruption, a failed requirement), 2 an input that could not be read.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "winre",
    version,
    about = "Inspect and patch WinRE inside Windows disk images, offline and read-only by default"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read standalone WIM files.
    #[command(subcommand)]
    Wim(cmd::wim::WimCommand),
    /// Check a WIM's integrity table and every blob's SHA-1.
    Verify(cmd::verify::VerifyArgs),
    /// Read disk image containers and their partition tables.
    #[command(subcommand)]
    Disk(cmd::disk::DiskCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Wim(c) => cmd::wim::run(c),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Disk(c) => cmd::disk::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("winre: {e:#}");
            ExitCode::from(2)
        }
    }
}

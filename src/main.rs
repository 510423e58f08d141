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
    about = "Inspect WinRE inside Windows disk images: offline, read-only, no mounting"
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
    /// Find WinRE in disk images: location, status, version, free space, updates, problems.
    Scan(cmd::scan::ScanArgs),
    /// Pass or fail disk images against a WinRE requirement (exit 0 pass, 1 fail, 2 unreadable).
    Check(cmd::check::CheckArgs),
    /// Copy Winre.wim out of a disk image and print its SHA-256.
    Extract(cmd::extract::ExtractArgs),
    /// Summarize or chart the JSON Lines of many scans (merge, html).
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
    /// Plan growing the WinRE volume to the free space updates need (exit 0 nothing needed,
    /// 1 a change winre can make offline, 3 manual work, 2 unreadable).
    Plan(cmd::plan::PlanArgs),
    /// Grow the WinRE volume to the required free space (with --apply; journaled, undoable).
    /// qcow2, VHDX, VMDK and dynamic VHD are written through qemu-nbd (needed only then).
    Resize(cmd::resize::ResizeArgs),
    /// Restore an image from the journal of `winre resize` (through qemu-nbd for qcow2, VHDX,
    /// VMDK and dynamic VHD, as the resize wrote them).
    Undo(cmd::undo::UndoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Wim(c) => cmd::wim::run(c),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Disk(c) => cmd::disk::run(c),
        Command::Scan(a) => cmd::scan::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Report(c) => cmd::report::run(c),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Resize(a) => cmd::resize::run(a),
        Command::Undo(a) => cmd::undo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("winre: {e:#}");
            ExitCode::from(2)
        }
    }
}

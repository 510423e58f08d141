//! `winre`: inspect and patch the Windows Recovery Environment inside Windows disk images, offline.
//!
//! Each subcommand lives in `src/cmd/`: it parses its arguments, calls a library crate for a
//! report struct, renders it as text or JSON, and returns its [`cli::Exit`]. What every command
//! shares (exit codes, errors, sizes, threads, JSON, progress, colour) is in `src/cli/`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cli;
mod cmd;

use cli::{exit, json, Exit};

#[derive(Parser)]
#[command(
    name = "winre",
    version,
    about = "Inspect WinRE inside Windows disk images: offline, read-only, no mounting"
)]
struct Cli {
    #[command(flatten)]
    global: cli::ui::GlobalArgs,
    /// Judge updates with this update table (CSV, as crates/core/data/winre-updates.csv)
    /// instead of the built-in one; WINRE_UPDATES=FILE does the same.
    #[arg(long, global = true, value_name = "FILE")]
    updates: Option<std::path::PathBuf>,
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
    /// What happened to each WinRE update: verdicts with the evidence of the event logs,
    /// servicing state and PowerShell history (exit 0 read, 2 unreadable).
    History(cmd::history::HistoryArgs),
    /// List the WinRE update table in use, with its sources.
    Updates(cmd::history::UpdatesArgs),
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(cmd::docs::CompletionsArgs),
    /// Write the man pages (winre.1, winre-scan.1, ...) into a directory.
    Man(cmd::docs::ManArgs),
}

/// The command-line definition: the derive's, with the long version and, at the end of every
/// command's help, the exit-code table. Completions and man pages come from this too.
fn command() -> clap::Command {
    fn with_exit_table(command: clap::Command) -> clap::Command {
        command
            .after_help(exit::HELP_TABLE)
            .mut_subcommands(with_exit_table)
    }
    let version: &'static str = Box::leak(cli::version::long_version().into_boxed_str());
    with_exit_table(Cli::command().long_version(version))
}

/// Whether the command line asks for JSON on stdout (then errors are a JSON document too).
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "--json")
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = wants_json(&args);
    let parsed = command()
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    Exit::Usage.into()
                } else {
                    Exit::Ok.into()
                };
            }
            if json {
                // clap's own first line, without its "error: " prefix and its usage lines.
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                let _ = json::print_line(&json::error_document(Exit::Usage, message));
            }
            let _ = e.print();
            return Exit::Usage.into();
        }
    };
    cli::ui::init(cli.global, json);
    let table = cli
        .updates
        .clone()
        .or_else(|| std::env::var_os("WINRE_UPDATES").map(Into::into));
    if let Some(path) = table {
        let loaded =
            winre_core::updates::load_table_file(&path).and_then(winre_core::updates::use_table);
        if let Err(e) = loaded {
            eprintln!("winre: update table {e}");
            return Exit::Unreadable.into();
        }
    }
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
        Command::History(a) => cmd::history::run(a),
        Command::Updates(a) => cmd::history::run_updates(a),
        Command::Completions(a) => cmd::docs::completions(a, command()),
        Command::Man(a) => cmd::docs::man(a, command()),
    };
    match result {
        Ok(code) => code.into(),
        // `winre ... | head`: the reader has what it wanted.
        Err(e) if exit::is_broken_pipe(&e) => Exit::Ok.into(),
        Err(e) => {
            let code = exit::exit_for(&e);
            let line = exit::one_line(&e);
            if json {
                let _ = json::print_line(&json::error_document(code, &line));
            }
            eprintln!("winre: {line}");
            code.into()
        }
    }
}

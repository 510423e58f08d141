//! The global presentation flags (`--quiet`, `--no-progress`, `--color`), set once by main.

use std::io::IsTerminal;
use std::sync::OnceLock;

use clap::Args;

use super::color::ColorChoice;

/// Flags every command takes (`winre scan --quiet ...` and `winre --quiet scan ...` alike).
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct GlobalArgs {
    /// Print only results and errors: no progress, no notes.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Colour on stdout: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Clone, Copy, Debug, Default)]
struct Settings {
    flags: GlobalArgs,
    json: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Records the flags; `json` when the command prints JSON (then no progress and no colour).
pub fn init(flags: GlobalArgs, json: bool) {
    let _ = SETTINGS.set(Settings { flags, json });
}

fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// `--quiet`: leave out notes on stderr.
pub fn quiet() -> bool {
    settings().flags.quiet
}

/// Whether to draw progress bars: on a terminal, and not turned off or replaced by JSON.
pub fn progress() -> bool {
    let s = settings();
    !s.flags.quiet && !s.flags.no_progress && !s.json && std::io::stderr().is_terminal()
}

/// Whether to colour stdout.
pub fn color() -> bool {
    let s = settings();
    !s.json && s.flags.color.enabled(std::io::stdout().is_terminal())
}

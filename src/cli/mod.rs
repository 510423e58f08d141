//! What every subcommand shares: exit codes and errors, sizes, `-j/--threads`, JSON documents,
//! progress bars and colour. Commands use these and never import each other's helpers for it.

pub mod color;
pub mod exit;
pub mod json;
pub mod output;
pub mod progress;
pub mod size;
pub mod threads;
pub mod ui;
pub mod version;

pub use exit::Exit;

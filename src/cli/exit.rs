//! The one exit-code table of every `winre` command, and the error that carries its exit code.

use std::fmt;
use std::process::ExitCode;

/// Process exit codes, the same for every command (README, "Exit codes"). Ordered by how much
/// they say: of several outcomes (many images), the command exits with the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything read, nothing found.
    Ok = 0,
    /// A finding: corruption, a failed requirement, a change to make.
    Finding = 1,
    /// An input could not be read.
    Unreadable = 2,
    /// Refused or manual work: winre will not (or cannot) make this change offline.
    Refused = 3,
    /// A write did not read back as written.
    NotReadBack = 4,
    /// A usage error: bad flag, bad value, unknown KB (sysexits EX_USAGE).
    Usage = 64,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The stable name used as `error.code` in JSON error documents.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Finding => "finding",
            Exit::Unreadable => "unreadable",
            Exit::Refused => "refused",
            Exit::NotReadBack => "not_read_back",
            Exit::Usage => "usage",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// The exit-code table as printed at the end of every `--help`.
pub const HELP_TABLE: &str = "\
Exit codes:
  0   ok: everything read, nothing found
  1   a finding: corruption, a failed requirement, a change to make
  2   an input could not be read
  3   refused or manual work (winre will not make this change offline)
  4   a write did not read back as written
  64  usage error (bad flag or value, unknown KB)";

/// An error that ends a command with a particular exit code (other errors exit 2).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A usage error (exit 64): the command line asks for something that cannot be.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure {
        exit: Exit::Usage,
        message: message.into(),
    }
    .into()
}

/// The exit code an error ends the command with.
pub fn exit_for(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(Exit::Unreadable, |f| f.exit)
}

/// Whether the error is stdout closed under us (`winre ... | head`): the command ends quietly.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error on one line: its causes joined by ": ", leaving out a cause whose text the line
/// already holds (an I/O error wrapped with its own text would otherwise read twice).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_errors_keep_their_code_through_context() {
        let e = Err::<(), _>(usage("unknown KB"))
            .context("checking")
            .unwrap_err();
        assert_eq!(exit_for(&e), Exit::Usage);
        assert_eq!(exit_for(&anyhow::anyhow!("plain")), Exit::Unreadable);
        assert_eq!(Exit::Usage.code(), 64);
        assert!(Exit::Unreadable > Exit::Finding);
    }

    #[test]
    fn one_line_drops_doubled_causes() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::new(io)
            .context(format!("a.img: {text}"))
            .context("opening a.img");
        assert_eq!(one_line(&e), format!("opening a.img: a.img: {text}"));
    }

    #[test]
    fn broken_pipe_is_seen_through_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("x")));
    }
}

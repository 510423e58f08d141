//! The disk crate's error type: corrupt input, valid-but-unsupported input, and I/O kept apart.

use std::io;

/// Everything that can go wrong opening a container or reading a partition table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structure's bytes are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "VHDX BAT entry 17", "GPT header (primary)".
        what: String,
        /// Byte offset in the container file (or the guest disk, for partition tables).
        offset: u64,
        /// What is wrong, with expected and actual values.
        detail: String,
    },
    /// A valid feature winre does not read.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A differencing disk whose parent could not be found from the name it records.
    #[error("{format} has a parent disk: {parent:?} needed, not found: {reason}")]
    NeedsParent {
        /// e.g. "differencing VHD", "qcow2 backing file".
        format: String,
        /// The parent's path as recorded in the child.
        parent: String,
        /// Why the recorded name was not followed.
        reason: String,
    },
    /// The underlying read failed (including reads past the end of a truncated file).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, offset: u64, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            offset,
            detail: detail.into(),
        }
    }
}

/// Errors surface through `ReadAt` as `io::Error`; this keeps the structured message.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

//! The one error type of the WIM crate. "Corrupt" (the bytes are wrong) is kept apart from
//! "Unsupported" (valid, not handled): the CLI maps them to different verdicts.

use std::io;

/// Everything that can go wrong reading a WIM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes of a structure are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "header", "blob table entry 12", "LZX chunk 3 of blob <sha1>".
        what: String,
        /// Byte offset in the WIM where the structure starts (or where the fault was seen).
        offset: u64,
        /// What is wrong, with the expected and actual values where there are some.
        detail: String,
    },
    /// A valid feature winre does not read (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Data decoded, but its SHA-1 is not the one recorded.
    #[error("SHA-1 mismatch in {what}: expected {expected}, got {actual}")]
    HashMismatch {
        /// What was hashed.
        what: String,
        /// Hex SHA-1 recorded in the WIM.
        expected: String,
        /// Hex SHA-1 of the bytes read.
        actual: String,
    },
    /// Something asked for is not in the WIM (an image index, a path, a stream, a blob).
    #[error("not found: {0}")]
    NotFound(String),
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

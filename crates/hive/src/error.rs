//! The hive crate's error type: corrupt input, valid-but-unsupported input, and I/O kept apart.

use std::io;

/// Everything that can go wrong reading a registry hive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structure's bytes are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "base block", "key node", "hash leaf".
        what: String,
        /// Byte offset in the hive file (not relative to the hive bins data).
        offset: u64,
        /// What is wrong, with expected and actual values.
        detail: String,
    },
    /// A valid feature this reader does not handle (old hive versions, transaction logs).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A value exists but holds another type than the caller asked for.
    #[error("value {name:?} is {actual}, expected {expected}")]
    UnexpectedType {
        /// The value's name ("" for the default value).
        name: String,
        /// What the caller asked for, e.g. "REG_SZ or REG_EXPAND_SZ".
        expected: String,
        /// The type found, e.g. "REG_DWORD".
        actual: String,
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

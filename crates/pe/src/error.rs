//! The PE crate's error type: corrupt input kept apart from valid input we do not handle.

/// Everything that can go wrong reading a PE image's version resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structure's bytes are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "PE header", "resource directory", "VS_VERSIONINFO".
        what: String,
        /// Byte offset in the PE file.
        offset: u64,
        /// What is wrong, with expected and actual values.
        detail: String,
    },
    /// Not a PE image at all (no "MZ" / "PE\0\0" signature).
    #[error("not a PE image: {0}")]
    NotPe(String),
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

/// Widens a `usize` offset for an error message.
pub(crate) fn at(offset: usize) -> u64 {
    u64::try_from(offset).unwrap_or(u64::MAX)
}

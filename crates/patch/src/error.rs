//! The error type of winre-patch. It separates what the image holds that we refuse to change
//! (`Refused`, `Unsupported`) from corrupt input (`Corrupt`), from a write that did not read back
//! (`Verify`), so the CLI can map each to its own exit code.

use std::io;

/// Everything that can go wrong planning, applying or undoing a patch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes of a structure are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "MFT record 6", "journal record 12".
        what: String,
        /// Byte offset of the structure (in the image, the volume or the journal, as `what` says).
        offset: u64,
        /// What is wrong, with expected and actual values.
        detail: String,
    },
    /// A valid layout or feature that winre does not change (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A safety rule stops the write: a block device, an image open elsewhere, a half-done
    /// journal, a volume tail in use.
    #[error("refused: {0}")]
    Refused(String),
    /// What was written did not read back the same.
    #[error("verification failed: {0}")]
    Verify(String),
    /// An error reading the WinRE domain (scan, NTFS, ReAgent.xml).
    #[error(transparent)]
    Core(#[from] winre_core::Error),
    /// An error reading the disk image or its partition table.
    #[error(transparent)]
    Disk(#[from] winre_disk::Error),
    /// A read, write or sync failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, offset: u64, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            offset,
            detail: detail.into(),
        }
    }
}

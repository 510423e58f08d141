//! The error type of winre-core: what went wrong reading the WinRE domain (NTFS volumes, hives,
//! ReAgent.xml), with conversions from the WIM and disk crates' errors so the scan can use `?`.

use std::io;

/// Everything that can go wrong in winre-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes of a structure are not valid.
    #[error("corrupt {what} at offset {offset} (0x{offset:x}): {detail}")]
    Corrupt {
        /// The structure, e.g. "NTFS boot sector", "$Bitmap", "data runs of \\Recovery\\WindowsRE\\Winre.wim".
        what: String,
        /// Byte offset where the structure starts (or where the fault was seen), relative to the
        /// source named in `what` (for NTFS: the start of the volume).
        offset: u64,
        /// What is wrong, with the expected and actual values where there are some.
        detail: String,
    },
    /// A valid feature winre does not read (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Something asked for by name is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The `ntfs` crate refused a structure; `detail` names its byte position in the volume.
    #[error("NTFS {what}: {detail}")]
    Ntfs {
        /// What was being read, e.g. "boot sector", "directory index of record 5".
        what: String,
        /// The `ntfs` crate's message (it carries the byte position in the volume).
        detail: String,
    },
    /// An error from the WIM reader.
    #[error(transparent)]
    Wim(#[from] winre_wim::Error),
    /// An error from the disk-image reader.
    #[error(transparent)]
    Disk(#[from] winre_disk::Error),
    /// The underlying read failed (including reads past the end of a truncated image).
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

    /// Wraps an error of the `ntfs` crate, saying what was being read.
    pub fn ntfs(what: impl Into<String>, error: ntfs::NtfsError) -> Self {
        Self::Ntfs {
            what: what.into(),
            detail: error.to_string(),
        }
    }
}

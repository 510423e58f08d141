//! Errors opening a remote image. Reads fail with `io::Error`s (the `ReadAt` contract) whose
//! messages are built by [`crate::fetch`]; every message shows the URL redacted.

use std::io;

/// What can go wrong before the first byte is read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not one of the URL forms winre reads.
    #[error("{url}: not a URL winre reads: {detail}")]
    BadUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The store client could not be set up (a bad endpoint, missing credentials).
    #[error("{url}: cannot set up the client: {detail}")]
    Setup {
        /// The URL, redacted.
        url: String,
        /// The reason, with secrets scrubbed.
        detail: String,
    },
    /// The first request (which learns the object's size) failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

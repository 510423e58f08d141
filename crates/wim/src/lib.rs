//! A reader and verifier for Windows Imaging (WIM) files, written from the format as wimlib
//! documents it in its source, for winre. Reads through [`winre_readat::ReadAt`], so a WIM can be
//! a plain file or a file inside an NTFS volume inside a disk image.

#![forbid(unsafe_code)]

pub mod codec;
pub mod error;

pub use error::{Error, Result};

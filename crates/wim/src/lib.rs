//! A reader and verifier for Windows Imaging (WIM) files, written from the format as wimlib
//! documents it in its source, for winre. Reads through [`winre_readat::ReadAt`], so a WIM can be
//! a plain file or a file inside an NTFS volume inside a disk image.
//!
//! [`Wim::open`] reads the header, XML data and blob table (and nothing else); [`verify::verify`]
//! checks the integrity table and every blob's SHA-1 in parallel.
//! [`Image::open`] reads an image's file tree (security data and dentries), for lookups and
//! listings.
//!
//! Solid resources (WIM version 0xE00, [`solid`]) and wimlib's pipable WIMs are read.
//! Not supported (refused with [`Error::Unsupported`], never misread): split WIMs, image
//! metadata inside solid resources, and any codec not built in.

#![forbid(unsafe_code)]

pub mod blob_table;
pub mod budget;
pub mod codec;
pub mod digest;
pub mod error;
pub mod header;
pub mod info;
pub mod integrity;
pub mod metadata;
mod pipeline;
pub mod reshdr;
pub mod resource;
pub mod solid;
pub mod verify;
pub mod version;
pub mod wim;
pub mod xml;

pub use digest::Sha1Digest;
pub use error::{Error, Result};
pub use info::WimInfo;
pub use metadata::{Dentry, Image};
pub use version::WindowsVersion;
pub use wim::Wim;

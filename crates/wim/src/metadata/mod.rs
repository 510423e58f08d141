//! Image metadata: each image's metadata resource holds its security descriptors and its file
//! tree (dentries with names, attributes, times, hard link groups, reparse tags and streams).
//!
//! [`Image::open`] reads and checks one image; [`Image::lookup`] finds a path the way Windows
//! does (case-insensitively, `\` or `/`); [`Dentry::unnamed_stream_hash`] names a file's data,
//! which [`crate::Wim::stream_blob`] or [`Image::read_stream`] reads.

pub mod dentry;
pub mod listing;
pub mod names;
pub mod security;
pub mod tree;
pub mod usage;

pub use dentry::{DentryRecord, Stream, StreamKind};
pub use listing::{EntryInfo, FileKind, StreamInfo};
pub use security::SecurityData;
pub use tree::{Dentry, DentryId, Image, MAX_DENTRIES, MAX_DEPTH, MAX_METADATA_BYTES};

//! The per-file report of `winre wim ls --json`: one serializable row per dentry.

use serde::Serialize;

use crate::digest::Sha1Digest;
use crate::metadata::dentry::{
    StreamKind, ATTR_ARCHIVE, ATTR_COMPRESSED, ATTR_DIRECTORY, ATTR_ENCRYPTED, ATTR_HIDDEN,
    ATTR_NORMAL, ATTR_READONLY, ATTR_REPARSE_POINT, ATTR_SPARSE_FILE, ATTR_SYSTEM,
    REPARSE_TAG_MOUNT_POINT, REPARSE_TAG_SYMLINK,
};
use crate::metadata::tree::{Dentry, Image};
use crate::xml::FileTime;

/// What kind of file a dentry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A directory (not a reparse point).
    Directory,
    /// A regular file.
    File,
    /// A reparse point with the symlink tag.
    Symlink,
    /// A reparse point with the mount point (junction) tag.
    Junction,
    /// Any other reparse point (deduplication, cloud files, WOF, ...).
    ReparsePoint,
}

/// One stream of a listed file.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// Name of a named data stream, null for unnamed streams.
    pub name: Option<String>,
    /// `data`, `reparse_point` or `encrypted_raw`.
    pub kind: StreamKind,
    /// SHA-1 of its bytes (all zero for an empty stream).
    pub sha1: Sha1Digest,
    /// Its size; null when the blob table lacks its blob.
    pub size_bytes: Option<u64>,
}

/// One listed file or directory.
#[derive(Debug, Clone, Serialize)]
pub struct EntryInfo {
    /// Full path, `/`-separated (`/` for the root).
    pub path: String,
    /// Long name (empty for the root).
    pub name: String,
    /// Short (8.3) name, often empty.
    pub short_name: String,
    /// What it is.
    pub kind: FileKind,
    /// FILE_ATTRIBUTE_* flags.
    pub attributes: u32,
    /// Names of the set attribute flags (READONLY, HIDDEN, SYSTEM, DIRECTORY, ARCHIVE, NORMAL,
    /// SPARSE_FILE, REPARSE_POINT, COMPRESSED, ENCRYPTED; others as hex).
    pub attribute_names: Vec<String>,
    /// Size of the unnamed data stream (0 for directories); null when its blob is missing.
    pub size_bytes: Option<u64>,
    /// Creation time.
    pub creation_time: FileTime,
    /// Last write time.
    pub last_write_time: FileTime,
    /// Last access time.
    pub last_access_time: FileTime,
    /// Hard link group (0: not hard-linked); files sharing it are one file with several names.
    pub hard_link_group_id: u64,
    /// Names the file has (1 unless hard-linked).
    pub link_count: u32,
    /// Reparse tag of a reparse point.
    pub reparse_tag: Option<u32>,
    /// Index of its security descriptor in the image's security data.
    pub security_id: Option<u32>,
    /// Its streams: unnamed data, reparse data, named data streams.
    pub streams: Vec<StreamInfo>,
}

const ATTRIBUTE_NAMES: &[(u32, &str)] = &[
    (ATTR_READONLY, "READONLY"),
    (ATTR_HIDDEN, "HIDDEN"),
    (ATTR_SYSTEM, "SYSTEM"),
    (ATTR_DIRECTORY, "DIRECTORY"),
    (ATTR_ARCHIVE, "ARCHIVE"),
    (ATTR_NORMAL, "NORMAL"),
    (ATTR_SPARSE_FILE, "SPARSE_FILE"),
    (ATTR_REPARSE_POINT, "REPARSE_POINT"),
    (ATTR_COMPRESSED, "COMPRESSED"),
    (ATTR_ENCRYPTED, "ENCRYPTED"),
];

/// Names of the flags set in `attributes`.
pub fn attribute_names(attributes: u32) -> Vec<String> {
    let known = ATTRIBUTE_NAMES.iter().fold(0, |m, (bit, _)| m | bit);
    let mut names: Vec<String> = ATTRIBUTE_NAMES
        .iter()
        .filter(|(bit, _)| attributes & bit != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    if attributes & !known != 0 {
        names.push(format!("0x{:x}", attributes & !known));
    }
    names
}

/// What kind of file `d` is.
pub fn kind_of(d: &Dentry) -> FileKind {
    match d.record.reparse_tag {
        Some(REPARSE_TAG_SYMLINK) => FileKind::Symlink,
        Some(REPARSE_TAG_MOUNT_POINT) => FileKind::Junction,
        Some(_) => FileKind::ReparsePoint,
        None if d.is_directory() => FileKind::Directory,
        None => FileKind::File,
    }
}

impl Image {
    /// The listing row of `d`.
    pub fn entry_info(&self, d: &Dentry) -> EntryInfo {
        EntryInfo {
            path: self.path(d.id),
            name: d.name.clone(),
            short_name: d.short_name.clone(),
            kind: kind_of(d),
            attributes: d.attributes(),
            attribute_names: attribute_names(d.attributes()),
            size_bytes: d
                .unnamed_stream()
                .map_or(Some(0), |s| self.stream_size_bytes(s)),
            creation_time: d.creation_time(),
            last_write_time: d.last_write_time(),
            last_access_time: d.last_access_time(),
            hard_link_group_id: d.record.hard_link_group_id,
            link_count: self.link_count(d),
            reparse_tag: d.record.reparse_tag,
            security_id: d.record.security_id,
            streams: d
                .streams()
                .iter()
                .map(|s| StreamInfo {
                    name: s.name.clone(),
                    kind: s.kind,
                    sha1: s.hash,
                    size_bytes: self.stream_size_bytes(s),
                })
                .collect(),
        }
    }
}

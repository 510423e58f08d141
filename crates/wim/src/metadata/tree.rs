//! An image's file tree: the metadata resource read, checked and indexed for lookups.
//!
//! The root dentry follows the security data; each directory's `subdir_offset` gives where its
//! children's list starts, and the list ends with an end marker. We walk the lists with an
//! explicit stack (no recursion, so a deep tree cannot exhaust ours) and refuse, as
//! [`Error::Corrupt`]: a dentry record reached twice (a directory cycle, or lists that share
//! entries, which no writer produces and which could multiply the work), trees deeper than
//! [`MAX_DEPTH`] and more than [`MAX_DENTRIES`] entries. As wimlib does, we skip (with a
//! warning) unnamed entries below the root, entries named `.` or `..` or containing NUL, entries
//! whose exact name repeats in a directory, and children of non-directories.
//!
// Sources: wimlib src/metadata_resource.c (`read_metadata_resource`), src/dentry.c
// (`read_dentry_tree`, `should_ignore_dentry`).

use std::collections::{HashMap, HashSet};

use winre_readat::ReadAt;

use crate::blob_table::BlobEntry;
use crate::digest::Sha1Digest;
use crate::metadata::dentry::{read_dentry, DentryRecord, Stream, StreamKind, ATTR_DIRECTORY};
use crate::metadata::names::{cmp_ignore_case, collate};
use crate::metadata::security::SecurityData;
use crate::wim::Wim;
use crate::xml::FileTime;
use crate::{Error, Result};

/// Largest metadata resource we read into memory (uncompressed). Real WinRE images have a few
/// MiB; a full Windows install image well under 100 MiB.
pub const MAX_METADATA_BYTES: u64 = 512 * 1024 * 1024;
/// Also refuse metadata larger than this many times the WIM file (wimlib's limit: a hostile
/// header must not make us decompress gigabytes from a small file).
pub const MAX_METADATA_EXPANSION: u64 = 512;
/// Deepest directory nesting accepted (wimlib's limit).
pub const MAX_DEPTH: usize = 16_384;
/// Most dentries accepted in one image: more than the smallest dentry (104 bytes) fits in
/// [`MAX_METADATA_BYTES`].
pub const MAX_DENTRIES: usize = 5_200_000;

/// Index of a dentry in its [`Image`]; the root is 0.
pub type DentryId = usize;

/// A file or directory of an image.
#[derive(Debug, Clone)]
pub struct Dentry {
    /// Its index in the image.
    pub id: DentryId,
    /// The parent directory (None for the root).
    pub parent: Option<DentryId>,
    /// The children, in Windows order (see [`crate::metadata::names`]).
    pub children: Vec<DentryId>,
    /// The long name (empty for the root); UTF-16 that is not valid (unpaired surrogates) has
    /// U+FFFD in their place here, and is exact in `record.name_utf16`.
    pub name: String,
    /// The short (8.3) name, often empty.
    pub short_name: String,
    /// Everything read from the record.
    pub record: DentryRecord,
}

impl Dentry {
    /// FILE_ATTRIBUTE_* flags.
    pub fn attributes(&self) -> u32 {
        self.record.attributes
    }

    /// True for a directory.
    pub fn is_directory(&self) -> bool {
        self.record.attributes & ATTR_DIRECTORY != 0
    }

    /// True for a reparse point (symlink, junction, ...).
    pub fn is_reparse_point(&self) -> bool {
        self.record.reparse_tag.is_some()
    }

    /// The streams (unnamed data, reparse data, named data streams).
    pub fn streams(&self) -> &[Stream] {
        &self.record.streams
    }

    /// The unnamed data stream, when there is one (directories have an empty one).
    pub fn unnamed_stream(&self) -> Option<&Stream> {
        self.record
            .streams
            .iter()
            .find(|s| s.name.is_none() && s.kind == StreamKind::Data)
    }

    /// SHA-1 of the file's data (its unnamed data stream), None when the file has none or it
    /// is empty (an empty stream has the zero hash and no blob).
    pub fn unnamed_stream_hash(&self) -> Option<Sha1Digest> {
        self.unnamed_stream()
            .map(|s| s.hash)
            .filter(|h| !h.is_zero())
    }

    /// The named data stream called `name` (compared ignoring case, as NTFS does).
    pub fn named_stream(&self, name: &str) -> Option<&Stream> {
        let wanted: Vec<u16> = name.encode_utf16().collect();
        let matches = |s: &&Stream| {
            s.name.as_ref().is_some_and(|n| {
                let have: Vec<u16> = n.encode_utf16().collect();
                cmp_ignore_case(&have, &wanted).is_eq()
            })
        };
        let exact = self
            .record
            .streams
            .iter()
            .find(|s| s.name.as_deref() == Some(name));
        exact.or_else(|| self.record.streams.iter().find(matches))
    }

    /// Creation time.
    pub fn creation_time(&self) -> FileTime {
        FileTime::new(self.record.creation_time)
    }

    /// Last write time.
    pub fn last_write_time(&self) -> FileTime {
        FileTime::new(self.record.last_write_time)
    }

    /// Last access time.
    pub fn last_access_time(&self) -> FileTime {
        FileTime::new(self.record.last_access_time)
    }
}

/// One image's metadata: security descriptors and file tree.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image index (1-based).
    pub index: u32,
    /// The security descriptors.
    pub security: SecurityData,
    dentries: Vec<Dentry>,
    blobs: HashMap<Sha1Digest, BlobEntry>,
    link_counts: HashMap<u64, u32>,
    /// Things skipped or odd while reading (see the module comment).
    pub warnings: Vec<String>,
}

impl Image {
    /// Reads image `index` (1-based) of `wim`: its metadata resource (at most
    /// [`MAX_METADATA_BYTES`], and at most [`MAX_METADATA_EXPANSION`] times the WIM's size),
    /// checked against its SHA-1, then parsed. Refuses a missing image as [`Error::NotFound`],
    /// a hash mismatch as [`Error::HashMismatch`], and a bad layout as [`Error::Corrupt`].
    pub fn open<R: ReadAt>(wim: &Wim<R>, index: u32) -> Result<Self> {
        let entry = wim.image_metadata(index).ok_or_else(|| {
            Error::NotFound(format!(
                "image {index} (the WIM has {} images)",
                wim.header().image_count
            ))
        })?;
        let cap = MAX_METADATA_BYTES.min(wim.reader().len().saturating_mul(MAX_METADATA_EXPANSION));
        let bytes = wim.read_blob(entry, cap)?;
        let actual = Sha1Digest::of(&bytes);
        if actual != entry.sha1 {
            return Err(Error::HashMismatch {
                what: format!("metadata resource of image {index}"),
                expected: entry.sha1.to_string(),
                actual: actual.to_string(),
            });
        }
        let blobs = wim
            .blob_table()
            .blobs
            .iter()
            .filter(|b| !b.is_metadata())
            .map(|b| (b.sha1, *b))
            .collect();
        Self::parse(&bytes, index, blobs)
    }

    /// Parses an uncompressed metadata resource (already checked against its hash) of image
    /// `index`; `blobs` maps hashes to blob table entries (for sizes and reading).
    pub fn parse(buf: &[u8], index: u32, blobs: HashMap<Sha1Digest, BlobEntry>) -> Result<Self> {
        let security = SecurityData::parse(buf, 0)?;
        let mut warnings = security.warnings.clone();
        let tree_err = |at: u64, detail: String| {
            Error::corrupt(
                format!(
                    "dentry tree of image {index} (offset in the uncompressed metadata resource)"
                ),
                at,
                detail,
            )
        };
        let root_at = security.total_length_bytes;
        let mut dentries = Vec::new();
        let mut root = match read_dentry(buf, root_at, index)? {
            Some((record, _)) => record,
            None => {
                warnings.push("the metadata resource has no root directory; an empty image".into());
                DentryRecord {
                    offset: root_at,
                    attributes: ATTR_DIRECTORY,
                    security_id: None,
                    subdir_offset: 0,
                    creation_time: 0,
                    last_access_time: 0,
                    last_write_time: 0,
                    reparse_tag: None,
                    reparse_flags: 0,
                    hard_link_group_id: 0,
                    name_utf16: Vec::new(),
                    short_name_utf16: Vec::new(),
                    extra_data_bytes: 0,
                    streams: Vec::new(),
                }
            }
        };
        if !root.is_directory() {
            return Err(tree_err(
                root_at,
                "the root dentry is not a directory".into(),
            ));
        }
        if !root.name_utf16.is_empty() || !root.short_name_utf16.is_empty() {
            warnings.push("the root directory has a name; ignored".into());
            root.name_utf16.clear();
            root.short_name_utf16.clear();
        }
        let mut seen: HashSet<u64> = HashSet::from([root_at]);
        dentries.push(Dentry {
            id: 0,
            parent: None,
            children: Vec::new(),
            name: String::new(),
            short_name: String::new(),
            record: root,
        });
        let mut stack: Vec<(DentryId, usize)> = vec![(0, 0)];
        while let Some((dir, depth)) = stack.pop() {
            let Some(list_at) = dentries.get(dir).map(|d| d.record.subdir_offset) else {
                continue;
            };
            if list_at == 0 {
                continue;
            }
            if depth >= MAX_DEPTH {
                return Err(tree_err(
                    list_at,
                    format!("directories nest deeper than {MAX_DEPTH} levels"),
                ));
            }
            let mut at = list_at;
            let mut children = Vec::new();
            while let Some((record, next)) = read_dentry(buf, at, index)? {
                if !seen.insert(at) {
                    return Err(tree_err(
                        at,
                        format!(
                            "the dentry at {at} is reached a second time (from the list at {list_at} of \"{}\"): a directory cycle or shared entries",
                            path_of(&dentries, dir)
                        ),
                    ));
                }
                at = next;
                if let Some(why) = ignore_reason(&record) {
                    warnings.push(format!(
                        "{}: skipped an entry {why}",
                        path_of(&dentries, dir)
                    ));
                    continue;
                }
                if dentries.len() >= MAX_DENTRIES {
                    return Err(tree_err(at, format!("more than {MAX_DENTRIES} entries")));
                }
                let id = dentries.len();
                if record.subdir_offset != 0 {
                    if record.is_directory() {
                        stack.push((id, depth.saturating_add(1)));
                    } else {
                        warnings.push(format!(
                            "{}: children of a non-directory ignored",
                            String::from_utf16_lossy(&record.name_utf16)
                        ));
                    }
                }
                dentries.push(Dentry {
                    id,
                    parent: Some(dir),
                    children: Vec::new(),
                    name: String::from_utf16_lossy(&record.name_utf16),
                    short_name: String::from_utf16_lossy(&record.short_name_utf16),
                    record,
                });
                children.push(id);
            }
            let name_of = |id: &DentryId| {
                dentries
                    .get(*id)
                    .map(|d| d.record.name_utf16.as_slice())
                    .unwrap_or_default()
            };
            children.sort_by(|a, b| collate(name_of(a), name_of(b)));
            let before = children.len();
            children.dedup_by(|a, b| name_of(a) == name_of(b));
            if children.len() != before {
                warnings.push(format!(
                    "{}: {} entries with a repeated name ignored",
                    path_of(&dentries, dir),
                    before.saturating_sub(children.len())
                ));
            }
            if let Some(d) = dentries.get_mut(dir) {
                d.children = children;
            }
        }
        let mut link_counts: HashMap<u64, u32> = HashMap::new();
        for d in &dentries {
            if d.record.hard_link_group_id != 0 {
                let n = link_counts.entry(d.record.hard_link_group_id).or_insert(0);
                *n = n.saturating_add(1);
            }
        }
        Ok(Self {
            index,
            security,
            dentries,
            blobs,
            link_counts,
            warnings,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Dentry {
        // parse always creates the root.
        self.dentries.first().unwrap_or_else(|| unreachable!())
    }

    /// The dentry `id`.
    pub fn dentry(&self, id: DentryId) -> Option<&Dentry> {
        self.dentries.get(id)
    }

    /// Every dentry, the root first (not in tree order; see [`Image::walk`]).
    pub fn dentries(&self) -> &[Dentry] {
        &self.dentries
    }

    /// The full path of `id`, `/`-separated, `/` for the root.
    pub fn path(&self, id: DentryId) -> String {
        path_of(&self.dentries, id)
    }

    /// Finds a path: components separated by `\` or `/` (leading, trailing and repeated
    /// separators ignored, so "" and "/" are the root). Each component matches exactly when a
    /// child has that exact name, else ignoring case (the first in Windows order when several
    /// differ only in case).
    pub fn lookup(&self, path: &str) -> Option<&Dentry> {
        let mut cur = self.root();
        for part in path.split(['/', '\\']).filter(|p| !p.is_empty()) {
            let wanted: Vec<u16> = part.encode_utf16().collect();
            cur = self.child(cur, &wanted)?;
        }
        Some(cur)
    }

    fn child(&self, dir: &Dentry, wanted: &[u16]) -> Option<&Dentry> {
        let name = |id: &DentryId| {
            self.dentries
                .get(*id)
                .map(|d| d.record.name_utf16.as_slice())
                .unwrap_or_default()
        };
        let kids = &dir.children;
        let first = kids.partition_point(|id| cmp_ignore_case(name(id), wanted).is_lt());
        let same_fold = kids
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|id| cmp_ignore_case(name(id), wanted).is_eq());
        let mut fallback = None;
        for id in same_fold {
            if name(id) == wanted {
                return self.dentries.get(*id);
            }
            fallback = fallback.or(Some(*id));
        }
        fallback.and_then(|id| self.dentries.get(id))
    }

    /// Calls `visit` for `from` and everything below it, depth first, parents before children,
    /// children in Windows order (the order of `wimlib-imagex dir`). No recursion.
    pub fn walk(&self, from: DentryId, mut visit: impl FnMut(&Dentry)) {
        let mut stack = vec![from];
        while let Some(id) = stack.pop() {
            let Some(d) = self.dentries.get(id) else {
                continue;
            };
            visit(d);
            stack.extend(d.children.iter().rev());
        }
    }

    /// The blob table entry of a stream's hash, None for the zero hash or a hash the blob table
    /// lacks (a damaged WIM).
    pub fn blob(&self, hash: &Sha1Digest) -> Option<&BlobEntry> {
        self.blobs.get(hash)
    }

    /// Size of a stream: 0 for an empty one, None when its blob is missing.
    pub fn stream_size_bytes(&self, stream: &Stream) -> Option<u64> {
        if stream.hash.is_zero() {
            return Some(0);
        }
        self.blob(&stream.hash).map(BlobEntry::size_bytes)
    }

    /// Number of names of the file `d` (1 unless it is hard-linked).
    pub fn link_count(&self, d: &Dentry) -> u32 {
        match d.record.hard_link_group_id {
            0 => 1,
            id => self.link_counts.get(&id).copied().unwrap_or(1),
        }
    }

    /// Reads a whole stream into memory (through [`Wim::stream_blob`]), refusing one larger
    /// than `max_bytes`; checks its SHA-1. An empty stream reads as no bytes.
    pub fn read_stream<R: ReadAt>(
        &self,
        wim: &Wim<R>,
        stream: &Stream,
        max_bytes: u64,
    ) -> Result<Vec<u8>> {
        if stream.hash.is_zero() {
            return Ok(Vec::new());
        }
        let blob = self.blob(&stream.hash).ok_or_else(|| {
            Error::NotFound(format!("blob {} (not in the blob table)", stream.hash))
        })?;
        let size = blob.size_bytes();
        if size > max_bytes {
            return Err(Error::Unsupported(format!(
                "stream of {size} bytes is larger than the {max_bytes}-byte limit"
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        wim.stream_blob(blob, |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })?;
        let actual = Sha1Digest::of(&out);
        if actual != blob.sha1 {
            return Err(Error::HashMismatch {
                what: format!("blob {}", blob.sha1),
                expected: blob.sha1.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(out)
    }
}

fn ignore_reason(record: &DentryRecord) -> Option<&'static str> {
    let name = &record.name_utf16;
    let dot = u16::from(b'.');
    if name.is_empty() {
        Some("without a name")
    } else if name.as_slice() == [dot] || name.as_slice() == [dot, dot] {
        Some("named \".\" or \"..\"")
    } else if name.contains(&0) {
        Some("whose name contains NUL")
    } else {
        None
    }
}

fn path_of(dentries: &[Dentry], id: DentryId) -> String {
    let mut parts = Vec::new();
    let mut cur = dentries.get(id);
    // Parents always have smaller ids, so this ends; the bound is belt and braces.
    while let Some(d) = cur.filter(|_| parts.len() <= MAX_DEPTH) {
        match d.parent {
            Some(p) => {
                parts.push(d.name.as_str());
                cur = dentries.get(p);
            }
            None => break,
        }
    }
    if parts.is_empty() {
        return "/".into();
    }
    parts.iter().rev().fold(String::new(), |mut s, p| {
        s.push('/');
        s.push_str(p);
        s
    })
}

//! One directory entry ("dentry") of a metadata resource, and the stream entries after it.
//!
//! A dentry is 102 fixed bytes, then the long name (UTF-16LE, NUL-terminated, absent when its
//! length is 0), then the short name (likewise), then optional extra data (tagged items) up to
//! `length` rounded up to 8. `num_extra_streams` stream entries follow, each 8-aligned and not
//! counted in `length`. A `length` of 8 or less (really: just the length field) ends a list of
//! siblings. All offsets here are positions in the uncompressed metadata resource.
//!
//! Which stream is the file's data and which its reparse data is not stored; like wimlib (and
//! Windows' own WIMGAPI, whose behaviour wimlib documents) we read it as: a zero main hash
//! followed by unnamed stream entries is ignored; among the remaining unnamed hashes, for a
//! reparse point the first is the reparse data and the next the data; named entries are named
//! data streams. An encrypted file's one unnamed stream is its raw EFS export.
//!
// Sources: wimlib include/wimlib/dentry.h, src/dentry.c (`struct wim_dentry_on_disk`,
// `read_dentry`, `setup_inode_streams`, `assign_stream_types_unencrypted`).

use serde::Serialize;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::digest::Sha1Digest;
use crate::{Error, Result};

/// Size of the fixed part of a dentry.
pub const DENTRY_DISK_SIZE: u64 = 102;
/// Size of the fixed part of a stream entry.
pub const STREAM_ENTRY_DISK_SIZE: u64 = 38;

/// FILE_ATTRIBUTE_READONLY.
pub const ATTR_READONLY: u32 = 0x1;
/// FILE_ATTRIBUTE_HIDDEN.
pub const ATTR_HIDDEN: u32 = 0x2;
/// FILE_ATTRIBUTE_SYSTEM.
pub const ATTR_SYSTEM: u32 = 0x4;
/// FILE_ATTRIBUTE_DIRECTORY.
pub const ATTR_DIRECTORY: u32 = 0x10;
/// FILE_ATTRIBUTE_ARCHIVE.
pub const ATTR_ARCHIVE: u32 = 0x20;
/// FILE_ATTRIBUTE_NORMAL.
pub const ATTR_NORMAL: u32 = 0x80;
/// FILE_ATTRIBUTE_SPARSE_FILE.
pub const ATTR_SPARSE_FILE: u32 = 0x200;
/// FILE_ATTRIBUTE_REPARSE_POINT.
pub const ATTR_REPARSE_POINT: u32 = 0x400;
/// FILE_ATTRIBUTE_COMPRESSED.
pub const ATTR_COMPRESSED: u32 = 0x800;
/// FILE_ATTRIBUTE_ENCRYPTED.
pub const ATTR_ENCRYPTED: u32 = 0x4000;

/// Reparse tag of a symbolic link.
pub const REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
/// Reparse tag of a junction (mount point).
pub const REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;

/// The fixed part of a dentry as stored: 102 bytes, packed.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DentryDisk {
    /// +0x00 length of the dentry (names and extra data included, stream entries not).
    pub length: U64,
    /// +0x08 FILE_ATTRIBUTE_* flags.
    pub attributes: U32,
    /// +0x0C index into the security descriptors, or -1.
    pub security_id: U32,
    /// +0x10 where the children's list starts in the resource, 0 when none.
    pub subdir_offset: U64,
    /// +0x18 unused.
    pub unused_1: U64,
    /// +0x20 unused.
    pub unused_2: U64,
    /// +0x28 creation time (FILETIME).
    pub creation_time: U64,
    /// +0x30 last access time (FILETIME).
    pub last_access_time: U64,
    /// +0x38 last write time (FILETIME).
    pub last_write_time: U64,
    /// +0x40 SHA-1 of the main stream (zero: empty or none).
    pub main_hash: [u8; 20],
    /// +0x54 unknown.
    pub unknown_0x54: U32,
    /// +0x58 reparse points: u32 tag, u16 reserved, u16 flags; other files: u64 hard link
    /// group id.
    pub tag_or_link: [u8; 8],
    /// +0x60 stream entries after the dentry.
    pub num_extra_streams: U16,
    /// +0x62 bytes of the short name (without NUL).
    pub short_name_nbytes: U16,
    /// +0x64 bytes of the long name (without NUL).
    pub name_nbytes: U16,
}

const _: () = assert!(size_of::<DentryDisk>() == DENTRY_DISK_SIZE as usize);

/// A stream entry as stored: 38 bytes, then the name and its NUL, padded to 8.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct StreamEntryDisk {
    /// +0x00 length of the entry, a multiple of 8 (rounded up when read).
    pub length: U64,
    /// +0x08 reserved.
    pub reserved: U64,
    /// +0x10 SHA-1 of the stream (zero: empty).
    pub hash: [u8; 20],
    /// +0x24 bytes of the name (0: unnamed).
    pub name_nbytes: U16,
}

const _: () = assert!(size_of::<StreamEntryDisk>() == STREAM_ENTRY_DISK_SIZE as usize);

/// What a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// File data: the unnamed data stream or a named one.
    Data,
    /// The reparse data of a reparse point (symlink, junction, ...), without its 8-byte header.
    ReparsePoint,
    /// An encrypted file's data as exported by ReadEncryptedFileRaw.
    EncryptedRaw,
}

/// A stream of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The name of a named data stream; None for the unnamed ones.
    pub name: Option<String>,
    /// What it holds.
    pub kind: StreamKind,
    /// SHA-1 of its bytes; zero for an empty stream (which has no blob).
    pub hash: Sha1Digest,
}

/// A dentry as read from the resource, before it is placed in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DentryRecord {
    /// Where it starts in the metadata resource.
    pub offset: u64,
    /// FILE_ATTRIBUTE_* flags.
    pub attributes: u32,
    /// Security descriptor index, None for -1 (or any negative value).
    pub security_id: Option<u32>,
    /// Start of the children's list, 0 when none.
    pub subdir_offset: u64,
    /// Creation time (FILETIME).
    pub creation_time: u64,
    /// Last access time (FILETIME).
    pub last_access_time: u64,
    /// Last write time (FILETIME).
    pub last_write_time: u64,
    /// Reparse tag, for reparse points.
    pub reparse_tag: Option<u32>,
    /// Reparse flags (wimlib's `rp_flags`: 1 = not fixed up), for reparse points.
    pub reparse_flags: u16,
    /// Hard link group id (0 = not hard-linked); always 0 for reparse points.
    pub hard_link_group_id: u64,
    /// The long name in UTF-16 code units.
    pub name_utf16: Vec<u16>,
    /// The short (8.3) name in UTF-16 code units.
    pub short_name_utf16: Vec<u16>,
    /// Bytes of extra data (tagged items) after the names.
    pub extra_data_bytes: u64,
    /// The streams, typed.
    pub streams: Vec<Stream>,
}

impl DentryRecord {
    /// True for a directory.
    pub fn is_directory(&self) -> bool {
        self.attributes & ATTR_DIRECTORY != 0
    }
}

fn offset_error(image: u32, at: u64, detail: String) -> Error {
    Error::corrupt(
        format!("dentry of image {image} (offset in the uncompressed metadata resource)"),
        at,
        detail,
    )
}

fn utf16_units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|p| {
            u16::from_le_bytes([
                p.first().copied().unwrap_or(0),
                p.get(1).copied().unwrap_or(0),
            ])
        })
        .collect()
}

fn slice(buf: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    buf.get(start..end)
}

/// Reads the dentry at `offset` of the metadata resource `buf` (of image `image`, for
/// messages). Returns None for an end-of-list marker, else the record and the offset just past
/// its stream entries (where its next sibling starts). Refuses, as [`Error::Corrupt`] with the
/// offset: a length field or dentry or stream entry that runs past the resource, a length too
/// short for the fixed fields or the names, and odd name lengths.
pub fn read_dentry(buf: &[u8], offset: u64, image: u32) -> Result<Option<(DentryRecord, u64)>> {
    let buf_len = buf.len() as u64;
    let err = |at: u64, detail: String| offset_error(image, at, detail);
    let length_field = slice(buf, offset, 8).ok_or_else(|| {
        err(
            offset,
            format!("the dentry length field lies past the end of the {buf_len}-byte resource"),
        )
    })?;
    let stored_length = u64::from_le_bytes(length_field.try_into().unwrap_or([0xff; 8]));
    let length = stored_length
        .checked_next_multiple_of(8)
        .unwrap_or(u64::MAX);
    if length <= 8 {
        return Ok(None);
    }
    if length < DENTRY_DISK_SIZE {
        return Err(err(
            offset,
            format!(
                "dentry length {stored_length} is shorter than the {DENTRY_DISK_SIZE} fixed bytes"
            ),
        ));
    }
    let end = offset
        .checked_add(length)
        .filter(|&e| e <= buf_len)
        .ok_or_else(|| {
            err(
                offset,
                format!("dentry length {stored_length} runs past the end of the {buf_len}-byte resource"),
            )
        })?;
    let record = slice(buf, offset, length).unwrap_or_default();
    let (disk, _) = DentryDisk::ref_from_prefix(record)
        .map_err(|_| err(offset, "dentry shorter than its fixed fields".into()))?;
    let name_nbytes = u64::from(disk.name_nbytes.get());
    let short_nbytes = u64::from(disk.short_name_nbytes.get());
    if name_nbytes % 2 != 0 || short_nbytes % 2 != 0 {
        return Err(err(
            offset,
            format!("odd UTF-16 name lengths ({name_nbytes} and {short_nbytes} bytes)"),
        ));
    }
    // Each name is followed by a 2-byte NUL when present.
    let with_nul = |n: u64| if n == 0 { 0 } else { n.saturating_add(2) };
    let names_end = DENTRY_DISK_SIZE
        .saturating_add(with_nul(name_nbytes))
        .saturating_add(with_nul(short_nbytes));
    if names_end > length {
        return Err(err(
            offset,
            format!("dentry length {stored_length} cannot hold names of {name_nbytes} and {short_nbytes} bytes"),
        ));
    }
    let name_utf16 = utf16_units(slice(record, DENTRY_DISK_SIZE, name_nbytes).unwrap_or_default());
    let short_at = DENTRY_DISK_SIZE.saturating_add(with_nul(name_nbytes));
    let short_name_utf16 = utf16_units(slice(record, short_at, short_nbytes).unwrap_or_default());
    let extra_from = offset.saturating_add(names_end).next_multiple_of(8);
    let extra_data_bytes = end.saturating_sub(extra_from);

    let attributes = disk.attributes.get();
    let is_reparse = attributes & ATTR_REPARSE_POINT != 0;
    let [t0, t1, t2, t3, r0, r1, f0, f1] = disk.tag_or_link;
    let (reparse_tag, reparse_flags, hard_link_group_id) = if is_reparse {
        let _reserved = u16::from_le_bytes([r0, r1]);
        (
            Some(u32::from_le_bytes([t0, t1, t2, t3])),
            u16::from_le_bytes([f0, f1]),
            0,
        )
    } else {
        (None, 0, u64::from_le_bytes(disk.tag_or_link))
    };
    let security_id = i32::from_le_bytes(disk.security_id.get().to_le_bytes());

    // The stream entries.
    let mut hashes: Vec<(Option<String>, Sha1Digest)> = vec![(None, Sha1Digest(disk.main_hash))];
    let mut at = end;
    for i in 0..disk.num_extra_streams.get() {
        let serr = |detail: String| {
            err(
                at,
                format!("stream entry {i} of the dentry at {offset}: {detail}"),
            )
        };
        let rest = buf_len.saturating_sub(at);
        let entry = slice(buf, at, STREAM_ENTRY_DISK_SIZE.min(rest)).unwrap_or_default();
        let (s, _) = StreamEntryDisk::ref_from_prefix(entry)
            .map_err(|_| serr(format!("runs past the end of the {buf_len}-byte resource")))?;
        let slen = s
            .length
            .get()
            .checked_next_multiple_of(8)
            .unwrap_or(u64::MAX);
        if slen < STREAM_ENTRY_DISK_SIZE || slen > rest {
            return Err(serr(format!(
                "length {} is shorter than {STREAM_ENTRY_DISK_SIZE} bytes or runs past the end of the {buf_len}-byte resource",
                s.length.get()
            )));
        }
        let n = u64::from(s.name_nbytes.get());
        if n % 2 != 0 || STREAM_ENTRY_DISK_SIZE.saturating_add(n) > slen {
            return Err(serr(format!(
                "name of {n} bytes does not fit in an entry of {slen} bytes"
            )));
        }
        let name = (n != 0).then(|| {
            String::from_utf16_lossy(&utf16_units(
                slice(buf, at.saturating_add(STREAM_ENTRY_DISK_SIZE), n).unwrap_or_default(),
            ))
        });
        hashes.push((name, Sha1Digest(s.hash)));
        at = at.saturating_add(slen);
    }
    let streams = assign_stream_kinds(attributes, hashes);
    Ok(Some((
        DentryRecord {
            offset,
            attributes,
            security_id: u32::try_from(security_id).ok(),
            subdir_offset: disk.subdir_offset.get(),
            creation_time: disk.creation_time.get(),
            last_access_time: disk.last_access_time.get(),
            last_write_time: disk.last_write_time.get(),
            reparse_tag,
            reparse_flags,
            hard_link_group_id,
            name_utf16,
            short_name_utf16,
            extra_data_bytes,
            streams,
        },
        at,
    )))
}

/// Types the streams (the main hash first, then the stream entries) as described in the module
/// comment. Unnamed streams beyond the ones the rules place are dropped, as wimlib does.
fn assign_stream_kinds(attributes: u32, hashes: Vec<(Option<String>, Sha1Digest)>) -> Vec<Stream> {
    let is_reparse = attributes & ATTR_REPARSE_POINT != 0;
    if attributes & ATTR_ENCRYPTED != 0 {
        return hashes
            .into_iter()
            .find(|(name, hash)| name.is_none() && !hash.is_zero())
            .map(|(_, hash)| Stream {
                name: None,
                kind: StreamKind::EncryptedRaw,
                hash,
            })
            .into_iter()
            .collect();
    }
    let mut streams = Vec::with_capacity(hashes.len());
    let (mut have_reparse, mut have_data) = (false, false);
    let main_hash = hashes.first().map(|(_, h)| *h).unwrap_or_default();
    for (i, (name, hash)) in hashes.into_iter().enumerate() {
        if name.is_some() {
            streams.push(Stream {
                name,
                kind: StreamKind::Data,
                hash,
            });
        } else if i != 0 || !hash.is_zero() {
            let kind = if is_reparse && !have_reparse {
                have_reparse = true;
                StreamKind::ReparsePoint
            } else if !have_data {
                have_data = true;
                StreamKind::Data
            } else {
                continue;
            };
            streams.push(Stream {
                name: None,
                kind,
                hash,
            });
        }
    }
    if !have_reparse && !have_data {
        // The zero main hash stands for the empty unnamed stream.
        let kind = if is_reparse {
            StreamKind::ReparsePoint
        } else {
            StreamKind::Data
        };
        streams.insert(
            0,
            Stream {
                name: None,
                kind,
                hash: main_hash,
            },
        );
    }
    streams
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    /// A dentry record laid out by hand, the way the format describes it.
    pub(crate) fn dentry_bytes(
        name: &str,
        attributes: u32,
        subdir: u64,
        main_hash: [u8; 20],
        streams: &[(&str, [u8; 20])],
    ) -> Vec<u8> {
        let name16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut d = vec![0u8; 102];
        d[8..12].copy_from_slice(&attributes.to_le_bytes());
        d[12..16].copy_from_slice(&(-1i32).to_le_bytes());
        d[16..24].copy_from_slice(&subdir.to_le_bytes());
        d[0x40..0x54].copy_from_slice(&main_hash);
        d[0x60..0x62].copy_from_slice(&(streams.len() as u16).to_le_bytes());
        d[0x64..0x66].copy_from_slice(&(name16.len() as u16).to_le_bytes());
        if !name16.is_empty() {
            d.extend(&name16);
            d.extend([0, 0]);
        }
        let len = d.len() as u64;
        d[0..8].copy_from_slice(&len.to_le_bytes());
        d.resize(d.len().next_multiple_of(8), 0);
        for (sname, hash) in streams {
            let n16: Vec<u8> = sname.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let mut e = vec![0u8; 38];
            e[16..36].copy_from_slice(hash);
            e[36..38].copy_from_slice(&(n16.len() as u16).to_le_bytes());
            if !n16.is_empty() {
                e.extend(&n16);
                e.extend([0, 0]);
            }
            e.resize(e.len().next_multiple_of(8), 0);
            let l = e.len() as u64;
            e[0..8].copy_from_slice(&l.to_le_bytes());
            d.extend(e);
        }
        d
    }

    #[test]
    fn reads_names_and_streams() {
        let h = [7u8; 20];
        let buf = dentry_bytes(
            "file.txt",
            ATTR_ARCHIVE,
            0,
            [0; 20],
            &[("", h), ("meta", [9; 20])],
        );
        let (d, next) = read_dentry(&buf, 0, 1).unwrap().unwrap();
        assert_eq!(next, buf.len() as u64);
        assert_eq!(String::from_utf16(&d.name_utf16).unwrap(), "file.txt");
        assert_eq!(d.streams.len(), 2);
        assert_eq!(
            (
                d.streams[0].name.as_deref(),
                d.streams[0].kind,
                d.streams[0].hash.0
            ),
            (None, StreamKind::Data, h)
        );
        assert_eq!(d.streams[1].name.as_deref(), Some("meta"));
    }

    #[test]
    fn reparse_point_takes_the_first_unnamed_stream() {
        let mut buf = dentry_bytes(
            "link",
            ATTR_REPARSE_POINT,
            0,
            [0; 20],
            &[("", [1; 20]), ("", [2; 20])],
        );
        buf[0x58..0x5C].copy_from_slice(&REPARSE_TAG_SYMLINK.to_le_bytes());
        let (d, _) = read_dentry(&buf, 0, 1).unwrap().unwrap();
        assert_eq!(d.reparse_tag, Some(REPARSE_TAG_SYMLINK));
        assert_eq!(d.streams[0].kind, StreamKind::ReparsePoint);
        assert_eq!(d.streams[0].hash.0, [1; 20]);
        assert_eq!(d.streams[1].kind, StreamKind::Data);
    }

    #[test]
    fn end_marker_and_hostile_lengths() {
        assert!(read_dentry(&[0u8; 8], 0, 1).unwrap().is_none());
        assert!(read_dentry(&[0u8; 4], 0, 1).is_err());
        let mut buf = dentry_bytes("x", 0, 0, [0; 20], &[]);
        buf[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = read_dentry(&buf, 0, 1).unwrap_err().to_string();
        assert!(e.contains("runs past the end"), "{e}");
        buf[0..8].copy_from_slice(&50u64.to_le_bytes());
        assert!(read_dentry(&buf, 0, 1).is_err());
        let mut buf = dentry_bytes("x", 0, 0, [0; 20], &[]);
        buf[0x64..0x66].copy_from_slice(&2000u16.to_le_bytes());
        assert!(read_dentry(&buf, 0, 1).is_err());
        // A stream entry past the end.
        let mut buf = dentry_bytes("x", 0, 0, [0; 20], &[("s", [1; 20])]);
        let n = buf.len();
        buf.truncate(n - 8);
        assert!(read_dentry(&buf, 0, 1).is_err());
    }
}

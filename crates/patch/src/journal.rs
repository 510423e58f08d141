//! The undo journal: the original bytes of every region a patch overwrites, saved (and synced)
//! before the first write, so `undo` can put the image back bit for bit after a crash at any
//! point.
//!
//! File layout (all integers little-endian), our own format:
//!
//! ```text
//! header, 4096 bytes  JournalHeaderDisk: magic "WINREJNL", version 1, the image's identity
//!                     (length, dev, inode, mtime), how many region records and payload bytes
//!                     follow, the image path, CRC32 of the header
//! records, appended   RecordHeaderDisk (48 bytes, own CRC32) + payload (CRC32 in the header):
//!   1 Region      payload = the original bytes of image[offset..offset+len]
//!   2 ZeroRegion  no payload: those original bytes were all zero
//!   3 SetLen      the image file is about to get length `offset` (it had header.image_len)
//!   4 Sealed      every region is saved and synced: image writes may follow
//!   5 Complete    every write was made and read back
//!   6 Undone      the image was restored
//! ```
//!
//! The journal is only appended to. A record that is cut short or fails its CRC ends the
//! journal (a torn tail from a crash). Without a Sealed record the image was never written (the
//! seal is synced before the first image write), which `undo` confirms from the image's length
//! and mtime before it declares the image untouched.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::bytes::{add, usize_of};
use crate::error::{Error, Result};
use crate::image::{Identity, ImageFile, ImageKind};

const MAGIC: [u8; 8] = *b"WINREJNL";
const VERSION: u32 = 1;
/// Bytes of the journal header.
pub const HEADER_BYTES: u64 = 4096;
const RECORD_MAGIC: [u8; 4] = *b"WREC";
/// Largest payload of one record: regions are saved in pieces of at most this size, so `undo`
/// never allocates more than this for one record.
pub const MAX_RECORD_PAYLOAD: u64 = 8 * 1024 * 1024;
/// Longest image path kept in the header.
const MAX_PATH_BYTES: usize = 3072;
/// Most records `undo` reads (a 64 GiB move in 8 MiB pieces is 8192).
const MAX_RECORDS: u64 = 1 << 24;

/// The journal header as stored.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct JournalHeaderDisk {
    /// +0x00 "WINREJNL"
    magic: [u8; 8],
    /// +0x08 1
    version: U32,
    /// +0x0C 4096
    header_bytes: U32,
    /// +0x10 the image file's length before any change
    image_len: U64,
    /// +0x18 st_dev
    image_dev: U64,
    /// +0x20 st_ino
    image_ino: U64,
    /// +0x28 st_mtime seconds at the time the journal was begun
    mtime_sec: I64,
    /// +0x30 st_mtime nanoseconds
    mtime_nsec: U32,
    /// +0x34 length of the path at +0x50
    path_len: U32,
    /// +0x38 number of Region / ZeroRegion / SetLen records that follow
    planned_records: U64,
    /// +0x40 bytes of payload those records carry
    planned_payload_bytes: U64,
    /// +0x48 reserved, zero
    reserved: U64,
}

/// Offset of the image path in the header.
const PATH_AT: usize = 0x50;
/// Offset of the header CRC32 (over bytes 0..0xFFC).
const HEADER_CRC_AT: usize = 0xFFC;

/// A record header as stored.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct RecordHeaderDisk {
    /// +0x00 "WREC"
    magic: [u8; 4],
    /// +0x04 record kind (see the module doc)
    kind: U32,
    /// +0x08 0, 1, 2, ... in file order
    sequence: U64,
    /// +0x10 image byte offset (SetLen: the new length)
    offset: U64,
    /// +0x18 bytes of the region
    len: U64,
    /// +0x20 bytes of payload after this header
    payload_len: U64,
    /// +0x28 CRC32 of the payload
    payload_crc32: U32,
    /// +0x2C CRC32 of bytes 0x00..0x2C
    header_crc32: U32,
}

const RECORD_HEADER_BYTES: u64 = 48;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Original bytes follow.
    Region,
    /// The original bytes were zeros.
    ZeroRegion,
    /// The image file's length changes to `offset`.
    SetLen,
    /// All regions are saved: writes may follow.
    Sealed,
    /// All writes were made and verified.
    Complete,
    /// The image was restored.
    Undone,
}

impl RecordKind {
    fn code(self) -> u32 {
        match self {
            Self::Region => 1,
            Self::ZeroRegion => 2,
            Self::SetLen => 3,
            Self::Sealed => 4,
            Self::Complete => 5,
            Self::Undone => 6,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::Region,
            2 => Self::ZeroRegion,
            3 => Self::SetLen,
            4 => Self::Sealed,
            5 => Self::Complete,
            6 => Self::Undone,
            _ => return None,
        })
    }
}

/// How far a journaled patch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalState {
    /// Regions were being saved; the image was not written.
    Saving,
    /// All regions saved; the image may be partly written.
    Sealed,
    /// The patch was applied and verified.
    Complete,
    /// The image was restored from this journal.
    Undone,
}

/// The default journal path: `IMAGE.winre-journal` next to the image.
pub fn default_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".winre-journal");
    PathBuf::from(name)
}

/// The marker beside an image that lists every journal begun for it (`IMAGE.winre-journals`,
/// one absolute path a line), so a resize finds a half-done journal wherever `--journal` put it.
pub fn marker_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".winre-journals");
    PathBuf::from(name)
}

/// Adds `journal` to the image's marker and syncs it (before the journal is created, so a
/// journal that exists is always listed). A device's directory (/dev) gets no marker.
fn record_in_marker(image: &ImageFile, journal: &Path) -> Result<()> {
    if image.kind() == ImageKind::Device {
        return Ok(());
    }
    let marker = marker_path(image.path());
    let journal = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
    let named = |e: io::Error| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("recording the journal in {}: {e}", marker.display()),
        ))
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&marker)
        .map_err(named)?;
    let mut line = journal.as_os_str().as_encoded_bytes().to_vec();
    line.push(b'\n');
    io::Write::write_all(&mut file, &line).map_err(named)?;
    file.sync_all().map_err(named)?;
    sync_dir(&marker)
}

/// Refuses while a journal listed in the image's marker is incomplete (Saving or Sealed) and
/// was begun for this very file (same device and inode): the image may be half-written, and only
/// `winre undo --journal THAT` restores it. Journals that are gone, or of another file (a copy
/// of the image), do not count.
pub fn check_no_incomplete_journal(image: &ImageFile) -> Result<()> {
    let marker = marker_path(image.path());
    let text = match std::fs::read(&marker) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io(io::Error::new(
                e.kind(),
                format!("reading {}: {e}", marker.display()),
            )))
        }
    };
    let now = image.identity()?;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let path = PathBuf::from(String::from_utf8_lossy(line).into_owned());
        let Ok(journal) = read(&path) else {
            continue;
        };
        let same_file = journal.identity.dev == now.dev && journal.identity.ino == now.ino;
        if same_file && matches!(journal.state, JournalState::Saving | JournalState::Sealed) {
            return Err(Error::Refused(format!(
                "a resize of {} stopped half-way with journal {} (listed in {}); run: winre undo {} --journal {}",
                image.path().display(),
                path.display(),
                marker.display(),
                image.path().display(),
                path.display()
            )));
        }
    }
    Ok(())
}

/// A region of the image a patch will overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Image byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A journal being written by a patch.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    next_sequence: u64,
    end: u64,
    payload_bytes: u64,
}

/// Called after every write to the journal or the image (a crash-test hook and progress).
pub trait WriteObserver {
    /// One write was made; `bytes` long.
    fn wrote(&mut self, bytes: u64);
}

impl Journal {
    /// Creates the journal at `path` (which must not exist), saves the original bytes of every
    /// region of `image` and the planned length change, then writes a Sealed record and syncs
    /// the journal and its directory. Only then may the caller write to the image.
    pub fn begin(
        image: &ImageFile,
        path: &Path,
        regions: &[Region],
        new_len: Option<u64>,
        observer: &mut dyn WriteObserver,
    ) -> Result<Self> {
        let identity = image.identity()?;
        let mut pieces = Vec::new();
        for r in regions {
            let end = add(r.offset, r.len, "journal region")?;
            let mut at = r.offset;
            while at < end {
                let len = end.saturating_sub(at).min(MAX_RECORD_PAYLOAD);
                pieces.push(Region { offset: at, len });
                at = at.saturating_add(len);
            }
        }
        record_in_marker(image, path)?;
        let planned_records = u64::try_from(pieces.len())
            .unwrap_or(u64::MAX)
            .saturating_add(u64::from(new_len.is_some()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                match e.kind() {
                    io::ErrorKind::AlreadyExists => {
                        Error::Refused(format!("journal {} already exists", path.display()))
                    }
                    io::ErrorKind::NotFound if dir.is_some_and(|d| !d.is_dir()) => {
                        Error::Refused(format!(
                            "the journal's directory {} does not exist",
                            dir.map_or_else(String::new, |d| d.display().to_string())
                        ))
                    }
                    kind => Error::Io(io::Error::new(
                        kind,
                        format!("creating the journal {}: {e}", path.display()),
                    )),
                }
            })?;
        let mut journal = Self {
            file,
            path: path.to_path_buf(),
            next_sequence: 0,
            end: HEADER_BYTES,
            payload_bytes: 0,
        };
        let planned_payload: u64 = pieces.iter().map(|p| p.len).sum();
        journal.write_header(image.path(), identity, planned_records, planned_payload)?;
        sync_dir(path)?;
        observer.wrote(HEADER_BYTES);
        let mut buf = Vec::new();
        for piece in &pieces {
            buf.resize(usize_of(piece.len, "journal region")?, 0);
            image.read_at(piece.offset, &mut buf)?;
            let written = if buf.iter().all(|&b| b == 0) {
                journal.append(RecordKind::ZeroRegion, piece.offset, piece.len, &[])?
            } else {
                journal.append(RecordKind::Region, piece.offset, piece.len, &buf)?
            };
            observer.wrote(written);
        }
        if let Some(len) = new_len {
            let written = journal.append(RecordKind::SetLen, len, 0, &[])?;
            observer.wrote(written);
        }
        journal.file.sync_all()?;
        let written = journal.append(RecordKind::Sealed, 0, 0, &[])?;
        journal.file.sync_all()?;
        observer.wrote(written);
        Ok(journal)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the journal file.
    pub fn bytes(&self) -> u64 {
        self.end
    }

    /// Bytes of saved original data (Region payloads).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Marks the patch applied and verified, and syncs.
    pub fn complete(&mut self) -> Result<()> {
        self.append(RecordKind::Complete, 0, 0, &[])?;
        self.file.sync_all()?;
        Ok(())
    }

    fn write_header(
        &mut self,
        image_path: &Path,
        id: Identity,
        planned_records: u64,
        planned_payload: u64,
    ) -> Result<()> {
        let path = image_path.as_os_str().as_encoded_bytes();
        let path = path.get(..path.len().min(MAX_PATH_BYTES)).unwrap_or(path);
        let disk = JournalHeaderDisk {
            magic: MAGIC,
            version: VERSION.into(),
            header_bytes: U32::new(HEADER_BYTES as u32),
            image_len: id.len.into(),
            image_dev: id.dev.into(),
            image_ino: id.ino.into(),
            mtime_sec: id.mtime_sec.into(),
            mtime_nsec: id.mtime_nsec.into(),
            path_len: U32::new(u32::try_from(path.len()).unwrap_or(0)),
            planned_records: planned_records.into(),
            planned_payload_bytes: planned_payload.into(),
            reserved: 0.into(),
        };
        let mut header = vec![0u8; HEADER_BYTES as usize];
        crate::bytes::put(&mut header, 0, disk.as_bytes(), "journal header")?;
        crate::bytes::put(&mut header, PATH_AT, path, "journal header")?;
        let crc = crc32fast::hash(header.get(..HEADER_CRC_AT).unwrap_or_default());
        crate::bytes::put_u32(&mut header, HEADER_CRC_AT, crc, "journal header")?;
        self.file.write_all_at(&header, 0)?;
        self.file.sync_all()?;
        Ok(())
    }

    /// Appends one record; returns the bytes written.
    fn append(&mut self, kind: RecordKind, offset: u64, len: u64, payload: &[u8]) -> Result<u64> {
        let payload_len = payload.len() as u64;
        let mut header = RecordHeaderDisk {
            magic: RECORD_MAGIC,
            kind: kind.code().into(),
            sequence: self.next_sequence.into(),
            offset: offset.into(),
            len: len.into(),
            payload_len: payload_len.into(),
            payload_crc32: crc32fast::hash(payload).into(),
            header_crc32: 0.into(),
        };
        header.header_crc32 =
            crc32fast::hash(header.as_bytes().get(..0x2C).unwrap_or_default()).into();
        let mut record = Vec::with_capacity(payload.len().saturating_add(48));
        record.extend_from_slice(header.as_bytes());
        record.extend_from_slice(payload);
        self.file.write_all_at(&record, self.end)?;
        let written = record.len() as u64;
        self.end = add(self.end, written, "journal length")?;
        self.next_sequence = self.next_sequence.saturating_add(1);
        if kind == RecordKind::Region {
            self.payload_bytes = self.payload_bytes.saturating_add(payload_len);
        }
        Ok(written)
    }
}

/// Syncs the directory holding `path`, so the new journal's name survives a crash.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// One saved region, as read back.
#[derive(Debug, Clone)]
pub struct SavedRegion {
    /// Image byte offset.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// Where its payload starts in the journal (`None`: zeros).
    pub payload_at: Option<u64>,
    /// CRC32 of the original bytes.
    pub crc32: u32,
}

/// A journal as read by `undo`.
#[derive(Debug, Clone)]
pub struct ReadJournal {
    /// The image path recorded (for messages).
    pub image_path: String,
    /// The image's identity when the journal was begun.
    pub identity: Identity,
    /// Region / ZeroRegion / SetLen records announced in the header.
    pub planned_records: u64,
    /// Saved regions, in journal order.
    pub regions: Vec<SavedRegion>,
    /// The new length of a SetLen record.
    pub new_len: Option<u64>,
    /// The last state reached.
    pub state: JournalState,
    /// Where the valid records end; `Some` with a reason when a torn or damaged record followed.
    pub torn_at: Option<(u64, String)>,
    /// Bytes in the journal file.
    pub file_len: u64,
}

impl ReadJournal {
    /// Region / ZeroRegion / SetLen records read intact.
    pub fn records_read(&self) -> u64 {
        (self.regions.len() as u64).saturating_add(u64::from(self.new_len.is_some()))
    }
}

/// Reads and checks a journal. A damaged header is an error; a damaged record ends the list
/// (reported in `torn_at`).
pub fn read(path: &Path) -> Result<ReadJournal> {
    let file = File::open(path).map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("opening the journal {}: {e}", path.display()),
        ))
    })?;
    let file_len = file.metadata()?.len();
    let what = "journal header";
    if file_len < HEADER_BYTES {
        return Err(Error::corrupt(
            what,
            0,
            format!("the journal has {file_len} bytes, fewer than its {HEADER_BYTES}-byte header (crashed while it was being created; the image was not written)"),
        ));
    }
    let mut header = vec![0u8; HEADER_BYTES as usize];
    file.read_exact_at(&mut header, 0)?;
    let stored = crate::bytes::u32_at(&header, HEADER_CRC_AT, what)?;
    let computed = crc32fast::hash(header.get(..HEADER_CRC_AT).unwrap_or_default());
    let (disk, _) = JournalHeaderDisk::read_from_prefix(&header)
        .map_err(|_| Error::corrupt(what, 0, "too short"))?;
    if disk.magic != MAGIC {
        return Err(Error::corrupt(
            what,
            0,
            "not a winre journal (magic is not WINREJNL)",
        ));
    }
    if stored != computed {
        return Err(Error::corrupt(
            what,
            HEADER_CRC_AT as u64,
            format!("CRC32 is {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    if disk.version.get() != VERSION || u64::from(disk.header_bytes.get()) != HEADER_BYTES {
        return Err(Error::Unsupported(format!(
            "journal version {} with a {}-byte header (this winre writes version {VERSION})",
            disk.version.get(),
            disk.header_bytes.get()
        )));
    }
    let path_len = usize::try_from(disk.path_len.get())
        .unwrap_or(usize::MAX)
        .min(MAX_PATH_BYTES);
    let image_path = header
        .get(PATH_AT..PATH_AT.saturating_add(path_len))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let mut journal = ReadJournal {
        image_path,
        identity: Identity {
            dev: disk.image_dev.get(),
            ino: disk.image_ino.get(),
            len: disk.image_len.get(),
            mtime_sec: disk.mtime_sec.get(),
            mtime_nsec: disk.mtime_nsec.get(),
        },
        planned_records: disk.planned_records.get(),
        regions: Vec::new(),
        new_len: None,
        state: JournalState::Saving,
        torn_at: None,
        file_len,
    };
    let mut at = HEADER_BYTES;
    let mut sequence = 0u64;
    let mut payload = Vec::new();
    while at < file_len {
        if sequence >= MAX_RECORDS {
            journal.torn_at = Some((at, format!("more than {MAX_RECORDS} records")));
            break;
        }
        match read_record(&file, at, file_len, sequence, &mut payload) {
            Ok((record, next)) => {
                let kind = RecordKind::from_code(record.kind.get());
                match kind {
                    Some(RecordKind::Region) | Some(RecordKind::ZeroRegion) => {
                        let zero = kind == Some(RecordKind::ZeroRegion);
                        journal.regions.push(SavedRegion {
                            offset: record.offset.get(),
                            len: record.len.get(),
                            payload_at: (!zero).then_some(at.saturating_add(RECORD_HEADER_BYTES)),
                            crc32: if zero {
                                zero_crc(record.len.get())
                            } else {
                                record.payload_crc32.get()
                            },
                        });
                    }
                    Some(RecordKind::SetLen) => journal.new_len = Some(record.offset.get()),
                    Some(RecordKind::Sealed) => journal.state = JournalState::Sealed,
                    Some(RecordKind::Complete) => journal.state = JournalState::Complete,
                    Some(RecordKind::Undone) => journal.state = JournalState::Undone,
                    None => {
                        journal.torn_at =
                            Some((at, format!("unknown record kind {}", record.kind.get())));
                        break;
                    }
                }
                at = next;
                sequence = sequence.saturating_add(1);
            }
            Err(reason) => {
                journal.torn_at = Some((at, reason));
                break;
            }
        }
    }
    Ok(journal)
}

/// CRC32 of `len` zero bytes.
fn zero_crc(len: u64) -> u32 {
    let zeros = [0u8; 65536];
    let mut h = crc32fast::Hasher::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        h.update(zeros.get(..n as usize).unwrap_or_default());
        left = left.saturating_sub(n);
    }
    h.finalize()
}

/// Reads the record at `at`; `Err(reason)` when it is torn or damaged.
fn read_record(
    file: &File,
    at: u64,
    file_len: u64,
    sequence: u64,
    payload: &mut Vec<u8>,
) -> Result<(RecordHeaderDisk, u64), String> {
    let mut raw = [0u8; RECORD_HEADER_BYTES as usize];
    let left = file_len.saturating_sub(at);
    if left < RECORD_HEADER_BYTES {
        return Err(format!("record header cut short ({left} of 48 bytes)"));
    }
    file.read_exact_at(&mut raw, at)
        .map_err(|e| e.to_string())?;
    let (h, _) = RecordHeaderDisk::read_from_prefix(&raw).map_err(|_| "short".to_string())?;
    if h.magic != RECORD_MAGIC {
        return Err("no record magic".into());
    }
    let crc = crc32fast::hash(raw.get(..0x2C).unwrap_or_default());
    if crc != h.header_crc32.get() {
        return Err(format!(
            "record header CRC32 {:#010x}, computed {crc:#010x}",
            h.header_crc32.get()
        ));
    }
    if h.sequence.get() != sequence {
        return Err(format!(
            "sequence {} where {sequence} was expected",
            h.sequence.get()
        ));
    }
    let payload_len = h.payload_len.get();
    let kind = RecordKind::from_code(h.kind.get());
    let expected_payload = if kind == Some(RecordKind::Region) {
        h.len.get()
    } else {
        0
    };
    if payload_len != expected_payload || payload_len > MAX_RECORD_PAYLOAD {
        return Err(format!(
            "payload of {payload_len} bytes for a region of {}",
            h.len.get()
        ));
    }
    let start = at.saturating_add(RECORD_HEADER_BYTES);
    let left = file_len.saturating_sub(start);
    if left < payload_len {
        return Err(format!("payload cut short ({left} of {payload_len} bytes)"));
    }
    payload.resize(payload_len as usize, 0);
    file.read_exact_at(payload, start)
        .map_err(|e| e.to_string())?;
    let crc = crc32fast::hash(payload);
    if crc != h.payload_crc32.get() {
        return Err(format!(
            "payload CRC32 {:#010x}, computed {crc:#010x}",
            h.payload_crc32.get()
        ));
    }
    Ok((h, start.saturating_add(payload_len)))
}

/// Appends one state record to an existing journal (used by `undo` to write Undone).
pub fn append_state(path: &Path, journal: &ReadJournal, state: JournalState) -> Result<()> {
    let kind = match state {
        JournalState::Undone => RecordKind::Undone,
        JournalState::Complete => RecordKind::Complete,
        JournalState::Sealed => RecordKind::Sealed,
        JournalState::Saving => return Ok(()),
    };
    let file = OpenOptions::new().write(true).open(path)?;
    // Append after the last valid record (cutting off a torn tail).
    let end = journal
        .torn_at
        .as_ref()
        .map_or(journal.file_len, |(at, _)| *at);
    file.set_len(end)?;
    let count = count_records(path, end)?;
    let mut j = Journal {
        file,
        path: path.to_path_buf(),
        next_sequence: count,
        end,
        payload_bytes: 0,
    };
    j.append(kind, 0, 0, &[])?;
    j.file.sync_all()?;
    Ok(())
}

/// Number of records before `end`.
fn count_records(path: &Path, end: u64) -> Result<u64> {
    let file = File::open(path)?;
    let mut at = HEADER_BYTES;
    let mut n = 0;
    let mut payload = Vec::new();
    while at < end {
        let (_, next) = read_record(&file, at, end, n, &mut payload)
            .map_err(|e| Error::corrupt("journal record", at, e))?;
        at = next;
        n = n.saturating_add(1);
    }
    Ok(n)
}

/// Reads a saved region's original bytes.
pub fn region_bytes(path: &Path, region: &SavedRegion, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    buf.resize(usize_of(region.len, "journal region")?, 0);
    if let Some(at) = region.payload_at {
        File::open(path)?.read_exact_at(buf, at)?;
    }
    Ok(())
}

//! Positional reads on a shared reference: the one abstraction every stage of winre reads through.
//!
//! A disk image, a partition inside it, a file inside that partition's NTFS volume and a WIM
//! resource inside that file are all a [`ReadAt`]: an immutable view with a length that can be read
//! at any offset from many threads at once. No stage owns a cursor, so rayon workers read different
//! parts of the same image without locks, and each stage wraps the one before it ([`Slice`] for a
//! partition, [`Extents`] for a fragmented file).
//!
//! [`Cursor`] adapts a `ReadAt` to `Read + Seek` for the few dependencies (`ntfs`, `fatfs`) that
//! want one; [`Counting`] counts the bytes and calls that pass through, for `--stats` and benches.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A byte source readable at any offset through a shared reference.
///
/// `read_exact_at` either fills the whole buffer or fails: a read that reaches past [`len`]
/// fails with [`io::ErrorKind::UnexpectedEof`] and a message naming the offset, never with
/// garbage or a short buffer. Implementations must be safe to call from many threads at once.
///
/// [`len`]: ReadAt::len
pub trait ReadAt: Send + Sync {
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The number of readable bytes.
    fn len(&self) -> u64;

    /// True when there is nothing to read.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True only when every byte of `offset..offset + len` is certainly zero without reading
    /// it: a hole in a sparse file, an unallocated block or cluster, a zero cluster. `false`
    /// means "read it to find out" (it may still hold zeros), and is always a correct answer,
    /// so this default suits any source. Costs at most a few table lookups, never data reads;
    /// a range past [`len`](ReadAt::len) or a lookup that fails gives `false`, leaving the
    /// error to the read. Lets copiers (`winre disk cat`) skip holes as `qemu-img` does.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        let _ = (offset, len);
        false
    }
}

/// True when `offset..offset + len` lies within `source_len` (the check `known_zero` starts with).
fn range_within(offset: u64, len: u64, source_len: u64) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= source_len)
}

/// The error every implementation returns for a read past the end, so messages read alike.
pub fn past_end(offset: u64, wanted: usize, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {wanted} bytes at offset {offset} (0x{offset:x}) is past the end ({len} bytes)"),
    )
}

/// Checks that `offset..offset+wanted` lies within `len`; the usual first line of `read_exact_at`.
pub fn check_bounds(offset: u64, wanted: usize, len: u64) -> io::Result<()> {
    match offset.checked_add(wanted as u64) {
        Some(end) if end <= len => Ok(()),
        _ => Err(past_end(offset, wanted, len)),
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len() as u64)?;
        // In bounds by the check above, so the conversions and the range cannot fail.
        let start =
            usize::try_from(offset).map_err(|_| past_end(offset, buf.len(), self.len() as u64))?;
        let src = self
            .get(start..start.saturating_add(buf.len()))
            .ok_or_else(|| past_end(offset, buf.len(), self.len() as u64))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

/// A regular file or a block device (a disk, a loop device, an LVM volume). Its length is taken
/// once, when it is wrapped: inputs are not expected to change while winre reads them, and a read
/// past that length is an error rather than a surprise.
#[derive(Debug)]
pub struct FileReader {
    file: std::fs::File,
    len: u64,
}

impl FileReader {
    /// Opens `path` read-only. Anything but a regular file or a block device (a directory, a
    /// FIFO, a socket, a terminal or other character device) is refused with
    /// [`io::ErrorKind::InvalidInput`] naming the path and what it is, before it is opened:
    /// opening a FIFO would block until a writer comes. The open itself is non-blocking and the
    /// kind is checked again on the opened file, so a file swapped in between cannot block us.
    pub fn open(path: impl AsRef<std::path::Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let refuse = |kind: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is {kind}: winre reads regular files and block devices only",
                    path.display()
                ),
            )
        };
        if let Some(kind) = unreadable_kind(&std::fs::metadata(path)?.file_type()) {
            return Err(refuse(kind));
        }
        use rustix::fs::OFlags;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )?;
        let file = std::fs::File::from(fd);
        if let Some(kind) = unreadable_kind(&file.metadata()?.file_type()) {
            return Err(refuse(kind));
        }
        // Back to blocking reads (O_NONBLOCK means nothing to regular files and disks on Linux,
        // but other systems may honour it).
        rustix::fs::fcntl_setfl(&file, rustix::fs::fcntl_getfl(&file)? - OFlags::NONBLOCK)?;
        Self::new(file)
    }

    /// Wraps an open file; its current length becomes the readable length. A block device's
    /// length is where a seek to its end lands (its metadata says 0).
    pub fn new(file: std::fs::File) -> io::Result<Self> {
        use std::os::unix::fs::FileTypeExt;
        let meta = file.metadata()?;
        let len = if meta.file_type().is_block_device() {
            (&file).seek(SeekFrom::End(0))?
        } else {
            meta.len()
        };
        Ok(Self { file, len })
    }
}

/// What a file is when it is not something winre can read as an image, else `None`.
fn unreadable_kind(kind: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() || kind.is_block_device() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() {
        Some("a character device (a terminal, /dev/zero, a tape)")
    } else {
        Some("not a regular file")
    }
}

impl ReadAt for FileReader {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                // The file shrank under us since it was opened.
                past_end(offset, buf.len(), self.len)
            } else {
                io::Error::new(
                    e.kind(),
                    format!("read of {} bytes at offset {offset}: {e}", buf.len()),
                )
            }
        })
    }
    fn len(&self) -> u64 {
        self.len
    }

    /// Asks the filesystem with `lseek(SEEK_DATA)` where the next data at or after `offset`
    /// is: a range before it is a hole. Filesystems without hole tracking report everything
    /// as data, so this is then `false`. `lseek` moves the file's shared offset, which nothing
    /// here uses (reads are positional `pread`s), so concurrent calls and reads stay correct.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        if len == 0 || !range_within(offset, len, self.len) {
            return false;
        }
        let end = offset.saturating_add(len);
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(next_data) => next_data >= end,
            // ENXIO: no data at or after `offset` (the rest of the file is a hole).
            Err(e) => e == rustix::io::Errno::NXIO,
        }
    }
}

impl<R: ReadAt + ?Sized> ReadAt for &R {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        (**self).known_zero(offset, len)
    }
}

impl<R: ReadAt + ?Sized> ReadAt for Box<R> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        (**self).known_zero(offset, len)
    }
}

impl<R: ReadAt + ?Sized> ReadAt for Arc<R> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        (**self).known_zero(offset, len)
    }
}

/// A window `start..start+len` of another source: a partition on a disk, a resource in a file.
#[derive(Debug, Clone)]
pub struct Slice<R> {
    inner: R,
    start: u64,
    len: u64,
}

impl<R: ReadAt> Slice<R> {
    /// A window over `inner`. Fails when the window reaches past the end of `inner`, so a
    /// partition entry that claims more than the disk has is caught when it is opened.
    pub fn new(inner: R, start: u64, len: u64) -> io::Result<Self> {
        let end = start.checked_add(len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("window {start}+{len} overflows"),
            )
        })?;
        if end > inner.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "window of {len} bytes at offset {start} (0x{start:x}) ends past the end of its source ({} bytes)",
                    inner.len()
                ),
            ));
        }
        Ok(Self { inner, start, len })
    }

    /// Where the window starts in its source.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The source the window looks into.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: ReadAt> ReadAt for Slice<R> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        // start + offset + buf.len() <= start + len, which Slice::new proved does not overflow.
        let absolute = self
            .start
            .checked_add(offset)
            .ok_or_else(|| past_end(offset, buf.len(), self.len))?;
        self.inner.read_exact_at(absolute, buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        range_within(offset, len, self.len)
            && self
                .start
                .checked_add(offset)
                .is_some_and(|absolute| self.inner.known_zero(absolute, len))
    }
}

/// One run of a fragmented file: `len` bytes of the file that sit at `source_offset` in the
/// source, or nowhere at all (`source_offset == None`, a sparse hole that reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the source, or `None` for a hole.
    pub source_offset: Option<u64>,
    /// Length in bytes.
    pub len: u64,
}

/// A file made of extents of a source, in order: an NTFS file over its data runs. Reads past
/// `len` fail; extents may cover more than `len` (the last cluster is usually partly used), and
/// bytes of the file beyond the extents (the gap up to the valid data length) read as zeros.
#[derive(Debug, Clone)]
pub struct Extents<R> {
    inner: R,
    /// (file offset where the extent starts, extent), sorted by file offset, contiguous.
    runs: Vec<(u64, Extent)>,
    len: u64,
}

impl<R: ReadAt> Extents<R> {
    /// Builds the file from its runs. Fails when a run points past the end of the source or the
    /// running total overflows; never allocates more than one entry per run given.
    pub fn new(inner: R, extents: impl IntoIterator<Item = Extent>, len: u64) -> io::Result<Self> {
        let mut runs = Vec::new();
        let mut file_offset: u64 = 0;
        for extent in extents {
            if let Some(at) = extent.source_offset {
                let end = at.checked_add(extent.len);
                if end.is_none_or(|end| end > inner.len()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "extent of {} bytes at source offset {at} (0x{at:x}) ends past the end of its source ({} bytes)",
                            extent.len,
                            inner.len()
                        ),
                    ));
                }
            }
            if extent.len == 0 {
                continue;
            }
            runs.push((file_offset, extent));
            file_offset = file_offset.checked_add(extent.len).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "extent lengths overflow")
            })?;
        }
        Ok(Self { inner, runs, len })
    }

    /// The runs, as given (holes included, empty ones dropped).
    pub fn extents(&self) -> impl Iterator<Item = &Extent> {
        self.runs.iter().map(|(_, e)| e)
    }

    /// The source the extents point into.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: ReadAt> ReadAt for Extents<R> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        // First run that ends after `offset`.
        let mut index = self
            .runs
            .partition_point(|(start, e)| start.saturating_add(e.len) <= offset);
        let mut pos = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let Some(&(run_start, extent)) = self.runs.get(index) else {
                // Past the last extent but within len: data beyond what is allocated reads as zeros.
                rest.fill(0);
                break;
            };
            let within = pos.saturating_sub(run_start);
            let available = extent.len.saturating_sub(within);
            let take = usize::try_from(available)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            match extent.source_offset {
                Some(at) => self.inner.read_exact_at(at.saturating_add(within), now)?,
                None => now.fill(0),
            }
            rest = later;
            pos = pos.saturating_add(take as u64);
            index = index.saturating_add(1);
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }

    /// Holes and the part past the last extent are zeros; a stored run asks the source.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        if !range_within(offset, len, self.len) {
            return false;
        }
        let end = offset.saturating_add(len);
        let first = self
            .runs
            .partition_point(|(start, e)| start.saturating_add(e.len) <= offset);
        let mut pos = offset;
        for &(run_start, extent) in self.runs.get(first..).unwrap_or_default() {
            if pos >= end {
                break;
            }
            let within = pos.saturating_sub(run_start);
            let take = extent
                .len
                .saturating_sub(within)
                .min(end.saturating_sub(pos));
            let zero = match extent.source_offset {
                Some(at) => self.inner.known_zero(at.saturating_add(within), take),
                None => true,
            };
            if !zero {
                return false;
            }
            pos = pos.saturating_add(take);
        }
        true
    }
}

/// Counts what is read through it: calls and bytes. Cheap enough to leave on.
#[derive(Debug, Default)]
pub struct Counting<R> {
    inner: R,
    calls: AtomicU64,
    bytes: AtomicU64,
}

/// What a [`Counting`] has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStats {
    /// Number of `read_exact_at` calls.
    pub calls: u64,
    /// Bytes requested by those calls.
    pub bytes: u64,
}

impl<R: ReadAt> Counting<R> {
    /// Wraps `inner` with zeroed counters.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> ReadStats {
        ReadStats {
            calls: self.calls.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: ReadAt> ReadAt for Counting<R> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    /// Forwarded, and not counted: it reads no bytes.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        self.inner.known_zero(offset, len)
    }
}

/// `Read + Seek` over a `ReadAt`, for dependencies that want a cursor (`ntfs`, `fatfs`).
/// Reads stop at the end of the source like a file does (a short read, then 0).
pub struct Cursor<R> {
    inner: R,
    pos: u64,
}

impl<R> Cursor<R> {
    /// A cursor at offset 0.
    pub fn new(inner: R) -> Self {
        Self { inner, pos: 0 }
    }

    /// The source.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R> fmt::Debug for Cursor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<R: ReadAt> Read for Cursor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.inner.len().saturating_sub(self.pos);
        let take = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(dst) = buf.get_mut(..take) else {
            return Ok(0);
        };
        self.inner.read_exact_at(self.pos, dst)?;
        self.pos = self.pos.saturating_add(take as u64);
        Ok(take)
    }
}

impl<R: ReadAt> Seek for Cursor<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.inner.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before offset 0 or past u64",
            )
        })?;
        self.pos = target;
        Ok(target)
    }
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

    fn data() -> Vec<u8> {
        (0..=255u8).collect()
    }

    #[test]
    fn slice_reads_inside_and_refuses_past_end() {
        let d = data();
        let s = Slice::new(&d, 16, 32).unwrap();
        let mut b = [0u8; 4];
        s.read_exact_at(28, &mut b).unwrap();
        assert_eq!(b, [44, 45, 46, 47]);
        let err = s.read_exact_at(29, &mut b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("offset 29"), "{err}");
        assert!(Slice::new(&d, 250, 7).is_err());
        assert!(Slice::new(&d, u64::MAX, 2).is_err());
    }

    #[test]
    fn extents_stitch_runs_holes_and_tail() {
        let d = data();
        let runs = [
            Extent {
                source_offset: Some(100),
                len: 4,
            },
            Extent {
                source_offset: None,
                len: 3,
            },
            Extent {
                source_offset: Some(10),
                len: 2,
            },
        ];
        let f = Extents::new(&d, runs, 12).unwrap();
        let mut b = [0xffu8; 12];
        f.read_exact_at(0, &mut b).unwrap();
        assert_eq!(b, [100, 101, 102, 103, 0, 0, 0, 10, 11, 0, 0, 0]);
        let mut b = [0u8; 3];
        f.read_exact_at(2, &mut b).unwrap();
        assert_eq!(b, [102, 103, 0]);
        assert!(f.read_exact_at(10, &mut b).is_err());
        assert!(Extents::new(
            &d,
            [Extent {
                source_offset: Some(255),
                len: 2
            }],
            2
        )
        .is_err());
    }

    #[test]
    fn cursor_reads_like_a_file() {
        let d = data();
        let mut c = Cursor::new(&d);
        c.seek(SeekFrom::End(-3)).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(c.read(&mut b).unwrap(), 3);
        assert_eq!(&b[..3], &[253, 254, 255]);
        assert_eq!(c.read(&mut b).unwrap(), 0);
        assert!(c.seek(SeekFrom::Current(-1000)).is_err());
    }

    #[test]
    fn counting_counts() {
        let d = data();
        let c = Counting::new(&d);
        let mut b = [0u8; 10];
        c.read_exact_at(0, &mut b).unwrap();
        c.read_exact_at(5, &mut b).unwrap();
        assert_eq!(
            c.stats(),
            ReadStats {
                calls: 2,
                bytes: 20
            }
        );
    }
}

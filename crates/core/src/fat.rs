//! Reading small files from a FAT volume (the EFI system partition, for `EFI\Microsoft\Boot\BCD`)
//! through the `fatfs` crate.
//!
//! `fatfs` wants `Read + Write + Seek`; winre never writes evidence, so the storage handed to it
//! is a [`Cursor`] whose `write` always fails. `fatfs` compares names case-insensitively (long
//! and short names), as Windows does.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use winre_readat::{Cursor, ReadAt};

use crate::{Error, Result};

/// A read-only `Read + Write + Seek` over a partition: every write fails.
struct ReadOnly(Cursor<Arc<dyn ReadAt>>);

impl Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for ReadOnly {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.seek(to)
    }
}

impl Write for ReadOnly {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "winre opens FAT volumes read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the file at `path` (components separated by `\` or `/`) from the FAT volume in
/// `partition`: `None` when it does not exist, [`Error::Corrupt`] when it is larger than
/// `cap_bytes` (checked before anything is allocated). Fails when the volume is not FAT.
pub fn read_small_file(
    partition: Arc<dyn ReadAt>,
    path: &str,
    cap_bytes: u64,
) -> Result<Option<Vec<u8>>> {
    let fs = fatfs::FileSystem::new(ReadOnly(Cursor::new(partition)), fatfs::FsOptions::new())
        .map_err(|e| Error::corrupt("FAT boot sector", 0, e.to_string()))?;
    let mut dir = fs.root_dir();
    let components: Vec<&str> = path.split(['\\', '/']).filter(|c| !c.is_empty()).collect();
    let Some((file_name, parents)) = components.split_last() else {
        return Ok(None);
    };
    for name in parents {
        match find(&dir, name)? {
            Some(entry) if entry.is_dir() => dir = entry.to_dir(),
            _ => return Ok(None),
        }
    }
    let Some(entry) = find(&dir, file_name)? else {
        return Ok(None);
    };
    if !entry.is_file() {
        return Ok(None);
    }
    let size = entry.len();
    if size > cap_bytes {
        return Err(Error::corrupt(
            format!("FAT file {path}"),
            0,
            format!("it is {size} bytes, more than the {cap_bytes} bytes expected of it"),
        ));
    }
    let mut bytes = Vec::new();
    entry
        .to_file()
        .take(cap_bytes)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::corrupt(format!("FAT file {path}"), 0, e.to_string()))?;
    if bytes.len() as u64 != size {
        return Err(Error::corrupt(
            format!("FAT file {path}"),
            0,
            format!(
                "its directory entry says {size} bytes, its cluster chain holds {}",
                bytes.len()
            ),
        ));
    }
    Ok(Some(bytes))
}

type FatDir<'a> = fatfs::Dir<'a, ReadOnly>;
type FatEntry<'a> = fatfs::DirEntry<'a, ReadOnly>;

/// Directory entries looked at per directory before giving up: a FAT directory holds at most
/// 65,536 entries, and a cluster chain that loops back on itself must not keep us forever.
const MAX_DIR_ENTRIES: usize = 65_536;

/// The entry named `name` (case-insensitive, long or short name) in `dir`.
fn find<'a>(dir: &FatDir<'a>, name: &str) -> Result<Option<FatEntry<'a>>> {
    for entry in dir.iter().take(MAX_DIR_ENTRIES) {
        let entry = entry.map_err(|e| Error::corrupt("FAT directory", 0, e.to_string()))?;
        if entry.file_name().eq_ignore_ascii_case(name)
            || entry.short_file_name().eq_ignore_ascii_case(name)
        {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

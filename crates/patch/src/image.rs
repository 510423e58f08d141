//! The one place winre opens a disk image for writing.
//!
//! Refuses block and character devices (unless the caller passes `allow_device`), containers
//! whose guest bytes are not stored 1:1 in the file (only raw images and fixed VHDs are written),
//! and images that another process holds open or locked: the file is locked with `flock`
//! (exclusive, non-blocking) and `/proc/*/fd` is searched for other openers.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use winre_disk::container::{self, Format};
use winre_readat::{FileReader, ReadAt};

use crate::error::{Error, Result};

/// Size of a VHD footer, which a fixed VHD keeps after the guest bytes.
const VHD_FOOTER_BYTES: u64 = 512;

/// How the guest disk's bytes sit in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    /// The file is the disk.
    Raw,
    /// The disk, then a 512-byte footer.
    FixedVhd,
    /// A block device (only with `allow_device`).
    Device,
}

/// Identity of the image file, kept in the journal so `undo` restores the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// File length in bytes.
    pub len: u64,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// A disk image opened read-write and locked.
#[derive(Debug)]
pub struct ImageFile {
    file: File,
    path: PathBuf,
    kind: ImageKind,
    disk_len: u64,
}

impl ImageFile {
    /// Opens `path` for writing. Refuses devices unless `allow_device`, containers other than
    /// raw and fixed VHD (with the `qemu-img convert` command that makes a raw copy), and a file
    /// that is locked or open in another process.
    pub fn open(path: &Path, allow_device: bool) -> Result<Self> {
        let meta = std::fs::metadata(path)?;
        let ft = meta.file_type();
        let is_device = ft.is_block_device() || ft.is_char_device();
        if is_device && !allow_device {
            return Err(Error::Refused(format!(
                "{} is a device; winre writes image files only (pass --device to write a device you have unmounted)",
                path.display()
            )));
        }
        if !is_device && !ft.is_file() {
            return Err(Error::Refused(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Refused(format!(
                    "{} is locked by another process (another winre, or a VM?)",
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::Io(e)),
        }
        if let Some(pid) = other_opener(meta.dev(), meta.ino()) {
            return Err(Error::Refused(format!(
                "{} is open in process {pid}; close it (stop the VM) first",
                path.display()
            )));
        }
        let reader = FileReader::new(file.try_clone()?)?;
        let file_len = reader.len();
        let (kind, disk_len) = if is_device {
            (ImageKind::Device, file_len)
        } else {
            match container::detect(&reader)? {
                Format::Raw => (ImageKind::Raw, file_len),
                Format::Vhd => {
                    let disk = container::open_reader(
                        std::sync::Arc::new(reader),
                        &container::OpenOptions::default(),
                    )?;
                    if disk.info.variant != "fixed" {
                        return Err(not_writable(path, &format!("a {} VHD", disk.info.variant)));
                    }
                    (
                        ImageKind::FixedVhd,
                        file_len.saturating_sub(VHD_FOOTER_BYTES),
                    )
                }
                other => return Err(not_writable(path, &format!("{other:?}"))),
            }
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            kind,
            disk_len,
        })
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw, fixed VHD or device.
    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    /// Length of the guest disk in bytes.
    pub fn disk_len(&self) -> u64 {
        self.disk_len
    }

    /// The file's identity now.
    pub fn identity(&self) -> Result<Identity> {
        let m = self.file.metadata()?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
            len: if self.kind == ImageKind::Device {
                self.disk_len
            } else {
                m.len()
            },
            mtime_sec: m.mtime(),
            mtime_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        })
    }

    /// Reads guest bytes.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    /// Writes guest bytes (only within the disk).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        self.file.write_all_at(buf, offset)
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<()> {
        winre_readat::check_bounds(offset, len, self.disk_len)
    }

    /// Sets the length of a raw image file (grow or truncate). Refused for VHDs and devices.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        if self.kind != ImageKind::Raw {
            return Err(Error::Unsupported(format!(
                "changing the size of a {:?} image; convert it to raw first",
                self.kind
            )));
        }
        self.file.set_len(len)?;
        self.disk_len = len;
        Ok(())
    }

    /// Flushes the file's data and metadata to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all()?;
        Ok(())
    }

    /// A read-only view of the guest disk for the readers of winre-disk and winre-core.
    pub fn reader(&self) -> Result<std::sync::Arc<dyn ReadAt>> {
        let reader = FileReader::new(self.file.try_clone()?)?;
        Ok(std::sync::Arc::new(winre_readat::Slice::new(
            reader,
            0,
            self.disk_len,
        )?))
    }
}

fn not_writable(path: &Path, what: &str) -> Error {
    Error::Unsupported(format!(
        "{} is {what}; winre writes raw images and fixed VHDs only. Convert it, resize the copy, and convert back: \
         qemu-img convert -O raw {} disk.raw",
        path.display(),
        path.display()
    ))
}

/// A process other than this one that has the file (dev, ino) open, found through `/proc/*/fd`.
/// Processes we may not inspect are skipped: this is a best-effort check next to the lock.
fn other_opener(dev: u64, ino: u64) -> Option<u32> {
    let me = std::process::id();
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(m) = std::fs::metadata(fd.path()) {
                if m.dev() == dev && m.ino() == ino {
                    return Some(pid);
                }
            }
        }
    }
    None
}

//! The one place winre opens a disk image for writing.
//!
//! Raw images, fixed VHDs and block devices are written as files (guest byte `i` is file byte
//! `i`); qcow2, VHDX, VMDK (sparse, flat, split) and dynamic or differencing VHDs are written
//! through qemu-nbd ([`crate::guest`]). Refused: devices unless the caller passes
//! `allow_device`, a device that is mounted, held (LVM, RAID) or open exclusively elsewhere,
//! containers qemu cannot write in place (streamOptimized VMDK; qcow2 compressed clusters in a
//! region to be written), E01, and images that another process holds open or locked: the file
//! is locked with `flock` (exclusive, non-blocking) and `/proc/*/fd` is searched for other
//! openers.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use winre_disk::container::{self, Format};
use winre_readat::{FileReader, ReadAt};

use crate::error::{Error, Result};
use crate::guest::{GuestWriter, NbdGuest};
use crate::journal::Region;

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
    /// qcow2, written through qemu-nbd.
    Qcow2,
    /// VHDX, written through qemu-nbd.
    Vhdx,
    /// VMDK (monolithicSparse, monolithicFlat, twoGbMaxExtent*), written through qemu-nbd.
    Vmdk,
    /// A dynamic or differencing VHD, written through qemu-nbd (qemu's `vpc` driver).
    DynamicVhd,
}

impl ImageKind {
    /// qemu's driver name for the kinds written through qemu-nbd.
    pub fn qemu_format(self) -> Option<&'static str> {
        match self {
            Self::Raw | Self::FixedVhd | Self::Device => None,
            Self::Qcow2 => Some("qcow2"),
            Self::Vhdx => Some("vhdx"),
            Self::Vmdk => Some("vmdk"),
            Self::DynamicVhd => Some("vpc"),
        }
    }
}

/// Identity of the image file, kept in the journal so `undo` restores the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// File length in bytes (the guest length for devices and containers written by qemu).
    pub len: u64,
    /// Modification time, seconds (0 for containers written by qemu: qemu updates their
    /// headers when it opens them, so the time says nothing about the guest bytes).
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// A disk image opened read-write and locked.
#[derive(Debug)]
pub struct ImageFile {
    /// Held for the lock and the identity; the guest route may be another process.
    file: File,
    guest: GuestWriter,
    path: PathBuf,
    kind: ImageKind,
    /// Guest ranges stored compressed in a qcow2 (qemu would rewrite them elsewhere).
    compressed: Vec<(u64, u64)>,
}

impl ImageFile {
    /// Opens `path` for writing. Refuses devices unless `allow_device`, devices in use,
    /// containers qemu cannot write in place (with the command that converts them), and a file
    /// that is locked or open in another process.
    pub fn open(path: &Path, allow_device: bool) -> Result<Self> {
        let meta = std::fs::metadata(path)?;
        let ft = meta.file_type();
        let is_device = ft.is_block_device();
        if (is_device || ft.is_char_device()) && !allow_device {
            return Err(Error::Refused(format!(
                "{} is a device; winre writes image files only (pass --device to write a device you have unmounted)",
                path.display()
            )));
        }
        if !is_device && !ft.is_file() {
            return Err(Error::Refused(format!(
                "{} is not a regular file or a block device",
                path.display()
            )));
        }
        if is_device {
            crate::device::refuse_in_use(path, meta.rdev())?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if is_device {
            // On a block device O_EXCL fails with EBUSY while the kernel or another process
            // holds it exclusively (mounted, LVM, RAID, another O_EXCL opener).
            options.custom_flags(libc::O_EXCL);
        }
        let mut file = options.open(path).map_err(|e| {
            if is_device && e.raw_os_error() == Some(libc::EBUSY) {
                Error::Refused(format!(
                    "{} is in use (mounted, held by LVM or RAID, or opened exclusively by another process)",
                    path.display()
                ))
            } else {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("opening {} for writing: {e}", path.display()),
                ))
            }
        })?;
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
        let kind = if is_device {
            ImageKind::Device
        } else {
            kind_of(path, &file)?
        };
        let file_len = if is_device {
            file.seek(io::SeekFrom::End(0))?
        } else {
            meta.len()
        };
        let mut compressed = Vec::new();
        let guest = match kind.qemu_format() {
            None => GuestWriter::File {
                file: Arc::new(file.try_clone()?),
                len: if kind == ImageKind::FixedVhd {
                    file_len.saturating_sub(VHD_FOOTER_BYTES)
                } else {
                    file_len
                },
            },
            Some(format) => {
                // An absolute path: qemu never reads a "protocol:" prefix into it.
                let canonical = std::fs::canonicalize(path)?;
                if kind == ImageKind::Qcow2 {
                    compressed = crate::qemu::compressed_extents(&canonical, format)?;
                }
                GuestWriter::Nbd(NbdGuest::start(&canonical, format)?)
            }
        };
        Ok(Self {
            file,
            guest,
            path: path.to_path_buf(),
            kind,
            compressed,
        })
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw, fixed VHD, device, or a container written through qemu-nbd.
    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    /// Length of the guest disk in bytes.
    pub fn disk_len(&self) -> u64 {
        self.guest.len()
    }

    /// The route guest bytes take (file or qemu-nbd).
    pub fn guest(&self) -> &GuestWriter {
        &self.guest
    }

    /// The file's identity now.
    pub fn identity(&self) -> Result<Identity> {
        let m = self.file.metadata()?;
        let through_qemu = self.kind.qemu_format().is_some();
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
            len: if self.kind == ImageKind::Device || through_qemu {
                self.disk_len()
            } else {
                m.len()
            },
            mtime_sec: if through_qemu { 0 } else { m.mtime() },
            mtime_nsec: if through_qemu {
                0
            } else {
                u32::try_from(m.mtime_nsec()).unwrap_or(0)
            },
        })
    }

    /// Refuses a patch whose regions qemu cannot write in place: qcow2 clusters stored
    /// compressed (qemu would write them elsewhere, uncompressed), with the command that
    /// rewrites the image without compression.
    pub fn check_writable(&self, regions: &[Region]) -> Result<()> {
        for r in regions {
            let end = r.offset.saturating_add(r.len);
            if let Some(&(at, len)) = self
                .compressed
                .iter()
                .find(|&&(at, len)| at < end && r.offset < at.saturating_add(len))
            {
                return Err(Error::Unsupported(format!(
                    "{} stores guest bytes {at}..{} as compressed qcow2 clusters, which this resize would rewrite; \
                     make an uncompressed copy first: qemu-img convert -O qcow2 {} uncompressed.qcow2",
                    self.path.display(),
                    at.saturating_add(len),
                    self.path.display()
                )));
            }
        }
        Ok(())
    }

    /// Reads guest bytes.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.guest.read_at(offset, buf)
    }

    /// Writes guest bytes (only within the disk).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.guest.write_at(offset, buf)
    }

    /// Sets the length of a raw image file (grow or truncate). Refused for VHDs, devices and
    /// containers.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        if self.kind != ImageKind::Raw {
            return Err(Error::Unsupported(format!(
                "changing the size of a {:?} image; convert it to raw first",
                self.kind
            )));
        }
        self.guest.set_file_len(len)?;
        Ok(())
    }

    /// Flushes the guest's data and metadata to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.guest.sync()?;
        Ok(())
    }

    /// A read-only view of the guest disk, through the write route, for the readers of
    /// winre-disk and winre-core.
    pub fn reader(&self) -> Result<Arc<dyn ReadAt>> {
        Ok(self.guest.reader())
    }

    /// Flushes and closes the image; for a container, waits for qemu-nbd to close it and exit.
    /// Dropping the image does the same but cannot report a failure.
    pub fn close(self) -> Result<()> {
        self.guest.close()
    }
}

/// How the guest bytes of the regular file at `path` are stored.
fn kind_of(path: &Path, file: &File) -> Result<ImageKind> {
    let reader = FileReader::new(file.try_clone()?)?;
    Ok(match container::detect(&reader)? {
        Format::Raw => ImageKind::Raw,
        Format::Vhd => {
            match container::open_reader(Arc::new(reader), &container::OpenOptions::default()) {
                Ok(disk) if disk.info.variant == "fixed" => ImageKind::FixedVhd,
                Ok(_) | Err(winre_disk::Error::NeedsParent { .. }) => ImageKind::DynamicVhd,
                Err(e) => return Err(e.into()),
            }
        }
        Format::Vhdx => ImageKind::Vhdx,
        Format::Qcow2 => ImageKind::Qcow2,
        Format::Vmdk => {
            match container::open(path, &container::OpenOptions::default()) {
                Ok(disk) if disk.info.variant.eq_ignore_ascii_case("streamOptimized") => {
                    return Err(Error::Unsupported(format!(
                        "{} is a streamOptimized VMDK, which cannot be written in place; convert it, resize the copy: \
                         qemu-img convert -f vmdk -O vmdk -o subformat=monolithicSparse {} sparse.vmdk",
                        path.display(),
                        path.display()
                    )))
                }
                Ok(_) | Err(winre_disk::Error::NeedsParent { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            ImageKind::Vmdk
        }
        Format::Ewf => return Err(not_writable(path, "an E01 (Expert Witness) image")),
    })
}

fn not_writable(path: &Path, what: &str) -> Error {
    Error::Unsupported(format!(
        "{} is {what}, which winre does not write; export a raw copy and resize that: \
         ewfexport -t disk -f raw {}",
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

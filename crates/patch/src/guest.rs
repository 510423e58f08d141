//! The route guest bytes take to and from the image while it is patched: the file itself (raw
//! image, fixed VHD, block device: guest byte `i` is file byte `i`) or qemu-nbd (qcow2, VHDX,
//! VMDK, dynamic VHD: qemu, the reference implementation of those formats, maps guest bytes to
//! clusters). The journaled apply and `undo` read, write and read back through the same route,
//! so what is journaled is exactly what qemu will show the VM.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use winre_readat::ReadAt;

use crate::error::Result;
use crate::nbd::NbdClient;
use crate::qemu::QemuNbd;

/// Where guest bytes are written.
#[derive(Debug)]
pub enum GuestWriter {
    /// Guest byte `i` is byte `i` of the file or device; `len` guest bytes.
    File {
        /// The open file (shared with readers).
        file: Arc<File>,
        /// Guest bytes.
        len: u64,
    },
    /// Through qemu-nbd.
    Nbd(NbdGuest),
}

/// A qemu-nbd session: the client (first, so it is dropped, and the socket closed, before the
/// server is waited for) and the server process.
#[derive(Debug)]
pub struct NbdGuest {
    client: Arc<Mutex<NbdClient>>,
    server: QemuNbd,
    len: u64,
}

impl NbdGuest {
    /// Starts qemu-nbd on `image` as `format` (qemu's driver name) and connects.
    pub fn start(image: &Path, format: &str) -> Result<Self> {
        let (server, client) = QemuNbd::start(image, format)?;
        let len = client.size();
        Ok(Self {
            client: Arc::new(Mutex::new(client)),
            server,
            len,
        })
    }

    /// The qemu-nbd process id.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.pid()
    }
}

fn lock(client: &Mutex<NbdClient>) -> io::Result<MutexGuard<'_, NbdClient>> {
    client
        .lock()
        .map_err(|_| io::Error::other("NBD connection poisoned by a failed request"))
}

impl GuestWriter {
    /// Guest bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Nbd(n) => n.len,
        }
    }

    /// True for an empty guest disk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads guest bytes.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        winre_readat::check_bounds(offset, buf.len(), self.len())?;
        match self {
            Self::File { file, .. } => file.read_exact_at(buf, offset),
            Self::Nbd(n) => lock(&n.client)?.read_at(offset, buf),
        }
    }

    /// Writes guest bytes (only within the guest disk).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        winre_readat::check_bounds(offset, buf.len(), self.len())?;
        match self {
            Self::File { file, .. } => file.write_all_at(buf, offset),
            Self::Nbd(n) => lock(&n.client)?.write_at(offset, buf),
        }
    }

    /// Makes every write so far durable: fsync of the file, or an NBD flush (qemu flushes the
    /// container file and its metadata).
    pub fn sync(&self) -> io::Result<()> {
        match self {
            Self::File { file, .. } => file.sync_all(),
            Self::Nbd(n) => lock(&n.client)?.flush(),
        }
    }

    /// Sets the guest length of a file route (the caller grows or cuts the file).
    pub fn set_file_len(&mut self, new_len: u64) -> io::Result<()> {
        match self {
            Self::File { file, len } => {
                file.set_len(new_len)?;
                *len = new_len;
                Ok(())
            }
            Self::Nbd(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the guest size of a container served by qemu-nbd cannot change (qemu-img resize it first)",
            )),
        }
    }

    /// Bytes the qemu-nbd process has caused to be written to storage so far (its
    /// `/proc/PID/io` `write_bytes`), for the benchmark; `None` for the file route.
    pub fn server_write_bytes(&self) -> Option<u64> {
        let Self::Nbd(n) = self else {
            return None;
        };
        let io = std::fs::read_to_string(format!("/proc/{}/io", n.server_pid()?)).ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
    }

    /// A read-only view of the guest disk through the same route.
    pub fn reader(&self) -> Arc<dyn ReadAt> {
        match self {
            Self::File { file, len } => Arc::new(FileGuestReader {
                file: Arc::clone(file),
                len: *len,
            }),
            Self::Nbd(n) => Arc::new(NbdGuestReader {
                client: Arc::clone(&n.client),
                len: n.len,
            }),
        }
    }

    /// Flushes and ends the route: for qemu-nbd, a flush, the NBD disconnect, and the wait for
    /// qemu-nbd to close the image and exit successfully.
    pub fn close(self) -> Result<()> {
        match self {
            Self::File { file, .. } => {
                file.sync_all()?;
                Ok(())
            }
            Self::Nbd(mut n) => {
                {
                    let mut client = lock(&n.client)?;
                    client.flush()?;
                    client.disconnect()?;
                }
                n.server.stop()
            }
        }
    }
}

/// Reads guest bytes straight from the file (devices included, whose metadata length is 0).
struct FileGuestReader {
    file: Arc<File>,
    len: u64,
}

impl ReadAt for FileGuestReader {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        winre_readat::check_bounds(offset, buf.len(), self.len)?;
        self.file.read_exact_at(buf, offset)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Reads guest bytes through the NBD connection.
struct NbdGuestReader {
    client: Arc<Mutex<NbdClient>>,
    len: u64,
}

impl ReadAt for NbdGuestReader {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        lock(&self.client)?.read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

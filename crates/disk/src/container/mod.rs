//! Disk image containers. Each format module turns a container file into a `ReadAt` over the
//! guest's bytes; [`open`] picks the module by the file's magic, never by its name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use winre_readat::ReadAt;

use crate::Result;

pub mod ewf;
mod lru_cache;
pub mod raw;
pub mod vmdk;

/// The container formats winre reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A plain image of the disk (dd).
    Raw,
    /// Virtual PC / Hyper-V VHD (fixed, dynamic, differencing).
    Vhd,
    /// Hyper-V VHDX.
    Vhdx,
    /// VMware VMDK (monolithic sparse, streamOptimized, flat extents).
    Vmdk,
    /// QEMU qcow2.
    Qcow2,
    /// Expert Witness Format (E01), as written by ewfacquire.
    Ewf,
}

/// What a container says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    /// The format.
    pub format: Format,
    /// The variant within the format, e.g. "dynamic", "streamOptimized", "v3".
    pub variant: String,
    /// Size of the guest disk in bytes.
    pub virtual_size: u64,
    /// Logical sector size of the guest disk (512 or 4096).
    pub sector_size: u32,
    /// Bytes of guest data the container actually stores, where it knows.
    pub allocated_bytes: Option<u64>,
    /// Things worth telling (a non-empty VHDX log, an E01 without a stored hash, ...).
    pub notes: Vec<String>,
}

/// An opened container: the guest disk as a `ReadAt`, plus what the container said about it.
#[derive(Clone)]
pub struct Disk {
    /// The guest's bytes, `virtual_size` long. Safe to read from many threads.
    pub reader: Arc<dyn ReadAt>,
    /// Format facts.
    pub info: ContainerInfo,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// How to open a container.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The parent of a differencing VHD or the backing file of a qcow2.
    pub parent: Option<PathBuf>,
    /// Check the container's own stored hash (E01 MD5) while opening; reads the whole image.
    pub verify_container: bool,
}

/// Opens the container at `path`, read-only, recognising its format by magic.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Disk> {
    let mut magic = [0u8; 32];
    let head = read_head(path, &mut magic)?;
    if head.starts_with(&vmdk::SPARSE_MAGIC) || head.starts_with(vmdk::DESCRIPTOR_SIGNATURE) {
        return vmdk::open(path, options);
    }
    if head.starts_with(ewf::SIGNATURE) {
        return ewf::open(path, options);
    }
    raw::open(path)
}

/// The first bytes of the file (fewer when the file is shorter).
fn read_head<'a>(path: &Path, buf: &'a mut [u8]) -> Result<&'a [u8]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match file.read(rest)? {
            0 => break,
            n => filled = filled.saturating_add(n),
        }
    }
    Ok(buf.get(..filled).unwrap_or_default())
}

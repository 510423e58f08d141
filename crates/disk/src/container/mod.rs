//! Disk image containers. Each format module turns a container file into a `ReadAt` over the
//! guest's bytes; [`open`] picks the module by the file's magic, never by its name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use winre_readat::{FileReader, ReadAt};

use crate::{Error, Result};

mod crc32c;
pub mod ewf;
mod lru_cache;
mod mapped;
pub mod qcow2;
pub mod raw;
pub mod vhd;
pub mod vhdx;
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

/// Opens the container at `path`, read-only, recognising its format by magic (see [`detect`]).
///
/// A differencing VHD / VHDX or a qcow2 with a backing file fails with [`Error::NeedsParent`]
/// unless `options.parent` names the parent, which is then opened the same way (its own format
/// detected by magic). Formats this build does not read fail with [`Error::Unsupported`].
pub fn open(path: &Path, options: &OpenOptions) -> Result<Disk> {
    let file = FileReader::open(path)?;
    match detect(&file)? {
        // Their extents and segments are separate files, found next to this one.
        Format::Vmdk => vmdk::open(path, options),
        Format::Ewf => ewf::open(path, options),
        _ => open_reader(Arc::new(file), options),
    }
}

/// Like [`open`], over any byte source (a file wrapped in a read counter, a buffer in a test).
/// VMDK and E01 are refused here: they may span several files, so they open by path.
pub fn open_reader(file: Arc<dyn ReadAt>, options: &OpenOptions) -> Result<Disk> {
    match detect(file.as_ref())? {
        Format::Raw => Ok(raw::from_reader(file)),
        Format::Vhd => vhd::open(file, options),
        Format::Vhdx => vhdx::open(file, options),
        Format::Qcow2 => qcow2::open(file, options),
        Format::Vmdk | Format::Ewf => Err(Error::Unsupported(
            "VMDK and E01 images open by path only (container::open)".into(),
        )),
    }
}

/// Magic numbers, each at the start of the file unless said otherwise.
// Sources: VHD spec (Microsoft "Virtual Hard Disk Image Format Specification" 1.0, footer
// cookie), MS-VHDX 2.2.1 (file type identifier), QEMU docs/interop/qcow2.txt, VMware "Virtual
// Disk Format 5.0" (sparse header magic, descriptor), libewf documentation (EVF signature).
const VHDX_MAGIC: &[u8] = b"vhdxfile";
const QCOW2_MAGIC: &[u8] = b"QFI\xfb";
/// The VHD footer's cookie: in the last 512 bytes, and also in the first 512 of a dynamic VHD.
pub(crate) const VHD_COOKIE: &[u8] = b"conectix";

/// Recognises the container format from the file's first and last bytes (one read each).
/// Anything without a known magic is raw.
pub fn detect(file: &dyn ReadAt) -> Result<Format> {
    let len = file.len();
    let mut head = [0u8; 64];
    let head_len = usize::try_from(len.min(64)).unwrap_or(64);
    let head = head.get_mut(..head_len).unwrap_or_default();
    file.read_exact_at(0, head)?;
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(VHDX_MAGIC) {
        return Ok(Format::Vhdx);
    }
    if starts(QCOW2_MAGIC) {
        return Ok(Format::Qcow2);
    }
    if starts(&vmdk::SPARSE_MAGIC) || starts(vmdk::DESCRIPTOR_SIGNATURE) {
        return Ok(Format::Vmdk);
    }
    if starts(ewf::SIGNATURE) {
        return Ok(Format::Ewf);
    }
    // The footer copy at the start only exists in dynamic and differencing VHDs; a truncated
    // one has lost its last footer but keeps this copy.
    if starts(VHD_COOKIE) {
        return Ok(Format::Vhd);
    }
    if let Some(footer_at) = len.checked_sub(vhd::FOOTER_BYTES) {
        let mut cookie = [0u8; 8];
        file.read_exact_at(footer_at, &mut cookie)?;
        if cookie == VHD_COOKIE {
            return Ok(Format::Vhd);
        }
    }
    Ok(Format::Raw)
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

    #[test]
    fn detects_by_magic_not_name() {
        let mut vhd = vec![0u8; 4096];
        vhd[4096 - 512..4096 - 504].copy_from_slice(b"conectix");
        assert_eq!(detect(&vhd).unwrap(), Format::Vhd);
        let mut q = vec![0u8; 100];
        q[..4].copy_from_slice(b"QFI\xfb");
        assert_eq!(detect(&q).unwrap(), Format::Qcow2);
        assert_eq!(detect(&b"vhdxfile".to_vec()).unwrap(), Format::Vhdx);
        assert_eq!(
            detect(&b"# Disk DescriptorFile\n".to_vec()).unwrap(),
            Format::Vmdk
        );
        assert_eq!(
            detect(&b"EVF\x09\x0d\x0a\xff\x00rest".to_vec()).unwrap(),
            Format::Ewf
        );
        assert_eq!(detect(&vec![0u8; 10]).unwrap(), Format::Raw);
        assert_eq!(detect(&Vec::new()).unwrap(), Format::Raw);
    }
}

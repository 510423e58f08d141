//! Disk image containers. Each format module turns a container file into a `ReadAt` over the
//! guest's bytes; [`open`] picks the module by the file's magic, never by its name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use winre_readat::{FileReader, ReadAt};

use crate::{Error, Result};
use chain::Chain;
pub use chain::{ChainLink, MAX_CHAIN_DEPTH};

pub mod chain;
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
    /// The parents opened below this image (differencing chains), nearest first; empty for a
    /// disk that stands alone.
    pub chain: Vec<ChainLink>,
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
    /// Parents to use instead of the names the chain records (qcow2 backing file, VHD / VHDX
    /// parent locator, VMDK parentFileNameHint), nearest first: the first replaces the top's
    /// parent, the second that parent's, and so on; below them the recorded names are followed
    /// (see [`chain`]).
    pub parents: Vec<PathBuf>,
    /// Check the container's own stored hash (E01 MD5) while opening; reads the whole image.
    pub verify_container: bool,
}

/// Opens the container at `path` (a regular file or a block device), read-only, recognising its
/// format by magic (see [`detect`]).
///
/// A differencing VHD / VHDX / VMDK or a qcow2 with a backing file opens its parents too: those
/// in `options.parents` first, then the ones its chain names, under the rules of [`chain`]; a
/// parent that cannot be found that way fails with [`Error::NeedsParent`]. Formats this build
/// does not read fail with [`Error::Unsupported`] naming them.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Disk> {
    open_in(path, options, &Chain::top(Some(path), options))
}

/// [`open`] for an image inside a chain being opened.
fn open_in(path: &Path, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    let file = FileReader::open(path)?;
    match detect(&file)? {
        // Their extents and segments are separate files, found next to this one.
        Format::Vmdk => vmdk::open_in(path, options, chain),
        Format::Ewf => ewf::open(path, options),
        _ => open_reader_in(Arc::new(file), options, chain),
    }
}

/// Like [`open`], over any byte source (a file wrapped in a read counter, a buffer in a test).
/// VMDK and E01 are refused here: they may span several files, so they open by path. Without a
/// path, a differencing image's parents are only those in `options.parents`.
pub fn open_reader(file: Arc<dyn ReadAt>, options: &OpenOptions) -> Result<Disk> {
    open_reader_in(file, options, &Chain::top(None, options))
}

/// Like [`open_reader`], for a byte source read from the image at `path` (a file wrapped in a
/// read counter): its parents are looked for next to `path`, as [`open`] does.
pub fn open_reader_for(file: Arc<dyn ReadAt>, path: &Path, options: &OpenOptions) -> Result<Disk> {
    open_reader_in(file, options, &Chain::top(Some(path), options))
}

fn open_reader_in(file: Arc<dyn ReadAt>, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    match detect(file.as_ref())? {
        Format::Raw => Ok(raw::from_reader(file)),
        Format::Vhd => vhd::open_in(file, options, chain),
        Format::Vhdx => vhdx::open_in(file, options, chain),
        Format::Qcow2 => qcow2::open_in(file, options, chain),
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

/// Containers and wrappers recognised by their magic but not read: refused by name rather than
/// taken for a raw disk. (name, offset, magic).
// Sources: VirtualBox VDI header (signature 0xBEDA107F at 0x40), Parallels "Image format
// specification" (both header strings), QEMU docs/interop (QED, qcow1 is refused by qcow2.rs),
// libewf "EWF2 format" (EVF2 / LEF2), libewf "EWF" (LVF, the logical L01), AFFLIB (AFF10),
// Apple sparse image format headers as read by libyal and Dissect ("shdw" ASIF), Bochs
// ("Bochs Virtual HD Image"), cloop (its shell preamble), VMware COWD (VMFSSPARSE), LUKS
// (cryptsetup on-disk format), and the gzip / xz / zstd / bzip2 / zip signatures.
const REFUSED_MAGICS: &[(&str, usize, &[u8])] = &[
    ("VirtualBox VDI", 0x40, &[0x7f, 0x10, 0xda, 0xbe]),
    ("Parallels HDD", 0, b"WithoutFreeSpace"),
    ("Parallels HDD", 0, b"WithouFreSpacExt"),
    ("QED (QEMU enhanced disk)", 0, b"QED\0"),
    ("EWF2 (Ex01) evidence file", 0, b"EVF2\r\n\x81\0"),
    ("EWF2 logical evidence file (Lx01)", 0, b"LEF2\r\n\x81\0"),
    (
        "EWF logical evidence file (L01)",
        0,
        b"LVF\x09\x0d\x0a\xff\0",
    ),
    ("AFF (Advanced Forensic Format)", 0, b"AFF10\r\n\0"),
    ("Apple sparse image (ASIF)", 0, b"shdw"),
    ("Bochs disk image", 0, b"Bochs Virtual HD Image"),
    ("VMware VMFS sparse (COWD)", 0, b"COWD"),
    ("LUKS-encrypted volume", 0, b"LUKS\xba\xbe"),
    ("gzip-compressed file", 0, &[0x1f, 0x8b]),
    ("xz-compressed file", 0, b"\xfd7zXZ\0"),
    ("zstd-compressed file", 0, &[0x28, 0xb5, 0x2f, 0xfd]),
    ("bzip2-compressed file", 0, b"BZh"),
    ("ZIP archive (an AFF4 image?)", 0, b"PK\x03\x04"),
];

/// How many bytes of the start [`detect`] looks at.
const HEAD_BYTES: u64 = 512;

/// Recognises the container format from the file's first and last bytes (one read each).
/// Anything without a known magic is raw; a known format winre does not read (VDI, Parallels,
/// QED, EWF2, AFF, ASIF, dmg, cloop, compressed files, ...) is [`Error::Unsupported`] naming it.
pub fn detect(file: &dyn ReadAt) -> Result<Format> {
    let len = file.len();
    let mut head = [0u8; HEAD_BYTES as usize];
    let head_len = usize::try_from(len.min(HEAD_BYTES)).unwrap_or(0);
    let head = head.get_mut(..head_len).unwrap_or_default();
    file.read_exact_at(0, head)?;
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(VHDX_MAGIC) {
        return Ok(Format::Vhdx);
    }
    if starts(QCOW2_MAGIC) {
        return Ok(Format::Qcow2);
    }
    if starts(&vmdk::SPARSE_MAGIC)
        || starts(&vmdk::SESPARSE_MAGIC)
        || starts(vmdk::DESCRIPTOR_SIGNATURE)
    {
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
    let refuse = |name: &str| {
        Err(Error::Unsupported(format!(
            "{name}: this format is recognised by its magic but not read by winre (convert it to raw, qcow2, VHD(X) or VMDK)"
        )))
    };
    for (name, at, magic) in REFUSED_MAGICS {
        if head.get(*at..).is_some_and(|rest| rest.starts_with(magic)) {
            return refuse(name);
        }
    }
    // cloop: a shell script preamble naming the cloop module.
    if starts(b"#!/bin/sh") && head.windows(5).any(|w| w == b"cloop") {
        return refuse("cloop compressed image");
    }
    if let Some(footer_at) = len.checked_sub(vhd::FOOTER_BYTES) {
        let mut tail = [0u8; vhd::FOOTER_BYTES as usize];
        file.read_exact_at(footer_at, &mut tail)?;
        if tail.starts_with(VHD_COOKIE) {
            return Ok(Format::Vhd);
        }
        // Apple UDIF (dmg): the "koly" trailer in the last 512 bytes.
        if tail.starts_with(b"koly") {
            return refuse("Apple disk image (dmg, UDIF)");
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
        let mut sesparse = vec![0u8; 600];
        sesparse[..8].copy_from_slice(&0xcafe_babe_u64.to_le_bytes());
        assert_eq!(detect(&sesparse).unwrap(), Format::Vmdk);
        assert_eq!(detect(&vec![0u8; 10]).unwrap(), Format::Raw);
        assert_eq!(detect(&Vec::new()).unwrap(), Format::Raw);
    }

    #[test]
    fn refuses_known_unsupported_formats_by_name() {
        let mut vdi = vec![0u8; 1024];
        vdi[..40].copy_from_slice(b"<<< Oracle VM VirtualBox Disk Image >>>\n");
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        let mut dmg = vec![0u8; 4096];
        dmg[4096 - 512..4096 - 508].copy_from_slice(b"koly");
        for (bytes, name) in [
            (vdi, "VDI"),
            (dmg, "dmg"),
            (b"QED\0rest of it".to_vec(), "QED"),
            (b"EVF2\r\n\x81\0rest".to_vec(), "EWF2"),
            (b"WithoutFreeSpace\0\0".to_vec(), "Parallels"),
            (b"shdw\0\0\0\x01".to_vec(), "ASIF"),
            (
                b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0\n".to_vec(),
                "cloop",
            ),
        ] {
            match detect(&bytes) {
                Err(Error::Unsupported(message)) => assert!(message.contains(name), "{message}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}

//! Journaled, undoable writes to Windows disk images: the `winre resize --apply` and `winre
//! undo` machinery.
//!
//! Read-only is the default everywhere else in winre; this crate is the one place that opens an
//! image for writing ([`image::ImageFile`]), whose guest bytes go through a
//! [`guest::GuestWriter`]: the file itself (raw, fixed VHD, block device) or qemu-nbd (qcow2,
//! VHDX, VMDK, dynamic VHD; [`qemu`], [`nbd`]). A patch carries out the steps of `winre plan`'s
//! plan (winre_core::plan::Step: grow the image file, shrink or grow an NTFS volume in place,
//! move a partition's bytes to a lower offset, set a partition's extent in the GPT or MBR,
//! rewrite ReAgent.xml's WinRE offset), checking each against the image. All writes are
//! computed first; then every byte they will overwrite is saved in a journal
//! ([`journal`]) that is synced before the first write; then the writes are made, read back, and
//! the journal is marked complete. [`undo::undo`] restores the image from the journal bit for
//! bit, also after a crash at any point.

#![forbid(unsafe_code)]

pub mod apply;
mod bytes;
pub mod device;
pub mod error;
pub mod guest;
pub mod image;
pub mod journal;
pub mod nbd;
pub mod ntfs;
pub mod qemu;
pub mod reagent;
pub mod table;
pub mod undo;

pub use error::{Error, Result};

/// Bytes to write at an offset (of the disk, a partition or a volume, as the producer says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Where.
    pub offset: u64,
    /// What.
    pub bytes: Vec<u8>,
}

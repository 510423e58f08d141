//! Read-only access to virtual disk images and their partition tables, for winre.
//!
//! [`container::open`] recognises a container by its magic (raw, VHD, VHDX, VMDK, qcow2, E01) and
//! returns a [`container::Disk`]: one [`winre_readat::ReadAt`] over the guest's bytes with its
//! logical sector size. [`partition::read_table`] reads GPT (validated by us, primary then backup)
//! or MBR from it.

#![forbid(unsafe_code)]

pub mod container;
pub mod error;
pub mod guid;
pub mod partition;
pub mod probe;

pub use error::{Error, Result};

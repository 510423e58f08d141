//! The WinRE domain for winre: reading NTFS, FAT and registry hives inside a disk image, locating
//! WinRE, its version and the free space of its volume.

#![forbid(unsafe_code)]

pub mod bcd;
pub mod error;
pub mod fat;
pub mod file_versions;
pub mod filetype;
pub mod history;
pub mod locate;
pub mod ntfs;
pub mod plan;
pub mod problem;
pub mod reagent;
pub mod report;
pub mod scan;
pub mod software;
pub mod updates;
pub mod version;

pub use error::{Error, Result};

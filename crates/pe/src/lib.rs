//! Reads the version resource (VS_VERSIONINFO) of a PE image — an .exe, .dll or .efi — from
//! untrusted bytes: the file and product versions in VS_FIXEDFILEINFO and the string tables
//! (FileVersion, ProductVersion, ...). This is what Microsoft's WinRE version scripts read from
//! `Windows\System32\winpeshl.exe` and `winload.efi`.
//!
//! Every offset is checked against the bytes given; nothing is allocated from a size read from
//! the file beyond what those bytes can hold.

#![forbid(unsafe_code)]

pub mod error;
pub mod image;
pub mod resource;
pub mod version_info;

pub use error::{Error, Result};
pub use image::PeImage;
pub use version_info::{FixedFileInfo, FourPartVersion, StringTable, Translation, VersionInfo};

/// Reads the first version resource of the PE image in `bytes`. Returns None when the image has
/// no resource table or no RT_VERSION resource; [`Error::NotPe`] when the bytes are not a PE
/// image; [`Error::Corrupt`] when a header, the resource tree or the resource itself points
/// outside the file or is malformed.
pub fn read_version_info(bytes: &[u8]) -> Result<Option<VersionInfo>> {
    let image = PeImage::parse(bytes)?;
    match resource::version_resource(&image)? {
        Some((offset, data)) => version_info::parse(data, offset).map(Some),
        None => Ok(None),
    }
}

//! WinRE's version as Microsoft's own scripts read it: from the version resources of files
//! inside image 1 of Winre.wim, not from the WIM XML. GetWinReVersion.ps1 (KB5042320) reads
//! `Windows\System32\winpeshl.exe`'s FileVersion revision; the KB5034957 patch script reads
//! `Windows\System32\winload.efi`'s ProductVersion (`winload.exe` on BIOS images). A forensic
//! report shows these beside the XML's SPBUILD and says when they disagree: a WIM whose XML was
//! edited, or which was serviced without updating its XML, reads differently to each tool.

use serde::Serialize;
use winre_pe::{read_version_info, FourPartVersion};
use winre_readat::ReadAt;
use winre_wim::{Image, Wim, WindowsVersion};

/// Largest PE file read into memory (winload.efi is about 2.5 MiB).
pub const MAX_PE_BYTES: u64 = 64 << 20;

/// Which part of a file's version resource Microsoft's script compares, per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparedField {
    /// VS_FIXEDFILEINFO's file version (winpeshl.exe).
    FileVersion,
    /// VS_FIXEDFILEINFO's product version (winload).
    ProductVersion,
}

/// The files read, in order, with the field each is judged by. winload.exe is read only when
/// there is no winload.efi.
pub const VERSION_FILES: [(&str, ComparedField); 3] = [
    (r"Windows\System32\winpeshl.exe", ComparedField::FileVersion),
    (
        r"Windows\System32\winload.efi",
        ComparedField::ProductVersion,
    ),
    (
        r"Windows\System32\winload.exe",
        ComparedField::ProductVersion,
    ),
];

/// One file's version resource, as found in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileVersion {
    /// Path inside the image, e.g. `Windows\System32\winpeshl.exe`.
    pub path: String,
    /// VS_FIXEDFILEINFO file version, e.g. "10.0.22621.3233".
    pub file_version: Option<String>,
    /// VS_FIXEDFILEINFO product version.
    pub product_version: Option<String>,
    /// The "FileVersion" string, e.g. "10.0.22621.3233 (WinBuild.160101.0800)".
    pub file_version_string: Option<String>,
    /// The field compared with the WIM XML.
    pub compared: ComparedField,
    /// Whether that field's BUILD and revision equal the XML's BUILD and SPBUILD; None when
    /// either side is missing.
    pub agrees_with_xml: Option<bool>,
    /// Why the file could not be read or parsed.
    pub error: Option<String>,
}

fn agrees(version: FourPartVersion, xml: WindowsVersion) -> bool {
    u32::from(version.major) == xml.major
        && u32::from(version.minor) == xml.minor
        && u32::from(version.build) == xml.build
        && u32::from(version.revision) == xml.spbuild
}

/// Reads the version resources of [`VERSION_FILES`] through `read_file`, which returns a file's
/// bytes (at most [`MAX_PE_BYTES`]), None when the file does not exist, or an error message.
/// Files that do not exist are left out; `xml` is the image's version from the WIM XML.
pub fn file_versions(
    xml: Option<WindowsVersion>,
    mut read_file: impl FnMut(&str) -> Result<Option<Vec<u8>>, String>,
) -> Vec<FileVersion> {
    let mut found = Vec::new();
    let mut have_winload = false;
    for (path, compared) in VERSION_FILES {
        if have_winload && path.ends_with("winload.exe") {
            continue;
        }
        let mut report = FileVersion {
            path: path.to_string(),
            file_version: None,
            product_version: None,
            file_version_string: None,
            compared,
            agrees_with_xml: None,
            error: None,
        };
        match read_file(path) {
            Ok(None) => continue,
            Err(e) => report.error = Some(e),
            Ok(Some(bytes)) => match read_version_info(&bytes) {
                Ok(None) => report.error = Some("no version resource".into()),
                Err(e) => report.error = Some(e.to_string()),
                Ok(Some(info)) => {
                    report.file_version_string = info.string("FileVersion").map(str::to_string);
                    if let Some(fixed) = &info.fixed {
                        report.file_version = Some(fixed.file_version.to_string());
                        report.product_version = Some(fixed.product_version.to_string());
                        let judged = match compared {
                            ComparedField::FileVersion => fixed.file_version,
                            ComparedField::ProductVersion => fixed.product_version,
                        };
                        report.agrees_with_xml = xml.map(|xml| agrees(judged, xml));
                    }
                }
            },
        }
        have_winload |= path.contains("winload");
        found.push(report);
    }
    found
}

/// The version files of image 1 of `wim`, judged against image 1's XML version. Err when image
/// 1's metadata cannot be read (a damaged WIM, or one this version cannot read).
pub fn wim_file_versions<R: ReadAt>(wim: &Wim<R>) -> Result<Vec<FileVersion>, String> {
    let image = Image::open(wim, 1).map_err(|e| format!("image 1: {e}"))?;
    let xml = wim.images().first().and_then(|x| x.version);
    Ok(file_versions(xml, |path| {
        let Some(dentry) = image.lookup(path) else {
            return Ok(None);
        };
        let Some(stream) = dentry.unnamed_stream() else {
            return Err("no data stream".to_string());
        };
        image
            .read_stream(wim, stream, MAX_PE_BYTES)
            .map(Some)
            .map_err(|e| e.to_string())
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_left_out_and_errors_kept() {
        let reports = file_versions(None, |path| {
            if path.ends_with("winpeshl.exe") {
                Ok(Some(b"MZ but nothing else".to_vec()))
            } else if path.ends_with("winload.exe") {
                Err("read failed".into())
            } else {
                Ok(None)
            }
        });
        assert_eq!(reports.len(), 2);
        assert!(reports[0].error.as_deref().unwrap().contains("PE"));
        assert_eq!(reports[1].path, r"Windows\System32\winload.exe");
        assert_eq!(reports[1].error.as_deref(), Some("read failed"));
    }
}

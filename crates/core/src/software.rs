//! The OS and WinRE versions the SOFTWARE hive records, in
//! `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
//!
//! `WinREVersion` (REG_SZ, e.g. 10.0.19041.5728) is what the WinRE update KBs tell users to check
//! (winre-facts.md section 2). It is a claim, not proof: scripts are known to write it by hand to
//! suppress an update, so the scan also reads the version inside Winre.wim. The other values are
//! context; note that Windows 11 still says "Windows 10" in ProductName.

use serde::Serialize;
use winre_hive::{Hive, ReadAt};

use crate::version::WinreVersion;

/// The path of the CurrentVersion key inside the SOFTWARE hive.
pub const CURRENT_VERSION_KEY: &str = r"Microsoft\Windows NT\CurrentVersion";

/// What `CurrentVersion` says; every field is `None` when its value is missing or of another type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoftwareVersions {
    /// `WinREVersion`, parsed.
    pub winre_version: Option<WinreVersion>,
    /// `WinREVersion` as stored, when it is present but not a four-part version.
    pub winre_version_unparsed: Option<String>,
    /// `CurrentBuildNumber` (REG_SZ), e.g. "19045".
    pub current_build_number: Option<String>,
    /// `UBR` (REG_DWORD), the OS update revision.
    pub ubr: Option<u32>,
    /// `ProductName`, e.g. "Windows 10 Pro".
    pub product_name: Option<String>,
    /// `DisplayVersion`, e.g. "22H2" (absent before 20H2; `ReleaseId` held it then).
    pub display_version: Option<String>,
    /// `EditionID`, e.g. "Professional".
    pub edition_id: Option<String>,
    /// Whether the hive file is consistent.
    pub hive: winre_hive::HiveHealth,
}

/// Reads the versions from an open SOFTWARE hive. A missing `CurrentVersion` key is an error
/// (the hive is not a SOFTWARE hive); missing values are `None`.
pub fn read_software_versions<R: ReadAt>(hive: &Hive<R>) -> crate::Result<SoftwareVersions> {
    let key = hive
        .key(CURRENT_VERSION_KEY)
        .map_err(hive_error)?
        .ok_or_else(|| {
            crate::Error::NotFound(format!("{CURRENT_VERSION_KEY} in the SOFTWARE hive"))
        })?;
    let string = |name: &str| -> crate::Result<Option<String>> {
        Ok(key
            .value(name)
            .map_err(hive_error)?
            .and_then(|v| v.as_string().ok()))
    };
    let raw = string("WinREVersion")?;
    let parsed = raw.as_deref().and_then(|s| s.parse::<WinreVersion>().ok());
    Ok(SoftwareVersions {
        winre_version: parsed,
        winre_version_unparsed: if parsed.is_none() { raw } else { None },
        current_build_number: string("CurrentBuildNumber")?,
        ubr: key
            .value("UBR")
            .map_err(hive_error)?
            .and_then(|v| v.as_u32().ok()),
        product_name: string("ProductName")?,
        display_version: string("DisplayVersion")?,
        edition_id: string("EditionID")?,
        hive: hive.health(),
    })
}

/// Maps a hive error into the crate's error, keeping the structure and offset.
pub fn hive_error(e: winre_hive::Error) -> crate::Error {
    match e {
        winre_hive::Error::Corrupt {
            what,
            offset,
            detail,
        } => crate::Error::corrupt(format!("SOFTWARE hive {what}"), offset, detail),
        winre_hive::Error::Unsupported(m) => crate::Error::Unsupported(m),
        winre_hive::Error::Io(e) => crate::Error::Io(e),
        other => crate::Error::corrupt("registry hive", 0, other.to_string()),
    }
}

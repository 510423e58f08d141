//! Whether Windows servicing waits for a restart, from the offline SOFTWARE hive and the OS volume.
//!
//! Markers, as Microsoft's own pending-reboot checks and its offline boot troubleshooting article
//! (learn.microsoft.com/troubleshoot/windows-client/performance/windows-boot-issues-troubleshooting:
//! "search for windows\winsxs\pending.xml", "search for the pendingxmlidentifier value") name them:
//! - `Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending` (a key),
//!   `PackagesPending` (a key with a subkey per package) and `SessionsPending` (a key);
//! - the value `PendingXmlIdentifier` (in the COMPONENTS hive; also looked for under the CBS key);
//! - `Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired` (a key);
//! - the file `Windows\WinSxS\pending.xml`.

use serde::Serialize;
use winre_hive::{Hive, ReadAt};
use winre_wim::xml::FileTime;

use crate::ntfs::NtfsVolume;
use crate::software::hive_error;

/// The CBS key inside the SOFTWARE hive.
pub const CBS_KEY: &str = r"Microsoft\Windows\CurrentVersion\Component Based Servicing";
/// Windows Update's reboot flag key inside the SOFTWARE hive.
pub const WU_REBOOT_KEY: &str =
    r"Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired";
/// The component store's pending transaction file.
pub const PENDING_XML_PATH: &str = r"\Windows\WinSxS\pending.xml";
/// The COMPONENTS hive.
pub const COMPONENTS_HIVE_PATH: &str = r"\Windows\System32\config\COMPONENTS";

/// One marker that says servicing waits for a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingMarker {
    /// What it is: a registry path (`SOFTWARE\...`, `COMPONENTS\...`) or a file path.
    pub what: String,
    /// Details: the subkeys of PackagesPending, the value, the file size.
    pub detail: String,
    /// The key's last-written time, or the file's modification time, UTC.
    pub time: Option<String>,
}

/// The servicing state of an OS volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServicingState {
    /// True when any marker is present.
    pub pending_restart: bool,
    /// The markers found.
    pub markers: Vec<PendingMarker>,
}

/// Reads the markers of the SOFTWARE hive `hive`.
pub fn software_markers<R: ReadAt>(hive: &Hive<R>) -> crate::Result<Vec<PendingMarker>> {
    let mut markers = Vec::new();
    let time = |ft: u64| (ft != 0).then(|| FileTime::new(ft).utc);
    if let Some(cbs) = hive.key(CBS_KEY).map_err(hive_error)? {
        for name in ["RebootPending", "PackagesPending", "SessionsPending"] {
            let Some(key) = cbs.subkey(name).map_err(hive_error)? else {
                continue;
            };
            let mut subkeys = Vec::new();
            for sub in key.subkeys().map_err(hive_error)?.take(20) {
                subkeys.push(sub.map_err(hive_error)?.name().to_string());
            }
            // SessionsPending holds values ("Exclusive", "TotalSessionPhases") even when idle:
            // it counts only with a pending session in it.
            if name == "SessionsPending" && subkeys.is_empty() && !session_pending(&key)? {
                continue;
            }
            markers.push(PendingMarker {
                what: format!(r"SOFTWARE\{CBS_KEY}\{name}"),
                detail: if subkeys.is_empty() {
                    "key present".to_string()
                } else {
                    format!("subkeys: {}", subkeys.join(", "))
                },
                time: time(key.last_written_filetime()),
            });
        }
        if let Some(value) = cbs.value("PendingXmlIdentifier").map_err(hive_error)? {
            markers.push(PendingMarker {
                what: format!(r"SOFTWARE\{CBS_KEY}\PendingXmlIdentifier"),
                detail: value.as_string().unwrap_or_else(|_| "value present".into()),
                time: time(cbs.last_written_filetime()),
            });
        }
    }
    if let Some(key) = hive.key(WU_REBOOT_KEY).map_err(hive_error)? {
        markers.push(PendingMarker {
            what: format!(r"SOFTWARE\{WU_REBOOT_KEY}"),
            detail: "key present".to_string(),
            time: time(key.last_written_filetime()),
        });
    }
    Ok(markers)
}

/// A SessionsPending key with `Exclusive` set to a nonzero value has a session waiting.
fn session_pending<R: ReadAt>(key: &winre_hive::Key<'_, R>) -> crate::Result<bool> {
    Ok(key
        .value("Exclusive")
        .map_err(hive_error)?
        .and_then(|v| v.as_u32().ok())
        .is_some_and(|v| v != 0))
}

/// The markers of the OS volume: the SOFTWARE hive's, `pending.xml`, and COMPONENTS'
/// `PendingXmlIdentifier`. Problems reading one of them are returned beside the state.
pub fn servicing_state(volume: &NtfsVolume, software_path: &str) -> (ServicingState, Vec<String>) {
    let mut problems = Vec::new();
    let mut markers = Vec::new();
    match open_hive(volume, software_path).and_then(|h| match h {
        Some(h) => software_markers(&h),
        None => Ok(Vec::new()),
    }) {
        Ok(found) => markers.extend(found),
        Err(e) => problems.push(format!("servicing state in {software_path}: {e}")),
    }
    match open_hive(volume, COMPONENTS_HIVE_PATH) {
        Ok(Some(hive)) => match hive
            .root()
            .and_then(|root| root.value("PendingXmlIdentifier"))
        {
            Ok(Some(value)) => markers.push(PendingMarker {
                what: r"COMPONENTS\PendingXmlIdentifier".to_string(),
                detail: value.as_string().unwrap_or_else(|_| "value present".into()),
                time: None,
            }),
            Ok(None) => {}
            Err(e) => problems.push(format!("COMPONENTS hive: {e}")),
        },
        Ok(None) => {}
        Err(e) => problems.push(format!("COMPONENTS hive: {e}")),
    }
    match volume.open_file(PENDING_XML_PATH) {
        Ok(Some(file)) => markers.push(PendingMarker {
            what: PENDING_XML_PATH.to_string(),
            detail: format!("{} bytes", file.size()),
            time: None,
        }),
        Ok(None) => {}
        Err(e) => problems.push(format!("{PENDING_XML_PATH}: {e}")),
    }
    (
        ServicingState {
            pending_restart: !markers.is_empty(),
            markers,
        },
        problems,
    )
}

fn open_hive(
    volume: &NtfsVolume,
    path: &str,
) -> crate::Result<Option<Hive<winre_readat::Extents<std::sync::Arc<dyn ReadAt>>>>> {
    let Some(file) = volume.open_file(path)? else {
        return Ok(None);
    };
    Hive::open(file.data_reader()?)
        .map(Some)
        .map_err(hive_error)
}

//! The events that tell a WinRE update's story, read from System.evtx and Setup.evtx.
//!
//! Event ids and fields, as documented by Microsoft ("Windows Update Agent events", the SUS/WSUS
//! white paper) and catalogued at detection-wiki-staging.pages.dev/microsoft-windows-winreagent/:
//! - Microsoft-Windows-WindowsUpdateClient (System): 19 installed, 20 installation failure (with
//!   `errorCode`, e.g. 0x80070643), 43 installation started, 44 download started; each names the
//!   update in `updateTitle` ("2025-04 Update for Windows 10 ... (KB5057589)").
//! - Microsoft-Windows-WinREAgent (System): 4501 "Servicing succeeded. The Windows Recovery
//!   Environment version is now: %1", 4502 servicing failed (`ErrorPhase`, `Errorcode`; Microsoft
//!   KB5028997: phase 2 is too little space in the recovery partition), 4504 changes rolled back.
//! - Microsoft-Windows-Servicing (Setup): 4 "A reboot is necessary before package %1 can be
//!   changed to the %2 state".

use serde::Serialize;

use super::evtx::LogEvent;
use crate::updates::kb_number;
use crate::version::WinreVersion;

/// The Windows Update client's provider.
pub const WU_PROVIDER: &str = "Microsoft-Windows-WindowsUpdateClient";
/// The WinRE servicing agent's provider.
pub const WINRE_AGENT_PROVIDER: &str = "Microsoft-Windows-WinREAgent";
/// The component servicing provider of Setup.evtx.
pub const SERVICING_PROVIDER: &str = "Microsoft-Windows-Servicing";
/// Windows Update client events kept: installed, failed, started, download started.
pub const WU_IDS: &[u32] = &[19, 20, 43, 44];
/// WinREAgent events kept: succeeded, failed, rolled back.
pub const WINRE_AGENT_IDS: &[u32] = &[4501, 4502, 4504];
/// Servicing events kept: a reboot is necessary.
pub const SERVICING_IDS: &[u32] = &[4];
/// The WinREAgent `ErrorPhase` that means too little free space (Microsoft KB5028997).
pub const SPACE_ERROR_PHASE: u32 = 2;

/// One Windows Update client event: an entry of the machine's update history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateEvent {
    /// "installed" (19), "failed" (20), "started" (43) or "download_started" (44).
    pub kind: &'static str,
    /// The event id.
    pub event_id: u32,
    /// `updateTitle`.
    pub title: String,
    /// The KB number in the title, when it has one.
    pub kb: Option<String>,
    /// `errorCode` of a failure, as 0x%08x.
    pub error_code: Option<String>,
    /// UTC, RFC 3339.
    pub time: String,
    /// EventRecordID in System.evtx.
    pub record_id: u64,
}

/// One WinREAgent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentEvent {
    /// "succeeded" (4501), "failed" (4502) or "rolled_back" (4504).
    pub kind: &'static str,
    /// The event id.
    pub event_id: u32,
    /// The WinRE version a 4501 says WinRE now has.
    pub version: Option<WinreVersion>,
    /// `ErrorPhase` of a 4502.
    pub error_phase: Option<u32>,
    /// `Errorcode` of a 4502, as 0x%08x.
    pub error_code: Option<String>,
    /// UTC, RFC 3339.
    pub time: String,
    /// EventRecordID in System.evtx.
    pub record_id: u64,
}

/// A Setup.evtx servicing event saying a package waits for a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebootEvent {
    /// The package named (`PackageIdentifier`), e.g. "KB5057589".
    pub package: String,
    /// The KB number in it.
    pub kb: Option<String>,
    /// UTC, RFC 3339.
    pub time: String,
    /// EventRecordID in Setup.evtx.
    pub record_id: u64,
}

/// A Windows Update client event as an update-history entry (`None` for another event).
pub fn update_event(e: &LogEvent) -> Option<UpdateEvent> {
    if !e.provider.eq_ignore_ascii_case(WU_PROVIDER) {
        return None;
    }
    let kind = match e.event_id {
        19 => "installed",
        20 => "failed",
        43 => "started",
        44 => "download_started",
        _ => return None,
    };
    let title = field(e, "updateTitle").unwrap_or_default();
    Some(UpdateEvent {
        kind,
        event_id: e.event_id,
        kb: kb_number(&title),
        title,
        error_code: field(e, "errorCode").map(|c| hex_code(&c)),
        time: e.time.clone(),
        record_id: e.record_id,
    })
}

/// A WinREAgent event (`None` for another event).
pub fn agent_event(e: &LogEvent) -> Option<AgentEvent> {
    if !e.provider.eq_ignore_ascii_case(WINRE_AGENT_PROVIDER) {
        return None;
    }
    let kind = match e.event_id {
        4501 => "succeeded",
        4502 => "failed",
        4504 => "rolled_back",
        _ => return None,
    };
    // The 4501 version is the event's only field; its name is not documented, so take the
    // first field that is a four-part version.
    let version = (e.event_id == 4501)
        .then(|| {
            e.fields
                .values()
                .find_map(|v| v.trim().parse::<WinreVersion>().ok())
        })
        .flatten();
    Some(AgentEvent {
        kind,
        event_id: e.event_id,
        version,
        error_phase: field(e, "ErrorPhase").and_then(|p| parse_number(&p)),
        error_code: field(e, "Errorcode").map(|c| hex_code(&c)),
        time: e.time.clone(),
        record_id: e.record_id,
    })
}

/// A Servicing "reboot necessary" event (`None` for another event).
pub fn reboot_event(e: &LogEvent) -> Option<RebootEvent> {
    if !e.provider.eq_ignore_ascii_case(SERVICING_PROVIDER) || e.event_id != 4 {
        return None;
    }
    let package = field(e, "PackageIdentifier")
        .or_else(|| e.fields.values().find(|v| kb_number(v).is_some()).cloned())
        .unwrap_or_default();
    Some(RebootEvent {
        kb: kb_number(&package),
        package,
        time: e.time.clone(),
        record_id: e.record_id,
    })
}

/// A field by name, compared case-insensitively.
fn field(e: &LogEvent, name: &str) -> Option<String> {
    e.fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// "0x80070643", "2147944003" or "-2147023293" as a number.
fn parse_number(text: &str) -> Option<u32> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    t.parse::<u32>()
        .ok()
        .or_else(|| t.parse::<i32>().ok().map(|v| v as u32))
}

/// An error code as Windows shows it (0x%08x); text that is no number is kept as it is.
fn hex_code(text: &str) -> String {
    parse_number(text).map_or_else(|| text.trim().to_string(), |v| format!("0x{v:08x}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(provider: &str, id: u32, fields: &[(&str, &str)]) -> LogEvent {
        LogEvent {
            provider: provider.into(),
            event_id: id,
            record_id: 9,
            time: "2025-04-08T10:00:00Z".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn reads_codes_versions_and_kbs() {
        let e = update_event(&event(
            WU_PROVIDER,
            20,
            &[
                ("errorCode", "2147944003"),
                ("updateTitle", "2025-04 Update (KB5057589)"),
            ],
        ))
        .unwrap();
        assert_eq!(e.error_code.as_deref(), Some("0x80070643"));
        assert_eq!(e.kb.as_deref(), Some("KB5057589"));
        assert_eq!(e.kind, "failed");
        let a = agent_event(&event(
            WINRE_AGENT_PROVIDER,
            4501,
            &[("v", "10.0.19041.5728")],
        ))
        .unwrap();
        assert_eq!(a.version.unwrap().to_string(), "10.0.19041.5728");
        let a = agent_event(&event(
            WINRE_AGENT_PROVIDER,
            4502,
            &[("ErrorPhase", "2"), ("Errorcode", "-2147024784")],
        ))
        .unwrap();
        assert_eq!(a.error_phase, Some(2));
        assert_eq!(a.error_code.as_deref(), Some("0x80070070"));
        assert!(update_event(&event(WINRE_AGENT_PROVIDER, 19, &[])).is_none());
        let r = reboot_event(&event(
            SERVICING_PROVIDER,
            4,
            &[("PackageIdentifier", "KB5034441")],
        ))
        .unwrap();
        assert_eq!(r.kb.as_deref(), Some("KB5034441"));
        assert_eq!(hex_code("E_FAIL"), "E_FAIL");
    }
}

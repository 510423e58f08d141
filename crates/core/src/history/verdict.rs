//! One verdict per WinRE update of the image's build family, from the version the image has now
//! and the evidence Windows left: update events, WinREAgent events, the servicing state and the
//! recovery partition's free space.
//!
//! The rules (Microsoft's statements; their combination is winre's):
//! - At or above the threshold the update is in, whatever Windows Update says: WinREAgent
//!   compares the image version (its `GetWinREVersion` reads the WIM's image info), and the KB
//!   pages say the update "will not be offered" then. A failure event for the KB before that is the
//!   April 2025 case: Microsoft said the 0x80070643 of KB5057589 / KB5057588 "is not accurate" and
//!   that the update "is typically applied successfully after the device restarts".
//! - Below the threshold: a 4502 in phase 2 (KB5028997: too little space), or too little free
//!   space now (the KBs need 250 MB), is a failure for space; an attempt for the KB (a Windows
//!   Update event) while servicing waits for a restart is pending; any other failure or rollback
//!   is a failure; no attempt at all is "not offered yet".

use serde::Serialize;

use super::events::{AgentEvent, RebootEvent, UpdateEvent, SPACE_ERROR_PHASE};
use super::servicing::ServicingState;
use crate::updates::{ThresholdKind, UpdateRow};
use crate::version::WinreVersion;

/// The error code Windows Update shows for a WinRE update that did not apply.
pub const ERROR_INSTALL_FAILURE: &str = "0x80070643";

/// What happened to one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The version is at or above the threshold.
    Installed,
    /// Below the threshold, and a failure event for the KB came before (the April 2025 case is
    /// this one's opposite: see `ReportedFailedButInstalled`); servicing failed for space.
    FailedForSpace,
    /// At or above the threshold, but Windows Update reported the update failed.
    ReportedFailedButInstalled,
    /// Below the threshold, the update was attempted, and servicing waits for a restart.
    PendingRestart,
    /// Below the threshold and attempted, failed or rolled back for another reason.
    Failed,
    /// Below the threshold, and no event shows an attempt.
    NotOffered,
    /// No threshold is published for the update.
    Unknown,
}

impl Verdict {
    /// The name in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::FailedForSpace => "failed_for_space",
            Self::ReportedFailedButInstalled => "reported_failed_but_installed",
            Self::PendingRestart => "pending_restart",
            Self::Failed => "failed",
            Self::NotOffered => "not_offered",
            Self::Unknown => "unknown",
        }
    }
}

/// The verdict on one update, with the evidence behind it.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateVerdict {
    /// The KB number, when the row has one.
    pub kb: Option<String>,
    /// The row's title.
    pub title: String,
    /// The row's release date.
    pub release_date: String,
    /// The threshold, when published.
    pub min_version: Option<WinreVersion>,
    /// Whether a Microsoft source states the threshold.
    pub confirmed: bool,
    /// Which version the threshold is compared with.
    pub threshold_kind: ThresholdKind,
    /// The version it was compared with (`None` when the image's version is unknown).
    pub compared_version: Option<WinreVersion>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why: one line per fact, with the log, record id and time of each event.
    pub evidence: Vec<String>,
}

/// Everything the verdicts are judged from.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The WIM XML version of Winre.wim.
    pub wim_version: Option<WinreVersion>,
    /// winload.efi's product version inside Winre.wim, when read.
    pub winload_version: Option<WinreVersion>,
    /// Windows Update client events (System.evtx), in record order.
    pub updates: &'a [UpdateEvent],
    /// WinREAgent events (System.evtx), in record order.
    pub agent: &'a [AgentEvent],
    /// Servicing "reboot necessary" events (Setup.evtx).
    pub reboots: &'a [RebootEvent],
    /// The servicing state of the OS volume.
    pub servicing: Option<&'a ServicingState>,
    /// How many bytes the recovery volume lacks for an update (0: enough; None: not measured).
    pub space_shortfall: Option<u64>,
}

/// Judges one row.
pub fn judge(row: &UpdateRow, ev: &Evidence<'_>) -> UpdateVerdict {
    let mut evidence = Vec::new();
    let compared = match row.threshold_kind {
        ThresholdKind::FileVersion => ev.winload_version.or(ev.wim_version),
        ThresholdKind::WimVersion => ev.wim_version,
    };
    let kb_events: Vec<&UpdateEvent> = ev
        .updates
        .iter()
        .filter(|u| row.kb.is_some() && u.kb == row.kb)
        .collect();
    for u in &kb_events {
        evidence.push(update_line(u));
    }
    let verdict = match (row.min_version, compared) {
        (None, _) => {
            evidence.push("no threshold version is published for this update".to_string());
            Verdict::Unknown
        }
        (Some(_), None) => {
            evidence.push("the WinRE version of this image is not known".to_string());
            Verdict::Unknown
        }
        (Some(min), Some(version)) if version >= min => {
            evidence.push(format!(
                "{} {version} is at or above {min}",
                version_source(row.threshold_kind, ev)
            ));
            if let Some(a) = ev
                .agent
                .iter()
                .find(|a| a.version.is_some_and(|v| v >= min))
            {
                evidence.push(agent_line(a));
            }
            if kb_events.iter().any(|u| u.kind == "failed") {
                Verdict::ReportedFailedButInstalled
            } else {
                Verdict::Installed
            }
        }
        (Some(min), Some(version)) => {
            evidence.push(format!(
                "{} {version} is below {min}",
                version_source(row.threshold_kind, ev)
            ));
            below(row, ev, &kb_events, &mut evidence)
        }
    };
    UpdateVerdict {
        kb: row.kb.clone(),
        title: row.title.clone(),
        release_date: row.release_date.clone(),
        min_version: row.min_version,
        confirmed: row.confirmed,
        threshold_kind: row.threshold_kind,
        compared_version: compared,
        verdict,
        evidence,
    }
}

/// The verdict on an update whose threshold the image has not reached.
fn below(
    row: &UpdateRow,
    ev: &Evidence<'_>,
    kb_events: &[&UpdateEvent],
    evidence: &mut Vec<String>,
) -> Verdict {
    let attempted = !kb_events.is_empty();
    let space_failure = ev
        .agent
        .iter()
        .find(|a| a.kind == "failed" && a.error_phase == Some(SPACE_ERROR_PHASE));
    let other_failures: Vec<&AgentEvent> = ev
        .agent
        .iter()
        .filter(|a| a.kind != "succeeded" && a.error_phase != Some(SPACE_ERROR_PHASE))
        .collect();
    let reboots: Vec<&RebootEvent> = ev
        .reboots
        .iter()
        .filter(|r| row.kb.is_some() && r.kb == row.kb)
        .collect();
    let pending = ev.servicing.filter(|s| s.pending_restart);
    if let Some(a) = space_failure {
        evidence.push(agent_line(a));
        evidence.push(format!(
            "ErrorPhase {SPACE_ERROR_PHASE} means too little free space in the recovery partition (Microsoft KB5028997)"
        ));
        return Verdict::FailedForSpace;
    }
    if let Some(short) = ev.space_shortfall.filter(|&s| s > 0) {
        if attempted {
            evidence.push(format!(
                "the recovery volume is {short} bytes short of the free space WinRE updates need"
            ));
            return Verdict::FailedForSpace;
        }
    }
    if attempted && (pending.is_some() || !reboots.is_empty()) {
        for r in &reboots {
            evidence.push(format!(
                "Setup.evtx record {} at {}: a reboot is necessary before package {} can be changed",
                r.record_id, r.time, r.package
            ));
        }
        for m in pending.map(|p| p.markers.as_slice()).unwrap_or_default() {
            evidence.push(format!(
                "servicing waits for a restart: {} ({}{})",
                m.what,
                m.detail,
                m.time
                    .as_deref()
                    .map(|t| format!(", last written {t}"))
                    .unwrap_or_default()
            ));
        }
        return Verdict::PendingRestart;
    }
    if attempted {
        for a in &other_failures {
            evidence.push(agent_line(a));
        }
        if kb_events.iter().any(|u| u.kind == "failed") || !other_failures.is_empty() {
            return Verdict::Failed;
        }
        // Started or downloaded, neither installed nor failed: still in flight when the image
        // was taken.
        return Verdict::PendingRestart;
    }
    if pending.is_some() {
        evidence.push(
            "servicing waits for a restart, but no event shows this update was attempted"
                .to_string(),
        );
    }
    Verdict::NotOffered
}

fn version_source(kind: ThresholdKind, ev: &Evidence<'_>) -> &'static str {
    match (kind, ev.winload_version) {
        (ThresholdKind::FileVersion, Some(_)) => "winload.efi's product version",
        _ => "the Winre.wim image version (WIM XML)",
    }
}

fn update_line(u: &UpdateEvent) -> String {
    format!(
        "System.evtx record {} at {}: Windows Update event {} ({}){}: {}",
        u.record_id,
        u.time,
        u.event_id,
        u.kind,
        u.error_code
            .as_deref()
            .map(|c| format!(" with {c}"))
            .unwrap_or_default(),
        u.title
    )
}

fn agent_line(a: &AgentEvent) -> String {
    let mut line = format!(
        "System.evtx record {} at {}: WinREAgent event {} ({})",
        a.record_id, a.time, a.event_id, a.kind
    );
    if let Some(v) = a.version {
        line.push_str(&format!(", WinRE version now {v}"));
    }
    if let Some(p) = a.error_phase {
        line.push_str(&format!(", ErrorPhase {p}"));
    }
    if let Some(c) = &a.error_code {
        line.push_str(&format!(", Errorcode {c}"));
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::history::servicing::PendingMarker;
    use crate::updates::parse_table;

    fn row() -> UpdateRow {
        parse_table("19041,KB5057589,2025-04-08,10.0.19041.5728,false,wim_version,s,")
            .unwrap()
            .remove(0)
    }

    fn wu(kind: &'static str, id: u32, code: Option<&str>) -> UpdateEvent {
        UpdateEvent {
            kind,
            event_id: id,
            title: "2025-04 Update for Windows 10 (KB5057589)".into(),
            kb: Some("KB5057589".into()),
            error_code: code.map(str::to_string),
            time: "2025-04-09T08:00:00Z".into(),
            record_id: 100,
        }
    }

    fn v(s: &str) -> Option<WinreVersion> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_verdict_from_its_evidence() {
        let failed = [wu("failed", 20, Some(ERROR_INSTALL_FAILURE))];
        let pending = ServicingState {
            pending_restart: true,
            markers: vec![PendingMarker {
                what: "RebootPending".into(),
                detail: "key present".into(),
                time: None,
            }],
        };
        let at = Evidence {
            wim_version: v("10.0.19041.5728"),
            ..Evidence::default()
        };
        assert_eq!(judge(&row(), &at).verdict, Verdict::Installed);
        let reported = Evidence {
            updates: &failed,
            ..at.clone()
        };
        let j = judge(&row(), &reported);
        assert_eq!(j.verdict, Verdict::ReportedFailedButInstalled);
        assert!(j.evidence[0].contains("0x80070643"), "{:?}", j.evidence);
        let before = Evidence {
            wim_version: v("10.0.19041.3920"),
            updates: &failed,
            servicing: Some(&pending),
            ..Evidence::default()
        };
        assert_eq!(judge(&row(), &before).verdict, Verdict::PendingRestart);
        let space = [AgentEvent {
            kind: "failed",
            event_id: 4502,
            version: None,
            error_phase: Some(2),
            error_code: Some("0x80070070".into()),
            time: "t".into(),
            record_id: 5,
        }];
        let no_room = Evidence {
            agent: &space,
            ..before.clone()
        };
        assert_eq!(judge(&row(), &no_room).verdict, Verdict::FailedForSpace);
        let plain_fail = Evidence {
            servicing: None,
            ..before.clone()
        };
        assert_eq!(judge(&row(), &plain_fail).verdict, Verdict::Failed);
        let nothing = Evidence {
            wim_version: v("10.0.19041.3920"),
            servicing: Some(&pending),
            ..Evidence::default()
        };
        assert_eq!(judge(&row(), &nothing).verdict, Verdict::NotOffered);
        let mut unpublished = row();
        unpublished.min_version = None;
        assert_eq!(judge(&unpublished, &at).verdict, Verdict::Unknown);
    }
}

//! The history of a machine's WinRE updates, read offline from its OS volume: the Windows
//! Update and WinREAgent events of System.evtx, the servicing events of Setup.evtx, the
//! servicing state of the SOFTWARE hive, and PowerShell lines that download and run code; then
//! one verdict per WinRE update of the image's build family ([`verdict`]).
//!
//! Everything is read in place through the NTFS reader: the event logs chunk by chunk, the hives
//! cell by cell. Nothing is written.

pub mod events;
pub mod evtx;
pub mod powershell;
pub mod servicing;
pub mod verdict;

use serde::Serialize;

use crate::locate::{DiskView, SOFTWARE_HIVE_PATH};
use crate::ntfs::NtfsVolume;
use crate::updates::{self, TableId};
use crate::version::WinreVersion;
use events::{AgentEvent, RebootEvent, UpdateEvent};
use powershell::PowerShellFinding;
use servicing::ServicingState;
use verdict::{Evidence, UpdateVerdict};

/// System.evtx on the OS volume.
pub const SYSTEM_LOG: &str = r"\Windows\System32\winevt\Logs\System.evtx";
/// Setup.evtx on the OS volume.
pub const SETUP_LOG: &str = r"\Windows\System32\winevt\Logs\Setup.evtx";
/// PowerShell's operational log (script block logging, event 4104).
pub const POWERSHELL_LOG: &str =
    r"\Windows\System32\winevt\Logs\Microsoft-Windows-PowerShell%4Operational.evtx";
/// PowerShell's provider, and its script block event.
pub const POWERSHELL_PROVIDER: &str = "Microsoft-Windows-PowerShell";
/// Event 4104: "Creating Scriptblock text".
pub const SCRIPT_BLOCK_EVENT: u32 = 4104;

/// One event log read.
#[derive(Debug, Clone, Serialize)]
pub struct LogSummary {
    /// Its path on the OS volume.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Chunks in the file.
    pub chunks: u64,
    /// Chunks whose records were parsed (the others hold none of the providers wanted).
    pub chunks_parsed: u64,
    /// Events kept.
    pub events: usize,
}

/// What `winre history` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    /// The update table that judged the verdicts.
    pub table: TableId,
    /// The OS partition read.
    pub os_partition: Option<u32>,
    /// The WinRE build family judged (19041 for Windows 10 2004..22H2).
    pub family: Option<u32>,
    /// One verdict per update of the family, in table order.
    pub verdicts: Vec<UpdateVerdict>,
    /// Every Windows Update client event 19/20/43/44 of System.evtx: the machine's update
    /// history, oldest first.
    pub update_history: Vec<UpdateEvent>,
    /// WinREAgent events 4501/4502/4504 of System.evtx.
    pub winre_agent: Vec<AgentEvent>,
    /// Setup.evtx events saying a package waits for a reboot.
    pub reboot_events: Vec<RebootEvent>,
    /// Whether servicing waits for a restart, and the markers that say so.
    pub servicing: ServicingState,
    /// PowerShell lines that download and run code (reported, not judged).
    pub powershell: Vec<PowerShellFinding>,
    /// The event logs read.
    pub logs: Vec<LogSummary>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// What the scan already knows that the verdicts need.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageFacts {
    /// The WIM XML version of Winre.wim.
    pub wim_version: Option<WinreVersion>,
    /// winload.efi's product version inside Winre.wim.
    pub winload_version: Option<WinreVersion>,
    /// Bytes the recovery volume lacks (0: enough).
    pub space_shortfall: Option<u64>,
}

/// Reads the history of the first OS volume of `view` and judges the updates of the family of
/// `facts.wim_version`.
pub fn read_history(view: &DiskView, os_partitions: &[u32], facts: ImageFacts) -> HistoryReport {
    let mut report = HistoryReport {
        table: updates::table_id().clone(),
        os_partition: None,
        family: facts.wim_version.map(|v| updates::family_of(v.build)),
        verdicts: Vec::new(),
        update_history: Vec::new(),
        winre_agent: Vec::new(),
        reboot_events: Vec::new(),
        servicing: ServicingState::default(),
        powershell: Vec::new(),
        logs: Vec::new(),
        problems: Vec::new(),
    };
    let volume = os_partitions
        .iter()
        .find_map(|&n| view.ntfs(n).ok().flatten().map(|v| (n, v)));
    if let Some((number, volume)) = volume {
        report.os_partition = Some(number);
        read_volume(&volume, &mut report);
    } else {
        report
            .problems
            .push("no OS volume: no event logs or servicing state to read".to_string());
    }
    let evidence = Evidence {
        wim_version: facts.wim_version,
        winload_version: facts.winload_version,
        updates: &report.update_history,
        agent: &report.winre_agent,
        reboots: &report.reboot_events,
        servicing: Some(&report.servicing),
        space_shortfall: facts.space_shortfall,
    };
    if let Some(family) = report.family {
        report.verdicts = updates::known_updates()
            .iter()
            .filter(|row| row.family_build == family)
            .map(|row| verdict::judge(row, &evidence))
            .collect();
    }
    report
}

fn read_volume(volume: &NtfsVolume, report: &mut HistoryReport) {
    let system = read_log(
        volume,
        SYSTEM_LOG,
        &[
            (events::WU_PROVIDER, events::WU_IDS),
            (events::WINRE_AGENT_PROVIDER, events::WINRE_AGENT_IDS),
        ],
        report,
    );
    report.update_history = system.iter().filter_map(events::update_event).collect();
    report.winre_agent = system.iter().filter_map(events::agent_event).collect();
    let setup = read_log(
        volume,
        SETUP_LOG,
        &[(events::SERVICING_PROVIDER, events::SERVICING_IDS)],
        report,
    );
    report.reboot_events = setup.iter().filter_map(events::reboot_event).collect();

    let (servicing, problems) = servicing::servicing_state(volume, SOFTWARE_HIVE_PATH);
    report.servicing = servicing;
    report.problems.extend(problems);

    let (findings, problems) = powershell::history_findings(volume);
    report.powershell = findings;
    report.problems.extend(problems);
    let blocks = read_log(
        volume,
        POWERSHELL_LOG,
        &[(POWERSHELL_PROVIDER, &[SCRIPT_BLOCK_EVENT])],
        report,
    );
    for block in &blocks {
        let Some(text) = block
            .fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("ScriptBlockText"))
            .map(|(_, v)| v)
        else {
            continue;
        };
        for m in powershell::match_lines(text) {
            report.powershell.push(PowerShellFinding {
                pattern: m.pattern,
                profile: "script block log".to_string(),
                file: POWERSHELL_LOG.to_string(),
                line_number: m.line_number,
                line: m.line,
                modified: Some(block.time.clone()),
                created: None,
                record_id: Some(block.record_id),
            });
        }
    }
}

/// Reads one log when it exists; its summary and problems go into `report`.
fn read_log(
    volume: &NtfsVolume,
    path: &str,
    providers: &[(&str, &[u32])],
    report: &mut HistoryReport,
) -> Vec<evtx::LogEvent> {
    let file = match volume.open_file(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Vec::new(),
        Err(e) => {
            report.problems.push(format!("{path}: {e}"));
            return Vec::new();
        }
    };
    let reader = match file.data_reader() {
        Ok(r) => r,
        Err(e) => {
            report.problems.push(format!("{path}: {e}"));
            return Vec::new();
        }
    };
    let name = path.rsplit('\\').next().unwrap_or(path);
    match evtx::read_log(std::sync::Arc::new(reader), name, providers) {
        Ok(read) => {
            report.logs.push(LogSummary {
                path: path.to_string(),
                size: file.size(),
                chunks: read.chunks,
                chunks_parsed: read.chunks_parsed,
                events: read.events.len(),
            });
            report.problems.extend(read.problems);
            read.events
        }
        Err(e) => {
            report.problems.push(format!("{path}: {e}"));
            Vec::new()
        }
    }
}

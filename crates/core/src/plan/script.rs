//! The same change made inside the running Windows, the way KB5028997 makes it: `reagentc
//! /disable` (Winre.wim goes back to the OS volume), diskpart shrinks the OS partition if
//! needed, deletes the recovery partition and creates it again at the planned place and size
//! (its GPT type and attributes, or MBR type 0x27), formats it, and `reagentc /enable` puts
//! WinRE back on it.
//!
//! Units: diskpart's `shrink desired=` and `size=` are in MB that are MiB; `offset=` is in KB
//! that are KiB. The plan's sizes are multiples of 1 MiB and its offsets of 1 KiB, so the
//! numbers are exact.
//!
// Sources: KB5028997 (steps 1-7); Microsoft's diskpart reference ("create partition primary",
// "shrink", "gpt", "format", "delete partition").

use winre_disk::partition::Partition;

use super::{Plan, ALIGN_BYTES, RECOVERY_GPT_ATTRIBUTES, RECOVERY_MBR_TYPE, RECOVERY_TYPE_GUID};

const KIB: u64 = 1024;

/// The script for growing recovery partition `rec` to `start..start+size`, shrinking `os`
/// first when given.
pub fn grow_script(
    plan: &Plan,
    rec: &Partition,
    start: u64,
    size: u64,
    os: Option<&Partition>,
) -> Vec<String> {
    let mut lines = preamble();
    if let Some(os) = os {
        let shrink = plan.shrink_os_by_bytes / ALIGN_BYTES;
        lines.push(format!("select partition {}", os.number));
        lines.push(format!("shrink desired={shrink} minimum={shrink}"));
    }
    lines.push(format!("select partition {}", rec.number));
    lines.push("delete partition override".to_string());
    create(plan, &mut lines, start, size);
    lines.extend(postamble());
    lines
}

/// The script for a new recovery partition of `size` bytes at the end of `os`, deleting `old`
/// when `delete_old`.
pub fn new_partition_script(
    plan: &Plan,
    os: &Partition,
    old: Option<&Partition>,
    delete_old: bool,
    size: u64,
) -> Vec<String> {
    let mut lines = preamble();
    let shrink = plan.shrink_os_by_bytes / ALIGN_BYTES;
    lines.push(format!("select partition {}", os.number));
    lines.push(format!("shrink desired={shrink} minimum={shrink}"));
    if let (Some(old), true) = (old, delete_old) {
        lines.push(format!("select partition {}", old.number));
        lines.push("delete partition override".to_string());
    }
    let os_end = os.start_bytes.saturating_add(os.size_bytes);
    create(
        plan,
        &mut lines,
        os_end.saturating_sub(plan.shrink_os_by_bytes),
        size,
    );
    lines.extend(postamble());
    lines
}

/// The script that moves WinRE from the OS volume to recovery partition `rec` (which has
/// room): assign it a letter, copy Winre.wim into `location`, point ReAgent.xml at it with
/// `reagentc /setreimage`, enable WinRE, remove the letter.
pub fn use_recovery_script(rec: u32, location: &str, wim_path: &str) -> Vec<String> {
    let select = |lines: &mut Vec<String>| {
        lines.push("diskpart".to_string());
        lines.push("rem <DISK>: the disk that holds the OS volume".to_string());
        lines.push("select disk <DISK>".to_string());
        lines.push(format!("select partition {rec}"));
    };
    let mut lines = vec![
        "rem Inside Windows, in an elevated Command Prompt. Partition numbers are winre's; check them with \"list partition\".".to_string(),
        "reagentc /info".to_string(),
        format!("rem reagentc /disable moves C:{wim_path} to C:\\Windows\\System32\\Recovery\\Winre.wim"),
        "reagentc /disable".to_string(),
    ];
    select(&mut lines);
    lines.push("assign letter=R".to_string());
    lines.push("exit".to_string());
    lines.push(format!("mkdir R:{location}"));
    lines.push(format!(
        "xcopy /h C:\\Windows\\System32\\Recovery\\Winre.wim R:{location}\\"
    ));
    lines.push(format!(
        "reagentc /setreimage /path R:{location} /target C:\\Windows"
    ));
    lines.push("reagentc /enable".to_string());
    select(&mut lines);
    lines.push("remove letter=R".to_string());
    lines.push("exit".to_string());
    lines.push("reagentc /info".to_string());
    lines
}

fn preamble() -> Vec<String> {
    vec![
        "rem Inside Windows, in an elevated Command Prompt (KB5028997). Partition numbers are winre's; check them with \"list partition\".".to_string(),
        "reagentc /info".to_string(),
        "reagentc /disable".to_string(),
        "diskpart".to_string(),
        "list disk".to_string(),
        "rem <DISK>: the disk that holds the OS volume".to_string(),
        "select disk <DISK>".to_string(),
        "list partition".to_string(),
    ]
}

fn create(plan: &Plan, lines: &mut Vec<String>, start: u64, size: u64) {
    let offset = start / KIB;
    let size_mib = size / ALIGN_BYTES;
    if plan.scheme == "gpt" {
        lines.push(format!(
            "create partition primary offset={offset} size={size_mib} id={RECOVERY_TYPE_GUID}"
        ));
        lines.push(format!("gpt attributes=0x{RECOVERY_GPT_ATTRIBUTES:016x}"));
    } else {
        lines.push(format!(
            "create partition primary offset={offset} size={size_mib} id={RECOVERY_MBR_TYPE:02x}"
        ));
    }
    lines.push("format quick fs=ntfs label=\"Windows RE tools\"".to_string());
}

fn postamble() -> Vec<String> {
    vec![
        "exit".to_string(),
        "reagentc /enable".to_string(),
        "reagentc /info".to_string(),
    ]
}

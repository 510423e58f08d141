//! winre-hive against libhivex (hivexget, hivexsh, and the python binding via
//! fixtures/hive-dump.py) on hives written by hivex and on a hand-laid hive with an index root
//! and big-data segments.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{hive_path, offsets, run};
use serde_json::Value as Json;
use winre_hive::{Hive, Key, ValueType};
use winre_readat::FileReader;

fn open(name: &str) -> Hive<FileReader> {
    Hive::open(FileReader::open(hive_path(name)).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our reading of the whole tree, in the same shape as hive-dump.py prints.
fn dump(key: &Key<'_, FileReader>, path: &str, out: &mut Vec<Json>) {
    let values: Vec<Json> = key
        .values()
        .unwrap()
        .iter()
        .map(|v| serde_json::json!([v.name(), v.value_type().code(), hex(&v.data().unwrap())]))
        .collect();
    out.push(serde_json::json!({"path": path, "values": values}));
    for child in key.subkeys().unwrap() {
        let child = child.unwrap();
        let child_path = if path.is_empty() {
            child.name().to_string()
        } else {
            format!("{path}\\{}", child.name())
        };
        dump(&child, &child_path, out);
    }
}

fn compare_with_libhivex(name: &str) -> usize {
    let path = hive_path(name);
    let script = common::fixtures_dir().join("hive-dump.py");
    let expected: Vec<Json> = run(
        "/usr/bin/python3",
        &[script.to_str().unwrap(), path.to_str().unwrap()],
        None,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let hive = open(name);
    let mut ours = Vec::new();
    dump(&hive.root().unwrap(), "", &mut ours);
    assert_eq!(ours.len(), expected.len(), "{name}: number of keys");
    for (o, e) in ours.iter().zip(&expected) {
        assert_eq!(o, e, "{name}: key differs from libhivex");
    }
    ours.len()
}

#[test]
fn software_tree_matches_libhivex() {
    // Root, Microsoft, Windows NT, CurrentVersion, Many + 2100 keys, the UTF-16-named key.
    assert_eq!(compare_with_libhivex("software.hive"), 2106);
}

#[test]
fn bcd_tree_matches_libhivex() {
    assert!(compare_with_libhivex("bcd.hive") > 30);
}

#[test]
fn handmade_tree_with_index_root_and_big_data_matches_libhivex() {
    assert_eq!(compare_with_libhivex("handmade.hive"), 8);
    // The root's list really is an index root and the value really uses big-data segments.
    let bytes = std::fs::read(hive_path("handmade.hive")).unwrap();
    let off = offsets();
    let ri = off["handmade_ri"] as usize;
    assert_eq!(&bytes[ri + 4..ri + 6], b"ri");
    let db = off["handmade_db"] as usize;
    assert_eq!(&bytes[db + 4..db + 6], b"db");
    let hive = open("handmade.hive");
    let big = hive
        .key("C1")
        .unwrap()
        .unwrap()
        .value("big")
        .unwrap()
        .unwrap();
    assert_eq!(big.data().unwrap().len(), 40000);
}

#[test]
fn winreversion_and_context_match_hivexget() {
    let path = hive_path("software.hive");
    let p = path.to_str().unwrap();
    let cv_path = r"Microsoft\Windows NT\CurrentVersion";
    let hive = open("software.hive");
    // Lookups ignore case, like Windows.
    let cv = hive
        .key(r"\microsoft\WINDOWS NT\currentversion")
        .unwrap()
        .unwrap();
    for name in [
        "WinREVersion",
        "CurrentBuildNumber",
        "ProductName",
        "DisplayVersion",
        "SystemRoot",
    ] {
        let expected = run("hivexget", &[p, cv_path, name], None);
        let ours = cv.value(name).unwrap().unwrap().as_string().unwrap();
        assert_eq!(format!("{ours}\n"), expected, "{name}");
    }
    assert_eq!(
        cv.value("winreversion")
            .unwrap()
            .unwrap()
            .as_string()
            .unwrap(),
        "10.0.19041.5728"
    );
    let ubr = run("hivexget", &[p, cv_path, "UBR"], None);
    assert_eq!(
        cv.value("UBR")
            .unwrap()
            .unwrap()
            .as_u32()
            .unwrap()
            .to_string(),
        ubr.trim()
    );
    let qword = run("hivexget", &[p, cv_path, "InstallTime"], None);
    assert_eq!(
        cv.value("InstallTime")
            .unwrap()
            .unwrap()
            .as_u64()
            .unwrap()
            .to_string(),
        qword.trim()
    );
    let list = run("hivexget", &[p, cv_path, "List"], None);
    let ours = cv
        .value("List")
        .unwrap()
        .unwrap()
        .as_multi_string()
        .unwrap();
    // hivexget prints one line per string, then an empty line for the terminating empty string.
    assert_eq!(ours, list.trim_end().lines().collect::<Vec<_>>());
    // A REG_SZ without its terminating NUL, the default value, a REG_NONE.
    assert_eq!(
        cv.value("NoTerminator")
            .unwrap()
            .unwrap()
            .as_string()
            .unwrap(),
        "no NUL"
    );
    assert_eq!(
        cv.value("").unwrap().unwrap().as_string().unwrap(),
        "default value"
    );
    let empty = cv.value("Empty").unwrap().unwrap();
    assert_eq!(
        (empty.value_type(), empty.data().unwrap().len()),
        (ValueType::None, 0)
    );
    // Wrong type asked for: a clear error, not a misread.
    assert!(matches!(
        cv.value("UBR").unwrap().unwrap().as_string(),
        Err(winre_hive::Error::UnexpectedType { .. })
    ));
    assert!(cv.value("NoSuchValue").unwrap().is_none());
    assert!(hive.key(r"Microsoft\Nope").unwrap().is_none());
}

#[test]
fn many_subkeys_match_hivexsh() {
    let path = hive_path("software.hive");
    let listed = run("hivexsh", &[path.to_str().unwrap()], Some("cd Many\nls\n"));
    let hive = open("software.hive");
    let many = hive.key("Many").unwrap().unwrap();
    let ours: Vec<String> = many
        .subkeys()
        .unwrap()
        .map(|k| k.unwrap().name().to_string())
        .collect();
    assert_eq!(ours.len(), 2100);
    assert_eq!(ours, listed.lines().collect::<Vec<_>>());
    assert_eq!(many.subkey("key02099").unwrap().unwrap().name(), "Key02099");
}

#[test]
fn utf16_names_match_hivexget() {
    let path = hive_path("software.hive");
    let listed = run("hivexget", &[path.to_str().unwrap(), "Ünïcødé™ key"], None);
    assert!(listed.contains("\"€uro™\"=dword:12345678"), "{listed}");
    let hive = open("software.hive");
    let key = hive.key("ÜNÏCØDÉ™ KEY").unwrap().unwrap();
    assert_eq!(key.name(), "Ünïcødé™ key");
    assert_eq!(
        key.value("€URO™").unwrap().unwrap().as_u32().unwrap(),
        0x1234_5678
    );
    assert_eq!(
        key.value("GRÖSSE").unwrap().map(|v| v.name().to_string()),
        None,
        "no multi-char folding"
    );
    assert_eq!(
        key.value("GRÖßE").unwrap().unwrap().as_string().unwrap(),
        "groß"
    );
}

#[test]
fn fixtures_are_clean_and_a_sequence_mismatch_is_reported_dirty() {
    for name in ["software.hive", "bcd.hive", "handmade.hive"] {
        let health = open(name).health();
        assert!(!health.dirty, "{name}: {health:?}");
    }
    let mut bytes = std::fs::read(hive_path("bcd.hive")).unwrap();
    bytes[8] = bytes[8].wrapping_add(1); // secondary sequence number
    let sum = winre_hive::checksum(&bytes);
    bytes[508..512].copy_from_slice(&sum.to_le_bytes());
    let hive = Hive::open(bytes).unwrap();
    let health = hive.health();
    assert!(health.dirty && health.checksum_ok);
    assert!(health.note.unwrap().contains("transaction logs"));
    // Still readable.
    assert!(hive.key("Objects").unwrap().is_some());
}

/// hivex's own walk of bins and cells at open (its verbose statistics on stderr).
fn hivex_stats(name: &str) -> (u64, u64, u64, u64) {
    let path = hive_path(name);
    let code = format!(
        "import hivex\nhivex.Hivex({:?}, verbose=True)\n",
        path.to_str().unwrap()
    );
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(code)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let field = |label: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {text}"));
        line.split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        field("pages:"),
        field("blocks:"),
        field("blocks used:"),
        field("bytes used:"),
    )
}

#[test]
fn bin_walk_matches_hivex_statistics() {
    for name in ["software.hive", "bcd.hive", "handmade.hive"] {
        let s = open(name).check_bins().unwrap();
        let (pages, blocks, used, bytes) = hivex_stats(name);
        assert_eq!(
            (
                s.bins,
                s.allocated_cells + s.free_cells,
                s.allocated_cells,
                s.allocated_bytes
            ),
            (pages, blocks, used, bytes),
            "{name}"
        );
    }
    // A broken cell size inside the bin is found by the walk (hivex refuses such a hive too).
    let mut b = std::fs::read(hive_path("handmade.hive")).unwrap();
    let at = offsets()["handmade_a1_nk"] as usize;
    b[at..at + 4].copy_from_slice(&(-0x7000i32).to_le_bytes());
    let err = Hive::open(b).unwrap().check_bins().unwrap_err();
    assert!(
        err.to_string().contains("does not fit the hive bin"),
        "{err}"
    );
}

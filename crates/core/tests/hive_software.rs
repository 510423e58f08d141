//! WinREVersion and its context from a SOFTWARE-like hive written by hivex, checked against
//! hivexget's reading of the same hive.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::Command;

use winre_core::software::{read_software_versions, CURRENT_VERSION_KEY};
use winre_hive::Hive;
use winre_readat::FileReader;

fn software_path() -> PathBuf {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let status = Command::new("bash")
        .arg(fixtures.join("make-hives.sh"))
        .status()
        .expect("run make-hives.sh");
    assert!(
        status.success(),
        "fixtures/make-hives.sh failed (needs python3-hivex and libhivex-bin)"
    );
    fixtures.join("cache/hives/software.hive")
}

fn hivexget(path: &PathBuf, value: &str) -> String {
    let out = Command::new("hivexget")
        .arg(path)
        .arg(CURRENT_VERSION_KEY)
        .arg(value)
        .output()
        .expect("hivexget");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn reads_winreversion_and_context_like_hivexget() {
    let path = software_path();
    let hive = Hive::open(FileReader::open(&path).unwrap()).unwrap();
    let v = read_software_versions(&hive).unwrap();
    assert_eq!(
        v.winre_version.unwrap().to_string(),
        hivexget(&path, "WinREVersion")
    );
    assert_eq!(v.winre_version.unwrap().to_string(), "10.0.19041.5728");
    assert_eq!(
        v.current_build_number.as_deref(),
        Some(hivexget(&path, "CurrentBuildNumber").as_str())
    );
    assert_eq!(v.ubr.unwrap().to_string(), hivexget(&path, "UBR"));
    assert_eq!(
        v.product_name.as_deref(),
        Some(hivexget(&path, "ProductName").as_str())
    );
    assert_eq!(
        v.display_version.as_deref(),
        Some(hivexget(&path, "DisplayVersion").as_str())
    );
    assert_eq!(v.edition_id.as_deref(), Some("Professional"));
    assert_eq!(v.winre_version_unparsed, None);
    assert!(!v.hive.dirty);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["winre_version"], "10.0.19041.5728");
}

#[test]
fn a_hive_without_currentversion_is_not_found() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cache/hives");
    software_path();
    let hive = Hive::open(FileReader::open(fixtures.join("bcd.hive")).unwrap()).unwrap();
    assert!(matches!(
        read_software_versions(&hive),
        Err(winre_core::Error::NotFound(_))
    ));
}

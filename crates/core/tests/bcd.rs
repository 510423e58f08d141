//! The BCD reader against a BCD-like store written by hivex (fixtures/make-hives.sh). String
//! elements are checked against hivexget; the device elements against the values the fixture
//! script put into them, laid out per ReactOS bl.h and grub4dos/ntloader bcd.c. Synthetic: no
//! public Windows BCD sample with a clear licence was found.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::Command;

use winre_core::bcd::{parse_device_element, read_bcd_winre, read_loader_by_id, BcdDevice};
use winre_hive::Hive;
use winre_readat::FileReader;

const WINRE: &str = "{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}";
const LOADER: &str = "{b2e9a9c8-1a6e-11ee-9a4c-d2c3a0f1e001}";

fn bcd_path() -> PathBuf {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let status = Command::new("bash")
        .arg(fixtures.join("make-hives.sh"))
        .status()
        .expect("run make-hives.sh");
    assert!(
        status.success(),
        "fixtures/make-hives.sh failed (needs python3-hivex and libhivex-bin)"
    );
    fixtures.join("cache/hives/bcd.hive")
}

fn hivexget(path: &PathBuf, key: &str, value: &str) -> String {
    let out = Command::new("hivexget")
        .arg(path)
        .arg(key)
        .arg(value)
        .output()
        .expect("hivexget (libhivex-bin)");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn follows_default_loader_to_the_winre_ramdisk() {
    let path = bcd_path();
    let hive = Hive::open(FileReader::open(&path).unwrap()).unwrap();
    let bcd = read_bcd_winre(&hive).unwrap();
    let bootmgr = r"Objects\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\Elements\23000003";
    assert_eq!(
        bcd.default_loader.as_deref(),
        Some(hivexget(&path, bootmgr, "Element").as_str())
    );
    assert_eq!(bcd.default_loader.as_deref(), Some(LOADER));
    assert_eq!(
        bcd.default_loader_description.as_deref(),
        Some("Windows 10")
    );
    let seq = hivexget(
        &path,
        &format!(r"Objects\{LOADER}\Elements\14000008"),
        "Element",
    );
    assert_eq!(
        bcd.recovery_sequence,
        seq.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>()
    );
    assert_eq!(bcd.recovery_sequence, [WINRE]);
    assert_eq!(bcd.recovery_enabled, Some(true));
    assert!(!bcd.hive.dirty);
    assert!(bcd.notes.is_empty(), "{:?}", bcd.notes);

    let re = bcd.winre_loader.unwrap();
    assert_eq!(re.id, WINRE);
    assert_eq!(re.object_type, Some(0x1020_0003));
    let desc = hivexget(
        &path,
        &format!(r"Objects\{WINRE}\Elements\12000004"),
        "Element",
    );
    assert_eq!(re.description.as_deref(), Some(desc.as_str()));
    assert_eq!(
        re.description.as_deref(),
        Some("Windows Recovery Environment")
    );
    assert_eq!(re.path.as_deref(), Some(r"\windows\system32\winload.efi"));
    assert_eq!(
        re.ramdisk_path.as_deref(),
        Some(r"\Recovery\WindowsRE\Winre.wim")
    );
    let device = re.device.unwrap();
    assert_eq!(
        device.options_id.as_deref(),
        Some("{ec9e2cdb-63d3-11ee-bd2c-af2423a570b6}")
    );
    let BcdDevice::Ramdisk { parent, .. } = device.device else {
        panic!("not a ramdisk")
    };
    assert_eq!(
        *parent,
        BcdDevice::Partition {
            partition_style: "gpt".into(),
            partition_guid: Some("{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}".into()),
            disk_guid: Some("{6d0ae2d1-7c3b-4f52-9b1e-2f2d4b6e8a10}".into()),
            partition_offset_bytes: None,
            mbr_signature: None,
        }
    );
    assert_eq!(
        re.os_device.unwrap().device,
        BcdDevice::Ramdisk {
            path: r"\Recovery\WindowsRE\Winre.wim".into(),
            parent
        }
    );
    assert_eq!(
        re.ramdisk_sdi_path.as_deref(),
        Some(r"\Recovery\WindowsRE\boot.sdi")
    );
    assert!(matches!(
        re.ramdisk_sdi_device.unwrap().device,
        BcdDevice::Partition { .. }
    ));
    // The report serializes (JSON field names are part of the CLI contract).
    let json = serde_json::to_value(read_bcd_winre(&hive).unwrap()).unwrap();
    assert_eq!(
        json["winre_loader"]["ramdisk_path"],
        r"\Recovery\WindowsRE\Winre.wim"
    );
    assert_eq!(json["winre_loader"]["device"]["device"]["kind"], "ramdisk");
    // The same object found by id (as ReAgent.xml's WinreBCD names it), in any letter case.
    let (by_id, notes) = read_loader_by_id(&hive, &WINRE.to_uppercase()).unwrap();
    assert!(notes.is_empty());
    assert_eq!(
        by_id.unwrap().ramdisk_path.as_deref(),
        Some(r"\Recovery\WindowsRE\Winre.wim")
    );
    assert!(
        read_loader_by_id(&hive, "{00000000-0000-0000-0000-000000000001}")
            .unwrap()
            .0
            .is_none()
    );
}

#[test]
fn device_elements_refuse_bad_bytes_without_panicking() {
    // An MBR partition device: offset 1 MiB, disk signature 0xdeadbeef.
    let mut d = vec![0u8; 16];
    d.extend(6u32.to_le_bytes());
    d.extend(0u32.to_le_bytes());
    d.extend(0x48u32.to_le_bytes());
    d.extend(0u32.to_le_bytes());
    d.extend(1_048_576u64.to_le_bytes());
    d.extend([0u8; 8]);
    d.extend(0u32.to_le_bytes());
    d.extend(1u32.to_le_bytes());
    d.extend(0xdead_beefu32.to_le_bytes());
    d.resize(16 + 0x48, 0);
    let parsed = parse_device_element(&d).unwrap();
    assert_eq!(parsed.options_id, None);
    assert!(matches!(
        parsed.device,
        BcdDevice::Partition {
            partition_offset_bytes: Some(1_048_576),
            mbr_signature: Some(0xdead_beef),
            ..
        }
    ));
    // Every truncation and a size field pointing past the end are errors, not panics.
    for len in 0..d.len() {
        let _ = parse_device_element(&d[..len]);
    }
    let mut bad = d.clone();
    bad[24..28].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert!(parse_device_element(&bad).is_err());
    // A ramdisk whose file descriptor nests itself forever is cut off.
    let mut r = vec![0u8; 16];
    let nested = |depth: usize| -> Vec<u8> {
        let mut inner = Vec::new();
        for _ in 0..depth {
            let mut outer = Vec::new();
            let body_len = 4 + 20 + 12 + inner.len();
            outer.extend(0u32.to_le_bytes());
            outer.extend(0u32.to_le_bytes());
            outer.extend(((16 + body_len) as u32).to_le_bytes());
            outer.extend(0u32.to_le_bytes());
            outer.extend(3u32.to_le_bytes());
            outer.extend([0u8; 20]);
            outer.extend(1u32.to_le_bytes());
            outer.extend(((12 + inner.len()) as u32).to_le_bytes());
            outer.extend(5u32.to_le_bytes());
            outer.extend(&inner);
            inner = outer;
        }
        inner
    };
    r.extend(nested(10));
    let err = parse_device_element(&r).unwrap_err();
    assert!(err.contains("nested deeper"), "{err}");
}

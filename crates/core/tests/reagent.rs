//! ReAgent.xml parsing. The inputs are the real Windows 11 file quoted in winre-facts.md section 3
//! (a forensic capture) and its disabled form; expected values are that file's attribute values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use winre_core::reagent::{parse_reagent, ReagentError};

const ENABLED: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<WindowsRE version="2.0">
  <WinreBCD id="{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}"/>
  <WinreLocation path="\Recovery\WindowsRE" id="0" offset="188570664960" guid="{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}"/>
  <ImageLocation path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}"/>
  <PBRImageLocation path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}" index="0"/>
  <PBRCustomImageLocation path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}" index="0"/>
  <InstallState state="1"/>
  <OsInstallAvailable state="0"/>
  <CustomImageAvailable state="0"/>
  <IsAutoRepairOn state="1"/>
  <WinREStaged state="0"/>
  <OperationParam path=""/>
  <OperationPermanent state="0"/>
  <OsBuildVersion path=""/>
  <OemTool state="0"/>
  <IsServer state="0"/>
  <DownlevelWinreLocation path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}"/>
  <IsWimBoot state="0"/>
  <NarratorScheduled state="0"/>
  <ScheduledOperation state="4"/>
</WindowsRE>
"#;

fn with_bom(text: &str) -> Vec<u8> {
    let mut b = vec![0xEF, 0xBB, 0xBF];
    b.extend_from_slice(text.as_bytes());
    b
}

#[test]
fn reads_an_enabled_windows_11_reagent_xml_with_bom() {
    let c = parse_reagent(&with_bom(ENABLED)).unwrap();
    assert_eq!(c.schema_version.as_deref(), Some("2.0"));
    assert_eq!(c.install_state, Some(1));
    assert_eq!(c.enabled(), Some(true));
    assert_eq!(
        c.bcd_id.as_deref(),
        Some("{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}")
    );
    assert_eq!(c.location_path.as_deref(), Some(r"\Recovery\WindowsRE"));
    assert_eq!(c.location_offset, Some(188_570_664_960));
    assert_eq!(c.location_id, Some(0));
    assert_eq!(
        c.location_guid.as_deref(),
        Some("{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}")
    );
    // The empty staging location: empty path and zero GUID read as absent, numbers as given.
    assert_eq!(c.image_location_path, None);
    assert_eq!(c.image_location_guid, None);
    assert_eq!(c.image_location_offset, Some(0));
    assert_eq!(c.os_build_version, None);
    // The same file without BOM, and as UTF-16LE / UTF-16BE with BOM, reads the same.
    assert_eq!(parse_reagent(ENABLED.as_bytes()).unwrap(), c);
    let mut le = vec![0xFF, 0xFE];
    le.extend(ENABLED.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(parse_reagent(&le).unwrap(), c);
    let mut be = vec![0xFE, 0xFF];
    be.extend(ENABLED.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(parse_reagent(&be).unwrap(), c);
}

#[test]
fn reads_the_disabled_form_and_missing_elements() {
    let disabled = ENABLED
        .replace(r#"path="\Recovery\WindowsRE" id="0" offset="188570664960" guid="{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}""#,
                 r#"path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}""#)
        .replace(r#"<WinreBCD id="{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}"/>"#, r#"<WinreBCD id="{00000000-0000-0000-0000-000000000000}"/>"#)
        .replace(r#"<InstallState state="1"/>"#, r#"<InstallState state="0"/>"#);
    let c = parse_reagent(&with_bom(&disabled)).unwrap();
    assert_eq!(c.enabled(), Some(false));
    assert_eq!(
        (c.bcd_id, c.location_path, c.location_guid),
        (None, None, None)
    );
    assert_eq!(c.location_offset, Some(0));
    // Windows 8 style: schema 1.0, no WinreBCD, a build string.
    let win8 = r#"<?xml version="1.0"?><WindowsRE version="1.0"><InstallState state="1"/>
        <OsBuildVersion path="9600.16384.amd64fre.winblue_rtm.130821-1623"/></WindowsRE>"#;
    let c = parse_reagent(win8.as_bytes()).unwrap();
    assert_eq!(c.schema_version.as_deref(), Some("1.0"));
    assert_eq!(c.bcd_id, None);
    assert_eq!(c.location_offset, None);
    assert_eq!(
        c.os_build_version.as_deref(),
        Some("9600.16384.amd64fre.winblue_rtm.130821-1623")
    );
}

#[test]
fn refuses_garbage_with_a_clear_error() {
    for bad in [
        &b"\x00\x01\x02binary"[..],
        b"<WindowsRE><InstallState state=\"1\"></WindowsRE>",
        b"",
        b"\xEF\xBB\xBF\xFF\xFE",
    ] {
        assert!(
            matches!(parse_reagent(bad), Err(ReagentError::Invalid(_))),
            "{bad:?}"
        );
    }
    let other_root = parse_reagent(b"<Something/>").unwrap_err();
    assert!(
        other_root.to_string().contains("expected <WindowsRE>"),
        "{other_root}"
    );
    let bad_number = ENABLED.replace(r#"offset="188570664960""#, r#"offset="lots""#);
    match parse_reagent(bad_number.as_bytes()) {
        Err(ReagentError::BadAttribute {
            element,
            attribute,
            value,
            ..
        }) => {
            assert_eq!(
                (element.as_str(), attribute.as_str(), value.as_str()),
                ("WinreLocation", "offset", "lots")
            );
        }
        other => panic!("{other:?}"),
    }
    let negative = ENABLED.replace(
        r#"<InstallState state="1"/>"#,
        r#"<InstallState state="-1"/>"#,
    );
    assert!(matches!(
        parse_reagent(negative.as_bytes()),
        Err(ReagentError::BadAttribute { .. })
    ));
    let huge = vec![b' '; winre_core::reagent::MAX_REAGENT_BYTES + 1];
    assert!(matches!(
        parse_reagent(&huge),
        Err(ReagentError::Invalid(_))
    ));
}

//! `scan` over every fixture disk of fixtures/make-winre-disks.sh. Expected values come from
//! independent tools, never from winre: partition offsets from sgdisk / sfdisk / fdisk, free
//! space from the bits of `$Bitmap` as ntfscat prints it, cluster size from ntfsinfo, WIM version
//! from wimlib-imagex, WinREVersion from hivexget, the WIM's bytes from ntfscat. The layout
//! facts (which partition is meant to hold WinRE, enabled or not) are the script's inputs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use winre_core::problem::ProblemCode;
use winre_core::report::{ScanReport, WinreStatus};
use winre_core::scan::{self, Requirement, ScanOptions};

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-winre-disks.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-winre-disks.sh");
        assert!(status.success(), "fixtures/make-winre-disks.sh failed");
        root.join("cache/winre")
    })
}

/// Runs a tool and returns its stdout; fails loudly when it is missing or fails.
fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(fixtures())
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(program: &str, args: &[&str]) -> String {
    String::from_utf8(tool(program, args)).unwrap()
}

/// NAME.env: the layout's facts as the script chose them.
fn facts(name: &str) -> HashMap<String, String> {
    std::fs::read_to_string(fixtures().join(format!("{name}.env")))
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn scan(name: &str, hash: bool) -> ScanReport {
    let options = ScanOptions {
        hash,
        ..ScanOptions::default()
    };
    scan::scan_path(&fixtures().join(format!("{name}.img")), &options).unwrap()
}

/// (number, start byte, size bytes) per partition, from sfdisk's dump (fdisk -b 4096 for 4Kn).
fn partitions_by_tool(name: &str, sector: u64) -> Vec<(u32, u64, u64)> {
    let dump = if sector == 512 {
        text("sfdisk", &["-d", &format!("{name}.img")])
    } else {
        // sfdisk assumes 512-byte sectors for an image file; fdisk takes the sector size.
        text(
            "fdisk",
            &[
                "-b",
                "4096",
                "-l",
                "-o",
                "Device,Start,Sectors",
                &format!("{name}.img"),
            ],
        )
    };
    let mut parts = Vec::new();
    for line in dump.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(&format!("{name}.img")) else {
            continue;
        };
        let (num, rest) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len()),
        );
        let Ok(number) = num.parse::<u32>() else {
            continue;
        };
        let (start, sectors) = if sector == 512 {
            let field = |key: &str| -> u64 {
                let at = rest.find(key).unwrap() + key.len();
                rest[at..]
                    .trim_start()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            (field("start="), field("size="))
        } else {
            let cols: Vec<&str> = rest.split_whitespace().collect();
            (cols[0].parse().unwrap(), cols[1].parse().unwrap())
        };
        parts.push((number, start * sector, sectors * sector));
    }
    assert!(!parts.is_empty(), "no partitions parsed from {dump}");
    parts
}

/// Free bytes of an NTFS image by counting clear bits of `$Bitmap` (ntfscat) up to the cluster
/// count ntfsinfo gives.
fn free_by_bitmap(image: &str) -> (u64, u32) {
    let info = text("ntfsinfo", &["-m", image]);
    let field = |key: &str| -> u64 {
        let line = info
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    let clusters = field("Volume Size in Clusters");
    let cluster_size = field("Cluster Size");
    let bitmap = tool("ntfscat", &[image, "$Bitmap"]);
    let used: u64 = (0..clusters)
        .map(|i| u64::from(bitmap[(i / 8) as usize] >> (i % 8) & 1))
        .sum();
    ((clusters - used) * cluster_size, cluster_size as u32)
}

/// MAJOR.MINOR.BUILD.SPBUILD of image 1, from wimlib-imagex.
fn wimlib_version(wim: &str) -> String {
    let info = text("wimlib-imagex", &["info", wim, "1"]);
    let field = |key: &str| -> String {
        info.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} not in wimlib-imagex info"))
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .to_string()
    };
    format!(
        "{}.{}.{}.{}",
        field("Major Version"),
        field("Minor Version"),
        field("Build"),
        field("Service Pack Build")
    )
}

/// The registry claim, from hivexget on the SOFTWARE hive ntfscat reads out of the OS volume.
fn hivex_winre_version(os_image: &str) -> Option<String> {
    let hive = tool("ntfscat", &[os_image, "/Windows/System32/config/SOFTWARE"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SOFTWARE");
    std::fs::write(&path, hive).unwrap();
    let out = Command::new("hivexget")
        .args([
            path.to_str().unwrap(),
            r"Microsoft\Windows NT\CurrentVersion",
            "WinREVersion",
        ])
        .output()
        .expect("hivexget (apt-get install libhivex-bin)");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The partition image file of partition `number` in layout `name`.
fn part_image(name: &str, number: u32) -> String {
    format!("{name}.p{number}.img")
}

/// Checks one layout against the tools; returns the report for layout-specific checks.
fn check_layout(name: &str) -> ScanReport {
    let f = facts(name);
    let sector: u64 = f["sector_size"].parse().unwrap();
    let report = scan(name, true);
    assert_eq!(report.source.format, "raw");
    assert_eq!(u64::from(report.source.sector_size), sector, "{name}");
    assert_eq!(
        report.source.disk_size,
        std::fs::metadata(fixtures().join(format!("{name}.img")))
            .unwrap()
            .len()
    );
    assert_eq!(report.partition_table.scheme, f["scheme"], "{name}");

    let by_tool = partitions_by_tool(name, sector);
    let ours: Vec<(u32, u64, u64)> = report
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .collect();
    assert_eq!(
        ours, by_tool,
        "{name}: partitions differ from the partitioning tool's"
    );

    let expected_status = match f["status"].as_str() {
        "enabled" => WinreStatus::Enabled,
        "disabled" => WinreStatus::Disabled,
        _ => WinreStatus::NotFound,
    };
    assert_eq!(
        report.winre.status, expected_status,
        "{name}: {:#?}",
        report.problems
    );

    if expected_status != WinreStatus::NotFound {
        let number: u32 = f["winre_partition"].parse().unwrap();
        assert_eq!(report.winre.partition, Some(number), "{name}");
        assert!(
            report
                .winre
                .path
                .as_deref()
                .unwrap()
                .eq_ignore_ascii_case(&f["winre_path"]),
            "{name}"
        );
        let version = wimlib_version(&f["wim"]);
        assert_eq!(
            report.winre.version_sources.wim_xml.unwrap().to_string(),
            version,
            "{name}"
        );
        assert_eq!(report.winre.version.unwrap().to_string(), version, "{name}");

        let wim_path = f["winre_path"].replace('\\', "/");
        let bytes = tool("ntfscat", &[&part_image(name, number), &wim_path]);
        let wim = report.winre.wim.as_ref().unwrap();
        assert_eq!(wim.size, bytes.len() as u64, "{name}");
        assert_eq!(
            wim.sha256.as_deref(),
            Some(sha256_hex(&bytes).as_str()),
            "{name}"
        );
        assert_eq!(wim.compression, "lzx");
        assert_eq!(wim.images, 1);
        assert!(!wim.integrity_table);
        assert!(!wim.solid);
    } else {
        assert_eq!(report.winre.partition, None);
        assert!(report.winre.wim.is_none());
        assert!(report.updates.is_empty());
    }

    let os_number = report.os_partitions[0];
    assert_eq!(
        report.winre.version_sources.registry.map(|v| v.to_string()),
        hivex_winre_version(&part_image(name, os_number)),
        "{name}"
    );

    if let Some(space) = &report.recovery_space {
        let (free, cluster) = free_by_bitmap(&part_image(name, space.partition));
        assert_eq!(
            space.free, free,
            "{name}: free bytes differ from the $Bitmap count"
        );
        assert_eq!(space.cluster_size, cluster, "{name}");
        assert_eq!(space.required_free, 262_144_000);
        assert_eq!(
            space.shortfall,
            262_144_000u64.saturating_sub(free),
            "{name}"
        );
    }
    let k = report.stats.bytes_read;
    assert!(k > 0, "{name}: no bytes counted");
    report
}

#[test]
fn gpt_recovery_after_os_with_room() {
    let r = check_layout("gpt-after");
    assert_eq!(r.winre.found_by.as_deref(), Some("reagent"));
    let space = r.recovery_space.as_ref().unwrap();
    assert_eq!(space.partition, 4);
    assert_eq!(space.shortfall, 0);
    let reagent = r.winre.reagent.as_ref().unwrap();
    assert_eq!(reagent.install_state, Some(1));
    assert_eq!(reagent.location_offset, Some(r.partitions[3].start));
    let bcd = r.winre.bcd.as_ref().unwrap();
    assert_eq!(
        bcd.ramdisk_path.as_deref(),
        Some(r"\Recovery\WindowsRE\Winre.wim")
    );
    assert_eq!(
        bcd.recovery_sequence,
        vec!["{ec9e2cda-63d3-11ee-bd2c-af2423a570b6}".to_string()]
    );
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    // KB5057589 brings 19041 to .5728, which this WinRE has.
    let kb = r
        .updates
        .iter()
        .find(|u| u.kb.as_deref() == Some("KB5057589"))
        .expect("KB5057589 listed for 19041");
    assert_eq!(kb.installed, Some(true));
    let pass = scan::check(
        &r,
        &Requirement {
            kb: Some("KB5057589".into()),
            min_free_bytes: Some(262_144_000),
            ..Default::default()
        },
    );
    assert!(pass.is_empty(), "{pass:?}");
}

#[test]
fn gpt_recovery_too_small_and_registry_claims_newer() {
    let r = check_layout("gpt-small");
    let space = r.recovery_space.as_ref().unwrap();
    assert!(space.shortfall > 0);
    assert!(
        r.problems
            .iter()
            .any(|p| p.code == ProblemCode::VersionMismatch),
        "{:#?}",
        r.problems
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.code == ProblemCode::ShortOfSpace && p.message.contains("short by")),
        "{:#?}",
        r.problems
    );
    let kb = r
        .updates
        .iter()
        .find(|u| u.kb.as_deref() == Some("KB5057589"))
        .unwrap();
    assert_eq!(kb.installed, Some(false));
    let fails = scan::check(
        &r,
        &Requirement {
            kb: Some("KB5057589".into()),
            min_free_bytes: Some(262_144_000),
            ..Default::default()
        },
    );
    assert_eq!(fails.len(), 2, "{fails:?}");
}

#[test]
fn gpt_recovery_first() {
    let r = check_layout("gpt-first");
    assert!(
        r.problems
            .iter()
            .any(|p| p.code == ProblemCode::RecoveryBeforeOs),
        "{:#?}",
        r.problems
    );
}

#[test]
fn mbr_disk() {
    let r = check_layout("mbr");
    assert_eq!(r.partitions[2].type_id, "0x27");
    assert_eq!(r.partitions[2].kind, "recovery");
    assert_eq!(r.winre.found_by.as_deref(), Some("reagent"));
    assert!(r
        .winre
        .bcd
        .as_ref()
        .unwrap()
        .found_at
        .contains(r"\Boot\BCD"));
}

#[test]
fn gpt_4096_byte_sectors() {
    let r = check_layout("gpt-4k");
    assert_eq!(r.winre.found_by.as_deref(), Some("reagent"));
}

#[test]
fn winre_disabled() {
    let r = check_layout("disabled");
    assert_eq!(r.winre.found_by.as_deref(), Some("os_system32"));
    assert_eq!(r.winre.reagent.as_ref().unwrap().install_state, Some(0));
    // The space reported is the (empty) recovery partition WinRE would go back to.
    assert_eq!(r.recovery_space.as_ref().unwrap().partition, 4);
}

#[test]
fn winre_on_os_volume() {
    let r = check_layout("on-os");
    assert_eq!(r.winre.found_by.as_deref(), Some("reagent"));
    assert_eq!(r.recovery_space.as_ref().unwrap().partition, 3);
}

#[test]
fn no_winre_at_all() {
    let r = check_layout("none");
    assert!(r.recovery_space.is_none());
    assert!(
        r.problems
            .iter()
            .any(|p| p.code == ProblemCode::WinreNotFound),
        "{:#?}",
        r.problems
    );
    assert!(r.winre.version_sources.registry.is_none());
}

#[test]
fn fragmented_wim_read_in_place() {
    let r = check_layout("fragmented");
    let runs: usize = facts("fragmented")["wim_runs"].parse().unwrap();
    assert_eq!(r.winre.wim.as_ref().unwrap().data_runs, runs);
    assert!(runs > 4);
}

#[test]
fn cluster_size_64k() {
    let r = check_layout("cluster64k");
    assert_eq!(r.recovery_space.as_ref().unwrap().cluster_size, 65536);
}

#[test]
fn plain_scan_reads_little_and_hash_reads_the_wim() {
    let plain = scan("gpt-after", false);
    assert!(plain.winre.wim.as_ref().unwrap().sha256.is_none());
    let hashed = scan("gpt-after", true);
    let wim_size = hashed.winre.wim.as_ref().unwrap().size;
    assert!(
        plain.stats.bytes_read < 8 << 20,
        "a plain scan read {} bytes",
        plain.stats.bytes_read
    );
    assert!(hashed.stats.bytes_read >= plain.stats.bytes_read + wim_size);
}

#[test]
fn report_serializes_with_the_documented_fields() {
    let r = scan("gpt-after", false);
    let v = serde_json::to_value(&r).unwrap();
    for pointer in [
        "/source/path",
        "/source/format",
        "/source/disk_size",
        "/source/sector_size",
        "/partition_table/scheme",
        "/partition_table/disk_guid",
        "/partitions/0/number",
        "/partitions/0/kind",
        "/partitions/0/type",
        "/partitions/0/start",
        "/partitions/0/size",
        "/partitions/0/attributes",
        "/partitions/0/name",
        "/partitions/0/filesystem",
        "/winre/status",
        "/winre/partition",
        "/winre/path",
        "/winre/version",
        "/winre/version_sources/wim_xml",
        "/winre/version_sources/registry",
        "/winre/wim/size",
        "/winre/wim/sha256",
        "/winre/wim/compression",
        "/winre/wim/solid",
        "/winre/wim/chunk_size",
        "/winre/wim/images",
        "/winre/wim/integrity_table",
        "/winre/reagent/install_state",
        "/winre/reagent/location_path",
        "/winre/reagent/location_offset",
        "/winre/reagent/bcd_id",
        "/winre/reagent/found_at",
        "/recovery_space/partition",
        "/recovery_space/size",
        "/recovery_space/free",
        "/recovery_space/cluster_size",
        "/recovery_space/required_free",
        "/recovery_space/shortfall",
        "/updates/0/kb",
        "/updates/0/min_version",
        "/updates/0/installed",
        "/problems",
    ] {
        assert!(v.pointer(pointer).is_some(), "JSON lacks {pointer}: {v:#}");
    }
    assert_eq!(v["winre"]["status"], "enabled");
    assert_eq!(
        v["partition_table"]["disk_guid"],
        "1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52"
    );
    assert_eq!(v["partitions"][3]["attributes"], "0x8000000000000001");
    assert_eq!(v["winre"]["version"], "10.0.19041.5728");
}

/// A partition image of a fixture scanned on its own: a bare volume, no partition table.
fn scan_file(path: &Path) -> ScanReport {
    scan::scan_path(path, &ScanOptions::default()).unwrap()
}

fn has_code(report: &ScanReport, code: ProblemCode) -> bool {
    report.problems.iter().any(|p| p.code == code)
}

#[test]
fn bare_recovery_volume_is_partition_1() {
    // gpt-after's recovery partition: mkntfs of a whole file, Winre.wim put in by wimlib-imagex
    // apply (no mounting).
    let image = part_image("gpt-after", 4);
    let path = fixtures().join(&image);
    let r = scan_file(&path);
    assert_eq!(r.partition_table.scheme, "none");
    assert_eq!(r.partitions.len(), 1, "{:#?}", r.partitions);
    let p = &r.partitions[0];
    assert_eq!(
        (p.number, p.start, p.size),
        (1, 0, std::fs::metadata(&path).unwrap().len())
    );
    assert_eq!(
        (p.kind.as_str(), p.filesystem.as_str()),
        ("recovery", "ntfs")
    );
    assert!(has_code(&r, ProblemCode::BareVolume), "{:#?}", r.problems);
    assert_eq!(r.winre.status, WinreStatus::Enabled);
    assert_eq!(r.winre.partition, Some(1));
    assert_eq!(
        r.winre.path.as_deref(),
        Some(r"\Recovery\WindowsRE\Winre.wim")
    );
    let wim = tool("ntfscat", &[&image, "/Recovery/WindowsRE/Winre.wim"]);
    assert_eq!(r.winre.wim.as_ref().unwrap().size, wim.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("winre.wim");
    std::fs::write(&copy, &wim).unwrap();
    assert_eq!(
        r.winre.version.unwrap().to_string(),
        wimlib_version(copy.to_str().unwrap())
    );
    let space = r
        .recovery_space
        .as_ref()
        .expect("free space of the bare volume");
    let (free, cluster) = free_by_bitmap(&image);
    assert_eq!(
        (space.partition, space.free, space.cluster_size),
        (1, free, cluster)
    );
}

#[test]
fn bare_os_volume_and_esp() {
    // The OS volume alone: ReAgent.xml's partition offset names a partition that is not there.
    let r = scan_file(&fixtures().join(part_image("gpt-after", 3)));
    assert_eq!(r.os_partitions, vec![1]);
    assert_eq!(r.partitions[0].kind, "basic_data");
    assert_eq!(
        r.winre.version_sources.registry.map(|v| v.to_string()),
        hivex_winre_version(&part_image("gpt-after", 3))
    );
    assert!(r.winre.reagent.is_some());
    // The ESP alone (mkfs.fat of a whole file, BCD copied in with mtools).
    let r = scan_file(&fixtures().join(part_image("gpt-after", 1)));
    assert_eq!(
        (
            r.partitions[0].kind.as_str(),
            r.partitions[0].filesystem.as_str()
        ),
        ("esp", "fat32")
    );
    assert_eq!(
        r.winre.bcd.as_ref().map(|b| b.found_at.as_str()),
        Some(r"partition 1:\EFI\Microsoft\Boot\BCD")
    );
}

#[test]
fn bare_volumes_from_mkntfs_and_mkfs_vfat() {
    let dir = tempfile::tempdir().unwrap();
    let ntfs = dir.path().join("ntfs.img");
    std::fs::File::create(&ntfs)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    tool("mkntfs", &["-F", "-Q", "-q", ntfs.to_str().unwrap()]);
    let r = scan_file(&ntfs);
    assert_eq!(r.partitions.len(), 1);
    assert_eq!(
        (
            r.partitions[0].kind.as_str(),
            r.partitions[0].filesystem.as_str()
        ),
        ("basic_data", "ntfs")
    );
    assert_eq!(r.winre.status, WinreStatus::NotFound);
    assert!(has_code(&r, ProblemCode::BareVolume), "{:#?}", r.problems);
    // Not a damaged image: no finding that changes the exit code.
    assert!(
        r.problems.iter().all(|p| p.code.scan_exit_code().is_none()),
        "{:#?}",
        r.problems
    );

    let fat = dir.path().join("fat.img");
    std::fs::File::create(&fat)
        .unwrap()
        .set_len(40 << 20)
        .unwrap();
    tool("mkfs.vfat", &["-F", "32", fat.to_str().unwrap()]);
    let r = scan_file(&fat);
    assert_eq!(
        (
            r.partitions[0].kind.as_str(),
            r.partitions[0].filesystem.as_str()
        ),
        ("basic_data", "fat32")
    );
    assert_eq!(r.partitions[0].size, 40 << 20);
}

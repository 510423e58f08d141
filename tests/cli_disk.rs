//! `winre disk info` and `winre disk cat` on the fixture disks, checked against sgdisk, sfdisk,
//! dd and sha256sum.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-disks.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run make-disks.sh");
    assert!(
        out.status.success(),
        "make-disks.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is needed for this test: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn sh(script: &str) -> String {
    tool("bash", &["-o", "pipefail", "-c", script])
}

fn info_json(image: &Path) -> serde_json::Value {
    let out = winre(&["disk", "info", "--json", image.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label}"))
        .trim()
}

#[test]
fn gpt_info_json_agrees_with_sgdisk() {
    let image = fixtures().join("gpt-512.img");
    let path = image.to_str().expect("path");
    let json = info_json(&image);
    let listing = tool("sgdisk", &["-p", path]);
    assert_eq!(json["partition_table"]["scheme"], "gpt");
    assert_eq!(json["partition_table"]["gpt_source"], "primary");
    assert_eq!(json["container"]["format"], "raw");
    assert_eq!(
        json["partition_table"]["disk_guid"].as_str().expect("guid"),
        after(&listing, "Disk identifier (GUID):").to_lowercase()
    );
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let parts = json["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), rows.len());
    assert_eq!(rows.len(), 4);
    for (p, row) in parts.iter().zip(&rows) {
        assert_eq!(p["number"].to_string(), row[0]);
        assert_eq!(p["start_lba"].to_string(), row[1]);
        assert_eq!(p["end_lba"].to_string(), row[2]);
        let info = tool("sgdisk", &["-i", row[0], path]);
        let first_word = |label: &str| {
            after(&info, label)
                .split_whitespace()
                .next()
                .expect("word")
                .to_lowercase()
        };
        assert_eq!(
            p["type_guid"].as_str(),
            Some(first_word("Partition GUID code:").as_str())
        );
        assert_eq!(
            p["unique_guid"].as_str(),
            Some(first_word("Partition unique GUID:").as_str())
        );
        assert_eq!(
            p["attributes"].as_str().expect("attributes"),
            format!("0x{}", after(&info, "Attribute flags:").to_lowercase())
        );
        assert_eq!(
            p["name"].as_str().map(|n| format!("'{n}'")).as_deref(),
            Some(after(&info, "Partition name:"))
        );
        let sectors: u64 = first_word("Partition size:").parse().expect("size");
        assert_eq!(p["size_bytes"].as_u64(), Some(sectors * 512));
    }
    assert_eq!(parts[3]["kind"], "recovery");
    assert_eq!(parts[3]["filesystem"], "ntfs");
    assert_eq!(parts[0]["filesystem"], "fat32");
}

#[test]
fn gpt_info_text_has_kinds_and_filesystems() {
    let image = fixtures().join("gpt-512.img");
    let out = winre(&["disk", "info", image.to_str().expect("path")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("4"))
        .unwrap_or_else(|| panic!("no row 4:\n{text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    // Start and end as sgdisk prints them, then our columns.
    let listing = tool("sgdisk", &["-p", image.to_str().expect("path")]);
    let theirs: Vec<&str> = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some("4"))
        .expect("sgdisk row 4")
        .split_whitespace()
        .collect();
    assert_eq!(words[1..3], theirs[1..3]);
    assert!(
        words.contains(&"recovery") && words.contains(&"ntfs"),
        "{row}"
    );
    assert!(row.contains("0x8000000000000001"), "{row}");
}

#[test]
fn mbr_info_json_agrees_with_sfdisk_dump() {
    let image = fixtures().join("mbr-512.img");
    let path = image.to_str().expect("path");
    let json = info_json(&image);
    let dump = tool("sfdisk", &["--dump", path]);
    assert_eq!(json["partition_table"]["scheme"], "mbr");
    assert_eq!(
        json["partition_table"]["disk_signature"].as_str(),
        Some(after(&dump, "label-id:"))
    );
    // "/path/img5 : start=     1847296, size=      131072, type=6, bootable"
    let theirs: Vec<(u64, u64, u64, String, bool)> = dump
        .lines()
        .filter_map(|l| l.strip_prefix(path))
        .map(|l| {
            let (number, rest) = l.split_once(" : ").expect("row");
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|f| f.trim().strip_prefix(k))
                    .expect("field")
                    .trim()
                    .to_string()
            };
            (
                number.trim().parse().expect("number"),
                field("start=").parse().expect("start"),
                field("size=").parse().expect("size"),
                field("type="),
                rest.contains("bootable"),
            )
        })
        .collect();
    let ours: Vec<(u64, u64, u64, String, bool)> = json["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().expect("number"),
                p["start_lba"].as_u64().expect("start"),
                p["size_sectors"].as_u64().expect("size"),
                format!("{:x}", p["mbr_type"].as_u64().expect("type")),
                p["active"].as_bool().expect("active"),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 5);
}

/// `disk cat --partition N` is byte for byte what dd cuts out of the raw image.
#[test]
fn cat_partition_equals_dd_of_the_raw_image() {
    let dir = fixtures();
    for (image, number, sector) in [
        ("gpt-512.img", 1, 512),
        ("mbr-512.img", 5, 512),
        ("gpt-4096.img", 1, 4096),
    ] {
        let path = dir.join(image);
        let p = path.to_str().expect("path");
        let json = info_json(&path);
        let part = json["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .find(|x| x["number"] == number)
            .expect("partition")
            .clone();
        let start = part["start_lba"].as_u64().expect("start");
        let count = part["size_sectors"].as_u64().expect("size");
        let ours = sh(&format!(
            "{} disk cat --partition {number} '{p}' | sha256sum",
            env!("CARGO_BIN_EXE_winre")
        ));
        let theirs = sh(&format!(
            "dd if='{p}' bs={sector} skip={start} count={count} status=none | sha256sum"
        ));
        assert_eq!(ours, theirs, "{image} partition {number}");
    }
}

#[test]
fn cat_whole_disk_equals_the_raw_image() {
    let path = fixtures().join("gpt-4096.img");
    let p = path.to_str().expect("path");
    let ours = sh(&format!(
        "{} disk cat '{p}' | sha256sum",
        env!("CARGO_BIN_EXE_winre")
    ));
    let theirs = sh(&format!("sha256sum < '{p}'"));
    assert_eq!(ours, theirs);
}

#[test]
fn cat_refuses_a_missing_partition_and_a_terminal() {
    let path = fixtures().join("gpt-512.img");
    let p = path.to_str().expect("path");
    let out = winre(&["disk", "cat", "--partition", "7", p]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no partition 7") && err.contains("1, 2, 3, 4"),
        "{err}"
    );

    // `script` gives the command a terminal as stdout.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} disk cat '{p}'", env!("CARGO_BIN_EXE_winre")),
            "/dev/null",
        ])
        .output()
        .expect("script (util-linux) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refusing to write"), "{text}");
    assert_ne!(out.status.code(), Some(0));
}

/// The Windows-like disks inside every container qemu-img and ewfacquire write: the same
/// partitions as the raw image, and `disk cat --partition N` gives dd's bytes of the raw image.
#[test]
fn containers_of_the_fixture_disks_read_like_the_raw_image() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().expect("tempdir");
    let raw512 = dir.join("gpt-512.img");
    let raw4k = dir.join("gpt-4096.img");
    let r512 = raw512.to_str().expect("path");
    let r4k = raw4k.to_str().expect("path");
    let t = tmp.path().to_str().expect("path");
    // (container, the raw image it came from, sector size, how it was made)
    let cases = [
        ("vhd-dynamic.vhd", r512, 512, format!("qemu-img convert -f raw -O vpc -o subformat=dynamic '{r512}' '{t}/vhd-dynamic.vhd'")),
        ("vhdx.vhdx", r512, 512, format!("qemu-img convert -f raw -O vhdx '{r512}' '{t}/vhdx.vhdx'")),
        ("stream.vmdk", r512, 512, format!("qemu-img convert -f raw -O vmdk -o subformat=streamOptimized '{r512}' '{t}/stream.vmdk'")),
        ("c.qcow2", r512, 512, format!("qemu-img convert -f raw -O qcow2 -c '{r512}' '{t}/c.qcow2'")),
        ("e4k.E01", r4k, 4096, format!(
            "ewfacquire -u -q -t '{t}/e4k' -C case -D winre -E 1 -e winre -N none -c fast -P 4096 '{r4k}' >/dev/null"
        )),
    ];
    for (name, raw, sector, make) in cases {
        sh(&make);
        let container = tmp.path().join(name);
        let ours = info_json(&container);
        let theirs = info_json(Path::new(raw));
        assert_eq!(ours["partitions"], theirs["partitions"], "{name}");
        assert_eq!(ours["partition_table"]["sector_size"], sector, "{name}");
        assert_eq!(ours["partition_table"]["gpt_source"], "primary", "{name}");
        assert_eq!(
            ours["partition_table"]["disk_guid"], theirs["partition_table"]["disk_guid"],
            "{name}"
        );
        let notes = ours["partition_table"]["notes"].as_array().expect("notes");
        // qemu's VHD rounds the disk up to a CHS geometry, so the backup is no longer last.
        let allowed = |n: &serde_json::Value| {
            n.as_str()
                .is_some_and(|n| n.contains("not at the last LBA"))
        };
        assert!(notes.iter().all(allowed), "{name}: {notes:?}");
        let part = &ours["partitions"][3];
        let (start, count) = (
            part["start_lba"].as_u64().expect("start"),
            part["size_sectors"].as_u64().expect("size"),
        );
        let c = container.to_str().expect("path");
        let got = sh(&format!(
            "{} disk cat --partition 4 '{c}' | sha256sum",
            env!("CARGO_BIN_EXE_winre")
        ));
        let want = sh(&format!(
            "dd if='{raw}' bs={sector} skip={start} count={count} status=none | sha256sum"
        ));
        assert_eq!(got, want, "{name}: partition 4");
    }
}

/// Into a new regular file, zero blocks become holes (the bytes are the same); appending with
/// `>>` writes every byte after what the file held.
#[test]
fn cat_into_a_file_leaves_holes_and_appending_still_appends() {
    use std::os::unix::fs::MetadataExt;
    let image = fixtures().join("gpt-512.img");
    let p = image.to_str().expect("path");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("esp.img");
    let o = out.to_str().expect("path");
    let winre = env!("CARGO_BIN_EXE_winre");
    sh(&format!("{winre} disk cat --partition 1 '{p}' > '{o}'"));
    let want = sh(&format!(
        "dd if='{p}' bs=512 skip=2048 count=204800 status=none | sha256sum"
    ));
    assert_eq!(sh(&format!("sha256sum < '{o}'")), want);
    let meta = std::fs::metadata(&out).expect("metadata");
    assert_eq!(meta.len(), 100 << 20);
    assert!(
        meta.blocks() * 512 < meta.len() / 4,
        "{} bytes allocated",
        meta.blocks() * 512
    );

    let appended = tmp.path().join("appended.img");
    let a = appended.to_str().expect("path");
    std::fs::write(&appended, b"already here\n").expect("write");
    sh(&format!("{winre} disk cat --partition 1 '{p}' >> '{a}'"));
    let want = sh(&format!(
        "(printf 'already here\\n'; dd if='{p}' bs=512 skip=2048 count=204800 status=none) | sha256sum"
    ));
    assert_eq!(sh(&format!("sha256sum < '{a}'")), want);
}

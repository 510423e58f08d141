//! `winre scan`, `winre check` and `winre extract` as a pipeline sees them: JSON lines, exit
//! codes, error records, and an extracted Winre.wim checked with ntfscat and wimlib-imagex.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-winre-disks.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-winre-disks.sh");
        assert!(status.success(), "fixtures/make-winre-disks.sh failed");
        root.join("cache/winre")
    })
}

fn img(name: &str) -> String {
    fixtures().join(format!("{name}.img")).display().to_string()
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn scan_json_one_line_per_image_and_an_error_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("not-a-disk.img");
    std::fs::write(&bogus, b"hello").expect("write");
    let after = img("gpt-after");
    let small = img("gpt-small");
    let out = winre(&[
        "scan",
        "--json",
        "--jobs",
        "2",
        &after,
        bogus.to_str().expect("path"),
        &small,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["source"]["path"], after.as_str());
    assert_eq!(lines[0]["winre"]["status"], "enabled");
    assert_eq!(lines[1]["source"]["path"], bogus.to_str().expect("path"));
    assert!(
        lines[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        lines[1]
    );
    assert!(lines[2]["recovery_space"]["shortfall"]
        .as_u64()
        .is_some_and(|s| s > 0));
}

#[test]
fn scan_exits_0_when_every_image_reads_and_prints_text() {
    let out = winre(&["scan", &img("gpt-after"), &img("none"), "--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("Windows RE status:    Enabled"), "{text}");
    assert!(text.contains("Windows RE status:    Not found"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bytes"),
        "--stats prints bytes read"
    );
}

#[test]
fn check_exit_codes() {
    let pass = winre(&["check", &img("gpt-after"), "--kb", "KB5057589"]);
    assert_eq!(pass.status.code(), Some(0), "{}", stdout(&pass));
    let fail = winre(&[
        "check",
        &img("gpt-after"),
        &img("gpt-small"),
        "--kb",
        "KB5057589",
    ]);
    assert_eq!(fail.status.code(), Some(1), "{}", stdout(&fail));
    let text = stdout(&fail);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("gpt-small.img: FAIL"))
            .count(),
        2,
        "{text}"
    );
    let version = winre(&[
        "check",
        &img("gpt-small"),
        "--min-version",
        "10.0.19041.3920",
        "--min-free",
        "50MiB",
    ]);
    assert_eq!(version.status.code(), Some(0), "{}", stdout(&version));
    let free = winre(&["check", &img("gpt-after"), "--min-free", "1GiB"]);
    assert_eq!(free.status.code(), Some(1), "{}", stdout(&free));
    let missing = winre(&["check", "/nonexistent/disk.img"]);
    assert_eq!(missing.status.code(), Some(2));
    let bad_size = winre(&["check", &img("gpt-after"), "--min-free", "lots"]);
    assert_eq!(
        bad_size.status.code(),
        Some(64),
        "a bad SIZE is a usage error"
    );
}

#[test]
fn extract_matches_ntfscat_and_verifies_with_wimlib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_wim = dir.path().join("winre.wim");
    let out_xml = dir.path().join("ReAgent.xml");
    let o = out_wim.to_str().expect("path");
    let x = out_xml.to_str().expect("path");
    let run = winre(&["extract", &img("fragmented"), "-o", o, "--reagent", x]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let extracted = std::fs::read(&out_wim).expect("extracted wim");
    let by_ntfscat = Command::new("ntfscat")
        .args([
            fixtures().join("fragmented.p4.img").to_str().expect("path"),
            "/Recovery/WindowsRE/Winre.wim",
        ])
        .output()
        .expect("ntfscat (apt-get install ntfs-3g)");
    assert!(by_ntfscat.status.success());
    assert_eq!(extracted, by_ntfscat.stdout);
    assert!(
        stdout(&run).starts_with(&sha256_hex(&extracted)),
        "{}",
        stdout(&run)
    );
    let verify = Command::new("wimlib-imagex")
        .args(["verify", o])
        .output()
        .expect("wimlib-imagex (apt-get install wimtools)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let reagent = std::fs::read(&out_xml).expect("ReAgent.xml");
    assert!(
        reagent.starts_with(b"\xef\xbb\xbf<?xml"),
        "ReAgent.xml keeps its BOM"
    );

    let again = winre(&["extract", &img("fragmented"), "-o", o]);
    assert_ne!(again.status.code(), Some(0), "refuses to overwrite");
    let forced = winre(&["extract", &img("gpt-after"), "-o", o, "--force"]);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let none = winre(&[
        "extract",
        &img("none"),
        "-o",
        dir.path().join("x.wim").to_str().expect("path"),
    ]);
    assert_eq!(none.status.code(), Some(2));
}

/// `scan --json IMAGE`: the exit code and the record's problems.
fn scan_problems(image: &Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = winre(&["scan", "--json", image.to_str().expect("path")]);
    let record: serde_json::Value =
        serde_json::from_str(stdout(&out).trim()).expect("one JSON record");
    let problems = record["problems"].as_array().expect("problems").clone();
    (out.status.code(), problems)
}

fn has(problems: &[serde_json::Value], code: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p["code"] == code && p["message"].as_str().is_some_and(|m| m.contains(needle)))
}

#[test]
fn scan_of_the_first_megabyte_says_truncated_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = dir.path().join("first-mib.img");
    let disk = std::fs::read(img("gpt-after")).expect("fixture");
    std::fs::write(&cut, &disk[..1 << 20]).expect("write");
    let (code, problems) = scan_problems(&cut);
    assert_eq!(code, Some(1), "{problems:#?}");
    // sgdisk reads the same table: partition 4 starts past the first MiB.
    let sg = Command::new("sgdisk")
        .args(["-i", "4", cut.to_str().expect("path")])
        .output()
        .expect("sgdisk (apt-get install gdisk)");
    let info = String::from_utf8_lossy(&sg.stdout);
    let first: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("First sector: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("sgdisk first sector");
    assert!(
        has(
            &problems,
            "partition_past_end",
            &format!("partition 4 (bytes {}..", first * 512)
        ),
        "{problems:#?}"
    );
    assert!(
        has(&problems, "no_filesystem", "GPT partition table lists 4"),
        "{problems:#?}"
    );
    let text = stdout(&winre(&["scan", cut.to_str().expect("path")]));
    assert!(text.contains("ends past the end of the image"), "{text}");
    let check = winre(&["check", cut.to_str().expect("path")]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("FAIL: partition 1"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn scan_of_an_elf_or_a_png_says_not_a_disk_image_and_exits_2() {
    let elf = Path::new(env!("CARGO_BIN_EXE_winre"));
    let file = Command::new("file").arg(elf).output().expect("file(1)");
    assert!(String::from_utf8_lossy(&file.stdout).contains("ELF"));
    let (code, problems) = scan_problems(elf);
    assert_eq!(code, Some(2), "{problems:#?}");
    assert!(has(&problems, "not_a_disk_image", "ELF"), "{problems:#?}");

    // A PNG as Chromium's screenshot or any encoder writes it; here the Python encoder.
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("shot.png");
    let made = Command::new("python3")
        .args([
            "-c",
            "import sys, zlib, struct\n\
             def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n\
             raw = b''.join(b'\\0' + bytes((x * x + y * 7) % 251 for x in range(256)) for y in range(256))\n\
             open(sys.argv[1], 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 256, 256, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))",
            png.to_str().expect("path"),
        ])
        .status()
        .expect("python3");
    assert!(made.success());
    let file = Command::new("file").arg(&png).output().expect("file(1)");
    assert!(String::from_utf8_lossy(&file.stdout).contains("PNG image data"));
    assert!(std::fs::metadata(&png).expect("png").len() > 512);
    let (code, problems) = scan_problems(&png);
    assert_eq!(code, Some(2), "{problems:#?}");
    assert!(has(&problems, "not_a_disk_image", "PNG"), "{problems:#?}");

    // Shorter than a sector: an error record that still says what the file is.
    let tiny = dir.path().join("tiny.png");
    std::fs::write(&tiny, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
    let out = winre(&["scan", "--json", tiny.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    let record: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a disk image: the file is a PNG image")),
        "{record}"
    );
}

#[test]
fn scan_of_a_table_without_file_systems_exits_1() {
    // sgdisk writes a GPT with one partition over zeros: nothing to read in it.
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("empty-gpt.img");
    std::fs::File::create(&disk)
        .expect("create")
        .set_len(8 << 20)
        .expect("size");
    let sg = Command::new("sgdisk")
        .args([
            "-n",
            "1:2048:0",
            "-t",
            "1:0700",
            disk.to_str().expect("path"),
        ])
        .output()
        .expect("sgdisk");
    assert!(
        sg.status.success(),
        "{}",
        String::from_utf8_lossy(&sg.stderr)
    );
    let (code, problems) = scan_problems(&disk);
    assert_eq!(code, Some(1), "{problems:#?}");
    assert!(
        has(&problems, "no_filesystem", "lists 1 partition(s)"),
        "{problems:#?}"
    );
    assert!(!problems.iter().any(|p| p["code"] == "partition_past_end"));
}

#[test]
fn scan_of_a_blank_disk_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blank = dir.path().join("blank.qcow2");
    let made = Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            blank.to_str().expect("path"),
            "64M",
        ])
        .status()
        .expect("qemu-img");
    assert!(made.success());
    let (code, problems) = scan_problems(&blank);
    assert_eq!(code, Some(1), "{problems:#?}");
    assert!(
        has(&problems, "no_partition_table", "all zeros"),
        "{problems:#?}"
    );
}

#[test]
fn bare_volume_scans_with_exit_0() {
    let part = fixtures().join("gpt-after.p4.img");
    let (code, problems) = scan_problems(&part);
    assert_eq!(code, Some(0), "{problems:#?}");
    assert!(
        has(&problems, "bare_volume", "one ntfs volume"),
        "{problems:#?}"
    );
}

/// A copy of gpt-after.img with one byte of Winre.wim flipped in the middle of the file, found
/// in the disk through ntfscat's copy of it; and that damaged Winre.wim, read back with ntfscat
/// from the damaged partition.
fn damaged_winre_disk(dir: &Path) -> (PathBuf, PathBuf) {
    let part = fixtures().join("gpt-after.p4.img");
    let wim = Command::new("ntfscat")
        .args([
            part.to_str().expect("path"),
            "/Recovery/WindowsRE/Winre.wim",
        ])
        .output()
        .expect("ntfscat")
        .stdout;
    let middle = wim.len() / 2;
    let needle = &wim[middle..middle + 64];
    let volume = std::fs::read(&part).expect("partition image");
    let at = volume
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("Winre.wim's bytes in its volume");
    let dump = stdout(
        &Command::new("sfdisk")
            .args(["-d", &img("gpt-after")])
            .output()
            .expect("sfdisk"),
    );
    let start: u64 = dump
        .lines()
        .find(|l| l.contains("img4 :"))
        .and_then(|l| l.split("start=").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("partition 4 start");
    let disk = dir.join("damaged.img");
    let cp = Command::new("cp")
        .args([
            "--sparse=always",
            &img("gpt-after"),
            disk.to_str().expect("path"),
        ])
        .status()
        .expect("cp");
    assert!(cp.success());
    let mut bytes = [0u8; 1];
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .expect("open copy");
    let offset = start * 512 + at as u64;
    file.read_exact_at(&mut bytes, offset).expect("read");
    file.write_all_at(&[bytes[0] ^ 0x40], offset)
        .expect("write");
    // The damaged partition, cut out with dd, and its Winre.wim as ntfscat reads it.
    let cut = dir.join("p4.img");
    let dd = Command::new("dd")
        .args([
            format!("if={}", disk.display()),
            format!("of={}", cut.display()),
            "bs=512".into(),
            format!("skip={start}"),
            format!("count={}", volume.len() / 512),
            "status=none".into(),
        ])
        .status()
        .expect("dd");
    assert!(dd.success());
    let damaged = dir.join("damaged.wim");
    let cat = Command::new("ntfscat")
        .args([cut.to_str().expect("path"), "/Recovery/WindowsRE/Winre.wim"])
        .output()
        .expect("ntfscat");
    std::fs::write(&damaged, cat.stdout).expect("write");
    (disk, damaged)
}

#[test]
fn verify_scan_and_check_find_a_damaged_winre_wim_in_a_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (disk, wim) = damaged_winre_disk(dir.path());
    let d = disk.to_str().expect("path");
    let wimlib = Command::new("wimlib-imagex")
        .args(["verify", wim.to_str().expect("path")])
        .output()
        .expect("wimlib-imagex");
    assert!(
        !wimlib.status.success(),
        "wimlib-imagex verify finds the damage too"
    );

    let out = winre(&["verify", "--json", d]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["intact"], false);
    assert_eq!(v["winre"]["partition"], 4);
    let failures = v["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{v:#}");
    // Same verdict as `winre verify` of the file ntfscat copied out.
    let out_file = winre(&["verify", "--json", wim.to_str().expect("path")]);
    let f: serde_json::Value = serde_json::from_slice(&out_file.stdout).expect("JSON");
    assert_eq!(f["failures"], v["failures"]);

    let out = winre(&["scan", "--json", "--verify", d]);
    let r: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(r["winre"]["wim"]["verify"]["intact"], false, "{r:#}");
    assert_eq!(r["winre"]["wim"]["verify"]["failures"], v["failures"]);
    let problems = r["problems"].as_array().expect("problems");
    assert!(has(problems, "wim_corrupt", "is corrupt"), "{problems:#?}");
    // Without --verify the scan reads no blob and says nothing about it.
    let out = winre(&["scan", "--json", d]);
    let r: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert!(r["winre"]["wim"]["verify"].is_null());

    let check = winre(&["check", "--verify", d]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("FAIL: Winre.wim is corrupt"),
        "{}",
        stdout(&check)
    );
    assert_eq!(winre(&["check", d]).status.code(), Some(0));
    // The intact disk verifies.
    let ok = winre(&["check", "--verify", &img("gpt-after")]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert_eq!(winre(&["verify", &img("gpt-after")]).status.code(), Some(0));
}

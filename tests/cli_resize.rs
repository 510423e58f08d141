//! `winre resize --apply` and `winre undo` on copies of the fixture disks, checked with
//! independent tools: sgdisk -v / sfdisk (tables), ntfsresize --info and ntfsfix --no-action
//! (each changed NTFS volume), ntfscat + wimlib-imagex verify (Winre.wim), ntfscat (ReAgent.xml
//! and the OS files, by SHA-256), and the image's SHA-256 after `undo`, also after the process
//! was killed at every write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-resize-disks.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run make-resize-disks.sh");
        assert!(status.success(), "fixtures/make-resize-disks.sh failed");
        root.join("cache")
    })
}

/// A sparse copy of fixture `rel` (under fixtures/cache) in `dir`.
fn copy(rel: &str, dir: &Path) -> PathBuf {
    let src = fixtures().join(rel);
    let dst = dir.join(src.file_name().unwrap());
    let st = Command::new("cp")
        .args(["--sparse=always", "-f"])
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .expect("run winre")
}

fn tool(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is missing ({e}); install ntfs-3g gdisk fdisk wimtools"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Partitions as sfdisk reads them: (number, start sector, sectors).
fn sfdisk_parts(img: &Path) -> Vec<(u32, u64, u64)> {
    let out = tool("sfdisk", &["--json", s(img)]);
    assert!(out.status.success(), "sfdisk: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let n: u32 = node[s(img).len()..].parse().unwrap();
            (n, p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())
        })
        .collect()
}

/// Partition `n` copied out (sparse) with dd, for the ntfs-3g tools.
fn extract(img: &Path, n: u32, dir: &Path) -> PathBuf {
    let (_, start, size) = sfdisk_parts(img).into_iter().find(|p| p.0 == n).unwrap();
    let out = dir.join(format!("p{n}.img"));
    let st = Command::new("dd")
        .arg(format!("if={}", s(img)))
        .arg(format!("of={}", s(&out)))
        .args([
            "bs=512",
            &format!("skip={start}"),
            &format!("count={size}"),
            "conv=sparse",
            "status=none",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// ntfsresize --info and ntfsfix --no-action find nothing wrong with the volume.
fn ntfs_clean(volume: &Path) {
    let out = tool(
        "ntfsresize",
        &["--info", "--force", "--no-action", s(volume)],
    );
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        out.status.success(),
        "ntfsresize --info on {}: {all}",
        volume.display()
    );
    assert!(!all.contains("ERROR"), "ntfsresize: {all}");
    let out = tool("ntfsfix", &["--no-action", s(volume)]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        out.status.success(),
        "ntfsfix --no-action on {}: {all}",
        volume.display()
    );
    assert!(all.contains("processed successfully"), "ntfsfix: {all}");
}

fn ntfscat(volume: &Path, path: &str) -> Vec<u8> {
    let out = tool("ntfscat", &[s(volume), path]);
    assert!(
        out.status.success(),
        "ntfscat {path}: {}",
        text(&out.stderr)
    );
    out.stdout
}

fn wim_verifies(volume: &Path, dir: &Path) {
    let wim = dir.join("check.wim");
    std::fs::write(&wim, ntfscat(volume, "/Recovery/WindowsRE/Winre.wim")).unwrap();
    let out = tool("wimlib-imagex", &["verify", s(&wim)]);
    assert!(
        out.status.success(),
        "wimlib-imagex verify: {}",
        text(&out.stderr)
    );
}

const OS_FILES: [&str; 3] = [
    "/Windows/System32/config/SOFTWARE",
    "/Windows/System32/winload.efi",
    "/Windows/System32/ntoskrnl.exe",
];

/// `winre plan --json` of `img` with `extra` (the flags resize gets too).
fn plan(img: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--json", s(img)];
    args.extend_from_slice(extra);
    let out = winre(&args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("winre plan: {e}: {}", text(&out.stderr));
    })
}

/// The resize carried out exactly `winre plan`'s steps, and the image shows each: the file
/// length, every partition's extent (read by sfdisk), every resized NTFS volume's boot sector
/// total sectors (read from the image's bytes) and clusters (ntfsinfo).
fn carried_out_the_plan(plan: &serde_json::Value, resized: &serde_json::Value, img: &Path) {
    let steps = plan["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{plan}");
    assert_eq!(
        &resized["apply"]["steps"], &plan["steps"],
        "resize carried out other steps than winre plan printed"
    );
    assert_eq!(resized["actions"], plan["steps"]);
    let parts = sfdisk_parts(img);
    for step in steps {
        let n = step["partition"].as_u64().unwrap_or(0) as u32;
        match step["op"].as_str().unwrap() {
            "grow_image" => assert_eq!(
                std::fs::metadata(img).unwrap().len(),
                step["new_len_bytes"].as_u64().unwrap()
            ),
            "set_partition_extent" => {
                let p = parts.iter().find(|p| p.0 == n).unwrap();
                let (first, last) = (
                    step["start_lba"].as_u64().unwrap(),
                    step["end_lba"].as_u64().unwrap(),
                );
                assert_eq!((p.1, p.1 + p.2 - 1), (first, last), "partition {n}: {step}");
            }
            "grow_ntfs" | "shrink_ntfs" => {
                let p = parts.iter().find(|p| p.0 == n).unwrap();
                assert_eq!(p.2 * 512, step["new_size_bytes"].as_u64().unwrap());
                let mut boot = [0u8; 512];
                let f = std::fs::File::open(img).unwrap();
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut boot, p.1 * 512).unwrap();
                let sectors = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap());
                assert_eq!(
                    sectors,
                    step["new_total_sectors"].as_u64().unwrap(),
                    "boot sector of partition {n}: {step}"
                );
                let dir = tempfile::tempdir().unwrap();
                let vol = extract(img, n, dir.path());
                let info = text(&tool("ntfsinfo", &["-m", s(&vol)]).stdout);
                let want = format!("Volume Size in Clusters: {}", step["new_total_clusters"]);
                assert!(info.contains(&want), "ntfsinfo lacks {want}: {info}");
            }
            _ => {}
        }
    }
}

fn resize(img: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["resize", s(img), "--apply", "--json"];
    args.extend_from_slice(extra);
    let out = winre(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, v)
}

/// `winre scan` (a separate reading) says the WinRE volume now has `min_free` bytes free.
fn scan_has_free(img: &Path, min_free: &str) -> u64 {
    let out = winre(&["scan", "--json", "--min-free", min_free, s(img)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rs = &v["recovery_space"];
    assert_eq!(rs["shortfall"], 0, "scan after resize: {rs}");
    rs["free"].as_u64().unwrap()
}

fn undo_restores(img: &Path, original_sha: &str) {
    let out = winre(&["undo", s(img)]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    assert_eq!(
        sha256_file(img),
        original_sha,
        "undo did not restore the image bit for bit"
    );
}

#[test]
fn grows_into_free_space_after_the_recovery_partition_and_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("resize/gpt-grown.img", dir.path());
    let original = sha256_file(&img);
    let before = extract(&img, 4, dir.path());
    let wim_before = ntfscat(&before, "/Recovery/WindowsRE/Winre.wim");
    let planned = plan(&img, &[]);
    let (out, v) = resize(&img, &[]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(v["case"], "free_after_recovery");
    carried_out_the_plan(&planned, &v, &img);
    assert!(v["free_after_bytes"].as_u64().unwrap() >= 262_144_000);
    scan_has_free(&img, "262144000");
    let sg = tool("sgdisk", &["-v", s(&img)]);
    assert!(
        text(&sg.stdout).contains("No problems found"),
        "sgdisk -v: {}",
        text(&sg.stdout)
    );
    let parts = sfdisk_parts(&img);
    let rec = parts.iter().find(|p| p.0 == 4).unwrap();
    assert_eq!(
        rec.1 * 512,
        290_455_552,
        "start unchanged (277 MiB, as make-winre-disks.sh placed it)"
    );
    let vol = extract(&img, 4, dir.path());
    ntfs_clean(&vol);
    assert_eq!(ntfscat(&vol, "/Recovery/WindowsRE/Winre.wim"), wim_before);
    wim_verifies(&vol, dir.path());
    // The GPT keeps the partition's unique GUID, type and attributes.
    let info = text(&tool("sgdisk", &["-i", "4", s(&img)]).stdout);
    assert!(
        info.contains("5A1C0004-0000-4000-8000-000000000004"),
        "{info}"
    );
    assert!(
        info.contains("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"),
        "{info}"
    );
    assert!(info.contains("8000000000000001"), "{info}");
    undo_restores(&img, &original);
}

#[test]
fn shrinks_the_os_moves_and_grows_the_recovery_partition_then_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("winre/gpt-after.img", dir.path());
    let original = sha256_file(&img);
    let os_before = extract(&img, 3, dir.path());
    let os_files: Vec<Vec<u8>> = OS_FILES.iter().map(|f| ntfscat(&os_before, f)).collect();
    let planned = plan(&img, &["--min-free", "350MiB"]);
    let (out, v) = resize(&img, &["--min-free", "350MiB"]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(v["case"], "shrink_os");
    carried_out_the_plan(&planned, &v, &img);
    scan_has_free(&img, "350MiB");
    let sg = tool("sgdisk", &["-v", s(&img)]);
    assert!(
        text(&sg.stdout).contains("No problems found"),
        "sgdisk -v: {}",
        text(&sg.stdout)
    );
    let parts = sfdisk_parts(&img);
    let os = parts.iter().find(|p| p.0 == 3).unwrap();
    let rec = parts.iter().find(|p| p.0 == 4).unwrap();
    assert_eq!(
        os.1 + os.2,
        rec.1,
        "recovery starts where the shrunk OS ends"
    );
    assert!(rec.1 * 512 < 290_455_552, "recovery moved down");
    let os_vol = extract(&img, 3, dir.path());
    let rec_vol = extract(&img, 4, dir.path());
    ntfs_clean(&os_vol);
    ntfs_clean(&rec_vol);
    wim_verifies(&rec_vol, dir.path());
    for (f, want) in OS_FILES.iter().zip(&os_files) {
        assert_eq!(
            sha256_file_bytes(&ntfscat(&os_vol, f)),
            sha256_file_bytes(want),
            "{f} changed"
        );
    }
    let reagent = text(&ntfscat(&os_vol, "/Windows/System32/Recovery/ReAgent.xml"));
    let want = format!("offset=\"{}\"", rec.1 * 512);
    assert!(
        reagent.contains(&want),
        "ReAgent.xml lacks {want}: {reagent}"
    );
    // The recovery volume's own copy follows too.
    let own = text(&ntfscat(&rec_vol, "/Recovery/WindowsRE/ReAgent.xml"));
    assert!(
        own.contains(&want),
        "the recovery volume's ReAgent.xml lacks {want}: {own}"
    );
    undo_restores(&img, &original);
}

fn sha256_file_bytes(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn grows_the_image_file_when_asked_and_undo_truncates_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("winre/gpt-small.img", dir.path());
    let original = sha256_file(&img);
    let len = std::fs::metadata(&img).unwrap().len();
    let (out, _) = resize(&img, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "without --grow-image there is no room: {}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&img), original);
    let planned = plan(&img, &["--grow-image"]);
    assert_eq!(planned["case"], "grow_image");
    assert_eq!(planned["steps"][0]["op"], "grow_image", "{planned}");
    let (out, v) = resize(&img, &["--grow-image"]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(v["case"], "grow_image");
    carried_out_the_plan(&planned, &v, &img);
    assert!(std::fs::metadata(&img).unwrap().len() > len);
    let sg = tool("sgdisk", &["-v", s(&img)]);
    assert!(
        text(&sg.stdout).contains("No problems found"),
        "sgdisk -v: {}",
        text(&sg.stdout)
    );
    scan_has_free(&img, "262144000");
    ntfs_clean(&extract(&img, 4, dir.path()));
    undo_restores(&img, &original);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), len);
}

#[test]
fn mbr_partition_grows_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("resize/mbr-grown.img", dir.path());
    let original = sha256_file(&img);
    let before = sfdisk_parts(&img);
    let planned = plan(&img, &["--min-free", "500MiB"]);
    let (out, v) = resize(&img, &["--min-free", "500MiB"]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(v["case"], "free_after_recovery");
    carried_out_the_plan(&planned, &v, &img);
    scan_has_free(&img, "500MiB");
    let after = sfdisk_parts(&img);
    assert_eq!(after[2].1, before[2].1, "start kept");
    assert!(after[2].2 > before[2].2, "grown");
    let vfy = tool("sfdisk", &["--verify", s(&img)]);
    assert!(
        vfy.status.success(),
        "sfdisk --verify: {}",
        text(&vfy.stdout)
    );
    let vol = extract(&img, 3, dir.path());
    ntfs_clean(&vol);
    wim_verifies(&vol, dir.path());
    undo_restores(&img, &original);
}

#[test]
fn fixed_vhd_is_written_and_a_refused_qcow2_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let vhd = copy("resize/gpt-vhd.vhd", dir.path());
    let original = sha256_file(&vhd);
    let (out, _) = resize(&vhd, &[]);
    assert!(
        out.status.success(),
        "resize of a fixed VHD: {}",
        text(&out.stderr)
    );
    let raw = dir.path().join("from-vhd.img");
    let conv = tool(
        "qemu-img",
        &["convert", "-f", "vpc", "-O", "raw", s(&vhd), s(&raw)],
    );
    assert!(conv.status.success(), "{}", text(&conv.stderr));
    ntfs_clean(&extract(&raw, 4, dir.path()));
    undo_restores(&vhd, &original);

    // qcow2 is planned through qemu-nbd (tests/cli_resize_containers.rs); gpt-small has no
    // room without moving OS files, so the plan is refused and nothing is written.
    let qcow = copy("resize/gpt-qcow2.qcow2", dir.path());
    let qcow_sha = sha256_file(&qcow);
    let (out, _) = resize(&qcow, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&qcow), qcow_sha);
    assert!(!dir.path().join("gpt-qcow2.qcow2.winre-journal").exists());
}

#[test]
fn refuses_devices_open_images_and_a_busy_os_tail() {
    let out = winre(&["resize", "/dev/null", "--apply"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("device"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let img = copy("winre/gpt-after.img", dir.path());
    let original = sha256_file(&img);
    {
        let _held = std::fs::File::open(&img).unwrap();
        let (out, _) = resize(&img, &["--min-free", "350MiB"]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("open in process"),
            "{}",
            text(&out.stderr)
        );
    }
    // Shrinking the OS by ~120 MiB would give up clusters that hold its $MFTMirr / $LogFile.
    let (out, _) = resize(&img, &["--min-free", "430MiB"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("in use"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sha256_file(&img),
        original,
        "a refused resize wrote nothing"
    );
    assert!(!dir.path().join("gpt-after.img.winre-journal").exists());
}

/// Runs the resize with the crash hook at N = 1, 2, ... until it completes; after every crash
/// `winre undo` must give the original image back, and a second resize must be refused until
/// then.
fn crash_at_every_write(rel: &str, extra: &[&str]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let pristine = copy(rel, dir.path());
    let original = sha256_file(&pristine);
    let img = dir.path().join("work.img");
    let journal = dir.path().join("work.img.winre-journal");
    for n in 1..500 {
        let _ = std::fs::remove_file(&journal);
        let st = Command::new("cp")
            .args(["--sparse=always", "-f", s(&pristine), s(&img)])
            .status()
            .unwrap();
        assert!(st.success());
        let mut args = vec!["resize", s(&img), "--apply", "--json"];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_winre"))
            .args(&args)
            .env("WINRE_TEST_STOP_AFTER_WRITE", n.to_string())
            .output()
            .unwrap();
        if out.status.success() {
            // Ran to completion: N is past the last write. Undo of a complete resize.
            undo_restores(&img, &original);
            return n;
        }
        assert_eq!(
            out.status.signal(),
            Some(6),
            "step {n}: expected the abort hook: {}",
            text(&out.stderr)
        );
        // Refused twice on a half-done image.
        let again = winre(&["resize", s(&img), "--apply"]);
        assert_eq!(
            again.status.code(),
            Some(3),
            "step {n}: second resize not refused"
        );
        assert!(
            text(&again.stderr).contains("half-way"),
            "{}",
            text(&again.stderr)
        );
        let out = winre(&["undo", s(&img)]);
        assert!(
            out.status.success(),
            "step {n}: undo failed: {}",
            text(&out.stderr)
        );
        assert_eq!(
            sha256_file(&img),
            original,
            "step {n}: undo did not restore the image"
        );
    }
    panic!("the resize never completed");
}

#[test]
fn crash_at_every_write_of_a_move_and_shrink_then_undo() {
    // gpt-small: 100 MiB recovery after a 160 MiB OS. 120 MiB free needs a ~27 MiB OS shrink
    // and a 100 MiB move (13 chunks), so the hook hits journal, move and metadata writes.
    let steps = crash_at_every_write("winre/gpt-small.img", &["--min-free", "120MiB"]);
    assert!(steps > 20, "only {steps} writes");
}

#[test]
fn crash_at_every_write_of_an_in_place_grow_then_undo() {
    crash_at_every_write("resize/gpt-grown.img", &[]);
}

#[test]
fn a_torn_journal_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("winre/gpt-small.img", dir.path());
    let original = sha256_file(&img);
    let journal = dir.path().join("gpt-small.img.winre-journal");
    // Crash while saving (after the third journal record), then tear the last record: the
    // image was never written, and undo says so and leaves it as it is.
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["resize", s(&img), "--apply", "--min-free", "120MiB"])
        .env("WINRE_TEST_STOP_AFTER_WRITE", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(6));
    let len = std::fs::metadata(&journal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let out = winre(&["undo", s(&img), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["image_was_untouched"], true);
    assert!(v["torn_tail"].is_array(), "{v}");
    assert_eq!(sha256_file(&img), original);

    // A complete resize whose journal is then cut mid-record cannot be fully undone: refused,
    // and the image is left as the resize made it.
    std::fs::remove_file(&journal).unwrap();
    let out = winre(&["resize", s(&img), "--apply", "--min-free", "120MiB"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resized = sha256_file(&img);
    let len = std::fs::metadata(&journal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = winre(&["undo", s(&img)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot be fully restored"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&img), resized);
}

#[test]
fn a_resident_reagent_xml_is_rewritten_in_its_mft_record() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("resize/gpt-resident.img", dir.path());
    let original = sha256_file(&img);
    let planned = plan(&img, &["--min-free", "350MiB"]);
    let (out, v) = resize(&img, &["--min-free", "350MiB"]);
    assert!(out.status.success(), "resize: {}", text(&out.stderr));
    assert_eq!(v["case"], "shrink_os");
    carried_out_the_plan(&planned, &v, &img);
    let parts = sfdisk_parts(&img);
    let rec = parts.iter().find(|p| p.0 == 4).unwrap();
    let os_vol = extract(&img, 3, dir.path());
    ntfs_clean(&os_vol);
    let info = text(
        &tool(
            "ntfsinfo",
            &["-F", "/Windows/System32/Recovery/ReAgent.xml", s(&os_vol)],
        )
        .stdout,
    );
    assert!(
        info.contains("Resident"),
        "the fixture's ReAgent.xml should be resident: {info}"
    );
    let reagent = text(&ntfscat(&os_vol, "/Windows/System32/Recovery/ReAgent.xml"));
    let want = format!("offset=\"{}\"", rec.1 * 512);
    assert!(
        reagent.contains(&want),
        "ReAgent.xml lacks {want}: {reagent}"
    );
    undo_restores(&img, &original);
}

#[test]
fn errors_name_the_file_they_concern() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("resize/gpt-grown.img", dir.path());
    let original = sha256_file(&img);
    let missing_dir = dir.path().join("no-such-dir");
    let journal = missing_dir.join("j");
    let (out, _) = resize(&img, &["--journal", s(&journal)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("{} does not exist", missing_dir.display())),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sha256_file(&img), original, "nothing was written");
    let out = winre(&["undo", s(&img)]);
    assert!(!out.status.success());
    let default_journal = format!("{}.winre-journal", img.display());
    assert!(
        text(&out.stderr).contains(&default_journal),
        "undo should name the journal it looked for: {}",
        text(&out.stderr)
    );
}

/// A resize killed after its journal's first records, then run again with another `--journal`:
/// refused (the marker beside the image lists the first journal) until that one is undone.
#[test]
fn a_half_done_journal_elsewhere_blocks_another_resize() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("resize/gpt-grown.img", dir.path());
    let original = sha256_file(&img);
    let first = dir.path().join("first.journal");
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["resize", s(&img), "--apply", "--journal", s(&first)])
        .env("WINRE_TEST_STOP_AFTER_WRITE", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(6), "{}", text(&out.stderr));
    assert!(first.exists());
    let second = dir.path().join("second.journal");
    let (out, _) = resize(&img, &["--journal", s(&second)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&first.display().to_string()),
        "the refusal names the half-done journal: {}",
        text(&out.stderr)
    );
    assert!(!second.exists());
    let out = winre(&["undo", s(&img), "--journal", s(&first)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_file(&img), original);
    let (out, _) = resize(&img, &["--journal", s(&second)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    undo_restores_with(&img, &second, &original);
}

fn undo_restores_with(img: &Path, journal: &Path, original_sha: &str) {
    let out = winre(&["undo", s(img), "--journal", s(journal)]);
    assert!(out.status.success(), "undo: {}", text(&out.stderr));
    assert_eq!(sha256_file(img), original_sha);
}

#[test]
fn reader_commands_name_a_resize_journal_next_to_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("winre/gpt-small.img", dir.path());
    let journal = dir.path().join("gpt-small.img.winre-journal");
    let journal_problem = |args: &[&str]| -> String {
        let out = winre(args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let found: Vec<String> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["code"] == "resize_journal")
            .map(|p| p["message"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(found.len(), 1, "{v:#}");
        found[0].clone()
    };
    // No journal: nothing said.
    let out = winre(&["scan", "--json", s(&img)]);
    assert!(!text(&out.stdout).contains("resize_journal"));

    // A resize killed while saving regions (the third write).
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["resize", s(&img), "--apply", "--min-free", "120MiB"])
        .env("WINRE_TEST_STOP_AFTER_WRITE", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(6));
    let said = journal_problem(&["scan", "--json", s(&img)]);
    assert!(said.contains("an incomplete winre journal"), "{said}");
    assert!(
        said.contains(&format!("`winre undo {}`", s(&img))),
        "{said}"
    );
    for args in [
        vec!["disk", "info", s(&img)],
        vec!["plan", s(&img)],
        vec!["check", s(&img)],
    ] {
        let out = winre(&args);
        assert!(
            text(&out.stderr).contains("incomplete winre journal"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = winre(&["undo", s(&img)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_file(&journal).unwrap();

    // A finished resize: a complete journal, named also when given elsewhere with --journal.
    let out = winre(&["resize", s(&img), "--apply", "--min-free", "120MiB"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = journal_problem(&["scan", "--json", s(&img)]);
    assert!(said.contains("a complete winre journal"), "{said}");
    let moved = dir.path().join("kept.journal");
    std::fs::rename(&journal, &moved).unwrap();
    let out = winre(&["scan", "--json", s(&img)]);
    assert!(!text(&out.stdout).contains("resize_journal"));
    let said = journal_problem(&["scan", "--json", s(&img), "--journal", s(&moved)]);
    assert!(said.contains("kept.journal"), "{said}");
}

//! `winre plan --json` on every layout of fixtures/make-winre-disks.sh. The expected numbers are
//! computed here from independent tools: partition extents from `sfdisk --json`, NTFS geometry
//! from `ntfsinfo -m`, free clusters from `ntfscat $Bitmap` counted here, `$Bitmap`'s allocation
//! from `ntfsinfo -i 6`, the files in the OS tail from `ntfscluster`, the growth checked by
//! growing a copy of the recovery volume with `ntfsresize`, and the OS volume's last used
//! cluster against `ntfsresize --info`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const MIB: u64 = 1 << 20;
const REQUIRED: u64 = 262_144_000;

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

fn path(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

/// `winre plan --json IMAGE ARGS`: the plan and the exit code.
fn run_plan(layout: &str, args: &[&str]) -> (Value, i32) {
    let image = path(&format!("{layout}.img"));
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .arg("plan")
        .arg("--json")
        .arg(&image)
        .args(args)
        .output()
        .expect("run winre plan");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let plan: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{layout}: not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (plan, out.status.code().expect("exit code"))
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One partition as sfdisk sees it.
#[derive(Debug, Clone, Copy)]
struct Part {
    number: u64,
    start_lba: u64,
    sectors: u64,
}

struct Table {
    sector: u64,
    last_usable_lba: Option<u64>,
    parts: Vec<Part>,
}

impl Table {
    fn part(&self, number: u64) -> Part {
        *self
            .parts
            .iter()
            .find(|p| p.number == number)
            .expect("partition")
    }
    fn start(&self, number: u64) -> u64 {
        self.part(number).start_lba * self.sector
    }
    fn end(&self, number: u64) -> u64 {
        let p = self.part(number);
        (p.start_lba + p.sectors) * self.sector
    }
}

fn sfdisk(layout: &str) -> Table {
    let image = path(&format!("{layout}.img"));
    let json: Value = serde_json::from_str(&tool("sfdisk", &["--json", &image])).expect("JSON");
    let t = &json["partitiontable"];
    let parts = t["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| Part {
            number: p["node"].as_str().unwrap()[image.len()..].parse().unwrap(),
            start_lba: p["start"].as_u64().unwrap(),
            sectors: p["size"].as_u64().unwrap(),
        })
        .collect();
    Table {
        sector: t["sectorsize"].as_u64().unwrap_or(512),
        last_usable_lba: t["lastlba"].as_u64(),
        parts,
    }
}

/// An NTFS partition image measured by ntfs-3g's tools.
#[derive(Debug)]
struct Ntfs {
    sector: u64,
    cluster: u64,
    clusters: u64,
    free: u64,
    bitmap_allocated: u64,
    bitmap: Vec<u8>,
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

fn ntfs(image: &str) -> Ntfs {
    let image = path(image);
    let info = tool("ntfsinfo", &["-m", &image]);
    let clusters = field(&info, "Volume Size in Clusters");
    let out = Command::new("ntfscat")
        .args([&image, "$Bitmap"])
        .output()
        .expect("ntfscat");
    assert!(out.status.success());
    let bitmap = out.stdout;
    let used = (0..clusters).filter(|&i| bit(&bitmap, i)).count() as u64;
    let bitmap_info = tool("ntfsinfo", &["-i", "6", "-v", &image]);
    Ntfs {
        sector: field(&info, "Sector Size"),
        cluster: field(&info, "Cluster Size"),
        clusters,
        free: clusters - used,
        bitmap_allocated: field(&bitmap_info, "Allocated size"),
        bitmap,
    }
}

fn bit(bitmap: &[u8], i: u64) -> bool {
    bitmap[(i / 8) as usize] >> (i % 8) & 1 == 1
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(MIB) * MIB
}

fn align_down(v: u64) -> u64 {
    v / MIB * MIB
}

/// (clusters, free clusters) of `n` grown to fill a partition of `bytes`: the last sector is the
/// backup boot sector; $Bitmap (ceil(bits/8) rounded to 8 bytes, whole clusters) takes what it
/// needs beyond its current allocation out of the added clusters.
fn grown(n: &Ntfs, bytes: u64) -> (u64, u64) {
    let clusters = (bytes - n.sector) / n.cluster;
    let bitmap_bytes = clusters.div_ceil(8).div_ceil(8) * 8;
    let extra = bitmap_bytes
        .div_ceil(n.cluster)
        .saturating_sub(n.bitmap_allocated.div_ceil(n.cluster));
    (clusters, n.free + (clusters - n.clusters) - extra)
}

/// The smallest of `size(0), size(1), ...` whose grown volume has `required` bytes free.
fn smallest(n: &Ntfs, required: u64, size: impl Fn(u64) -> u64) -> u64 {
    let need = required.div_ceil(n.cluster);
    (0..64)
        .map(size)
        .find(|&s| grown(n, s).1 >= need)
        .expect("a size that works")
}

/// What the recovery partition lacks, in bytes of whole clusters.
fn deficit(n: &Ntfs, required: u64) -> u64 {
    (required.div_ceil(n.cluster) - n.free) * n.cluster
}

fn ops(plan: &Value) -> Vec<&str> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap())
        .collect()
}

fn step<'a>(plan: &'a Value, op: &str, partition: u64) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == op && s["partition"] == partition)
        .unwrap_or_else(|| panic!("no {op} on partition {partition}: {plan:#}"))
}

fn after(plan: &Value, number: u64) -> &Value {
    plan["partitions_after"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == number)
        .expect("partition after")
}

/// Every plan's table before is sfdisk's.
fn check_before(plan: &Value, table: &Table) {
    let before = plan["partitions_before"].as_array().unwrap();
    assert_eq!(before.len(), table.parts.len());
    for p in &table.parts {
        let ours = before.iter().find(|b| b["number"] == p.number).unwrap();
        assert_eq!(ours["start_lba"], p.start_lba);
        assert_eq!(ours["size_sectors"], p.sectors);
        assert_eq!(ours["end_lba"], p.start_lba + p.sectors - 1);
        assert_eq!(ours["start_bytes"], p.start_lba * table.sector);
        assert_eq!(ours["size_bytes"], p.sectors * table.sector);
    }
    assert_eq!(plan["sector_size"], table.sector);
}

/// The recovery partition after the plan is `start..start+size`, in bytes and sectors.
fn check_extent(plan: &Value, number: u64, start: u64, size: u64) {
    let p = after(plan, number);
    assert_eq!(p["start_bytes"], start, "{plan:#}");
    assert_eq!(p["size_bytes"], size);
    assert_eq!(p["start_lba"], start / 512);
    assert_eq!(p["end_lba"], (start + size) / 512 - 1);
    assert_eq!(p["size_sectors"], size / 512);
    assert_eq!(start % MIB, 0);
    assert_eq!(size % MIB, 0);
    let set = step(plan, "set_partition_extent", number);
    assert_eq!(set["start_lba"], start / 512);
    assert_eq!(set["end_lba"], (start + size) / 512 - 1);
}

/// The growth numbers of recovery partition `number` grown to `size` bytes.
fn check_growth(plan: &Value, rec: &Ntfs, number: u64, old_size: u64, size: u64) {
    let (clusters, free) = grown(rec, size);
    assert_eq!(plan["grow_by_bytes"], size - old_size);
    assert_eq!(plan["free_before_bytes"], rec.free * rec.cluster);
    assert_eq!(plan["free_after_bytes"], free * rec.cluster);
    assert!(free * rec.cluster >= plan["required_free_bytes"].as_u64().unwrap());
    let grow = step(plan, "grow_ntfs", number);
    assert_eq!(grow["new_size_bytes"], size);
    assert_eq!(grow["new_total_clusters"], clusters);
    assert_eq!(grow["new_total_sectors"], size / rec.sector - 1);
}

/// Grows a copy of the recovery volume with ntfsresize to `size` bytes and returns its
/// (clusters, free clusters) as ntfs-3g counts them.
fn ntfsresize_grow(image: &str, size: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("grow.img");
    let copy = copy.to_str().unwrap();
    tool("cp", &["--sparse=always", &path(image), copy]);
    tool("truncate", &["-s", &size.to_string(), copy]);
    tool("ntfsresize", &["--force", "--no-progress-bar", copy]);
    // ntfsresize marks the volume for chkdsk, so the readers need --force.
    let info = tool("ntfsinfo", &["-f", "-m", copy]);
    (
        field(&info, "Volume Size in Clusters"),
        field(&info, "Free Clusters"),
    )
}

/// ReAgent.xml's WinreLocation offset, read with ntfscat.
fn reagent_offset(os_image: &str) -> u64 {
    let xml = tool(
        "ntfscat",
        &[&path(os_image), "/Windows/System32/Recovery/ReAgent.xml"],
    );
    let location = xml
        .lines()
        .find(|l| l.contains("<WinreLocation"))
        .expect("WinreLocation");
    let at = location.find("offset=\"").expect("offset") + 8;
    location[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn enough_free_space_needs_nothing() {
    let (plan, code) = run_plan("gpt-after", &[]);
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(plan["case"], "enough_free");
    assert_eq!(plan["verdict"]["verdict"], "nothing_needed");
    check_before(&plan, &sfdisk("gpt-after"));
    let rec = ntfs("gpt-after.p4.img");
    assert_eq!(plan["free_before_bytes"], rec.free * rec.cluster);
    assert_eq!(plan["free_after_bytes"], rec.free * rec.cluster);
    assert_eq!(plan["required_free_bytes"], REQUIRED);
    assert_eq!(plan["grow_by_bytes"], 0);
    assert!(plan["steps"].as_array().unwrap().is_empty());
    assert!(plan["windows_script"].as_array().unwrap().is_empty());
    assert_eq!(plan["partitions_after"], plan["partitions_before"]);

    // The same disk against more than it has: now it must grow.
    let (plan, code) = run_plan("gpt-after", &["--min-free", "1GiB"]);
    assert_eq!(code, 3, "no room around the partition: {plan:#}");
    assert_eq!(plan["shortfall_bytes"], (1 << 30) - rec.free * rec.cluster);
}

#[test]
fn free_space_after_the_recovery_partition_grows_it_in_place() {
    let table = sfdisk("free-after");
    let (plan, code) = run_plan("free-after", &[]);
    assert_eq!(code, 1, "{plan:#}");
    assert_eq!(plan["case"], "free_after_recovery");
    assert_eq!(plan["verdict"]["verdict"], "offline");
    check_before(&plan, &table);
    let rec = ntfs("free-after.p4.img");
    let (start, end) = (table.start(4), table.end(4));
    let first = align_up(end + deficit(&rec, REQUIRED));
    let size = smallest(&rec, REQUIRED, |k| first + k * MIB - start);
    check_extent(&plan, 4, start, size);
    check_growth(&plan, &rec, 4, end - start, size);
    assert_eq!(ops(&plan), ["set_partition_extent", "grow_ntfs"]);
    assert_eq!(plan["shrink_os_by_bytes"], 0);
    // Unallocated after: up to the GPT's last usable LBA, aligned down.
    let usable_end = (table.last_usable_lba.unwrap() + 1) * table.sector;
    assert_eq!(
        plan["unallocated"]["after_recovery_bytes"],
        align_down(usable_end) - end
    );
    assert_eq!(
        after(&plan, 4)["guid"],
        "5a1c0004-0000-4000-8000-000000000004"
    );
    // ntfs-3g grows a copy of the volume to the same clusters and free clusters.
    let (clusters, free) = ntfsresize_grow("free-after.p4.img", size);
    let growth = &plan["recovery_growth"];
    assert_eq!(growth["clusters_after"], clusters);
    assert_eq!(growth["free_clusters_after"], free);
    // The diskpart script makes the same partition: offset in KiB, size in MiB.
    let script = plan["windows_script"].as_array().unwrap();
    let create = format!(
        "create partition primary offset={} size={} id=de94bba4-06d1-4d40-a16a-bfd50179d6ac",
        start / 1024,
        size / MIB
    );
    assert!(script.iter().any(|l| l == &create), "{script:#?}");
    assert!(script.iter().any(|l| l == "reagentc /disable"));
    assert!(script
        .iter()
        .any(|l| l == "gpt attributes=0x8000000000000001"));
}

#[test]
fn the_gpt_backup_area_is_not_used() {
    // Ask for exactly what 300 MiB more gives (the gap after the partition, up to the last
    // aligned MiB before the backup GPT), then for one cluster more.
    let table = sfdisk("free-after");
    let rec = ntfs("free-after.p4.img");
    let (start, end) = (table.start(4), table.end(4));
    let (_, free) = grown(&rec, end - start + 300 * MIB);
    let fits = (free * rec.cluster).to_string();
    let (plan, code) = run_plan("free-after", &["--min-free", &fits]);
    assert_eq!(code, 1);
    assert_eq!(plan["case"], "free_after_recovery");
    assert_eq!(plan["grow_by_bytes"], 300 * MIB);
    let too_much = ((free + 1) * rec.cluster).to_string();
    let (plan, _) = run_plan("free-after", &["--min-free", &too_much]);
    assert_ne!(plan["case"], "free_after_recovery", "{plan:#}");
    let last = after(&plan, 4);
    assert!(
        (last["end_lba"].as_u64().unwrap()) <= table.last_usable_lba.unwrap(),
        "{plan:#}"
    );
}

#[test]
fn free_space_before_the_recovery_partition_moves_it_down() {
    let table = sfdisk("free-between");
    let (plan, code) = run_plan("free-between", &[]);
    assert_eq!(code, 1, "{plan:#}");
    assert_eq!(plan["case"], "free_before_recovery");
    check_before(&plan, &table);
    let rec = ntfs("free-between.p4.img");
    let (start, end) = (table.start(4), table.end(4));
    let first = align_down(start - deficit(&rec, REQUIRED));
    let size = smallest(&rec, REQUIRED, |k| end - (first - k * MIB));
    let new_start = end - size;
    check_extent(&plan, 4, new_start, size);
    check_growth(&plan, &rec, 4, end - start, size);
    assert_eq!(
        ops(&plan),
        [
            "move_partition",
            "set_partition_extent",
            "grow_ntfs",
            "update_reagent_offset",
            "update_reagent_offset"
        ]
    );
    let mv = step(&plan, "move_partition", 4);
    assert_eq!(mv["from_byte"], start);
    assert_eq!(mv["to_byte"], new_start);
    assert_eq!(mv["len_bytes"], end - start);
    let reagent = step(&plan, "update_reagent_offset", 3);
    assert_eq!(
        reagent["old_offset_bytes"],
        reagent_offset("free-between.p3.img")
    );
    assert_eq!(reagent["new_offset_bytes"], new_start);
    // The recovery volume's own \Recovery\WindowsRE\ReAgent.xml (read by ntfscat) follows too.
    let own = step(&plan, "update_reagent_offset", 4);
    assert_eq!(own["path"], r"\Recovery\WindowsRE\ReAgent.xml");
    let xml = tool(
        "ntfscat",
        &[
            &path("free-between.p4.img"),
            "/Recovery/WindowsRE/ReAgent.xml",
        ],
    );
    assert!(xml.contains(&format!("offset=\"{start}\"")), "{xml}");
    assert_eq!(own["old_offset_bytes"], start);
    assert_eq!(own["new_offset_bytes"], new_start);
    assert_eq!(
        plan["unallocated"]["before_recovery_bytes"],
        start - table.end(3)
    );
    assert_eq!(after(&plan, 4)["change"], "moved_and_grown");
}

/// Checks the shrink of the OS partition `os` (image `os_image`) that ends where the recovery
/// partition `rec` starts; returns the plan.
fn check_shrink(
    layout: &str,
    os: u64,
    rec_number: u64,
    sector_os: &str,
    sector_rec: &str,
) -> Value {
    let table = sfdisk(layout);
    let (plan, code) = run_plan(layout, &[]);
    check_before(&plan, &table);
    let rec = ntfs(sector_rec);
    let (start, end) = (table.start(rec_number), table.end(rec_number));
    assert_eq!(
        table.end(os),
        start,
        "the fixture puts recovery right after the OS"
    );
    let first = align_down(start - deficit(&rec, REQUIRED));
    let size = smallest(&rec, REQUIRED, |k| end - (first - k * MIB));
    let new_start = end - size;
    check_extent(&plan, rec_number, new_start, size);
    check_growth(&plan, &rec, rec_number, end - start, size);
    assert_eq!(plan["shrink_os_by_bytes"], start - new_start);
    let os_start = table.start(os);
    check_extent(&plan, os, os_start, new_start - os_start);

    let osv = ntfs(sector_os);
    let keep = (new_start - os_start - osv.sector) / osv.cluster;
    let shrink = step(&plan, "shrink_ntfs", os);
    assert_eq!(shrink["new_total_clusters"], keep);
    assert_eq!(shrink["new_size_bytes"], new_start - os_start);
    let tail = &plan["os_tail"];
    let used = (keep..osv.clusters)
        .filter(|&i| bit(&osv.bitmap, i))
        .count() as u64;
    let last = (0..osv.clusters)
        .rev()
        .find(|&i| bit(&osv.bitmap, i))
        .unwrap();
    assert_eq!(tail["keep_clusters"], keep);
    assert_eq!(tail["used_tail_clusters"], used);
    assert_eq!(tail["last_used_cluster"], last);
    // The largest shrink keeps cluster `last` and a sector for the backup boot sector.
    let smallest_end = align_up(os_start + (last + 1) * osv.cluster + osv.sector);
    assert_eq!(
        tail["largest_shrink_bytes"],
        align_down(table.end(os) - smallest_end)
    );
    // ntfsresize agrees on the last used cluster: the highest "Last used at" of its
    // per-feature table is that cluster's byte offset in (decimal, rounded up) MB. Its "You
    // might resize at" is smaller: ntfsresize relocates ordinary files and $MFTMirr, we move
    // nothing, so ours is never below it.
    let info = tool(
        "ntfsresize",
        &["--info", "--force", "--no-action", "-v", &path(sector_os)],
    );
    let hint_mb = info
        .lines()
        .skip_while(|l| !l.starts_with("File feature"))
        .skip(1)
        .map_while(|l| l.split(':').nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .expect("ntfsresize's per-feature table");
    assert_eq!(hint_mb, (last * osv.cluster).div_ceil(1_000_000), "{info}");
    let might: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("You might resize at "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("You might resize at");
    assert!(might <= (last + 2) * osv.cluster, "{might} {info}");
    let _ = code;
    plan
}

#[test]
fn recovery_after_the_os_with_a_free_tail_shrinks_the_os() {
    let plan = check_shrink(
        "shrink-free",
        3,
        4,
        "shrink-free.p3.img",
        "shrink-free.p4.img",
    );
    assert_eq!(plan["case"], "shrink_os");
    assert_eq!(plan["verdict"]["verdict"], "offline", "{plan:#}");
    assert_eq!(plan["os_tail"]["used_tail_clusters"], 0);
    assert!(plan["os_tail"]["tail_files"].as_array().unwrap().is_empty());
    assert_eq!(
        ops(&plan),
        [
            "shrink_ntfs",
            "set_partition_extent",
            "move_partition",
            "set_partition_extent",
            "grow_ntfs",
            "update_reagent_offset",
            "update_reagent_offset"
        ]
    );
    let shrink_mib = plan["shrink_os_by_bytes"].as_u64().unwrap() / MIB;
    let script = plan["windows_script"].as_array().unwrap();
    assert!(script
        .iter()
        .any(|l| l == &format!("shrink desired={shrink_mib} minimum={shrink_mib}")));
    let (_, code) = run_plan("shrink-free", &[]);
    assert_eq!(code, 1);
}

#[test]
fn a_busy_os_tail_is_manual_and_names_the_files() {
    let plan = check_shrink(
        "shrink-busy",
        3,
        4,
        "shrink-busy.p3.img",
        "shrink-busy.p4.img",
    );
    assert_eq!(plan["verdict"]["reason"], "os_tail_in_use", "{plan:#}");
    let tail = &plan["os_tail"];
    assert!(tail["used_tail_clusters"].as_u64().unwrap() > 0);
    // ntfscluster lists the same files for the same cluster range.
    let keep = tail["keep_clusters"].as_u64().unwrap();
    let total = tail["total_clusters"].as_u64().unwrap();
    let listing = tool(
        "ntfscluster",
        &[
            "-c",
            &format!("{keep}-{}", total - 1),
            &path("shrink-busy.p3.img"),
        ],
    );
    let mut theirs: Vec<String> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("Inode "))
        .filter_map(|l| l.split_once(' ').map(|(_, p)| p))
        .map(|p| {
            p.rsplit_once("/$")
                .map_or(p, |(path, _)| path)
                .replace('/', "\\")
        })
        .collect();
    theirs.sort();
    theirs.dedup();
    let mut ours: Vec<String> = tail["tail_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    ours.sort();
    assert_eq!(ours, theirs, "{listing}");
    assert!(ours.contains(&r"\Users\tail.bin".to_string()));
    assert_eq!(tail["more_tail_files"], 0);
    let (_, code) = run_plan("shrink-busy", &[]);
    assert_eq!(code, 3);
}

#[test]
fn mbr_with_four_primaries_shrinks_and_fixes_the_bcd() {
    let plan = check_shrink("mbr4", 2, 3, "mbr4.p2.img", "mbr4.p3.img");
    assert_eq!(plan["scheme"], "mbr");
    assert_eq!(plan["verdict"]["verdict"], "offline", "{plan:#}");
    let table = sfdisk("mbr4");
    let new_start = after(&plan, 3)["start_bytes"].as_u64().unwrap();
    let bcd = step(&plan, "update_bcd_partition_offset", 1);
    assert_eq!(bcd["old_offset_bytes"], table.start(3));
    assert_eq!(bcd["new_offset_bytes"], new_start);
    assert_eq!(bcd["path"], r"\Boot\BCD");
    let reagent = step(&plan, "update_reagent_offset", 2);
    assert_eq!(reagent["old_offset_bytes"], reagent_offset("mbr4.p2.img"));
    let script = plan["windows_script"].as_array().unwrap();
    assert!(
        script
            .iter()
            .any(|l| l.as_str().unwrap().ends_with(" id=27")),
        "{script:#?}"
    );
}

#[test]
fn layouts_that_need_manual_work() {
    for (layout, args, case, reason) in [
        ("bitlocker", &[][..], "shrink_os", "bitlocker"),
        (
            "mbr4-on-os",
            &[][..],
            "winre_on_os_volume",
            "mbr_no_free_slot",
        ),
        ("on-os", &[][..], "winre_on_os_volume", "winre_on_os_volume"),
        ("none", &[][..], "no_winre", "no_winre"),
        (
            "first-small",
            &[][..],
            "recovery_before_os",
            "recovery_before_os",
        ),
        (
            "gpt-first",
            &["--min-free", "400MiB"][..],
            "recovery_before_os",
            "recovery_before_os",
        ),
        (
            "disabled",
            &["--min-free", "1GiB"][..],
            "shrink_os",
            "winre_disabled",
        ),
    ] {
        let (plan, code) = run_plan(layout, args);
        assert_eq!(code, 3, "{layout}: {plan:#}");
        assert_eq!(plan["case"], case, "{layout}: {plan:#}");
        assert_eq!(plan["verdict"]["verdict"], "manual", "{layout}");
        assert_eq!(plan["verdict"]["reason"], reason, "{layout}: {plan:#}");
        assert!(!plan["verdict"]["why"].as_str().unwrap().is_empty());
        check_before(&plan, &sfdisk(layout));
    }
    // Recovery before the OS: Microsoft's rule, old size + the free space, at the OS's end.
    let table = sfdisk("first-small");
    let (plan, _) = run_plan("first-small", &[]);
    let size = align_up(table.end(1) - table.start(1) + REQUIRED);
    let created = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "create_partition")
        .expect("create_partition");
    assert_eq!(created["end_lba"], table.end(4) / 512 - 1);
    assert_eq!(created["start_lba"], (table.end(4) - size) / 512);
    assert_eq!(
        created["partition"], 1,
        "the deleted partition's entry is reused"
    );
    assert_eq!(
        ops(&plan),
        [
            "shrink_ntfs",
            "set_partition_extent",
            "delete_partition",
            "create_partition"
        ]
    );
    assert_eq!(plan["shrink_os_by_bytes"], size);
    // gpt-first's 160 MiB OS is too small to give up 720 MiB: said, and no steps.
    let (plan, _) = run_plan("gpt-first", &["--min-free", "400MiB"]);
    assert!(plan["steps"].as_array().unwrap().is_empty());
    assert!(plan["notes"].to_string().contains("too small"), "{plan:#}");
}

/// WinRE on the OS volume and an empty NTFS recovery partition right after it with room: the
/// plan uses that partition (copy Winre.wim, reagentc /setreimage), creates none.
#[test]
fn winre_on_the_os_volume_uses_the_recovery_partition_with_room() {
    let (plan, code) = run_plan("on-os-room", &[]);
    assert_eq!(code, 3, "{plan:#}");
    assert_eq!(plan["case"], "winre_on_os_volume");
    assert_eq!(
        plan["verdict"]["reason"], "use_recovery_partition",
        "{plan:#}"
    );
    assert_eq!(ops(&plan), ["copy_winre", "set_reagent_location"]);
    let table = sfdisk("on-os-room");
    check_before(&plan, &table);
    assert_eq!(plan["partitions_after"], plan["partitions_before"]);
    assert_eq!(plan["recovery_partition"], 4);
    // Free space as ntfs-3g's tools count it.
    let rec = ntfs("on-os-room.p4.img");
    assert_eq!(plan["free_before_bytes"], rec.free * rec.cluster);
    let copy = &plan["steps"][0];
    assert_eq!(copy["to_partition"], 4);
    let wim = std::fs::metadata(path("wim-3920.wim")).unwrap().len();
    assert_eq!(copy["size_bytes"], wim);
    assert_eq!(copy["from_partition"], 3);
    assert_eq!(copy["to_path"], r"\Recovery\WindowsRE\Winre.wim");
    let location = step(&plan, "set_reagent_location", 3);
    assert_eq!(location["new_offset_bytes"], table.start(4));
    assert_eq!(
        location["old_offset_bytes"],
        reagent_offset("on-os-room.p3.img")
    );
    let script: Vec<&str> = plan["windows_script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        script.contains(&r"reagentc /setreimage /path R:\Recovery\WindowsRE /target C:\Windows"),
        "{script:#?}"
    );
    assert!(
        !script.iter().any(|l| l.starts_with("create partition")),
        "{script:#?}"
    );
    // resize refuses it, naming the reason, and writes nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["resize", &path("on-os-room.img")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reagentc /setreimage"));
}

#[test]
fn min_free_takes_units() {
    let (a, _) = run_plan("free-after", &["--min-free", "300M"]);
    let (b, _) = run_plan("free-after", &["--min-free", "314572800"]);
    let (c, _) = run_plan("free-after", &["--min-free", "300MiB"]);
    assert_eq!(a["required_free_bytes"], 300 * MIB);
    assert_eq!(a, b);
    assert_eq!(a, c);
    let (d, _) = run_plan("free-after", &["--min-free", "250MiB"]);
    let (e, _) = run_plan("free-after", &[]);
    assert_eq!(d, e);
    // More free space wanted, more growth.
    assert!(a["grow_by_bytes"].as_u64() > e["grow_by_bytes"].as_u64());
}

#[test]
fn text_output_and_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["plan", &path("shrink-busy.img")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("os_tail_in_use"), "{text}");
    assert!(text.contains(r"\Users\tail.bin"), "{text}");
    assert!(text.contains("shrink desired="), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("x.img");
    std::fs::write(&bogus, vec![0u8; 4096]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(["plan", bogus.to_str().unwrap()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `fdisk -b SECTOR -l`: sfdisk cannot be told a logical sector size for an image file.
fn fdisk(layout: &str, sector: u64) -> Table {
    let image = path(&format!("{layout}.img"));
    let listing = tool("fdisk", &["-b", &sector.to_string(), "-l", &image]);
    let parts = listing
        .lines()
        .filter_map(|l| l.strip_prefix(image.as_str()))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Part {
                number: f[0].parse().unwrap(),
                start_lba: f[1].parse().unwrap(),
                sectors: f[3].parse().unwrap(),
            }
        })
        .collect();
    Table {
        sector,
        last_usable_lba: None,
        parts,
    }
}

#[test]
fn four_k_sectors_count_in_4096_byte_lbas() {
    let table = fdisk("gpt-4k", 4096);
    assert_eq!(table.parts.len(), 4);
    let (plan, _) = run_plan("gpt-4k", &["--min-free", "400MiB"]);
    check_before(&plan, &table);
    assert_eq!(plan["case"], "shrink_os");
    let rec = ntfs("gpt-4k.p4.img");
    assert_eq!(rec.sector, 4096);
    let (start, end) = (table.start(4), table.end(4));
    let first = align_down(start - deficit(&rec, 400 * MIB));
    let size = smallest(&rec, 400 * MIB, |k| end - (first - k * MIB));
    let new_start = end - size;
    let p = after(&plan, 4);
    assert_eq!(p["start_lba"], new_start / 4096);
    assert_eq!(p["end_lba"], end / 4096 - 1);
    assert_eq!(p["size_sectors"], size / 4096);
    let grow = step(&plan, "grow_ntfs", 4);
    assert_eq!(grow["new_total_sectors"], size / 4096 - 1);
    assert_eq!(grow["bytes_per_sector"], 4096);
    assert_eq!(grow["new_total_clusters"], (size - 4096) / rec.cluster);
}

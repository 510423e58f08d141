//! The partition tables of the fixture disks (fixtures/make-disks.sh) as read by winre-disk,
//! compared with sgdisk, sfdisk, the `gpt` crate and a by-hand parse written here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use winre_disk::container::{self, ContainerInfo, Disk, Format, OpenOptions};
use winre_disk::partition::{self, gpt, Kind, PartitionTable, Scheme};
use winre_disk::probe::Filesystem;

fn fixtures() -> PathBuf {
    common::run_fixture_script("make-disks.sh")
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} is needed for this test (apt install gdisk fdisk): {e}")
    });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn read(path: &Path) -> PartitionTable {
    let disk = container::open(path, &OpenOptions::default()).unwrap();
    partition::read_table(&disk).unwrap()
}

/// What sgdisk says about one partition.
#[derive(Debug, PartialEq)]
struct SgdiskPartition {
    number: u32,
    first: u64,
    last: u64,
    type_guid: String,
    unique_guid: String,
    attributes: u64,
    name: String,
}

fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in sgdisk output:\n{text}"))
        .trim()
}

/// `sgdisk -p` for the numbers, then `sgdisk -i N` for each.
fn sgdisk(path: &Path) -> (String, Vec<SgdiskPartition>) {
    let p = path.to_str().unwrap();
    let listing = run("sgdisk", &["-p", p]);
    let disk_guid = field(&listing, "Disk identifier (GUID):").to_lowercase();
    let numbers: Vec<u32> = listing
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let parts = numbers
        .into_iter()
        .map(|n| {
            let info = run("sgdisk", &["-i", &n.to_string(), p]);
            let first_word = |label: &str| {
                field(&info, label)
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string()
            };
            let name = field(&info, "Partition name:");
            SgdiskPartition {
                number: n,
                first: first_word("First sector:").parse().unwrap(),
                last: first_word("Last sector:").parse().unwrap(),
                type_guid: first_word("Partition GUID code:").to_lowercase(),
                unique_guid: first_word("Partition unique GUID:").to_lowercase(),
                attributes: u64::from_str_radix(field(&info, "Attribute flags:"), 16).unwrap(),
                name: name.trim_matches('\'').to_string(),
            }
        })
        .collect();
    (disk_guid, parts)
}

fn ours_as_sgdisk(table: &PartitionTable) -> Vec<SgdiskPartition> {
    table
        .partitions
        .iter()
        .map(|p| SgdiskPartition {
            number: p.number,
            first: p.start_lba,
            last: p.end_lba,
            type_guid: p.type_guid.unwrap().to_string(),
            unique_guid: p.unique_guid.unwrap().to_string(),
            attributes: p.attributes.unwrap(),
            name: p.name.clone().unwrap(),
        })
        .collect()
}

#[test]
fn gpt_512_agrees_with_sgdisk() {
    let path = fixtures().join("gpt-512.img");
    let table = read(&path);
    let (disk_guid, expected) = sgdisk(&path);
    assert_eq!(table.info.scheme, Scheme::Gpt);
    assert_eq!(table.info.gpt_source, Some(gpt::Source::Primary));
    assert_eq!(table.info.sector_size, 512);
    assert_eq!(table.info.disk_guid.unwrap().to_string(), disk_guid);
    assert_eq!(expected.len(), 4);
    assert_eq!(ours_as_sgdisk(&table), expected);
    assert!(table.info.notes.is_empty(), "{:?}", table.info.notes);
    for p in &table.partitions {
        assert_eq!(p.start_bytes, p.start_lba * 512);
        assert_eq!(p.size_bytes, (p.end_lba - p.start_lba + 1) * 512);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
    }
}

#[test]
fn gpt_512_kinds_and_filesystems_match_what_the_script_made() {
    let table = read(&fixtures().join("gpt-512.img"));
    let got: Vec<(u32, Kind, Filesystem)> = table
        .partitions
        .iter()
        .map(|p| (p.number, p.kind, p.filesystem))
        .collect();
    // mkfs.vfat -F 32, nothing (MSR), mkntfs, mkntfs.
    assert_eq!(
        got,
        [
            (1, Kind::Esp, Filesystem::Fat32),
            (2, Kind::Msr, Filesystem::Unknown),
            (3, Kind::BasicData, Filesystem::Ntfs),
            (4, Kind::Recovery, Filesystem::Ntfs),
        ]
    );
    assert_eq!(
        table.partitions[3].attribute_names,
        ["platform_required", "no_drive_letter"]
    );
}

#[test]
fn gpt_512_agrees_with_the_gpt_crate() {
    let path = fixtures().join("gpt-512.img");
    let table = read(&path);
    let oracle = ::gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(::gpt::disk::LogicalBlockSize::Lb512)
        .open(&path)
        .unwrap();
    assert_eq!(
        oracle.guid().to_string(),
        table.info.disk_guid.unwrap().to_string()
    );
    let theirs: Vec<(u32, String, String, u64, u64, u64, String)> = oracle
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(&n, p)| {
            (
                n,
                p.part_type_guid.guid.to_string(),
                p.part_guid.to_string(),
                p.first_lba,
                p.last_lba,
                p.flags,
                p.name.clone(),
            )
        })
        .collect();
    let ours: Vec<_> = table
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.type_guid.unwrap().to_string(),
                p.unique_guid.unwrap().to_string(),
                p.start_lba,
                p.end_lba,
                p.attributes.unwrap(),
                p.name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
}

/// The 4096-byte-sector disk, parsed here by hand from the UEFI layout (independently of
/// crates/disk: offsets written out, GUIDs assembled field by field).
#[test]
fn gpt_4096_agrees_with_a_by_hand_parse_and_the_gpt_crate() {
    let path = fixtures().join("gpt-4096.img");
    let table = read(&path);
    assert_eq!(table.info.sector_size, 4096);
    assert_eq!(table.info.gpt_source, Some(gpt::Source::Primary));
    assert!(table.info.notes.is_empty(), "{:?}", table.info.notes);

    let file = std::fs::File::open(&path).unwrap();
    let file_len = file.metadata().unwrap().len() as usize;
    let at = |offset: usize, len: usize| {
        let mut b = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, offset as u64).unwrap();
        b
    };
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let guid = |b: &[u8]| {
        format!(
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes(b[0..4].try_into().unwrap()),
            u16::from_le_bytes(b[4..6].try_into().unwrap()),
            u16::from_le_bytes(b[6..8].try_into().unwrap()),
            b[8..10]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>(),
            b[10..16]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        )
    };
    let mbr = at(0, 512);
    let header = &at(4096, 92)[..];
    assert_eq!(&header[0..8], b"EFI PART");
    assert_eq!(mbr[510..512], [0x55, 0xaa]);
    assert_eq!(mbr[0x1be + 4], 0xee);
    assert_eq!(le64(header, 0x20), (file_len / 4096 - 1) as u64);
    assert_eq!(Some(le64(header, 0x28)), table.info.first_usable_lba);
    assert_eq!(Some(le64(header, 0x30)), table.info.last_usable_lba);
    assert_eq!(
        guid(&header[0x38..0x48]),
        table.info.disk_guid.unwrap().to_string()
    );
    let entries_at = le64(header, 0x48) as usize * 4096;
    let count = le32(header, 0x50) as usize;
    let size = le32(header, 0x54) as usize;
    let array = at(entries_at, count * size);
    let mut expected = Vec::new();
    for i in 0..count {
        let e = &array[i * size..(i + 1) * size];
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let name: Vec<u16> = e[0x38..0x80]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        expected.push((
            i as u32 + 1,
            guid(&e[0..16]),
            guid(&e[16..32]),
            le64(e, 0x20),
            le64(e, 0x28),
            le64(e, 0x30),
            String::from_utf16(&name).unwrap(),
        ));
    }
    let ours: Vec<_> = table
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.type_guid.unwrap().to_string(),
                p.unique_guid.unwrap().to_string(),
                p.start_lba,
                p.end_lba,
                p.attributes.unwrap(),
                p.name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, expected);
    assert_eq!(ours.len(), 4);
    assert_eq!(ours[3].1, "de94bba4-06d1-4d40-a16a-bfd50179d6ac");
    assert_eq!(ours[3].5, 0x8000_0000_0000_0001);
    for p in &table.partitions {
        assert_eq!(p.start_bytes, p.start_lba * 4096);
    }
    let fs: Vec<Filesystem> = table.partitions.iter().map(|p| p.filesystem).collect();
    assert_eq!(
        fs,
        [
            Filesystem::Fat32,
            Filesystem::Unknown,
            Filesystem::Ntfs,
            Filesystem::Ntfs
        ]
    );

    let oracle = ::gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(::gpt::disk::LogicalBlockSize::Lb4096)
        .open(&path)
        .unwrap();
    let theirs: Vec<(u32, u64, u64)> = oracle
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(&n, p)| (n, p.first_lba, p.last_lba))
        .collect();
    let ours: Vec<(u32, u64, u64)> = table
        .partitions
        .iter()
        .map(|p| (p.number, p.start_lba, p.end_lba))
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn gpt_4096_is_found_even_when_the_container_says_512() {
    // Raw images say 512 until the table says otherwise: where "EFI PART" is decides.
    let path = fixtures().join("gpt-4096.img");
    let file = winre_readat::FileReader::open(&path).unwrap();
    let disk = Disk {
        info: ContainerInfo {
            format: Format::Raw,
            variant: "raw".into(),
            virtual_size: winre_readat::ReadAt::len(&file),
            sector_size: 512,
            allocated_bytes: None,
            notes: Vec::new(),
            chain: Vec::new(),
        },
        reader: Arc::new(file),
    };
    assert_eq!(partition::read_table(&disk).unwrap().info.sector_size, 4096);
}

#[test]
fn mbr_512_agrees_with_sfdisk() {
    let path = fixtures().join("mbr-512.img");
    let table = read(&path);
    let json: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["--json", path.to_str().unwrap()])).unwrap();
    let pt = &json["partitiontable"];
    assert_eq!(pt["label"], "dos");
    assert_eq!(table.info.scheme, Scheme::Mbr);
    let id = u32::from_str_radix(pt["id"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(table.info.disk_signature, Some(id));
    let dev = path.to_str().unwrap();
    let theirs: Vec<(u32, u64, u64, u8, bool)> = pt["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            (
                node.strip_prefix(dev).unwrap().parse().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                u8::from_str_radix(p["type"].as_str().unwrap(), 16).unwrap(),
                p["bootable"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let ours: Vec<(u32, u64, u64, u8, bool)> = table
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.start_lba,
                p.size_sectors,
                p.mbr_type.unwrap(),
                p.active.unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(theirs.len(), 5, "1, 2, 3 (extended), 5, 6");
    let got: Vec<(u32, Kind, Filesystem, bool)> = table
        .partitions
        .iter()
        .map(|p| (p.number, p.kind, p.filesystem, p.logical.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, Kind::BasicData, Filesystem::Ntfs, false),
            (2, Kind::Recovery, Filesystem::Ntfs, false),
            (3, Kind::Extended, Filesystem::Unknown, false),
            (5, Kind::Other, Filesystem::Fat16, true),
            (6, Kind::Other, Filesystem::Unknown, true),
        ]
    );
    assert!(table.info.notes.is_empty(), "{:?}", table.info.notes);
}

/// FAT12 and FAT16 from mkfs.vfat itself, probed as whole volumes.
#[test]
fn probe_names_what_mkfs_vfat_and_mkntfs_made() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], u64, Filesystem); 4] = [
        ("mkfs.vfat", &["-F", "12"], 4, Filesystem::Fat12),
        ("mkfs.vfat", &["-F", "16"], 32, Filesystem::Fat16),
        (
            "mkfs.vfat",
            &["-F", "32", "-S", "4096"],
            300,
            Filesystem::Fat32,
        ),
        (
            "mkntfs",
            &["-F", "-Q", "-q", "-s", "4096"],
            16,
            Filesystem::Ntfs,
        ),
    ];
    for (i, (tool, args, mib, expected)) in cases.into_iter().enumerate() {
        let img = dir.path().join(format!("v{i}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let mut cmd_args: Vec<&str> = args.to_vec();
        cmd_args.push(img.to_str().unwrap());
        let out = Command::new(tool)
            .args(&cmd_args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reader = winre_readat::FileReader::open(&img).unwrap();
        assert_eq!(
            winre_disk::probe::probe(&reader).unwrap(),
            expected,
            "{tool} {args:?}"
        );
    }
}

//! Damaged and hostile partition tables: small disks written by sgdisk / sfdisk, then changed
//! byte by byte here (CRCs recomputed where a test wants a "valid" hostile header). Each case
//! must give the backup, a note, a per-partition problem or a clear error: never a panic or a hang.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::process::{Command, Stdio};
use std::sync::Arc;

use winre_disk::container::{ContainerInfo, Disk, Format};
use winre_disk::partition::{self, gpt, PartitionTable, Scheme};
use winre_readat::ReadAt;

const MIB: usize = 1024 * 1024;

fn disk(bytes: Vec<u8>, sector_size: u32) -> Disk {
    Disk {
        info: ContainerInfo {
            format: Format::Raw,
            variant: "raw".into(),
            virtual_size: bytes.len() as u64,
            sector_size,
            allocated_bytes: None,
            notes: Vec::new(),
            chain: Vec::new(),
        },
        reader: Arc::new(bytes),
    }
}

fn read(bytes: &[u8]) -> winre_disk::Result<PartitionTable> {
    partition::read_table(&disk(bytes.to_vec(), 512))
}

/// An 8 MiB GPT disk by sgdisk: 1 ESP at 2048 (1 MiB), 2 basic data at 4096 (2 MiB),
/// 3 at 8192 (1 MiB) with a name.
fn sgdisk_disk() -> Vec<u8> {
    static DISK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DISK.get_or_init(make_sgdisk_disk).clone()
}

fn make_sgdisk_disk() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 * MIB as u64)
        .unwrap();
    let status = Command::new("sgdisk")
        .args([
            "-o",
            "-n",
            "1:2048:+2048",
            "-t",
            "1:ef00",
            "-n",
            "2:4096:+4096",
            "-t",
            "2:0700",
        ])
        .args([
            "-n",
            "3:8192:+2048",
            "-t",
            "3:de94bba4-06d1-4d40-a16a-bfd50179d6ac",
            "-c",
            "3:Recovery",
        ])
        .arg(&path)
        .stdout(Stdio::null())
        .status()
        .expect("sgdisk is needed for this test (apt install gdisk)");
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// An 8 MiB MBR disk by sfdisk: 1 (0x07, active), 2 extended, logicals 5 and 6.
fn sfdisk_disk() -> Vec<u8> {
    static DISK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DISK.get_or_init(make_sfdisk_disk).clone()
}

fn make_sfdisk_disk() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 * MIB as u64)
        .unwrap();
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sfdisk is needed for this test (apt install fdisk)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: dos\nlabel-id: 0x12345678\nunit: sectors\n\nstart=2048, size=2048, type=7, bootable\n\
              start=4096, size=8192, type=5\nstart=6144, size=1024, type=7\nstart=9216, size=1024, type=83\n",
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::read(&path).unwrap()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes the header CRC of the header at byte `h` (over its header_size).
fn fix_header(b: &mut [u8], h: usize) {
    let size = (le32(b, h + 0x0c) as usize).min(512);
    put32(b, h + 0x10, 0);
    let crc = crc32fast::hash(&b[h..h + size]);
    put32(b, h + 0x10, crc);
}

/// Recomputes the entry array CRC of the header at byte `h` (512-byte sectors), then its CRC.
fn fix_entries(b: &mut [u8], h: usize) {
    let at = le64(b, h + 0x48) as usize * 512;
    let len = le32(b, h + 0x50) as usize * le32(b, h + 0x54) as usize;
    let crc = crc32fast::hash(&b[at..at + len]);
    put32(b, h + 0x58, crc);
    fix_header(b, h);
}

fn primary(_b: &[u8]) -> usize {
    512
}
fn backup(b: &[u8]) -> usize {
    b.len() - 512
}

/// (number, first, last, name) of each partition.
fn layout(t: &PartitionTable) -> Vec<(u32, u64, u64, String)> {
    t.partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.start_lba,
                p.end_lba,
                p.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn intact_disk_reads_from_the_primary_with_no_notes() {
    let t = read(&sgdisk_disk()).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Primary));
    assert!(t.info.notes.is_empty(), "{:?}", t.info.notes);
    assert_eq!(
        layout(&t),
        [
            (1, 2048, 4095, String::new()),
            (2, 4096, 8191, String::new()),
            (3, 8192, 10239, "Recovery".into())
        ]
    );
}

#[test]
fn corrupt_primary_header_falls_back_to_the_backup_and_says_so() {
    let good = read(&sgdisk_disk()).unwrap();
    for (what, offset) in [("CRC", 512 + 0x28), ("signature", 512)] {
        let mut b = sgdisk_disk();
        b[offset] ^= 0x40;
        let t = read(&b).unwrap();
        assert_eq!(t.info.gpt_source, Some(gpt::Source::Backup), "{what}");
        assert_eq!(layout(&t), layout(&good));
        let notes = t.info.notes.join("\n");
        assert!(notes.contains("backup"), "{what}: {notes}");
        assert!(
            notes.contains(&format!("LBA {}", b.len() / 512 - 1)),
            "{what}: {notes}"
        );
    }
}

#[test]
fn wrong_entry_array_crc_falls_back_to_the_backup() {
    let mut b = sgdisk_disk();
    b[1024 + 0x38] ^= 1; // a byte of entry 1's name in the primary array
    let t = read(&b).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Backup));
    let notes = t.info.notes.join("\n");
    assert!(notes.contains("entry array CRC32"), "{notes}");
    assert!(notes.contains("offset 1024"), "{notes}");
}

#[test]
fn damaged_backup_is_noted_when_the_primary_is_good() {
    let mut b = sgdisk_disk();
    let h = backup(&b);
    b[h + 0x30] ^= 1;
    let t = read(&b).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Primary));
    assert!(
        t.info
            .notes
            .iter()
            .any(|n| n.contains("backup GPT is not valid")),
        "{:?}",
        t.info.notes
    );
}

#[test]
fn both_headers_corrupt_is_an_error_naming_both_offsets() {
    let mut b = sgdisk_disk();
    let (p, k) = (primary(&b), backup(&b));
    b[p + 0x30] ^= 1;
    b[k + 0x30] ^= 1;
    let err = read(&b).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("primary") && err.contains("backup"), "{err}");
    assert!(err.contains(&format!("offset {}", p + 0x10)), "{err}");
    assert!(err.contains(&format!("offset {}", k + 0x10)), "{err}");
}

#[test]
fn protective_mbr_without_any_gpt_is_an_error() {
    let mut b = sgdisk_disk();
    let k = backup(&b);
    b[512..520].fill(0);
    b[k..k + 8].fill(0);
    let err = read(&b).unwrap_err().to_string();
    assert!(err.contains("protective"), "{err}");
}

/// 256-byte entries are valid (UEFI: 128 x 2^n); the `gpt` crate asserts on them, we must read them.
#[test]
fn entries_of_256_bytes_with_valid_crcs_are_read() {
    let good = read(&sgdisk_disk()).unwrap();
    let mut b = sgdisk_disk();
    for h in [primary(&b), backup(&b)] {
        let at = le64(&b, h + 0x48) as usize * 512;
        let old: Vec<u8> = b[at..at + 128 * 128].to_vec();
        let mut new = vec![0u8; 64 * 256];
        for i in 0..64 {
            new[i * 256..i * 256 + 128].copy_from_slice(&old[i * 128..(i + 1) * 128]);
        }
        b[at..at + new.len()].copy_from_slice(&new);
        put32(&mut b, h + 0x50, 64);
        put32(&mut b, h + 0x54, 256);
        fix_entries(&mut b, h);
    }
    let t = read(&b).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Primary));
    assert!(t.info.notes.is_empty(), "{:?}", t.info.notes);
    assert_eq!(t.info.gpt_entry_count, Some(64));
    assert_eq!(layout(&t), layout(&good));
}

#[test]
fn hostile_entry_geometry_with_valid_crc_is_refused() {
    // (field offset, value, words the error must contain)
    let cases: [(usize, u64, &str); 6] = [
        (0x50, 0x8000_0000, "cap"),            // 2^31 entries
        (0x50, 0xffff_ffff, "cap"),            // 2^32 - 1 entries
        (0x54, 0, "entry size"),               // zero-byte entries
        (0x54, 100, "entry size"),             // not a multiple of 128
        (0x54, 1 << 20, "entry size"),         // 1 MiB entries
        (0x48, u64::MAX / 512, "entry array"), // array far past the end
    ];
    for (field, value, words) in cases {
        let mut b = sgdisk_disk();
        for h in [primary(&b), backup(&b)] {
            if field == 0x48 {
                put64(&mut b, h + field, value);
            } else {
                put32(&mut b, h + field, value as u32);
            }
            fix_header(&mut b, h);
        }
        let err = read(&b).unwrap_err().to_string();
        assert!(err.contains(words), "field 0x{field:x} = {value}: {err}");
        eprintln!("field 0x{field:x} = {value}: {err}");

        // Only the primary hostile: the backup is used.
        let mut b = sgdisk_disk();
        let h = primary(&b);
        if field == 0x48 {
            put64(&mut b, h + field, value);
        } else {
            put32(&mut b, h + field, value as u32);
        }
        fix_header(&mut b, h);
        assert_eq!(
            read(&b).unwrap().info.gpt_source,
            Some(gpt::Source::Backup),
            "field 0x{field:x}"
        );
    }
}

#[test]
fn header_size_is_checked_and_covered_by_the_crc() {
    for (size, valid) in [
        (92u32, true),
        (93, true),
        (512, true),
        (91, false),
        (513, false),
        (u32::MAX, false),
    ] {
        let mut b = sgdisk_disk();
        let h = primary(&b);
        put32(&mut b, h + 0x0c, size);
        fix_header(&mut b, h);
        let t = read(&b).unwrap();
        let expected = if valid {
            gpt::Source::Primary
        } else {
            gpt::Source::Backup
        };
        assert_eq!(
            t.info.gpt_source,
            Some(expected),
            "header size {size}: {:?}",
            t.info.notes
        );
    }
}

#[test]
fn header_lba_fields_are_checked() {
    // my_lba wrong, usable range reversed, usable range over the backup header, entries inside
    // the usable area.
    let cases: [(usize, u64); 4] = [(0x18, 2), (0x28, 20000), (0x30, 20000), (0x48, 40)];
    for (field, value) in cases {
        let mut b = sgdisk_disk();
        let h = primary(&b);
        put64(&mut b, h + field, value);
        fix_header(&mut b, h);
        let t = read(&b).unwrap();
        assert_eq!(
            t.info.gpt_source,
            Some(gpt::Source::Backup),
            "field 0x{field:x}"
        );
    }
}

#[test]
fn overlapping_and_out_of_range_entries_are_problems_not_panics() {
    let mut b = sgdisk_disk();
    for h in [primary(&b), backup(&b)] {
        let at = le64(&b, h + 0x48) as usize * 512;
        put64(&mut b, at + 128 + 0x20, 3000); // entry 2 now starts inside entry 1
        put64(&mut b, at + 2 * 128 + 0x20, 10239); // entry 3 ends before it starts
        put64(&mut b, at + 2 * 128 + 0x28, 9000);
        fix_entries(&mut b, h);
    }
    let t = read(&b).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Primary));
    let problems = |n: u32| t.partition(n).unwrap().problems.join("\n");
    assert!(problems(1).is_empty(), "{}", problems(1));
    assert!(
        problems(2).contains("overlaps partition 1"),
        "{}",
        problems(2)
    );
    assert!(problems(3).contains("before it starts"), "{}", problems(3));

    let mut b = sgdisk_disk();
    let h = primary(&b);
    let at = le64(&b, h + 0x48) as usize * 512;
    put64(&mut b, at + 0x28, u64::MAX); // entry 1 ends at the last possible LBA
    fix_entries(&mut b, h);
    let t = read(&b).unwrap();
    let p1 = t.partition(1).unwrap();
    assert!(
        p1.problems
            .iter()
            .any(|p| p.contains("outside the usable area")),
        "{:?}",
        p1.problems
    );
    assert!(
        p1.problems
            .iter()
            .any(|p| p.contains("past the end of the image")),
        "{:?}",
        p1.problems
    );
}

#[test]
fn truncated_image_reads_the_table_and_fails_clearly_past_the_end() {
    let mut b = sgdisk_disk();
    b.truncate(9000 * 512); // partition 3 (8192..=10239) is cut, the backup header is gone
    let d = disk(b, 512);
    let t = partition::read_table(&d).unwrap();
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Primary));
    let notes = t.info.notes.join("\n");
    assert!(notes.contains("shorter than"), "{notes}");
    let p3 = t.partition(3).unwrap();
    assert!(
        p3.problems
            .iter()
            .any(|p| p.contains("past the end of the image")),
        "{:?}",
        p3.problems
    );
    let err = p3.reader(&d).err().unwrap().to_string();
    assert!(err.contains(&format!("offset {}", 8192 * 512)), "{err}");
    let mut buf = [0u8; 4096];
    let err = d
        .reader
        .read_exact_at(9000 * 512 - 100, &mut buf)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("offset {}", 9000 * 512 - 100)),
        "{err}"
    );

    // So short that not even the header sector is whole.
    let mut b = sgdisk_disk();
    b.truncate(600);
    let err = read(&b).unwrap_err().to_string();
    assert!(err.contains("primary"), "{err}");
}

#[test]
fn mbr_disk_reads_like_sfdisk_wrote_it() {
    let t = read(&sfdisk_disk()).unwrap();
    assert_eq!(t.info.scheme, Scheme::Mbr);
    assert_eq!(t.info.disk_signature, Some(0x1234_5678));
    let got: Vec<(u32, u64, u64, u8, bool)> = t
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
    assert_eq!(
        got,
        [
            (1, 2048, 2048, 7, true),
            (2, 4096, 8192, 5, false),
            (5, 6144, 1024, 7, false),
            (6, 9216, 1024, 0x83, false)
        ]
    );
}

#[test]
fn ebr_chain_loop_stops_with_a_note() {
    let mut b = sfdisk_disk();
    // Second EBR: follow the first EBR's link (entry 2, relative to the extended start 4096).
    let first_ebr = 4096 * 512;
    let second_ebr = (4096 + le32(&b, first_ebr + 0x1ce + 8) as usize) * 512;
    // Point the second EBR's link back at the first EBR: a loop.
    b[second_ebr + 0x1ce + 4] = 0x05;
    put32(&mut b, second_ebr + 0x1ce + 8, 0);
    put32(&mut b, second_ebr + 0x1ce + 12, 2048);
    let t = read(&b).unwrap();
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 5, 6]);
    assert!(
        t.info
            .notes
            .iter()
            .any(|n| n.contains("loops back to LBA 4096")),
        "{:?}",
        t.info.notes
    );
}

#[test]
fn runaway_ebr_chain_is_capped() {
    // A 1000-link chain by hand: EBR i at LBA 1 + 2i holds one logical (LBA 2 + 2i, 1 sector) and a
    // link to EBR i + 1.
    let links = 1000usize;
    let mut b = vec![0u8; (2 + 2 * links) * 512];
    b[510] = 0x55;
    b[511] = 0xaa;
    b[0x1be + 4] = 0x0f;
    put32(&mut b, 0x1be + 8, 1);
    put32(&mut b, 0x1be + 12, (2 * links) as u32);
    for i in 0..links {
        let e = (1 + 2 * i) * 512;
        b[e + 510] = 0x55;
        b[e + 511] = 0xaa;
        b[e + 0x1be + 4] = 0x07;
        put32(&mut b, e + 0x1be + 8, 1);
        put32(&mut b, e + 0x1be + 12, 1);
        b[e + 0x1ce + 4] = 0x05;
        put32(&mut b, e + 0x1ce + 8, (2 * (i + 1)) as u32);
        put32(&mut b, e + 0x1ce + 12, 2);
    }
    let t = read(&b).unwrap();
    let logicals = t
        .partitions
        .iter()
        .filter(|p| p.logical == Some(true))
        .count();
    assert_eq!(logicals, partition::mbr::MAX_EBRS);
    assert!(
        t.info.notes.iter().any(|n| n.contains("longer than")),
        "{:?}",
        t.info.notes
    );
}

#[test]
fn four_k_backup_is_found_when_the_primary_is_wiped() {
    // A 4096-byte-sector GPT by fixtures/gpt4k.py on a 16 MiB file; wipe the primary header.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 * MIB as u64)
        .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gpt4k.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .args(["--sector-size", "4096", "--disk-guid", "8f3c1a52-6d4e-4b7a-9c21-0e5f7d3b2a14"])
        .args(["--part", "1:256:512:c12a7328-f81f-11d2-ba4b-00a0c93ec93b:1a2b3c4d-5e6f-4718-8293-a4b5c6d7e8f9:0:ESP"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(read(&b).unwrap().info.sector_size, 4096);
    b[4096..4096 + 92].fill(0);
    let t = read(&b).unwrap();
    assert_eq!(t.info.sector_size, 4096);
    assert_eq!(t.info.gpt_source, Some(gpt::Source::Backup));
    assert_eq!(layout(&t), [(1, 256, 767, "ESP".into())]);
    assert_eq!(t.partitions[0].start_bytes, 256 * 4096);
}

/// Small deterministic generator for the mutation test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_damage_never_panics() {
    let gpt = sgdisk_disk();
    let mbr = sfdisk_disk();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..500 {
        let base = if round % 3 == 0 { &mbr } else { &gpt };
        let mut b = base.clone();
        let flips = 1 + rng.next() % 8;
        for _ in 0..flips {
            // Mostly in the table areas: the first 34 sectors, the last 33, the EBRs.
            let region = rng.next() % 4;
            let at = match region {
                0 => rng.next() as usize % (34 * 512),
                1 => b.len() - 1 - rng.next() as usize % (33 * 512),
                2 => 4096 * 512 + rng.next() as usize % (4096 * 512),
                _ => rng.next() as usize % b.len(),
            };
            b[at] = rng.next() as u8;
        }
        // Half the time make the headers "valid" again so the deeper checks are reached.
        if round % 2 == 0 && std::ptr::eq(base, &gpt) {
            for h in [primary(&b), backup(&b)] {
                let count = le32(&b, h + 0x50) as usize;
                let size = le32(&b, h + 0x54) as usize;
                let at = le64(&b, h + 0x48);
                if count.saturating_mul(size) <= 64 * 1024 && at < (b.len() / 512) as u64 {
                    let at = at as usize * 512;
                    if at + count * size <= b.len() {
                        fix_entries(&mut b, h);
                        continue;
                    }
                }
                if (92..=512).contains(&le32(&b, h + 0x0c)) {
                    fix_header(&mut b, h);
                }
            }
        }
        let len = (rng.next() as usize) % b.len();
        let whole: Arc<dyn ReadAt> = Arc::new(b);
        let cut = winre_readat::Slice::new(Arc::clone(&whole), 0, len as u64).unwrap();
        for reader in [whole, Arc::new(cut)] {
            let mut d = disk(Vec::new(), 512);
            d.info.virtual_size = reader.len();
            d.reader = reader;
            let _ = partition::read_table(&d);
        }
    }
}

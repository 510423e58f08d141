//! NTFS access against volumes made by ntfs-3g (fixtures/make-ntfs.sh); every expected value comes
//! from ntfs-3g's own tools (ntfscat, ntfsinfo) or from the files the script put in.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use winre_core::ntfs::{DataRun, NtfsVolume};
use winre_core::Error;
use winre_readat::{FileReader, ReadAt, Slice};

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let status = Command::new("bash")
            .arg(root.join("make-ntfs.sh"))
            .status()
            .expect("run make-ntfs.sh");
        assert!(status.success(), "fixtures/make-ntfs.sh failed");
        root.join("cache/ntfs")
    })
}

fn image(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn partition(name: &str) -> Arc<dyn ReadAt> {
    let file = FileReader::open(image(name)).unwrap();
    let len = file.len();
    Arc::new(Slice::new(file, 0, len).unwrap())
}

fn open(name: &str) -> NtfsVolume {
    NtfsVolume::open(partition(name)).unwrap()
}

/// Runs an ntfs-3g tool and returns its stdout; fails loudly if it is missing or fails.
fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run (apt-get install ntfs-3g): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ntfscat(name: &str, path: &str) -> Vec<u8> {
    tool("ntfscat", &[image(name).to_str().unwrap(), path])
}

/// A field of `ntfsinfo -m` ("Cluster Size: 4096").
fn ntfsinfo_m(name: &str, field: &str) -> u64 {
    let text = String::from_utf8(tool("ntfsinfo", &["-m", image(name).to_str().unwrap()])).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {text}"));
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// `ntfsinfo -v -F path`, the part about the unnamed $DATA attribute.
fn ntfsinfo_data(name: &str, path: &str) -> String {
    let text = String::from_utf8(tool(
        "ntfsinfo",
        &["-v", "-F", path, image(name).to_str().unwrap()],
    ))
    .unwrap();
    let start = text
        .find("Dumping attribute $DATA")
        .unwrap_or_else(|| panic!("no $DATA in {text}"));
    text[start..].to_owned()
}

fn field(section: &str, name: &str) -> u64 {
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name}"));
    let value = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    value.parse().unwrap()
}

/// The runlist ntfsinfo prints: "VCN LCN Length" rows in hex, LCN "<HOLE>" for holes.
fn ntfsinfo_runs(section: &str) -> Vec<DataRun> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let mut lines = section
        .lines()
        .skip_while(|l| !l.contains("Runlist:"))
        .skip(1);
    let mut runs = Vec::new();
    for line in lines.by_ref() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 3 || !cols[0].starts_with("0x") {
            break;
        }
        let lcn = if cols[1] == "<HOLE>" {
            None
        } else {
            Some(hex(cols[1]))
        };
        runs.push(DataRun {
            vcn: hex(cols[0]),
            lcn,
            clusters: hex(cols[2]),
        });
    }
    runs
}

fn sha256_of(reader: &dyn ReadAt) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < reader.len() {
        let take = (reader.len() - offset).min(buf.len() as u64) as usize;
        reader.read_exact_at(offset, &mut buf[..take]).unwrap();
        hasher.update(&buf[..take]);
        offset += take as u64;
    }
    format!("{:x}", hasher.finalize())
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[test]
fn volume_geometry_matches_ntfsinfo() {
    for (name, cluster) in [
        ("basic-4k.img", 4096),
        ("basic-64k.img", 65536),
        ("frag-4k.img", 4096),
    ] {
        let volume = open(name);
        assert_eq!(
            u64::from(volume.cluster_size()),
            ntfsinfo_m(name, "Cluster Size"),
            "{name}"
        );
        assert_eq!(volume.cluster_size(), cluster);
        assert_eq!(
            volume.total_clusters(),
            ntfsinfo_m(name, "Volume Size in Clusters"),
            "{name}"
        );
        assert_eq!(
            u64::from(volume.record_size()),
            ntfsinfo_m(name, "MFT Record Size"),
            "{name}"
        );
    }
    // mkntfs -L set these labels.
    assert_eq!(open("basic-4k.img").label(), Some("winre-basic-4k"));
    assert_eq!(open("basic-64k.img").label(), Some("winre-basic-64k"));
}

#[test]
fn nested_paths_are_found_case_insensitively() {
    let src = fixtures().join("src-basic/Windows/System32/Recovery/ReAgent.xml");
    let expected = std::fs::read(src).unwrap();
    assert!(expected.starts_with(b"\xef\xbb\xbf"));
    for name in ["basic-4k.img", "basic-64k.img"] {
        let volume = open(name);
        assert_eq!(
            ntfscat(name, "/Windows/System32/Recovery/ReAgent.xml"),
            expected
        );
        for path in [
            r"windows\SYSTEM32\recovery\reagent.xml",
            r"\Windows\System32\Recovery\ReAgent.xml",
            "WINDOWS/system32/Recovery/REAGENT.XML",
            r"/Windows//System32\.\Recovery/ReAgent.xml",
        ] {
            let bytes = volume
                .read_small_file(path, 64 * 1024)
                .unwrap()
                .unwrap_or_else(|| panic!("{path} not found in {name}"));
            assert_eq!(bytes, expected, "{path} in {name}");
        }
        // Missing names, and names under a file, are simply absent.
        assert!(volume
            .lookup(r"Windows\System32\Recovery\Winre.wim")
            .unwrap()
            .is_none());
        assert!(volume.lookup(r"Nowhere\ReAgent.xml").unwrap().is_none());
        assert!(volume.lookup(r"tiny.txt\below").unwrap().is_none());
        assert!(
            volume.open_file("Windows/System32").is_err(),
            "a directory is not a file"
        );
        assert!(
            volume
                .read_small_file(r"Windows\System32\config\SOFTWARE", 1024)
                .is_err(),
            "over the cap"
        );
        assert_eq!(
            volume.lookup("").unwrap(),
            Some(5),
            "the root is MFT record 5"
        );
        assert!(volume.lookup("Empty Dir").unwrap().is_some());
        assert!(volume.lookup(r"Windows\..\tiny.txt").is_err());
    }
}

#[test]
fn large_file_reads_back_like_ntfscat() {
    let src = std::fs::read(fixtures().join("src-basic/Recovery/WindowsRE/Winre.wim")).unwrap();
    for name in ["basic-4k.img", "basic-64k.img"] {
        let volume = open(name);
        let file = volume
            .open_file(r"recovery\windowsre\WINRE.WIM")
            .unwrap()
            .unwrap();
        let section = ntfsinfo_data(name, "/Recovery/WindowsRE/Winre.wim");
        assert_eq!(file.size(), field(&section, "Data size"));
        assert_eq!(
            file.valid_data_length(),
            field(&section, "Initialized size")
        );
        assert_eq!(file.allocated_size(), field(&section, "Allocated size"));
        assert_eq!(file.data_runs(), ntfsinfo_runs(&section));
        assert!(!file.is_resident());
        let reader = file.data_reader().unwrap();
        assert_eq!(reader.len(), src.len() as u64);
        let ours = sha256_of(&reader);
        assert_eq!(
            ours,
            sha256(&ntfscat(name, "/Recovery/WindowsRE/Winre.wim")),
            "{name}"
        );
        assert_eq!(ours, sha256(&src));
        // An unaligned read across cluster boundaries, and the tail.
        let mut buf = vec![0u8; 70_001];
        reader.read_exact_at(123_457, &mut buf).unwrap();
        assert_eq!(buf, src[123_457..123_457 + 70_001]);
        let mut tail = vec![0u8; 10];
        reader
            .read_exact_at(src.len() as u64 - 10, &mut tail)
            .unwrap();
        assert_eq!(tail, src[src.len() - 10..]);
        assert!(reader
            .read_exact_at(src.len() as u64 - 9, &mut tail)
            .is_err());
    }
}

#[test]
fn software_hive_sized_file_is_a_reader() {
    let src = std::fs::read(fixtures().join("src-basic/Windows/System32/config/SOFTWARE")).unwrap();
    let volume = open("basic-4k.img");
    let file = volume
        .open_file(r"Windows\System32\config\SOFTWARE")
        .unwrap()
        .unwrap();
    assert_eq!(sha256_of(&file.data_reader().unwrap()), sha256(&src));
}

#[test]
fn resident_file() {
    for name in ["basic-4k.img", "basic-64k.img"] {
        let volume = open(name);
        let file = volume.open_file("TINY.TXT").unwrap().unwrap();
        assert!(ntfsinfo_data(name, "/tiny.txt").contains("Resident: \t\t Yes"));
        assert!(file.is_resident());
        assert!(file.data_runs().is_empty());
        assert_eq!(file.size(), 5);
        let mut buf = [0u8; 5];
        file.data_reader()
            .unwrap()
            .read_exact_at(0, &mut buf)
            .unwrap();
        assert_eq!(&buf, b"tiny\n");
        assert_eq!(buf.as_slice(), ntfscat(name, "/tiny.txt"));
    }
}

/// /sparse.bin: 4 MiB, one real cluster then a hole, valid data length 100, and the real cluster
/// still holds stale bytes past 100 that must read as zeros.
#[test]
fn sparse_file_and_valid_data_length() {
    for name in ["basic-4k.img", "basic-64k.img"] {
        let volume = open(name);
        let file = volume.open_file("sparse.bin").unwrap().unwrap();
        let section = ntfsinfo_data(name, "/sparse.bin");
        assert_eq!(file.size(), field(&section, "Data size"));
        assert_eq!(file.size(), 4 << 20);
        assert_eq!(
            file.valid_data_length(),
            field(&section, "Initialized size")
        );
        assert_eq!(file.valid_data_length(), 100);
        assert!(file.attributes().sparse);
        assert!(!file.attributes().compressed);
        let runs = file.data_runs();
        assert_eq!(runs, ntfsinfo_runs(&section));
        assert!(runs.iter().any(|r| r.lcn.is_none()), "{runs:?}");

        // The stale bytes are really there on disk, so the zeros below are our doing.
        let first = runs[0].lcn.unwrap() * u64::from(volume.cluster_size());
        let mut raw = vec![0u8; 4096];
        volume.partition().read_exact_at(first, &mut raw).unwrap();
        assert!(
            raw[100..].iter().any(|&b| b != 0),
            "the fixture lost its stale bytes"
        );

        let reader = file.data_reader().unwrap();
        let cat = ntfscat(name, "/sparse.bin");
        assert_eq!(sha256_of(&reader), sha256(&cat));
        let mut head = vec![0u8; 4096];
        reader.read_exact_at(0, &mut head).unwrap();
        assert_eq!(head[..100], raw[..100]);
        assert!(head[100..].iter().all(|&b| b == 0));
    }
}

#[test]
fn fragmented_file_with_attribute_list() {
    let name = "frag-4k.img";
    let src = std::fs::read(fixtures().join("src-frag/frag.bin")).unwrap();
    let volume = open(name);
    let file = volume.open_file("/Frag.bin").unwrap().unwrap();
    let text = String::from_utf8(tool(
        "ntfsinfo",
        &["-v", "-F", "/frag.bin", image(name).to_str().unwrap()],
    ))
    .unwrap();
    assert!(
        text.contains("Dumping attribute $ATTRIBUTE_LIST"),
        "the fixture lost its attribute list"
    );
    assert!(file.has_attribute_list());
    let section = ntfsinfo_data(name, "/frag.bin");
    let expected_runs = ntfsinfo_runs(&section);
    assert!(
        expected_runs.len() > 50,
        "only {} runs",
        expected_runs.len()
    );
    assert_eq!(file.data_runs(), expected_runs);
    assert_eq!(file.size(), field(&section, "Data size"));
    let reader = file.data_reader().unwrap();
    let ours = sha256_of(&reader);
    assert_eq!(ours, sha256(&ntfscat(name, "/frag.bin")));
    assert_eq!(ours, sha256(&src));
    // Reads that straddle run boundaries.
    let mut offset = 0;
    for run in &expected_runs[..20] {
        offset += run.clusters * 4096;
        let mut buf = vec![0u8; 8192];
        reader.read_exact_at(offset - 4000, &mut buf).unwrap();
        assert_eq!(buf, src[(offset - 4000) as usize..(offset + 4192) as usize]);
    }
}

/// Zero bits of `ntfscat $Bitmap` below the cluster count, counted here bit by bit.
fn independent_free_clusters(name: &str) -> u64 {
    let bitmap = ntfscat(name, "$Bitmap");
    let total = ntfsinfo_m(name, "Volume Size in Clusters");
    (0..total)
        .filter(|&c| bitmap[(c / 8) as usize] & (1 << (c % 8)) == 0)
        .count() as u64
}

#[test]
fn free_space_matches_the_bitmap_counted_independently() {
    for name in [
        "basic-4k.img",
        "basic-64k.img",
        "frag-4k.img",
        "huge-4k.img",
    ] {
        let volume = open(name);
        let free = volume.free_space().unwrap();
        assert_eq!(
            free.free_clusters,
            independent_free_clusters(name),
            "{name}"
        );
        assert_eq!(
            free.total_clusters,
            ntfsinfo_m(name, "Volume Size in Clusters")
        );
        assert_eq!(
            free.free_bytes(),
            free.free_clusters * u64::from(volume.cluster_size())
        );
        assert!(free.free_clusters > 0 && free.free_clusters < free.total_clusters);
    }
}

/// A source with patched bytes and a different length (zeros past the file).
struct Patched {
    inner: FileReader,
    len: u64,
    patches: Vec<(u64, Vec<u8>)>,
}

impl ReadAt for Patched {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        winre_readat::check_bounds(offset, buf.len(), self.len)?;
        buf.fill(0);
        let inner_end = self.inner.len().min(offset + buf.len() as u64);
        if offset < inner_end {
            self.inner
                .read_exact_at(offset, &mut buf[..(inner_end - offset) as usize])?;
        }
        for (at, bytes) in &self.patches {
            for (i, b) in bytes.iter().enumerate() {
                let pos = at + i as u64;
                if pos >= offset && pos < offset + buf.len() as u64 {
                    buf[(pos - offset) as usize] = *b;
                }
            }
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

fn patched(name: &str, len: Option<u64>, patches: Vec<(u64, Vec<u8>)>) -> Arc<dyn ReadAt> {
    let inner = FileReader::open(image(name)).unwrap();
    let len = len.unwrap_or(inner.len());
    Arc::new(Patched {
        inner,
        len,
        patches,
    })
}

#[test]
fn truncated_volume_is_refused() {
    let file = FileReader::open(image("basic-4k.img")).unwrap();
    let short = Arc::new(Slice::new(file, 0, 100 << 20).unwrap());
    let e = NtfsVolume::open(short).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    let tiny =
        Arc::new(Slice::new(FileReader::open(image("basic-4k.img")).unwrap(), 0, 100).unwrap());
    assert!(NtfsVolume::open(tiny).is_err());
}

#[test]
fn zeroed_boot_sector_is_refused() {
    let e = NtfsVolume::open(patched("basic-4k.img", None, vec![(0, vec![0; 512])])).unwrap_err();
    assert!(e.to_string().contains("not an NTFS volume"), "{e}");
    // NTFS signature but nonsense geometry: 3 bytes per sector.
    let e = NtfsVolume::open(patched("basic-4k.img", None, vec![(0x0b, vec![3, 0])])).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[test]
fn bitmap_shorter_than_the_volume_is_refused() {
    // Double the volume (and the partition) in the boot sector: $Bitmap now covers only half.
    let name = "basic-4k.img";
    let inner = FileReader::open(image(name)).unwrap();
    let mut boot = [0u8; 512];
    inner.read_exact_at(0, &mut boot).unwrap();
    let sectors = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap());
    let bigger = (sectors + 1) * 2 - 1;
    let partition = patched(
        name,
        Some((bigger + 1) * 512),
        vec![(0x28, bigger.to_le_bytes().to_vec())],
    );
    let volume = NtfsVolume::open(partition).unwrap();
    let e = volume.free_space().unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("$Bitmap"), "{e}");
}

/// Random damage to the MFT must give errors or plausible results, never a panic or a hang.
#[test]
fn damaged_mft_never_panics() {
    let name = "basic-4k.img";
    let volume = open(name);
    let mft = {
        let mut boot = [0u8; 512];
        volume.partition().read_exact_at(0, &mut boot).unwrap();
        u64::from_le_bytes(boot[0x30..0x38].try_into().unwrap()) * u64::from(volume.cluster_size())
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut opened = 0;
    for round in 0..1500 {
        // Damage a few bytes (single bytes, or all-ones / zero words) in the first 96 MFT records:
        // system files, the root, our tree; every third round aims at our own files' records.
        let span = if round % 3 == 0 {
            64 * 1024..96 * 1024
        } else {
            0..96 * 1024
        };
        let patches = (0..1 + next() % 8)
            .map(|_| {
                let at = mft + span.start + next() % (span.end - span.start);
                let bytes = match next() % 3 {
                    0 => vec![(next() & 0xff) as u8],
                    1 => vec![0xff; 4],
                    _ => vec![0; 2],
                };
                (at, bytes)
            })
            .collect();
        let partition = patched(name, None, patches);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Ok(volume) = NtfsVolume::open(partition) else {
                return false;
            };
            for path in [
                r"Windows\System32\Recovery\ReAgent.xml",
                r"Recovery\WindowsRE\Winre.wim",
                "sparse.bin",
                "tiny.txt",
            ] {
                if let Ok(Some(file)) = volume.open_file(path) {
                    if let Ok(reader) = file.data_reader() {
                        let mut buf = [0u8; 4096];
                        let _ =
                            reader.read_exact_at(0, &mut buf[..reader.len().min(4096) as usize]);
                    }
                }
            }
            let _ = volume.free_space();
            true
        }));
        opened += usize::from(result.expect("a damaged MFT made winre-core panic"));
    }
    assert!(
        opened > 100,
        "only {opened} damaged volumes opened: the damage test tests little"
    );
}

#[test]
fn oversized_mft_record_size_is_refused_before_reading() {
    // Byte 0x40 counts clusters per MFT record when positive: 64 × 4 KiB = 256 KiB records (a
    // power of two, but past our 64 KiB cap) and 3 × 4 KiB = 12 KiB (not a power of two). The
    // `ntfs` crate accepts both and would allocate that much per record it opens.
    for clusters in [64u8, 3] {
        let partition = patched("basic-4k.img", None, vec![(0x40, vec![clusters])]);
        let e = NtfsVolume::open(partition).unwrap_err();
        let Error::Corrupt { what, offset, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!((what.as_str(), *offset), ("NTFS boot sector", 0x40), "{e}");
        assert!(
            e.to_string().contains("clusters-per-MFT-record")
                && e.to_string()
                    .contains(&format!("{} bytes", u32::from(clusters) * 4096)),
            "{e}"
        );
    }
}

/// Redoes the update sequence of a fixed-up MFT record: each 512-byte stride's last two bytes go
/// into the update sequence array and are replaced by the update sequence number.
fn redo_fixups(record: &mut [u8]) {
    let usa = u16::from_le_bytes(record[4..6].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(record[6..8].try_into().unwrap()) as usize;
    let usn = [record[usa], record[usa + 1]];
    for i in 1..count {
        let end = i * 512;
        let (a, b) = (record[end - 2], record[end - 1]);
        record[usa + 2 * i] = a;
        record[usa + 2 * i + 1] = b;
        record[end - 2] = usn[0];
        record[end - 1] = usn[1];
    }
}

/// Undoes it (the inverse of `redo_fixups`), checking that each stride ends in the sequence number.
fn undo_fixups(record: &mut [u8]) {
    let usa = u16::from_le_bytes(record[4..6].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(record[6..8].try_into().unwrap()) as usize;
    for i in 1..count {
        let end = i * 512;
        assert_eq!(record[end - 2..end], record[usa..usa + 2], "stride {i}");
        record[end - 2] = record[usa + 2 * i];
        record[end - 1] = record[usa + 2 * i + 1];
    }
}

#[test]
fn huge_index_record_size_is_refused_before_the_index_is_read() {
    // Root directory (MFT record 5): set its $I30 $INDEX_ROOT's index record size (value + 8) to
    // 0xFFFFF000, which the `ntfs` crate would allocate per index node. The record is parsed here
    // from the Linux-NTFS layout, independently of the code under test.
    let name = "basic-4k.img";
    let inner = FileReader::open(image(name)).unwrap();
    let mut boot = [0u8; 512];
    inner.read_exact_at(0, &mut boot).unwrap();
    let cluster =
        u64::from(u16::from_le_bytes(boot[0x0b..0x0d].try_into().unwrap())) * u64::from(boot[0x0d]);
    let record_bytes = match boot[0x40] as i8 {
        n if n < 0 => 1u64 << -n,
        n => n as u64 * cluster,
    };
    let mft = u64::from_le_bytes(boot[0x30..0x38].try_into().unwrap()) * cluster;
    let at = mft + 5 * record_bytes;
    let mut record = vec![0u8; record_bytes as usize];
    inner.read_exact_at(at, &mut record).unwrap();
    assert_eq!(&record[..4], b"FILE");
    undo_fixups(&mut record);
    let mut attr = u16::from_le_bytes(record[0x14..0x16].try_into().unwrap()) as usize;
    let field = loop {
        let ty = u32::from_le_bytes(record[attr..attr + 4].try_into().unwrap());
        assert_ne!(ty, 0xffff_ffff, "no $INDEX_ROOT in the root directory");
        let len = u32::from_le_bytes(record[attr + 4..attr + 8].try_into().unwrap()) as usize;
        let name_units = record[attr + 9] as usize;
        let name_at =
            attr + u16::from_le_bytes(record[attr + 10..attr + 12].try_into().unwrap()) as usize;
        let name: Vec<u16> = record[name_at..name_at + 2 * name_units]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if ty == 0x90 && String::from_utf16(&name).unwrap() == "$I30" {
            let value = u16::from_le_bytes(record[attr + 0x14..attr + 0x16].try_into().unwrap());
            break attr + value as usize + 8;
        }
        attr += len;
    };
    assert_eq!(
        u32::from_le_bytes(record[field..field + 4].try_into().unwrap()),
        4096,
        "mkntfs writes 4 KiB index records"
    );
    record[field..field + 4].copy_from_slice(&0xffff_f000u32.to_le_bytes());
    redo_fixups(&mut record);

    let volume = NtfsVolume::open(patched(name, None, vec![(at, record)])).unwrap();
    let e = volume.lookup(r"Windows\System32").unwrap_err();
    let Error::Corrupt { what, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(what, "$INDEX_ROOT of MFT record 5", "{e}");
    assert!(e.to_string().contains("4294963200"), "{e}");
    // The root itself still resolves: it needs no index.
    assert_eq!(volume.lookup("").unwrap(), Some(5));
}

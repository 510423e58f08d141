//! VMDK containers written by qemu-img (and a VMware-style stream rebuilt from one) must read back
//! byte for byte as the raw disk they were made from; qemu-img itself is the oracle for the child
//! disk. Damaged files give clear errors, never panics.

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
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use winre_disk::container::{self, Format, OpenOptions};
use winre_readat::ReadAt;

/// Builds (or reuses) the fixtures of `fixtures/make-vmdk-ewf.sh`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::run_fixture_script("make-vmdk-ewf.sh"))
}

const MIB: u64 = 1024 * 1024;

fn sha256_file(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn open(path: &Path) -> winre_disk::Result<container::Disk> {
    container::open(path, &OpenOptions::default())
}

fn assert_same_as(container_file: &str, raw_file: &str, variant: &str) {
    let dir = fixtures();
    let disk = open(&dir.join(container_file)).unwrap();
    assert_eq!(disk.info.format, Format::Vmdk, "{container_file}");
    assert_eq!(disk.info.variant, variant, "{container_file}");
    assert_eq!(disk.info.sector_size, 512);
    let raw = dir.join(raw_file);
    assert_eq!(
        disk.reader.len(),
        std::fs::metadata(&raw).unwrap().len(),
        "{container_file} size"
    );
    assert_eq!(disk.info.virtual_size, disk.reader.len());
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        sha256_file(&raw),
        "{container_file} content"
    );
}

#[test]
fn monolithic_sparse_reads_as_the_raw_disk() {
    assert_same_as("sparse.vmdk", "raw.img", "monolithicSparse");
}

#[test]
fn stream_optimized_reads_as_the_raw_disk() {
    assert_same_as("stream.vmdk", "raw.img", "streamOptimized");
}

#[test]
fn stream_with_grain_directory_in_the_footer_reads_as_the_raw_disk() {
    // The rebuilt file is only a fair test if qemu-img reads it as the raw disk too.
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let converted = tmp.path().join("out.raw");
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "vmdk", "-O", "raw"])
        .arg(dir.join("stream-footer.vmdk"))
        .arg(&converted)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256_file(&converted), sha256_file(&dir.join("raw.img")));
    let header = std::fs::read(dir.join("stream-footer.vmdk")).unwrap();
    assert_eq!(
        &header[0x38..0x40],
        &[0xff; 8],
        "gdOffset must be GD_AT_END"
    );
    assert_same_as("stream-footer.vmdk", "raw.img", "streamOptimized");
}

#[test]
fn monolithic_flat_descriptor_reads_as_the_raw_disk() {
    assert_same_as("flat.vmdk", "raw.img", "monolithicFlat");
}

#[test]
fn split_sparse_descriptor_reads_as_the_raw_disk() {
    assert_same_as("split-sparse.vmdk", "raw.img", "twoGbMaxExtentSparse");
}

/// Compares windows around the data and the extent boundaries of the 4.5 GiB disk (hashing all
/// of it would only re-read zeros).
fn assert_big_disk_windows(container_file: &str, variant: &str) {
    let dir = fixtures();
    let disk = open(&dir.join(container_file)).unwrap();
    assert_eq!(disk.info.variant, variant);
    let raw = std::fs::File::open(dir.join("big.img")).unwrap();
    let raw_len = raw.metadata().unwrap().len();
    assert_eq!(disk.reader.len(), raw_len);
    let mut expected = vec![0u8; 3 * MIB as usize];
    let mut actual = vec![0u8; 3 * MIB as usize];
    for start in [
        0,
        2048 * MIB - 2 * MIB,
        4096 * MIB - MIB - 7,
        raw_len - 3 * MIB,
    ] {
        std::os::unix::fs::FileExt::read_exact_at(&raw, &mut expected, start).unwrap();
        disk.reader.read_exact_at(start, &mut actual).unwrap();
        assert!(
            expected == actual,
            "{container_file}: bytes differ in the window at {start}"
        );
        assert!(
            expected.iter().any(|b| *b != 0) || start == 0,
            "window at {start} should hold data"
        );
    }
    let mut one = [0u8; 1];
    assert!(disk.reader.read_exact_at(raw_len, &mut one).is_err());
}

#[test]
fn two_gb_max_extent_sparse_with_three_extents() {
    assert_big_disk_windows("big-sparse.vmdk", "twoGbMaxExtentSparse");
}

#[test]
fn two_gb_max_extent_flat_with_three_extents() {
    assert_big_disk_windows("big-flat.vmdk", "twoGbMaxExtentFlat");
}

#[test]
fn child_disk_opens_its_parent_and_reads_like_qemu() {
    let dir = fixtures();
    let child = dir.join("child.vmdk");
    // Found from parentFileNameHint, next to the child.
    let disk = open(&child).unwrap();
    assert_eq!(disk.info.chain.len(), 1);
    assert_eq!(disk.info.chain[0].recorded, "sparse.vmdk");
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        sha256_file(&dir.join("child.raw"))
    );
    // And named explicitly.
    let options = OpenOptions {
        parents: vec![dir.join("sparse.vmdk")],
        verify_container: false,
    };
    let disk = container::open(&child, &options).unwrap();
    assert!(disk.info.chain[0].given);
    assert_eq!(
        common::sha256_of(disk.reader.as_ref()),
        sha256_file(&dir.join("child.raw"))
    );
}

#[test]
fn reads_from_many_threads_agree() {
    let dir = fixtures();
    let disk = open(&dir.join("stream.vmdk")).unwrap();
    let raw = std::fs::read(dir.join("raw.img")).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let reader = disk.reader.clone();
            let raw = &raw;
            scope.spawn(move || {
                let mut buf = vec![0u8; 100_000];
                for i in 0..40u64 {
                    let offset =
                        (i * 7_919_993 + t * 1_234_567) % (raw.len() as u64 - buf.len() as u64);
                    reader.read_exact_at(offset, &mut buf).unwrap();
                    assert!(
                        buf[..] == raw[offset as usize..offset as usize + buf.len()],
                        "offset {offset}"
                    );
                }
            });
        }
    });
}

// ---- damage ----

/// Copies a fixture into a temp dir so it can be damaged.
fn damaged_copy(name: &str, tmp: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(fixtures().join(name)).unwrap();
    damage(&mut bytes);
    let path = tmp.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Opens and reads the whole guest; returns the first error as text. Must not panic or hang.
fn read_all_error(path: &Path) -> String {
    let disk = match open(path) {
        Ok(disk) => disk,
        Err(e) => return e.to_string(),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < disk.reader.len() {
        let take = (disk.reader.len() - offset).min(buf.len() as u64) as usize;
        if let Err(e) = disk.reader.read_exact_at(offset, &mut buf[..take]) {
            return e.to_string();
        }
        offset += take as u64;
    }
    panic!("{} read without error", path.display());
}

#[test]
fn grain_table_entry_past_the_end_is_corrupt_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gte_offset = 0;
    let path = damaged_copy("sparse.vmdk", tmp.path(), |b| {
        let gd = u64_at(b, 0x38) as usize * 512;
        let gt = u32_at(b, gd) as usize * 512;
        gte_offset = gt; // entry 0: the grain holding the protective MBR
        assert_ne!(u32_at(b, gt), 0);
        b[gt..gt + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    });
    let message = read_all_error(&path);
    assert!(
        message.contains("grain table entry for grain 0"),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {gte_offset}")),
        "{message}"
    );
    assert!(message.contains("past the end"), "{message}");
}

#[test]
fn grain_directory_entry_past_the_end_is_corrupt_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gde_offset = 0;
    let path = damaged_copy("stream.vmdk", tmp.path(), |b| {
        gde_offset = u64_at(b, 0x38) as usize * 512;
        b[gde_offset..gde_offset + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    });
    let message = read_all_error(&path);
    assert!(message.contains("grain directory entry 0"), "{message}");
    assert!(
        message.contains(&format!("offset {gde_offset}")),
        "{message}"
    );
}

#[test]
fn truncated_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["sparse.vmdk", "stream.vmdk", "stream-footer.vmdk"] {
        for keep in [100usize, 600, 40_000, 2_000_000] {
            let path = damaged_copy(name, tmp.path(), |b| b.truncate(keep));
            let message = read_all_error(&path);
            assert!(
                message.contains("past the end") || message.contains("truncated"),
                "{name} cut to {keep}: {message}"
            );
        }
    }
    // A flat extent shorter than the descriptor says: refused at open, naming the extent file.
    std::fs::copy(fixtures().join("flat.vmdk"), tmp.path().join("flat.vmdk")).unwrap();
    let flat = std::fs::read(fixtures().join("flat-flat.vmdk")).unwrap();
    std::fs::write(tmp.path().join("flat-flat.vmdk"), &flat[..50 << 20]).unwrap();
    let message = open(&tmp.path().join("flat.vmdk")).unwrap_err().to_string();
    assert!(
        message.contains("flat-flat.vmdk") && message.contains("the file has 52428800 bytes"),
        "{message}"
    );
}

#[test]
fn corrupt_compressed_grain_and_bad_header_fields() {
    let tmp = tempfile::tempdir().unwrap();
    // Flip bytes inside the first compressed grain's deflate data (after its 12-byte marker).
    let path = damaged_copy("stream.vmdk", tmp.path(), |b| {
        let gd = u64_at(b, 0x38) as usize * 512;
        let gt = u32_at(b, gd) as usize * 512;
        let grain = u32_at(b, gt) as usize * 512;
        for byte in &mut b[grain + 14..grain + 40] {
            *byte ^= 0x55;
        }
    });
    let message = read_all_error(&path);
    assert!(message.contains("compressed grain 0"), "{message}");
    // Grain size that is not a power of two.
    let path = damaged_copy("sparse.vmdk", tmp.path(), |b| {
        b[0x14..0x1c].copy_from_slice(&100u64.to_le_bytes())
    });
    let message = open(&path).unwrap_err().to_string();
    assert!(message.contains("grain size 100"), "{message}");
    // A capacity that would need a grain directory larger than the file.
    let path = damaged_copy("sparse.vmdk", tmp.path(), |b| {
        b[0x0c..0x14].copy_from_slice(&(1u64 << 40).to_le_bytes())
    });
    let message = open(&path).unwrap_err().to_string();
    assert!(message.contains("grain directory"), "{message}");
    // The newline test characters changed, as by a text-mode transfer.
    let path = damaged_copy("sparse.vmdk", tmp.path(), |b| b[0x4b] = b'\n');
    let message = open(&path).unwrap_err().to_string();
    assert!(message.contains("text mode"), "{message}");
}

#[test]
fn missing_extent_file_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("split-sparse.vmdk"),
        tmp.path().join("split-sparse.vmdk"),
    )
    .unwrap();
    let message = open(&tmp.path().join("split-sparse.vmdk"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("split-sparse-s001.vmdk"), "{message}");
}

// ---- resource limits ----

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Writes a text descriptor listing `lines` extent lines into `dir`.
fn write_descriptor(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let mut text = String::from(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\n",
    );
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn many_lines_naming_one_extent_open_it_once() {
    // Each line used to open the file and load its grain directory and caches again: 2000 lines
    // held 2000 descriptors (past the usual 1024-file limit) and 2000 sets of caches.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("stream.vmdk"),
        tmp.path().join("stream.vmdk"),
    )
    .unwrap();
    let sectors = 128 * MIB / 512;
    let lines: Vec<String> = (0..2000)
        .map(|_| format!("RW {sectors} SPARSE \"stream.vmdk\""))
        .collect();
    let path = write_descriptor(tmp.path(), "many.vmdk", &lines);
    let before = open_fds();
    let disk = open(&path).unwrap();
    let after = open_fds();
    assert!(
        after < before + 100,
        "{before} open files before, {after} after opening"
    );
    assert_eq!(disk.reader.len(), 2000 * 128 * MIB);
    // Every line reads as the raw disk qemu-img made the stream from.
    let raw = std::fs::read(fixtures().join("raw.img")).unwrap();
    let at = (MIB + 12345) as usize;
    for line in [0u64, 1, 1234, 1999] {
        let mut buf = vec![0u8; 64 * 1024];
        disk.reader
            .read_exact_at(line * 128 * MIB + at as u64, &mut buf)
            .unwrap();
        assert_eq!(buf, raw[at..at + buf.len()], "line {line}");
    }
}

/// A sparse extent header (grain 1 sector, 1 entry per grain table) whose grain directory of
/// `gd_bytes` starts at sector 1 of a sparse file just large enough to hold it.
fn extent_with_big_grain_directory(path: &Path, gd_bytes: u64) {
    let mut header = vec![0u8; 512];
    header[0..4].copy_from_slice(b"KDMV");
    header[4..8].copy_from_slice(&1u32.to_le_bytes());
    header[12..20].copy_from_slice(&(gd_bytes / 4).to_le_bytes()); // capacity, sectors
    header[20..28].copy_from_slice(&1u64.to_le_bytes()); // grain, sectors
    header[44..48].copy_from_slice(&1u32.to_le_bytes()); // entries per grain table
    header[56..64].copy_from_slice(&1u64.to_le_bytes()); // grain directory sector
    let file = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut &file, &header).unwrap();
    file.set_len(512 + gd_bytes).unwrap();
}

#[test]
fn grain_directories_of_all_extents_together_are_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let gd_bytes = 48 * MIB;
    let lines: Vec<String> = (0..4)
        .map(|i| {
            extent_with_big_grain_directory(&tmp.path().join(format!("e{i}.vmdk")), gd_bytes);
            format!("RW {} SPARSE \"e{i}.vmdk\"", gd_bytes / 4)
        })
        .collect();
    // Two such extents are fine...
    let two = write_descriptor(tmp.path(), "two.vmdk", &lines[..2]);
    assert_eq!(open(&two).unwrap().reader.len(), 2 * (gd_bytes / 4) * 512);
    // ...the third of four is refused, naming the limit.
    let four = write_descriptor(tmp.path(), "four.vmdk", &lines);
    let message = open(&four).err().unwrap().to_string();
    assert!(message.contains("MAX_TOTAL_GD_BYTES"), "{message}");
    assert!(message.contains("e2.vmdk"), "{message}");
}

#[test]
fn extent_names_outside_the_descriptor_folder_or_not_files_are_refused() {
    // A hostile descriptor must not show host files as guest bytes, nor hang on a FIFO.
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.vmdk");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    for (name, expected) in [
        ("/etc/passwd", "not a plain name"),
        ("../raw.img", "not a plain name"),
        ("sub/../../raw.img", "not a plain name"),
        ("pipe.vmdk", "not a regular file"),
        ("sub", "not a regular file"),
    ] {
        for kind in ["FLAT", "SPARSE"] {
            let offset = if kind == "FLAT" { " 0" } else { "" };
            let path = write_descriptor(
                tmp.path(),
                "hostile.vmdk",
                &[format!("RW 8 {kind} \"{name}\"{offset}")],
            );
            let err = open(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{kind} {name}: {err}");
        }
    }
}

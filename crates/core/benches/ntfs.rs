//! NTFS access speed on volumes from fixtures/make-ntfs.sh: free space of a 1 TiB volume (a
//! 32 MiB `$Bitmap`), opening a volume and finding a file, and reading a 40 MiB file in place.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use winre_core::ntfs::NtfsVolume;
use winre_readat::{FileReader, ReadAt};

fn fixture(name: &str) -> Arc<dyn ReadAt> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let status = Command::new("bash")
        .arg(root.join("make-ntfs.sh"))
        .status()
        .unwrap();
    assert!(status.success(), "fixtures/make-ntfs.sh failed");
    Arc::new(FileReader::open(root.join("cache/ntfs").join(name)).unwrap())
}

fn benches(c: &mut Criterion) {
    let huge = NtfsVolume::open(fixture("huge-4k.img")).unwrap();
    let mut group = c.benchmark_group("ntfs");
    group.throughput(Throughput::Bytes(huge.total_clusters().div_ceil(8)));
    group.bench_function("free_space_1TiB_volume", |b| {
        b.iter(|| huge.free_space().unwrap())
    });

    let basic = fixture("basic-4k.img");
    group.throughput(Throughput::Elements(1));
    group.bench_function("open_volume_and_find_winre_wim", |b| {
        b.iter(|| {
            let volume = NtfsVolume::open(Arc::clone(&basic)).unwrap();
            volume
                .open_file(r"Recovery\WindowsRE\Winre.wim")
                .unwrap()
                .unwrap()
        })
    });

    let volume = NtfsVolume::open(basic).unwrap();
    let reader = volume
        .open_file(r"Recovery\WindowsRE\Winre.wim")
        .unwrap()
        .unwrap()
        .data_reader()
        .unwrap();
    group.throughput(Throughput::Bytes(reader.len()));
    let mut buf = vec![0u8; 1 << 20];
    group.bench_function("read_40MiB_file_in_place", |b| {
        b.iter(|| {
            let mut offset = 0;
            while offset < reader.len() {
                let take = (reader.len() - offset).min(buf.len() as u64) as usize;
                reader.read_exact_at(offset, &mut buf[..take]).unwrap();
                offset += take as u64;
            }
        })
    });
    group.finish();
}

criterion_group!(ntfs, benches);
criterion_main!(ntfs);

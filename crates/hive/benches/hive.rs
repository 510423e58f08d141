//! Hive reading speed on the fixtures of fixtures/make-hives.sh (a 21 MB hivex-written SOFTWARE-like
//! hive). Also prints how many bytes a WinREVersion lookup reads, to show the hive is never
//! loaded whole. Run: `cargo bench -p winre-hive`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use winre_hive::Hive;
use winre_readat::{Counting, FileReader};

fn hives() -> PathBuf {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let status = Command::new("bash")
        .arg(fixtures.join("make-hives.sh"))
        .status()
        .unwrap();
    assert!(status.success(), "fixtures/make-hives.sh failed");
    fixtures.join("cache/hives")
}

fn winreversion(path: &PathBuf) -> String {
    let hive = Hive::open(FileReader::open(path).unwrap()).unwrap();
    let key = hive
        .key(r"Microsoft\Windows NT\CurrentVersion")
        .unwrap()
        .unwrap();
    key.value("WinREVersion")
        .unwrap()
        .unwrap()
        .as_string()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = hives();
    let software = dir.join("software.hive");
    let counted = Counting::new(FileReader::open(&software).unwrap());
    let hive = Hive::open(&counted).unwrap();
    let key = hive
        .key(r"Microsoft\Windows NT\CurrentVersion")
        .unwrap()
        .unwrap();
    key.value("WinREVersion")
        .unwrap()
        .unwrap()
        .as_string()
        .unwrap();
    let stats = counted.stats();
    println!(
        "WinREVersion lookup in a {} byte hive: {} reads, {} bytes read",
        std::fs::metadata(&software).unwrap().len(),
        stats.calls,
        stats.bytes
    );

    c.bench_function("open SOFTWARE + read WinREVersion", |b| {
        b.iter(|| winreversion(&software))
    });
    let hive = Hive::open(FileReader::open(&software).unwrap()).unwrap();
    c.bench_function("list 2100 subkeys", |b| {
        b.iter(|| {
            hive.key("Many")
                .unwrap()
                .unwrap()
                .subkeys()
                .unwrap()
                .map(|k| k.unwrap().name().len())
                .sum::<usize>()
        })
    });
    let handmade = Hive::open(FileReader::open(dir.join("handmade.hive")).unwrap()).unwrap();
    c.bench_function("read a 40000-byte big-data (db) value", |b| {
        b.iter(|| {
            handmade
                .key("C1")
                .unwrap()
                .unwrap()
                .value("Big")
                .unwrap()
                .unwrap()
                .data()
                .unwrap()
                .len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

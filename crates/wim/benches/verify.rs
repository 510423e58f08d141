//! Whole-file verify throughput on the fixture WIMs (uncompressed, XPRESS, LZX), read from
//! memory so the figure is the CPU work: integrity table, decoding and SHA-1 of every blob.
//! Run with `cargo bench -p winre-wim --bench verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use winre_wim::verify::verify;

fn fixtures() -> std::path::PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/make-wims.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run fixtures/make-wims.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}

fn bench(c: &mut Criterion) {
    let dir = fixtures();
    let mut group = c.benchmark_group("verify");
    for name in ["none-check.wim", "xpress.wim", "lzx.wim", "lzx-2m.wim"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let wim = winre_wim::Wim::open(bytes.clone()).unwrap();
        let uncompressed: u64 = wim
            .blob_table()
            .blobs
            .iter()
            .map(|b| b.reshdr.original_size)
            .sum();
        group.throughput(Throughput::Bytes(uncompressed));
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = verify(bytes.as_slice(), Default::default(), &|_| {}).unwrap();
                assert!(report.intact);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

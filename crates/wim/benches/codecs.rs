//! Decode throughput (MB/s of output) of our XPRESS, LZX and LZMS decoders on real data: every
//! compressed chunk of ~64 MiB of /usr/lib/x86_64-linux-gnu captured by wimlib-imagex
//! (fixtures/make-codec-wims.sh bench and lzms-bench). One decoder, one thread, reused across chunks, as a
//! verify worker uses it. For a comparison with wimlib see benches/codec-vs-wimlib.sh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

#[path = "../tests/common/wimchunks.rs"]
mod wimchunks;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use winre_wim::codec::new_decoder;

fn corpus_dir(mode: &str) -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/make-codec-wims.sh"
    );
    let out = Command::new(script)
        .arg(mode)
        .output()
        .expect("run fixtures/make-codec-wims.sh");
    assert!(
        out.status.success(),
        "make-codec-wims.sh bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn bench_codecs(c: &mut Criterion) {
    let dir = corpus_dir("bench");
    let lzms_dir = corpus_dir("lzms-bench");
    let mut group = c.benchmark_group("decode");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    for (dir, name) in [
        (&dir, "lzx-32768"),
        (&dir, "xpress-32768"),
        (&dir, "lzx-1048576"),
        (&lzms_dir, "lzms-131072"),
        (&lzms_dir, "lzms-67108864"),
    ] {
        let wim = wimchunks::Wim::open(&dir.join(format!("{name}.wim")));
        // Only chunks that need decoding (raw chunks are a copy).
        let chunks: Vec<(Vec<u8>, usize)> = wim
            .data_blobs()
            .flat_map(|b| {
                wim.chunks(b)
                    .into_iter()
                    .map(|c| (c.data.to_vec(), c.size))
                    .collect::<Vec<_>>()
            })
            .filter(|(data, size)| data.len() != *size)
            .collect();
        let total: usize = chunks.iter().map(|c| c.1).sum();
        let mut decoder = new_decoder(wim.compression, wim.chunk_size).unwrap();
        let mut out = vec![0u8; wim.chunk_size];
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for (data, size) in &chunks {
                    decoder.decompress(data, &mut out[..*size]).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codecs);
criterion_main!(benches);

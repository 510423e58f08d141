//! Single-threaded decode throughput of our XPRESS/LZX/LZMS decoders over every compressed chunk of
//! the file blobs in a WIM (as written by wimlib-imagex), for benches/codec-vs-wimlib.sh.
//!
//!     cargo run --release -p winre-wim --example codec_throughput -- WIM [--sha1] [--repeat N]
//!
//! Prints one line: `output_bytes cpu_seconds MB/s` (CPU time of this thread, from
//! /proc/thread-self/schedstat, so a busy machine does not distort it). With `--sha1` every blob's bytes are also
//! hashed and checked against the blob table, which is what `wimlib-imagex verify` does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

#[path = "../tests/common/wimchunks.rs"]
mod wimchunks;

use sha1::{Digest, Sha1};
use winre_wim::codec::new_decoder;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: codec_throughput WIM [--sha1] [--repeat N]");
    let sha = args.iter().any(|a| a == "--sha1");
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .map_or(1, |i| args[i + 1].parse().unwrap());
    let wim = wimchunks::Wim::open(std::path::Path::new(path));
    let blobs: Vec<_> = wim.data_blobs().map(|b| (b, wim.chunks(b))).collect();
    let mut decoder = new_decoder(wim.compression, wim.chunk_size).unwrap();
    let mut out = vec![0u8; wim.chunk_size];
    let start = cpu_seconds();
    let mut total = 0u64;
    for _ in 0..repeat {
        for (blob, chunks) in &blobs {
            let mut h = Sha1::new();
            for c in chunks {
                let buf = &mut out[..c.size];
                if c.data.len() == c.size {
                    buf.copy_from_slice(c.data);
                } else {
                    decoder.decompress(c.data, buf).unwrap();
                }
                if sha {
                    h.update(&*buf);
                }
                total += c.size as u64;
            }
            if sha {
                assert_eq!(<[u8; 20]>::from(h.finalize()), blob.sha1, "blob hash");
            }
        }
    }
    let secs = cpu_seconds() - start;
    println!("{total} {secs:.3} {:.1}", total as f64 / secs / 1e6);
}

/// CPU time this thread has run, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace()
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1e9
}

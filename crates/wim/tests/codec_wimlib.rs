//! Our XPRESS and LZX decoders against wimlib's compressors: every chunk of every file blob in
//! WIMs written by `wimlib-imagex capture` (fixtures/make-codec-wims.sh: several data kinds,
//! every XPRESS chunk size class and LZX chunk sizes from 32 KiB to 2 MiB) must decode to bytes
//! whose SHA-1 is the one wimlib recorded, and every source file's SHA-1 must be among them.
//! XPRESS chunks are also decoded by the independent `xpress-huffman` crate and compared.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

#[path = "common/wimchunks.rs"]
mod wimchunks;

use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use wimchunks::Wim;
use winre_wim::codec::{new_decoder, ChunkDecoder, Compression};

fn fixture_dir() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/make-codec-wims.sh"
    );
    let out = Command::new(script)
        .output()
        .expect("run fixtures/make-codec-wims.sh");
    assert!(
        out.status.success(),
        "make-codec-wims.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Flips bits in, and truncates, a real chunk: the decoder must return (any result), not panic.
fn damaged_chunk_never_panics(
    decoder: &mut dyn ChunkDecoder,
    chunk: &[u8],
    size: usize,
    seed: usize,
) {
    let mut out = vec![0u8; size];
    let mut damaged = chunk.to_vec();
    for k in 0..4 {
        let bit = (seed * 7919 + k * 104_729) % (damaged.len() * 8);
        damaged[bit / 8] ^= 1 << (bit % 8);
        let _ = decoder.decompress(&damaged, &mut out);
    }
    let _ = decoder.decompress(&chunk[..chunk.len() / 2], &mut out);
}

fn check_wim(path: &std::path::Path, file_hashes: &HashSet<[u8; 20]>) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let wim = Wim::open(path);
    let expected_chunk: usize = name
        .trim_end_matches(".wim")
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        wim.chunk_size, expected_chunk,
        "{name}: chunk size in header"
    );
    let expected_type = if name.starts_with("xpress") {
        Compression::Xpress
    } else {
        Compression::Lzx
    };
    assert_eq!(wim.compression, expected_type, "{name}");
    let mut decoder = new_decoder(wim.compression, wim.chunk_size).unwrap();
    let mut out = vec![0u8; wim.chunk_size];
    let mut decoded_hashes = HashSet::new();
    let (mut compressed_chunks, mut raw_chunks) = (0usize, 0usize);
    for blob in wim.data_blobs() {
        let mut sha = Sha1::new();
        for (i, chunk) in wim.chunks(blob).iter().enumerate() {
            let buf = &mut out[..chunk.size];
            if chunk.data.len() == chunk.size {
                buf.copy_from_slice(chunk.data);
                raw_chunks += 1;
            } else {
                decoder.decompress(chunk.data, buf).unwrap_or_else(|e| {
                    panic!(
                        "{name}: blob {} chunk {i} ({} -> {} bytes): {e}",
                        hex::encode(blob.sha1),
                        chunk.data.len(),
                        chunk.size
                    )
                });
                if wim.compression == Compression::Xpress {
                    // xpress-huffman stops once its byte cursor reaches the input end, even with
                    // codewords still buffered; zero padding lets it finish (it stops at the size).
                    let padded = [chunk.data, &[0u8; 8]].concat();
                    let theirs = xpress_huffman::decompress(&padded, chunk.size).unwrap();
                    assert!(
                        theirs == *buf,
                        "{name}: xpress-huffman disagrees on blob {} chunk {i}",
                        hex::encode(blob.sha1)
                    );
                }
                compressed_chunks += 1;
                if compressed_chunks % 7 == 0 {
                    damaged_chunk_never_panics(
                        &mut *decoder,
                        chunk.data,
                        buf.len(),
                        compressed_chunks,
                    );
                }
            }
            sha.update(&*buf);
        }
        let got: [u8; 20] = sha.finalize().into();
        assert_eq!(
            hex::encode(got),
            hex::encode(blob.sha1),
            "{name}: decoded blob hash"
        );
        decoded_hashes.insert(got);
    }
    for h in file_hashes {
        assert!(
            decoded_hashes.contains(h),
            "{name}: no decoded blob has file hash {}",
            hex::encode(h)
        );
    }
    // ~15 MB of data; all but the random file compresses.
    assert!(
        compressed_chunks * wim.chunk_size > 10_000_000,
        "{name}: only {compressed_chunks} compressed chunks decoded"
    );
    assert!(
        raw_chunks > 0,
        "{name}: the incompressible file should give raw chunks"
    );
}

#[test]
fn decodes_every_chunk_wimlib_writes() {
    let dir = fixture_dir();
    let mut file_hashes = HashSet::new();
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        file_hashes.insert(<[u8; 20]>::from(Sha1::digest(&data)));
    }
    let mut wims: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wim"))
        .collect();
    wims.sort();
    let names: Vec<String> = wims
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "xpress-4096.wim",
        "xpress-65536.wim",
        "lzx-32768.wim",
        "lzx-65536.wim",
        "lzx-1048576.wim",
        "lzx-2097152.wim",
        "lzx100-2097152.wim",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "fixture {want} missing from {names:?}"
        );
    }
    for wim in &wims {
        check_wim(wim, &file_hashes);
    }
}

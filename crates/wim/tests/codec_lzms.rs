//! Our LZMS decoder against wimlib's LZMS compressor: non-solid LZMS WIMs written by
//! `wimlib-imagex capture --compress=LZMS` at 32 KiB, 128 KiB, 1 MiB and 64 MiB chunks
//! (fixtures/make-codec-wims.sh lzms: text, x86-like data, real x86-64 programs from /usr/bin,
//! zeros, runs, incompressible bytes, files larger than a chunk, tiny files).
//!
//! - Every chunk of every file blob decodes, and each blob's bytes have the SHA-1 wimlib
//!   recorded; every source file and every file `wimlib-imagex apply` writes has the hash of a
//!   blob we decoded (so our bytes are wimlib's bytes).
//! - `winre_wim::verify` finds the intact WIMs intact, as `wimlib-imagex verify` does, and reports
//!   a flipped byte inside an LZMS chunk, which wimlib-imagex verify also rejects.
//! - Random damage to LZMS chunks (bit flips, truncation, garbage) never panics.

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
use std::path::{Path, PathBuf};
use std::process::Command;
use wimchunks::Wim;
use winre_wim::codec::{new_decoder, ChunkDecoder, Compression};

const WIMS: [&str; 4] = [
    "lzms-32768.wim",
    "lzms-131072.wim",
    "lzms-1048576.wim",
    "lzms-67108864.wim",
];

fn fixture_dir() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/make-codec-wims.sh"
    );
    let out = Command::new(script)
        .arg("lzms")
        .output()
        .expect("run fixtures/make-codec-wims.sh lzms");
    assert!(
        out.status.success(),
        "make-codec-wims.sh lzms failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn sha1_of(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

fn hashes_of_files(dir: &Path) -> HashSet<[u8; 20]> {
    let mut set = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                set.insert(sha1_of(&std::fs::read(&path).unwrap()));
            }
        }
    }
    set
}

/// Decodes every file blob of `wim`, checking each against its recorded SHA-1; returns the
/// hashes and the number of LZMS-compressed chunks decoded.
fn decode_all(wim: &Wim, name: &str) -> (HashSet<[u8; 20]>, usize) {
    let mut decoder = new_decoder(wim.compression, wim.chunk_size).unwrap();
    let mut out = vec![0u8; wim.chunk_size];
    let mut hashes = HashSet::new();
    let mut compressed = 0;
    for blob in wim.data_blobs() {
        let mut sha = Sha1::new();
        for (i, chunk) in wim.chunks(blob).iter().enumerate() {
            let buf = &mut out[..chunk.size];
            if chunk.data.len() == chunk.size {
                buf.copy_from_slice(chunk.data);
            } else {
                decoder.decompress(chunk.data, buf).unwrap_or_else(|e| {
                    panic!(
                        "{name}: blob {} chunk {i} ({} -> {} bytes): {e}",
                        hex::encode(blob.sha1),
                        chunk.data.len(),
                        chunk.size
                    )
                });
                compressed += 1;
            }
            sha.update(&*buf);
        }
        let got: [u8; 20] = sha.finalize().into();
        assert_eq!(
            hex::encode(got),
            hex::encode(blob.sha1),
            "{name}: decoded blob hash (size {})",
            blob.size
        );
        hashes.insert(got);
    }
    (hashes, compressed)
}

#[test]
fn decodes_every_chunk_wimlib_writes_to_wimlibs_bytes() {
    let dir = fixture_dir();
    let source = hashes_of_files(&dir.join("data"));
    for name in WIMS {
        let path = dir.join(name);
        let wim = Wim::open(&path);
        assert_eq!(wim.compression, Compression::Lzms, "{name}");
        let chunk: usize = name
            .trim_end_matches(".wim")
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(wim.chunk_size, chunk, "{name}: chunk size in the header");
        let (decoded, compressed) = decode_all(&wim, name);
        assert!(compressed >= 10, "{name}: only {compressed} LZMS chunks");
        for h in &source {
            assert!(
                decoded.contains(h),
                "{name}: source file {} not among the decoded blobs",
                hex::encode(h)
            );
        }
        // What wimlib itself extracts.
        let applied = tempfile::tempdir().unwrap();
        let status = Command::new("wimlib-imagex")
            .args(["apply", path.to_str().unwrap(), "1"])
            .arg(applied.path())
            .output()
            .expect("wimlib-imagex is required (apt: wimtools)");
        assert!(status.status.success(), "{name}: wimlib-imagex apply");
        let files = hashes_of_files(applied.path());
        assert!(
            files.len() > 10,
            "{name}: apply wrote {} files",
            files.len()
        );
        for h in &files {
            if *h == sha1_of(b"") {
                continue;
            }
            assert!(
                decoded.contains(h),
                "{name}: file applied by wimlib has hash {} we did not decode",
                hex::encode(h)
            );
        }
    }
}

fn wimlib_verify_ok(path: &Path) -> bool {
    Command::new("wimlib-imagex")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("wimlib-imagex is required (apt: wimtools)")
        .status
        .success()
}

#[test]
fn verify_agrees_with_wimlib_on_intact_and_damaged_lzms_wims() {
    let dir = fixture_dir();
    for name in WIMS {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap();
        assert!(wimlib_verify_ok(&path), "{name}: wimlib-imagex verify");
        let report = winre_wim::verify::verify(bytes.clone(), Default::default(), &|_| {})
            .unwrap_or_else(|e| panic!("{name}: verify: {e}"));
        assert!(report.intact, "{name}: {report:?}");

        // Flip one byte in the middle of the largest LZMS-compressed chunk.
        let wim = Wim::open(&path);
        let (offset, len) = wim
            .data_blobs()
            .flat_map(|b| wim.chunks(b))
            .filter(|c| c.data.len() != c.size)
            .map(|c| {
                let offset = c.data.as_ptr() as usize - wim.bytes.as_ptr() as usize;
                (offset, c.data.len())
            })
            .max_by_key(|&(_, len)| len)
            .unwrap();
        let mut damaged = bytes.clone();
        damaged[offset + len / 2] ^= 0x5A;
        let tmp = tempfile::tempdir().unwrap();
        let damaged_path = tmp.path().join("damaged.wim");
        std::fs::write(&damaged_path, &damaged).unwrap();
        assert!(
            !wimlib_verify_ok(&damaged_path),
            "{name}: wimlib-imagex verify should reject the flipped byte"
        );
        match winre_wim::verify::verify(damaged, Default::default(), &|_| {}) {
            Ok(report) => assert!(!report.intact, "{name}: flipped byte not reported"),
            Err(e) => panic!("{name}: a damaged chunk should be reported per blob, got {e}"),
        }
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_damage_to_lzms_chunks_never_panics() {
    let dir = fixture_dir();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut errors = 0usize;
    let mut runs = 0usize;
    for name in ["lzms-32768.wim", "lzms-131072.wim"] {
        let wim = Wim::open(&dir.join(name));
        let mut decoder: Box<dyn ChunkDecoder> =
            new_decoder(wim.compression, wim.chunk_size).unwrap();
        let chunks: Vec<_> = wim
            .data_blobs()
            .flat_map(|b| wim.chunks(b))
            .filter(|c| c.data.len() != c.size)
            .collect();
        let mut out = vec![0u8; wim.chunk_size];
        for round in 0..400 {
            let chunk = &chunks[rng.below(chunks.len())];
            let mut data = chunk.data.to_vec();
            match round % 4 {
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let bit = rng.below(data.len() * 8);
                        data[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                1 => data.truncate(rng.below(data.len())),
                2 => {
                    let at = rng.below(data.len());
                    let n = rng.below(data.len() - at).min(64);
                    for b in &mut data[at..at + n] {
                        *b = rng.next() as u8;
                    }
                }
                _ => data = (0..rng.below(4096)).map(|_| rng.next() as u8).collect(),
            }
            runs += 1;
            if decoder.decompress(&data, &mut out[..chunk.size]).is_err() {
                errors += 1;
            }
        }
    }
    // Most damage is noticed by the decoder itself (the rest is left to the SHA-1).
    assert!(
        errors * 2 > runs,
        "only {errors} of {runs} damaged chunks failed to decode"
    );
}

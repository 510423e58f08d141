//! The XPRESS and LZX decoders as they were before the refill change of the decode loops (one
//! symbol's bits ensured per symbol instead of two), kept unchanged for the differential fuzz
//! target `codec_diff` and the tests: the current decoders must give the same bytes, and succeed
//! or fail alike, on every input. Built only for tests and with the `reference-decoders` feature.

mod lzx;
mod xpress;

use super::{ChunkDecoder, Compression};

/// The reference decoder for `compression` (XPRESS or LZX) and chunks of up to `max_chunk_size`
/// bytes, or None for another format or a chunk size the format does not allow.
pub fn new_decoder(
    compression: Compression,
    max_chunk_size: usize,
) -> Option<Box<dyn ChunkDecoder>> {
    if !max_chunk_size.is_power_of_two() {
        return None;
    }
    match compression {
        Compression::Xpress if super::XPRESS_CHUNK_SIZES.contains(&max_chunk_size) => {
            Some(Box::new(xpress::XpressDecoder::new(max_chunk_size)))
        }
        Compression::Lzx if super::LZX_CHUNK_SIZES.contains(&max_chunk_size) => Some(Box::new(
            lzx::LzxDecoder::new(max_chunk_size.trailing_zeros()),
        )),
        _ => None,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    /// Decodes `data` (the `codec_diff` fuzz input format) with both decoders; panics if they
    /// disagree. Returns whether it decoded.
    fn compare(data: &[u8]) -> bool {
        let Some((head, input)) = data.split_at_checked(5) else {
            return false;
        };
        let (compression, sizes) = if head[0] & 1 == 1 {
            (Compression::Xpress, super::super::XPRESS_CHUNK_SIZES)
        } else {
            (Compression::Lzx, super::super::LZX_CHUNK_SIZES)
        };
        let lo = sizes.start().trailing_zeros();
        let hi = sizes.end().trailing_zeros();
        let chunk = 1usize << (lo + u32::from(head[1]) % (hi - lo + 1));
        let out_len = usize::from(head[2]) | usize::from(head[3]) << 8 | usize::from(head[4]) << 16;
        let out_len = out_len % chunk + 1;
        let mut new = super::super::new_decoder(compression, chunk).unwrap();
        let mut old = new_decoder(compression, chunk).unwrap();
        let (mut a, mut b) = (vec![0u8; out_len], vec![0u8; out_len]);
        let ours = new.decompress(input, &mut a).map(|()| a);
        let theirs = old.decompress(input, &mut b).map(|()| b);
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{ours:?} vs {theirs:?}");
        if let (Ok(x), Ok(y)) = (&ours, &theirs) {
            assert!(x == y, "the decoders disagree on the bytes");
        }
        ours.is_ok()
    }

    #[test]
    fn current_decoders_match_the_reference_on_wimlib_chunks_and_damaged_ones() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/codec_diff");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("fuzz/corpus/codec_diff")
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let (mut decoded, mut inputs) = (0, 0);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for path in files {
            let data = std::fs::read(&path).unwrap();
            decoded += usize::from(compare(&data));
            inputs += 1;
            // Damaged copies: a flipped byte, and the stream cut short.
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut bad = data.clone();
                if bad.len() > 5 {
                    let at = 5 + (state as usize) % (bad.len() - 5);
                    bad[at] ^= 1 << (state >> 60 & 7);
                    compare(&bad);
                    compare(&data[..at]);
                }
            }
        }
        // The corpus is wimlib-made chunks and what fuzzing kept of them (mostly invalid).
        assert!(
            inputs > 100 && decoded >= 10,
            "{decoded} of {inputs} decoded"
        );
    }
}

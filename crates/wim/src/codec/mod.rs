//! Decompressors for WIM chunks. Every chunk of a WIM resource decompresses on its own into a
//! buffer whose size is known in advance; a decoder must fill it exactly or fail.
//!
//! [`new_decoder`] makes one for a compression type and the WIM's chunk size. XPRESS and LZX
//! share the bit input ([`bitreader`]); all three share the canonical Huffman table
//! ([`huffman`]); decoders never allocate after creation and never panic on bad input.

mod bitreader;
mod huffman;
mod lzms;
mod lzx;
#[cfg(any(test, feature = "reference-decoders"))]
pub mod reference;
mod xpress;

/// Why a chunk did not decode. Positions are byte offsets within the compressed chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The compressed input ended before the output was full.
    #[error("compressed data ends early (at byte {at})")]
    Truncated {
        /// Input position.
        at: usize,
    },
    /// The bitstream holds something the format forbids.
    #[error("invalid data at byte {at}: {detail}")]
    Invalid {
        /// Input position.
        at: usize,
        /// What is wrong.
        detail: String,
    },
    /// A match or literal run would write past the expected output size.
    #[error("output overrun: data decodes to more than {expected} bytes")]
    Overrun {
        /// The expected output size.
        expected: usize,
    },
    /// The output size is not one the decoder was created for.
    #[error("output size {size} exceeds the decoder's maximum {max}")]
    TooLarge {
        /// Asked for.
        size: usize,
        /// Created for.
        max: usize,
    },
}

/// A decompressor for one compression format, created once per worker for a maximum chunk size
/// and reused for every chunk (it keeps its tables and buffers between calls).
pub trait ChunkDecoder: Send {
    /// Decompresses `input` into all of `output` (whose length is the chunk's uncompressed size).
    /// Fails unless the data decodes to exactly `output.len()` bytes.
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), DecodeError>;
}

/// The compression formats of WIM resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// XPRESS (LZ77 + Huffman).
    Xpress,
    /// LZX, WIM variant.
    Lzx,
    /// LZMS.
    Lzms,
}

/// Chunk sizes XPRESS chunks may have in a WIM: 4 KiB to 64 KiB (wimlib src/wim.c).
pub const XPRESS_CHUNK_SIZES: std::ops::RangeInclusive<usize> = 4096..=65536;
/// Chunk sizes LZX chunks may have in a WIM: 32 KiB (all WIMGAPI writes) to 2 MiB (wimlib).
pub const LZX_CHUNK_SIZES: std::ops::RangeInclusive<usize> = 32768..=2_097_152;
/// Chunk sizes LZMS chunks may have in a WIM: 32 KiB to 1 GiB (wimlib src/wim.c; its default
/// is 128 KiB, and 64 MiB in solid resources).
pub const LZMS_CHUNK_SIZES: std::ops::RangeInclusive<usize> = 32768..=1 << 30;

/// A decoder for `compression`, able to produce chunks of up to `max_chunk_size` bytes, which
/// must be a power of two in the range the type allows ([`XPRESS_CHUNK_SIZES`],
/// [`LZX_CHUNK_SIZES`], [`LZMS_CHUNK_SIZES`]); another size is refused as corrupt (the header
/// holds it). `Compression::None` has no decoder (chunks are copied) and is refused.
pub fn new_decoder(
    compression: Compression,
    max_chunk_size: usize,
) -> crate::Result<Box<dyn ChunkDecoder>> {
    let check = |range: std::ops::RangeInclusive<usize>| {
        if max_chunk_size.is_power_of_two() && range.contains(&max_chunk_size) {
            Ok(())
        } else {
            Err(crate::Error::corrupt(
                "header",
                0x14,
                format!(
                    "chunk size {max_chunk_size} is not valid for {compression:?} (a power of two from {} to {})",
                    range.start(),
                    range.end()
                ),
            ))
        }
    };
    match compression {
        Compression::Xpress => {
            check(XPRESS_CHUNK_SIZES)?;
            Ok(Box::new(xpress::XpressDecoder::new(max_chunk_size)))
        }
        Compression::Lzx => {
            check(LZX_CHUNK_SIZES)?;
            Ok(Box::new(lzx::LzxDecoder::new(
                max_chunk_size.trailing_zeros(),
            )))
        }
        Compression::Lzms => {
            check(LZMS_CHUNK_SIZES)?;
            Ok(Box::new(lzms::LzmsDecoder::new(max_chunk_size)))
        }
        Compression::None => Err(crate::Error::Unsupported(
            "a decoder for uncompressed data (copy the chunk)".into(),
        )),
    }
}

/// Why an LZ77 match could not be copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyError {
    /// The offset reaches before the start of the output.
    BeforeStart,
    /// The match runs past the end of the output slice.
    PastEnd,
}

/// Copies an LZ77 match of `length` bytes from `offset` bytes back to `out[pos..]`, where the
/// source may overlap the destination (a repeating pattern). Checks the bounds once per match;
/// may write up to 16 bytes past the match inside `out` (they are overwritten later, since
/// output is produced in order).
#[inline(always)]
pub(crate) fn lz_copy(
    out: &mut [u8],
    pos: usize,
    offset: usize,
    length: usize,
) -> Result<(), CopyError> {
    let src = pos
        .checked_sub(offset)
        .filter(|_| offset != 0)
        .ok_or(CopyError::BeforeStart)?;
    let end = pos
        .checked_add(length)
        .filter(|&e| e <= out.len())
        .ok_or(CopyError::PastEnd)?;
    if offset >= 16 && length <= 16 && pos.wrapping_add(16) <= out.len() {
        // Short, non-overlapping: one fixed-size copy.
        out.copy_within(src..src.wrapping_add(16), pos);
    } else if offset >= length {
        out.copy_within(src..src.wrapping_add(length), pos);
    } else if offset == 1 {
        let b = out.get(src).copied().unwrap_or(0);
        out.get_mut(pos..end).unwrap_or_default().fill(b);
    } else {
        // Overlapping: the bytes from `src` repeat with period `offset`, so copy what is already
        // there, doubling the copied span each round.
        let mut dst = pos;
        while dst < end {
            let n = (dst.wrapping_sub(src)).min(end.wrapping_sub(dst));
            out.copy_within(src..src.wrapping_add(n), dst);
            dst = dst.wrapping_add(n);
        }
    }
    Ok(())
}

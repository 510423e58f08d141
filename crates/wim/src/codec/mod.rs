//! Decompressors for WIM chunks. Every chunk of a WIM resource decompresses on its own into a
//! buffer whose size is known in advance; a decoder must fill it exactly or fail.

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

/// A decoder for `compression`, able to produce chunks of up to `max_chunk_size` bytes.
/// `Compression::None` has no decoder (chunks are copied) and is refused here.
pub fn new_decoder(compression: Compression, max_chunk_size: usize) -> crate::Result<Box<dyn ChunkDecoder>> {
    let _ = max_chunk_size;
    Err(crate::Error::Unsupported(format!("{compression:?} decompression (not yet implemented)")))
}

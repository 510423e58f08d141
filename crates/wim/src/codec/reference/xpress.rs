// The decoder as it was before the literal-run refill change; see reference/mod.rs.
//! XPRESS (LZ77 + Huffman) as WIM uses it: the "LZXPRESS Huffman" format of [MS-XCA] section
//! 2.2.4, limited to one block because a WIM chunk is at most 64 KiB.
//!
//! A chunk starts with 256 bytes holding 512 codeword lengths of 4 bits (the low nibble is the
//! even symbol). Symbols below 256 are literals; symbol 256 + (log2(offset) << 4 | length) is a
//! match whose offset is `1 << log2 | next log2 bits` and whose length is `length + 3`, where a
//! length nibble of 15 continues in a raw byte and, if that byte is 255, in a raw u16 which then
//! replaces the length. Raw bytes sit in the stream at the byte cursor of a reader that loads
//! one 16-bit unit at a time and keeps 16 to 31 bits buffered after each symbol.
//!
//! Differences from MS-XCA: none for chunks up to 64 KiB; the trailing end-of-data symbol that
//! WIMGAPI writes is neither required nor checked (as in wimlib).
//!
//! Sources: [MS-XCA] 2.2.4 "LZ77+Huffman Decompression Algorithm Details"; wimlib
//! src/xpress_decompress.c.

use super::super::bitreader::BitReader;
use super::super::huffman::DecodeTable;
use super::super::{lz_copy, ChunkDecoder, CopyError, DecodeError};

const NUM_SYMBOLS: usize = 512;
const MAX_CODEWORD_LEN: u32 = 15;
const TABLE_BITS: u32 = 11;
const MIN_MATCH_LEN: usize = 3;
const HEADER_BYTES: usize = NUM_SYMBOLS / 2;

/// Decoder for XPRESS chunks of up to 64 KiB.
pub(crate) struct XpressDecoder {
    table: DecodeTable,
    lens: [u8; NUM_SYMBOLS],
    max_chunk_size: usize,
}

impl XpressDecoder {
    pub(crate) fn new(max_chunk_size: usize) -> Self {
        Self {
            table: DecodeTable::new(NUM_SYMBOLS, TABLE_BITS, MAX_CODEWORD_LEN),
            lens: [0; NUM_SYMBOLS],
            max_chunk_size,
        }
    }
}

impl ChunkDecoder for XpressDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), DecodeError> {
        if output.len() > self.max_chunk_size {
            return Err(DecodeError::TooLarge {
                size: output.len(),
                max: self.max_chunk_size,
            });
        }
        let header = input
            .get(..HEADER_BYTES)
            .ok_or(DecodeError::Truncated { at: input.len() })?;
        for (pair, &b) in self.lens.chunks_exact_mut(2).zip(header) {
            if let [even, odd] = pair {
                *even = b & 0xF;
                *odd = b >> 4;
            }
        }
        self.table
            .build(&self.lens)
            .map_err(|e| DecodeError::Invalid {
                at: 0,
                detail: e.describe().into(),
            })?;
        let stream = input.get(HEADER_BYTES..).unwrap_or_default();
        let mut br = BitReader::new(stream);
        let at = |br: &BitReader<'_>| HEADER_BYTES.saturating_add(br.byte_position());

        let out_len = output.len();
        let mut pos = 0usize;
        while pos < out_len {
            // Enough for the symbol and the offset bits.
            br.ensure(2 * MAX_CODEWORD_LEN);
            let sym = self
                .table
                .decode(&mut br)
                .map_err(|()| DecodeError::Invalid {
                    at: at(&br),
                    detail: "XPRESS symbol from an empty Huffman code".into(),
                })?;
            if sym < 256 {
                if let Some(b) = output.get_mut(pos) {
                    *b = sym as u8;
                }
                pos = pos.wrapping_add(1);
                continue;
            }
            let log2_offset = (sym >> 4) & 0xF;
            let mut length = (sym & 0xF) as usize;
            if length == 0xF {
                // The raw bytes follow the units a one-unit-at-a-time reader would hold now.
                br.hold_16_to_31_bits();
                let extra = br
                    .read_u8()
                    .map_err(|_| DecodeError::Truncated { at: at(&br) })?;
                length = length.wrapping_add(usize::from(extra));
                if extra == 0xFF {
                    length = usize::from(
                        br.read_u16()
                            .map_err(|_| DecodeError::Truncated { at: at(&br) })?,
                    );
                }
            }
            length = length.wrapping_add(MIN_MATCH_LEN);
            let offset = (1usize << log2_offset) | br.read_bits(log2_offset) as usize;
            lz_copy(output, pos, offset, length).map_err(|e| match e {
                CopyError::BeforeStart => DecodeError::Invalid {
                    at: at(&br),
                    detail: format!("match at output byte {pos} has offset {offset}, reaching before the chunk start"),
                },
                CopyError::PastEnd => DecodeError::Overrun { expected: out_len },
            })?;
            pos = pos.wrapping_add(length);
        }
        br.check_not_overrun()
            .map_err(|_| DecodeError::Truncated { at: input.len() })?;
        Ok(())
    }
}

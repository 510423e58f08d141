//! LZX as WIM uses it. This departs from the LZX of cabinet files ("Microsoft LZX Data
//! Compression Format", 1997) and of [MS-PATCH] in these ways:
//!
//! - Every chunk is an independent stream: the window is the chunk (it never slides), the recent
//!   offsets start at {1, 1, 1} and the previous codeword lengths start at 0 for each chunk.
//! - There is no E8 header bit: E8 call translation is always undone after a chunk is decoded,
//!   with the "file size" fixed at 12,000,000 and positions counted from the chunk start.
//! - A block header is the 3-bit type, then 1 bit meaning "32768 bytes", else the size in 16
//!   bits, or in 24 bits when the window (the WIM chunk size) is 64 KiB or more. WIMGAPI only
//!   writes 32 KiB chunks; the larger windows are wimlib's extension, with more position slots.
//! - Matches never cross a block end, and the 3 recent offsets update as wimlib and WIMGAPI do
//!   (using R1 or R2 swaps it with R0).
//!
//! Sources: [MS-PATCH] "LZX DELTA Compression and Decompression" 2.2–2.3; wimlib
//! src/lzx_decompress.c, src/lzx_common.c, include/wimlib/lzx_constants.h.

use super::bitreader::BitReader;
use super::huffman::DecodeTable;
use super::{lz_copy, ChunkDecoder, CopyError, DecodeError};

const NUM_CHARS: usize = 256;
const NUM_LEN_HEADERS: u32 = 8;
const NUM_PRIMARY_LENS: u32 = 7;
const MIN_MATCH_LEN: usize = 2;
const LENCODE_NUM_SYMBOLS: usize = 249;
const PRECODE_NUM_SYMBOLS: usize = 20;
const ALIGNED_NUM_SYMBOLS: usize = 8;
const MAX_OFFSET_SLOTS: usize = 50;
const MAINCODE_MAX_SYMBOLS: usize = NUM_CHARS + MAX_OFFSET_SLOTS * NUM_LEN_HEADERS as usize;
const MAX_MAIN_LEN: u32 = 16;
const MAX_LEN_LEN: u32 = 16;
const MAX_PRE_LEN: u32 = 15;
const MAX_ALIGNED_LEN: u32 = 7;
const MAIN_TABLE_BITS: u32 = 11;
const LEN_TABLE_BITS: u32 = 10;
const PRE_TABLE_BITS: u32 = 6;
const ALIGNED_TABLE_BITS: u32 = 7;
const MIN_ALIGNED_SLOT: usize = 8;
const DEFAULT_BLOCK_SIZE: usize = 32768;
const E8_FILE_SIZE: i32 = 12_000_000;

/// Room after each codeword-length array for a run that overshoots its end. wimlib keeps the
/// same slack (LZX_READ_LENS_MAX_OVERRUN) and lets runs spill into it; doing the same keeps us
/// decoding exactly what wimlib decodes. Worst case: a run of 20 + 31 zeros with one length left.
const LENS_OVERRUN: usize = 50;

/// Offset slot -> first "formatted offset" (offset + 2) it codes; slots 0..=2 stand for the
/// recent offsets R0, R1, R2. Each slot spans 2^EXTRA_BITS[slot] values.
#[rustfmt::skip]
const SLOT_BASE: [u32; MAX_OFFSET_SLOTS] = [
    0, 1, 2, 3, 4, 6, 8, 12, 16, 24,
    32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
    1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576,
    32768, 49152, 65536, 98304, 131072, 196608, 262144, 393216, 524288, 655360,
    786432, 917504, 1048576, 1179648, 1310720, 1441792, 1572864, 1703936, 1835008, 1966080,
];

/// Offset slot -> number of extra offset bits after the slot.
#[rustfmt::skip]
const EXTRA_BITS: [u8; MAX_OFFSET_SLOTS] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3,
    4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
    9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
    14, 14, 15, 15, 16, 16, 17, 17, 17, 17,
    17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
];

const BLOCK_VERBATIM: u32 = 1;
const BLOCK_ALIGNED: u32 = 2;
const BLOCK_UNCOMPRESSED: u32 = 3;

/// The number of main-code symbols for a window of `2^window_order` bytes: enough position
/// slots for the largest offset, `window - 3` (a match cannot start at position 0 and end at
/// the last byte with the greatest offset, which saves a slot). 496 symbols at 32 KiB.
fn num_main_symbols(window_order: u32) -> usize {
    // In "formatted" terms (offset + 2, what SLOT_BASE holds) the largest is window - 1.
    let max_formatted = (1u32 << window_order).saturating_sub(1);
    let slots = SLOT_BASE
        .iter()
        .skip(30)
        .take_while(|&&base| base <= max_formatted)
        .count()
        .saturating_add(30);
    NUM_CHARS.saturating_add(slots.saturating_mul(NUM_LEN_HEADERS as usize))
}

/// Decoder for WIM LZX chunks of up to `2^window_order` bytes.
pub(crate) struct LzxDecoder {
    window_order: u32,
    num_main_syms: usize,
    main_lens: [u8; MAINCODE_MAX_SYMBOLS + LENS_OVERRUN],
    len_lens: [u8; LENCODE_NUM_SYMBOLS + LENS_OVERRUN],
    pre_lens: [u8; PRECODE_NUM_SYMBOLS],
    aligned_lens: [u8; ALIGNED_NUM_SYMBOLS],
    main_table: DecodeTable,
    len_table: DecodeTable,
    pre_table: DecodeTable,
    aligned_table: DecodeTable,
}

impl LzxDecoder {
    /// `window_order` is log2 of the chunk size, 15..=21 (checked by the caller).
    pub(crate) fn new(window_order: u32) -> Self {
        let num_main_syms = num_main_symbols(window_order);
        Self {
            window_order,
            num_main_syms,
            main_lens: [0; MAINCODE_MAX_SYMBOLS + LENS_OVERRUN],
            len_lens: [0; LENCODE_NUM_SYMBOLS + LENS_OVERRUN],
            pre_lens: [0; PRECODE_NUM_SYMBOLS],
            aligned_lens: [0; ALIGNED_NUM_SYMBOLS],
            main_table: DecodeTable::new(num_main_syms, MAIN_TABLE_BITS, MAX_MAIN_LEN),
            len_table: DecodeTable::new(LENCODE_NUM_SYMBOLS, LEN_TABLE_BITS, MAX_LEN_LEN),
            pre_table: DecodeTable::new(PRECODE_NUM_SYMBOLS, PRE_TABLE_BITS, MAX_PRE_LEN),
            aligned_table: DecodeTable::new(
                ALIGNED_NUM_SYMBOLS,
                ALIGNED_TABLE_BITS,
                MAX_ALIGNED_LEN,
            ),
        }
    }
}

fn invalid(br: &BitReader<'_>, detail: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        at: br.byte_position(),
        detail: detail.into(),
    }
}

/// Reads a precode, then `lens.len() - LENS_OVERRUN` codeword lengths coded with it as deltas
/// from the previous lengths (mod 17) and runs.
fn read_lens(
    br: &mut BitReader<'_>,
    pre_lens: &mut [u8; PRECODE_NUM_SYMBOLS],
    pre_table: &mut DecodeTable,
    lens: &mut [u8],
    what: &str,
) -> Result<(), DecodeError> {
    for l in pre_lens.iter_mut() {
        *l = br.read_bits(4) as u8;
    }
    pre_table
        .build(pre_lens)
        .map_err(|e| invalid(br, format!("{what} precode: {}", e.describe())))?;
    let count = lens.len().saturating_sub(LENS_OVERRUN);
    let empty =
        |br: &BitReader<'_>| invalid(br, format!("{what} lengths: symbol from an empty precode"));
    let mut i = 0usize;
    while i < count {
        br.ensure(32);
        let presym = pre_table.decode(br).map_err(|()| empty(br))?;
        let (run, value) = match presym {
            0..=16 => (1, presym),
            17 => (4u32.wrapping_add(br.read_bits(4)), 0),
            18 => (20u32.wrapping_add(br.read_bits(5)), 0),
            _ => {
                let run = 4u32.wrapping_add(br.read_bits(1));
                br.ensure(16);
                let presym = pre_table.decode(br).map_err(|()| empty(br))?;
                if presym > 17 {
                    return Err(invalid(
                        br,
                        format!("{what} lengths: run symbol {presym} after symbol 19"),
                    ));
                }
                (run, presym)
            }
        };
        // Deltas are taken from the previous length at the run's first position (wimlib and
        // libmspack agree on this for symbol 19 runs).
        let new_len = if presym == 17 || presym == 18 {
            0
        } else {
            let prev = lens.get(i).copied().unwrap_or(0);
            prev.wrapping_add(17).wrapping_sub(value as u8) % 17
        };
        // A run may spill into the slack after the array (as in wimlib); stop there.
        lens.iter_mut()
            .skip(i)
            .take(run as usize)
            .for_each(|slot| *slot = new_len);
        i = i.saturating_add(run as usize);
    }
    Ok(())
}

impl LzxDecoder {
    fn read_block_header(
        &mut self,
        br: &mut BitReader<'_>,
        recent: &mut [usize; 3],
    ) -> Result<(u32, usize), DecodeError> {
        let block_type = br.read_bits(3);
        let block_size = if br.read_bits(1) == 1 {
            DEFAULT_BLOCK_SIZE
        } else if self.window_order >= 16 {
            br.read_bits(24) as usize
        } else {
            br.read_bits(16) as usize
        };
        match block_type {
            BLOCK_VERBATIM | BLOCK_ALIGNED => {
                if block_type == BLOCK_ALIGNED {
                    for l in self.aligned_lens.iter_mut() {
                        *l = br.read_bits(3) as u8;
                    }
                }
                // The literal lengths' slack is the start of the match lengths, as in wimlib.
                let literals = self
                    .main_lens
                    .get_mut(..NUM_CHARS.saturating_add(LENS_OVERRUN))
                    .unwrap_or_default();
                read_lens(
                    br,
                    &mut self.pre_lens,
                    &mut self.pre_table,
                    literals,
                    "main code (literals)",
                )?;
                let main_end = self.num_main_syms.saturating_add(LENS_OVERRUN);
                let matches = self
                    .main_lens
                    .get_mut(NUM_CHARS..main_end)
                    .unwrap_or_default();
                read_lens(
                    br,
                    &mut self.pre_lens,
                    &mut self.pre_table,
                    matches,
                    "main code (matches)",
                )?;
                read_lens(
                    br,
                    &mut self.pre_lens,
                    &mut self.pre_table,
                    &mut self.len_lens,
                    "length code",
                )?;
            }
            BLOCK_UNCOMPRESSED => {
                br.align_to_unit();
                for r in recent.iter_mut() {
                    let v = br.read_u32()?;
                    if v == 0 {
                        return Err(invalid(br, "uncompressed block header: recent offset 0"));
                    }
                    *r = v as usize;
                }
            }
            t => return Err(invalid(br, format!("block type {t} (expected 1, 2 or 3)"))),
        }
        Ok((block_type, block_size))
    }

    fn build_tables(&mut self, br: &BitReader<'_>, aligned: bool) -> Result<(), DecodeError> {
        let main = self.main_lens.get(..self.num_main_syms).unwrap_or_default();
        self.main_table
            .build(main)
            .map_err(|e| invalid(br, format!("main code: {}", e.describe())))?;
        let len = self.len_lens.get(..LENCODE_NUM_SYMBOLS).unwrap_or_default();
        self.len_table
            .build(len)
            .map_err(|e| invalid(br, format!("length code: {}", e.describe())))?;
        if aligned {
            self.aligned_table
                .build(&self.aligned_lens)
                .map_err(|e| invalid(br, format!("aligned offset code: {}", e.describe())))?;
        }
        Ok(())
    }

    /// Decodes one verbatim or aligned block into `out[start..]` (`out` ends at the block end).
    fn decode_block(
        &self,
        br: &mut BitReader<'_>,
        out: &mut [u8],
        start: usize,
        aligned: bool,
        recent: &mut [usize; 3],
    ) -> Result<(), DecodeError> {
        let min_aligned_slot = if aligned {
            MIN_ALIGNED_SLOT
        } else {
            MAX_OFFSET_SLOTS
        };
        let end = out.len();
        let mut pos = start;
        while pos < end {
            // Enough for the main symbol: a refill holds at least 49 bits, so runs of literals
            // refill every third symbol; the length symbol and offset bits refill on their own.
            br.ensure(MAX_MAIN_LEN);
            let sym = self
                .main_table
                .decode(br)
                .map_err(|()| invalid(br, "symbol from an empty main code"))?
                as usize;
            if sym < NUM_CHARS {
                if let Some(b) = out.get_mut(pos) {
                    *b = sym as u8;
                }
                pos = pos.wrapping_add(1);
                continue;
            }
            let header = sym.wrapping_sub(NUM_CHARS) as u32;
            let slot = (header / NUM_LEN_HEADERS) as usize;
            let mut length = (header % NUM_LEN_HEADERS) as usize;
            if length == NUM_PRIMARY_LENS as usize {
                br.ensure(MAX_LEN_LEN);
                let extra = self
                    .len_table
                    .decode(br)
                    .map_err(|()| invalid(br, "symbol from an empty length code"))?;
                length = length.wrapping_add(extra as usize);
            }
            length = length.wrapping_add(MIN_MATCH_LEN);

            if slot < 3 {
                // A recent offset: it trades places with R0 (not a true LRU queue).
                recent.swap(0, slot);
            } else {
                let extra_bits = u32::from(EXTRA_BITS.get(slot).copied().unwrap_or(0));
                let base = SLOT_BASE.get(slot).copied().unwrap_or(0) as usize;
                br.ensure(32);
                let extra = if slot >= min_aligned_slot {
                    let high = br.read_bits(extra_bits.wrapping_sub(3)) as usize;
                    let low = self
                        .aligned_table
                        .decode(br)
                        .map_err(|()| invalid(br, "symbol from an empty aligned offset code"))?
                        as usize;
                    (high << 3) | low
                } else {
                    br.read_bits(extra_bits) as usize
                };
                recent[2] = recent[1];
                recent[1] = recent[0];
                recent[0] = base.wrapping_add(extra).wrapping_sub(2);
            }
            let offset = recent[0];

            lz_copy(out, pos, offset, length).map_err(|e| match e {
                CopyError::BeforeStart => invalid(
                    br,
                    format!("match at output byte {pos} has offset {offset}, reaching before the chunk start"),
                ),
                CopyError::PastEnd => invalid(
                    br,
                    format!("match of {length} bytes at output byte {pos} runs past the block end at {end}"),
                ),
            })?;
            pos = pos.wrapping_add(length);
        }
        Ok(())
    }
}

impl ChunkDecoder for LzxDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), DecodeError> {
        let max = 1usize << self.window_order;
        if output.len() > max {
            return Err(DecodeError::TooLarge {
                size: output.len(),
                max,
            });
        }
        let mut br = BitReader::new(input);
        let mut recent = [1usize; 3];
        self.main_lens.fill(0);
        self.len_lens.fill(0);
        let mut may_hold_e8 = false;
        let mut pos = 0usize;
        while pos < output.len() {
            let (block_type, block_size) = self.read_block_header(&mut br, &mut recent)?;
            let remaining = output.len().wrapping_sub(pos);
            if block_size == 0 || block_size > remaining {
                return Err(if block_size == 0 {
                    invalid(&br, "block of size 0")
                } else {
                    DecodeError::Overrun {
                        expected: output.len(),
                    }
                });
            }
            let block_end = pos.wrapping_add(block_size);
            if block_type == BLOCK_UNCOMPRESSED {
                let dst = output.get_mut(pos..block_end).unwrap_or_default();
                br.read_bytes(dst)?;
                if block_size % 2 == 1 {
                    // Padding byte that restores 16-bit alignment; it may be missing at the end.
                    let _ = br.read_u8();
                }
                may_hold_e8 = true;
            } else {
                self.build_tables(&br, block_type == BLOCK_ALIGNED)?;
                let out = output.get_mut(..block_end).unwrap_or_default();
                self.decode_block(&mut br, out, pos, block_type == BLOCK_ALIGNED, &mut recent)?;
                // An E8 byte can only appear through a literal E8 (copies only repeat bytes).
                may_hold_e8 |= self.main_lens[0xE8] != 0;
            }
            br.check_not_overrun()?;
            pos = block_end;
        }
        if may_hold_e8 {
            undo_e8_translation(output);
        }
        Ok(())
    }
}

/// Undoes the encoder's E8 preprocessing: each 0xE8 byte (x86 CALL) at position `i` below
/// `len - 10` is followed by a 32-bit absolute target that becomes relative again; the four
/// target bytes are never themselves taken as a CALL.
fn undo_e8_translation(data: &mut [u8]) {
    let len = data.len();
    if len <= 10 {
        return;
    }
    let limit = len.wrapping_sub(10);
    let mut i = 0usize;
    while i < limit {
        let Some(found) = data.get(i..limit).and_then(|s| memchr::memchr(0xE8, s)) else {
            break;
        };
        i = i.wrapping_add(found);
        let target = i.wrapping_add(1)..i.wrapping_add(5);
        if let Some(bytes) = data
            .get_mut(target)
            .and_then(|s| <&mut [u8; 4]>::try_from(s).ok())
        {
            let abs = i32::from_le_bytes(*bytes);
            // i < 2 MiB, so it fits i32.
            let pos = i as i32;
            let rel = if abs >= 0 {
                (abs < E8_FILE_SIZE).then(|| abs.wrapping_sub(pos))
            } else {
                (abs >= pos.wrapping_neg()).then(|| abs.wrapping_add(E8_FILE_SIZE))
            };
            if let Some(rel) = rel {
                *bytes = rel.to_le_bytes();
            }
        }
        i = i.wrapping_add(5);
    }
}

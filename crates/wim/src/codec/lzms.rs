//! LZMS, the compression of WIM solid resources (WIM version 0xE00, ESD files) and of
//! `wimlib-imagex capture --compress=LZMS`. Microsoft has not published the format; this
//! follows the description wimlib gives. One chunk is one independent LZMS stream, read from
//! both ends in 16-bit little-endian units, most significant bit first:
//!
//! - From the front, a binary range coder decides the item kinds (literal / LZ match / delta
//!   match, explicit or repeated source, which repeat). Each decision class has its own table of
//!   adaptive probabilities (n/64, n = zeros among the last 64 bits coded with that entry,
//!   clamped to 1..=63) indexed by the class's last 4, 5 or 6 decisions.
//! - From the back, five adaptive Huffman codes ([`adaptive_code`]: literals, LZ offset slots,
//!   length slots, delta offset slots, delta powers) and the verbatim extra bits of slots.
//! - An LZ match copies `length` bytes from `offset` back. A delta match with power `p` and raw
//!   offset `r` sets each byte to `b[-r*2^p] + b[-2^p] - b[-r*2^p - 2^p]`. Lengths and offsets
//!   are at least 1; bytes are produced as if copied one at a time (sources may overlap).
//! - Each match kind keeps a queue of 3 recent sources (LZ offsets; delta (power, raw offset)
//!   pairs) with one extra slot: a source used is removed from the queue and goes to the front,
//!   but only after the next item, so a repeat right after a match of the same kind skips the
//!   front slot. The queues start as 1, 2, 3, 4 (delta: power 0).
//! - Finally the x86 filter is undone ([`x86_filter`]).
//!
//! Differences from other LZ77 formats worth knowing: the range coder normalises *before* each
//! bit (when the range drops below 2^16), and a reader running off either end sees zero bits.
//! We accept what wimlib accepts, but fail a chunk when the units consumed from the two ends add
//! up to more than the chunk holds (the streams would overlap: truncated or corrupt).
//!
//! Sources: wimlib src/lzms_decompress.c (file comment: the format), src/lzms_common.c (slot
//! tables, x86 filter), src/lzms_compress.c (range encoder flush, for the end check),
//! include/wimlib/lzms_constants.h; no Microsoft document describes LZMS.

mod adaptive_code;
mod x86_filter;

use super::huffman::BitSource;
use super::{lz_copy, ChunkDecoder, CopyError, DecodeError};
use adaptive_code::{AdaptiveCode, MAX_CODEWORD_LEN};
use x86_filter::X86Filter;

const NUM_LITERAL_SYMS: usize = 256;
const NUM_LENGTH_SYMS: usize = 54;
const NUM_DELTA_POWER_SYMS: usize = 8;
const MAX_OFFSET_SYMS: usize = 799;

/// Lookup widths of the decode tables (speed only; any width decodes the same).
const LITERAL_TABLE_BITS: u32 = 10;
const LENGTH_TABLE_BITS: u32 = 9;
const OFFSET_TABLE_BITS: u32 = 11;
const POWER_TABLE_BITS: u32 = 7;

/// Symbols decoded with a code between two rebuilds of it.
const LITERAL_REBUILD: u32 = 1024;
const LZ_OFFSET_REBUILD: u32 = 1024;
const LENGTH_REBUILD: u32 = 512;
const DELTA_OFFSET_REBUILD: u32 = 1024;
const DELTA_POWER_REBUILD: u32 = 512;

/// Extra bits per offset slot, as (bits, number of consecutive slots). Slot 0 codes offset 1;
/// each slot covers `2^bits` values after the previous one.
const OFFSET_EXTRA_RUNS: [(u8, u16); 21] = [
    (0, 8),
    (2, 9),
    (3, 7),
    (4, 10),
    (5, 15),
    (6, 15),
    (7, 20),
    (8, 20),
    (9, 30),
    (10, 33),
    (11, 40),
    (12, 42),
    (13, 45),
    (14, 60),
    (15, 73),
    (16, 80),
    (17, 85),
    (18, 95),
    (19, 105),
    (20, 6),
    (30, 1),
];
/// Extra bits per length slot, as for offsets; slot 0 codes length 1.
const LENGTH_EXTRA_RUNS: [(u8, u16); 13] = [
    (0, 26),
    (1, 4),
    (2, 6),
    (3, 4),
    (4, 5),
    (5, 2),
    (6, 1),
    (7, 1),
    (8, 1),
    (9, 1),
    (10, 1),
    (16, 1),
    (30, 1),
];

/// Expands (bits, count) runs into a per-slot table. Evaluated at compile time only, where an
/// out-of-bounds index or an overflow is a build error, not a panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn expand_runs<const N: usize>(runs: &[(u8, u16)]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut r, mut i) = (0, 0);
    while r < runs.len() {
        let mut k = 0;
        while k < runs[r].1 {
            out[i] = runs[r].0;
            i += 1;
            k += 1;
        }
        r += 1;
    }
    assert!(i == N, "runs must fill the table");
    out
}

/// The first value of each slot (and one past the last slot), from the extra bits. Compile time
/// only, as [`expand_runs`].
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn slot_bases<const N: usize, const M: usize>(extra: &[u8; N]) -> [u32; M] {
    let mut out = [0u32; M];
    out[0] = 1;
    let mut i = 0;
    while i < N {
        out[i + 1] = out[i] + (1u32 << extra[i]);
        i += 1;
    }
    out
}

const OFFSET_EXTRA: [u8; MAX_OFFSET_SYMS] = expand_runs(&OFFSET_EXTRA_RUNS);
const OFFSET_BASE: [u32; MAX_OFFSET_SYMS + 1] = slot_bases(&OFFSET_EXTRA);
const LENGTH_EXTRA: [u8; NUM_LENGTH_SYMS] = expand_runs(&LENGTH_EXTRA_RUNS);
const LENGTH_BASE: [u32; NUM_LENGTH_SYMS + 1] = slot_bases(&LENGTH_EXTRA);

/// Offset slots in use for a chunk of `len` bytes: enough for offsets up to `len - 1`.
fn num_offset_slots(len: usize) -> usize {
    if len < 2 {
        return 0;
    }
    let largest = u32::try_from(len.wrapping_sub(1)).unwrap_or(u32::MAX);
    OFFSET_BASE
        .get(..MAX_OFFSET_SYMS)
        .unwrap_or_default()
        .partition_point(|&base| base <= largest)
}

/// The 16-bit little-endian unit at `at`, or 0 past the end.
#[inline(always)]
fn le16_at(data: &[u8], at: usize) -> u16 {
    data.get(at..at.wrapping_add(2))
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(0, u16::from_le_bytes)
}

/// The forward stream: a range decoder over 16-bit units from the front of the chunk.
struct RangeDecoder<'a> {
    data: &'a [u8],
    /// Next unit to load; keeps counting past the end (zeros are loaded there), so the end
    /// check can see a stream that ran over.
    next: usize,
    range: u32,
    code: u32,
}

impl<'a> RangeDecoder<'a> {
    /// `data` holds at least 4 bytes (checked by the caller).
    fn new(data: &'a [u8]) -> Self {
        let unit = |at: usize| u32::from(le16_at(data, at));
        Self {
            data,
            next: 4,
            range: u32::MAX,
            code: unit(0) << 16 | unit(2),
        }
    }

    /// Decodes one bit whose chance of being 0 is `prob_zero` / 64 (1..=63).
    #[inline(always)]
    fn decode_bit(&mut self, prob_zero: u32) -> u32 {
        if self.range & 0xFFFF_0000 == 0 {
            self.range = self.range.wrapping_shl(16);
            self.code = self.code.wrapping_shl(16);
            if let Some(&[lo, hi]) = self.data.get(self.next..self.next.wrapping_add(2)) {
                self.code |= u32::from(u16::from_le_bytes([lo, hi]));
            }
            self.next = self.next.saturating_add(2);
        }
        // The range is at least 2^16 here, so `bound` is in 1..range.
        let bound = (self.range >> 6).wrapping_mul(prob_zero);
        if self.code < bound {
            self.range = bound;
            0
        } else {
            self.range = self.range.wrapping_sub(bound);
            self.code = self.code.wrapping_sub(bound);
            1
        }
    }
}

/// An adaptive probability: how many of the last 64 bits coded with it were 0, and those bits
/// (newest lowest).
#[derive(Clone, Copy)]
struct Probability {
    zeros: u32,
    history: u64,
}

impl Probability {
    /// 48 zeros among the last 64 bits: the alternating pattern 0x0000_0000_5555_5555.
    const INITIAL: Self = Self {
        zeros: 48,
        history: 0x5555_5555,
    };
}

/// A binary decision class: probabilities indexed by the class's last log2(N) decisions.
struct Decision<const N: usize> {
    state: usize,
    probs: [Probability; N],
}

impl<const N: usize> Decision<N> {
    const MASK: usize = N.wrapping_sub(1);

    fn new() -> Self {
        Self {
            state: 0,
            probs: [Probability::INITIAL; N],
        }
    }

    fn reset(&mut self) {
        self.state = 0;
        self.probs = [Probability::INITIAL; N];
    }

    #[inline(always)]
    fn decode(&mut self, rd: &mut RangeDecoder<'_>) -> bool {
        // N is a power of two, so the masked state is in bounds.
        let Some(p) = self.probs.get_mut(self.state & Self::MASK) else {
            return false;
        };
        // 0 and 64 are not usable probabilities: use 1 and 63.
        let prob = p
            .zeros
            .wrapping_add(u32::from(p.zeros == 0))
            .wrapping_sub(u32::from(p.zeros == 64));
        let bit = rd.decode_bit(prob);
        p.zeros = p
            .zeros
            .wrapping_add((p.history >> 63) as u32)
            .wrapping_sub(bit);
        p.history = p.history.wrapping_shl(1) | u64::from(bit);
        self.state = ((self.state << 1) | bit as usize) & Self::MASK;
        bit != 0
    }
}

/// The backward stream: Huffman codewords and extra bits from 16-bit units read from the end
/// of the chunk towards its start.
struct BackwardBits<'a> {
    data: &'a [u8],
    /// Units below this index are not loaded yet (always even).
    next: usize,
    /// Zero bits loaded after the start of the data was reached.
    zeros_past_start: usize,
    /// Unconsumed bits, left-justified.
    buf: u64,
    count: u32,
}

impl<'a> BackwardBits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            next: data.len(),
            zeros_past_start: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Makes sure at least `n` (<= 49) bits are buffered.
    #[inline(always)]
    fn ensure(&mut self, n: u32) {
        if self.count < n {
            self.refill();
        }
    }

    /// Tops the buffer up to 49..=64 bits.
    #[inline(always)]
    fn refill(&mut self) {
        let free = 64u32.wrapping_sub(self.count);
        let load_bytes = ((free >> 4) << 1) as usize;
        let start = self.next.wrapping_sub(load_bytes);
        // Eight bytes at `start`: the units to load, then (above them) units already loaded,
        // which land on the same bits again and so change nothing.
        if let Some(bytes) = self
            .data
            .get(start..start.wrapping_add(8))
            .filter(|_| self.next >= 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        {
            self.buf |= u64::from_le_bytes(bytes).wrapping_shl(free & 15);
            self.count = self.count.wrapping_add(free & !15);
            self.next = start;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.count <= 48 {
            let unit = if self.next >= 2 {
                self.next = self.next.wrapping_sub(2);
                u64::from(le16_at(self.data, self.next))
            } else {
                self.zeros_past_start = self.zeros_past_start.saturating_add(16);
                0
            };
            self.buf |= unit.wrapping_shl(48u32.wrapping_sub(self.count));
            self.count = self.count.wrapping_add(16);
        }
    }

    /// Reads `n` (0..=32) verbatim bits.
    #[inline(always)]
    fn read_bits(&mut self, n: u32) -> u32 {
        self.ensure(n);
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Bytes consumed from the end, in whole units (zeros past the start included).
    fn consumed_bytes(&self) -> usize {
        let loaded_bits = self
            .data
            .len()
            .wrapping_sub(self.next)
            .saturating_mul(8)
            .saturating_add(self.zeros_past_start);
        let consumed_bits = loaded_bits.saturating_sub(self.count as usize);
        consumed_bits.div_ceil(16).saturating_mul(2)
    }

    /// Input position of the next unconsumed bit, for error messages.
    fn byte_position(&self) -> usize {
        self.data.len().saturating_sub(self.consumed_bytes())
    }
}

impl BitSource for BackwardBits<'_> {
    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        // Two shifts so that n = 0 gives 0.
        ((self.buf >> 1) >> 63u32.wrapping_sub(n)) as u32
    }
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf = self.buf.wrapping_shl(n);
        self.count = self.count.wrapping_sub(n);
    }
}

/// Takes source `index` (0..=2) of a recent-sources queue: the entry itself, or the one after
/// it when the front slot holds a source whose insertion is still delayed (`delayed` = 1).
/// Moves the entries before it back by one; the caller puts the source at the front.
#[inline(always)]
fn take_recent<T: Copy>(queue: &mut [T; 4], index: usize, delayed: usize) -> T {
    let index = index.min(2);
    let from = index.wrapping_add(delayed) & 3;
    let value = queue.get(from).copied().unwrap_or(queue[0]);
    if let Some(&kept) = queue.get(index) {
        if let Some(slot) = queue.get_mut(from) {
            *slot = kept;
        }
    }
    queue.copy_within(0..index, 1);
    value
}

/// Decoder for LZMS chunks of up to a given size.
pub(crate) struct LzmsDecoder {
    max_chunk_size: usize,
    main: Decision<16>,
    match_kind: Decision<32>,
    lz_explicit: Decision<64>,
    lz_rep: [Decision<64>; 2],
    delta_explicit: Decision<64>,
    delta_rep: [Decision<64>; 2],
    literal_code: AdaptiveCode,
    lz_offset_code: AdaptiveCode,
    length_code: AdaptiveCode,
    delta_offset_code: AdaptiveCode,
    delta_power_code: AdaptiveCode,
    x86: X86Filter,
}

impl LzmsDecoder {
    /// A decoder for chunks of up to `max_chunk_size` bytes (checked by the caller to be at
    /// most 1 GiB). Memory does not depend on the chunk size (about 400 KiB).
    pub(crate) fn new(max_chunk_size: usize) -> Self {
        Self {
            max_chunk_size,
            main: Decision::new(),
            match_kind: Decision::new(),
            lz_explicit: Decision::new(),
            lz_rep: [Decision::new(), Decision::new()],
            delta_explicit: Decision::new(),
            delta_rep: [Decision::new(), Decision::new()],
            literal_code: AdaptiveCode::new(NUM_LITERAL_SYMS, LITERAL_TABLE_BITS, LITERAL_REBUILD),
            lz_offset_code: AdaptiveCode::new(
                MAX_OFFSET_SYMS,
                OFFSET_TABLE_BITS,
                LZ_OFFSET_REBUILD,
            ),
            length_code: AdaptiveCode::new(NUM_LENGTH_SYMS, LENGTH_TABLE_BITS, LENGTH_REBUILD),
            delta_offset_code: AdaptiveCode::new(
                MAX_OFFSET_SYMS,
                OFFSET_TABLE_BITS,
                DELTA_OFFSET_REBUILD,
            ),
            delta_power_code: AdaptiveCode::new(
                NUM_DELTA_POWER_SYMS,
                POWER_TABLE_BITS,
                DELTA_POWER_REBUILD,
            ),
            x86: X86Filter::new(),
        }
    }

    fn reset(&mut self, out_len: usize) -> Result<(), DecodeError> {
        self.main.reset();
        self.match_kind.reset();
        self.lz_explicit.reset();
        self.lz_rep.iter_mut().for_each(Decision::reset);
        self.delta_explicit.reset();
        self.delta_rep.iter_mut().for_each(Decision::reset);
        let offset_slots = num_offset_slots(out_len);
        let fail = |e: super::huffman::CodeError| DecodeError::Invalid {
            at: 0,
            detail: format!("initial LZMS code: {}", e.describe()),
        };
        self.literal_code.reset(NUM_LITERAL_SYMS).map_err(fail)?;
        self.lz_offset_code.reset(offset_slots).map_err(fail)?;
        self.length_code.reset(NUM_LENGTH_SYMS).map_err(fail)?;
        self.delta_offset_code.reset(offset_slots).map_err(fail)?;
        self.delta_power_code
            .reset(NUM_DELTA_POWER_SYMS)
            .map_err(fail)?;
        Ok(())
    }
}

fn invalid(bits: &BackwardBits<'_>, detail: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        at: bits.byte_position(),
        detail: detail.into(),
    }
}

/// Decodes an offset: a slot from `code`, then its extra bits.
#[inline(always)]
fn decode_offset(
    code: &mut AdaptiveCode,
    bits: &mut BackwardBits<'_>,
    what: &str,
) -> Result<u32, DecodeError> {
    bits.ensure(MAX_CODEWORD_LEN);
    let slot = code
        .decode(bits)
        .map_err(|()| invalid(bits, format!("no {what} offset code in a chunk this small")))?;
    let base = OFFSET_BASE.get(slot).copied().unwrap_or(u32::MAX);
    let extra = u32::from(OFFSET_EXTRA.get(slot).copied().unwrap_or(0));
    Ok(base.wrapping_add(bits.read_bits(extra)))
}

impl ChunkDecoder for LzmsDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), DecodeError> {
        if output.len() > self.max_chunk_size {
            return Err(DecodeError::TooLarge {
                size: output.len(),
                max: self.max_chunk_size,
            });
        }
        if input.len() < 4 || !input.len().is_multiple_of(2) {
            return Err(DecodeError::Invalid {
                at: 0,
                detail: format!(
                    "LZMS data must be an even number of bytes, at least 4 (got {})",
                    input.len()
                ),
            });
        }
        self.reset(output.len())?;
        let mut rd = RangeDecoder::new(input);
        let mut bits = BackwardBits::new(input);
        let mut recent_lz = [1u32, 2, 3, 4];
        let mut recent_delta = [(0u32, 1u32), (0, 2), (0, 3), (0, 4)];
        // 0: literal, 1: LZ match, 2: delta match (the delayed queue insertions depend on it).
        let mut prev_kind = 0usize;
        let out_len = output.len();
        let mut pos = 0usize;
        while pos < out_len {
            if !self.main.decode(&mut rd) {
                bits.ensure(MAX_CODEWORD_LEN);
                let sym = self
                    .literal_code
                    .decode(&mut bits)
                    .map_err(|()| invalid(&bits, "literal code failed to rebuild"))?;
                if let Some(b) = output.get_mut(pos) {
                    *b = sym as u8;
                }
                pos = pos.wrapping_add(1);
                prev_kind = 0;
                continue;
            }
            if !self.match_kind.decode(&mut rd) {
                // LZ match.
                let offset = if !self.lz_explicit.decode(&mut rd) {
                    let offset = decode_offset(&mut self.lz_offset_code, &mut bits, "LZ")?;
                    recent_lz.copy_within(0..3, 1);
                    offset
                } else {
                    let index = if !self.lz_rep[0].decode(&mut rd) {
                        0
                    } else if !self.lz_rep[1].decode(&mut rd) {
                        1
                    } else {
                        2
                    };
                    take_recent(&mut recent_lz, index, prev_kind & 1)
                };
                recent_lz[0] = offset;
                prev_kind = 1;
                let length = self.decode_length(&mut bits)?;
                let (offset, length) = (offset as usize, length as usize);
                lz_copy(output, pos, offset, length).map_err(|e| match e {
                    CopyError::BeforeStart => invalid(
                        &bits,
                        format!("LZ match at output byte {pos} has offset {offset}, reaching before the chunk start"),
                    ),
                    CopyError::PastEnd => DecodeError::Overrun { expected: out_len },
                })?;
                pos = pos.wrapping_add(length);
            } else {
                // Delta match.
                let (power, raw_offset) = if !self.delta_explicit.decode(&mut rd) {
                    bits.ensure(MAX_CODEWORD_LEN);
                    let power = self
                        .delta_power_code
                        .decode(&mut bits)
                        .map_err(|()| invalid(&bits, "delta power code failed to rebuild"))?
                        as u32;
                    let raw = decode_offset(&mut self.delta_offset_code, &mut bits, "delta")?;
                    recent_delta.copy_within(0..3, 1);
                    (power, raw)
                } else {
                    let index = if !self.delta_rep[0].decode(&mut rd) {
                        0
                    } else if !self.delta_rep[1].decode(&mut rd) {
                        1
                    } else {
                        2
                    };
                    take_recent(&mut recent_delta, index, prev_kind >> 1)
                };
                recent_delta[0] = (power, raw_offset);
                prev_kind = 2;
                let length = self.decode_length(&mut bits)? as usize;
                pos = delta_copy(output, pos, power, raw_offset, length)
                    .map_err(|detail| invalid(&bits, detail))?;
            }
        }
        // The two streams come from opposite ends of one buffer; together they cannot have
        // used more than it holds (a wimlib encoder even leaves one unit over).
        let used = rd.next.saturating_add(bits.consumed_bytes());
        if used > input.len() {
            return Err(DecodeError::Truncated { at: input.len() });
        }
        self.x86.undo(output);
        Ok(())
    }
}

impl LzmsDecoder {
    #[inline(always)]
    fn decode_length(&mut self, bits: &mut BackwardBits<'_>) -> Result<u32, DecodeError> {
        bits.ensure(MAX_CODEWORD_LEN);
        let slot = self
            .length_code
            .decode(bits)
            .map_err(|()| invalid(bits, "length code failed to rebuild"))?;
        let base = LENGTH_BASE.get(slot).copied().unwrap_or(u32::MAX);
        let extra = u32::from(LENGTH_EXTRA.get(slot).copied().unwrap_or(0));
        Ok(base.wrapping_add(bits.read_bits(extra)))
    }
}

/// Writes a delta match of `length` bytes at `out[pos..]` and returns the position after it.
fn delta_copy(
    out: &mut [u8],
    pos: usize,
    power: u32,
    raw_offset: u32,
    length: usize,
) -> Result<usize, String> {
    let span = 1usize << power.min(7);
    let offset = usize::try_from(raw_offset)
        .ok()
        .and_then(|r| r.checked_mul(span))
        .filter(|&o| o.checked_add(span).is_some_and(|reach| reach <= pos))
        .ok_or_else(|| {
            format!(
                "delta match at output byte {pos} (raw offset {raw_offset}, power {power}) reaches before the chunk start"
            )
        })?;
    let end = pos
        .checked_add(length)
        .filter(|&e| e <= out.len())
        .ok_or_else(|| {
            format!("delta match of {length} bytes at output byte {pos} runs past the chunk end")
        })?;
    // Work in the window that starts at the farthest source byte, so every index below is
    // inside it: k >= back, and back is the largest distance used.
    let back = offset.wrapping_add(span);
    let window = out
        .get_mut(pos.wrapping_sub(back)..end)
        .ok_or_else(|| String::from("delta match window"))?;
    for k in back..window.len() {
        let at = |d: usize| window.get(k.wrapping_sub(d)).copied().unwrap_or(0);
        let v = at(offset).wrapping_add(at(span)).wrapping_sub(at(back));
        if let Some(b) = window.get_mut(k) {
            *b = v;
        }
    }
    Ok(end)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn slot_tables_match_the_format() {
        // Values the format fixes (wimlib src/lzms_common.c tables, last entries included).
        assert_eq!(OFFSET_BASE[0], 1);
        assert_eq!(OFFSET_BASE[9], 0xd);
        assert_eq!(OFFSET_BASE[798], 0x065b_e4a5);
        assert_eq!(OFFSET_BASE[799], 0x465b_e4a5);
        assert_eq!(LENGTH_BASE[27], 0x1d);
        assert_eq!(LENGTH_BASE[53], 0x0001_08ab);
        assert_eq!(LENGTH_BASE[54], 0x4001_08ab);
    }

    #[test]
    fn offset_slots_cover_the_chunk() {
        assert_eq!(num_offset_slots(0), 0);
        assert_eq!(num_offset_slots(1), 0);
        assert_eq!(num_offset_slots(2), 1);
        for len in [32768usize, 131_072, 1 << 20, 64 << 20, 1 << 30] {
            let n = num_offset_slots(len);
            assert!(OFFSET_BASE[n - 1] <= (len - 1) as u32);
            assert!(OFFSET_BASE[n] > (len - 1) as u32);
        }
    }

    #[test]
    fn recent_queue_moves_the_used_entry_to_the_front_later() {
        let mut q = [10u32, 20, 30, 40];
        // No delay: take index 1 -> 20; 10 moves back.
        assert_eq!(take_recent(&mut q, 1, 0), 20);
        q[0] = 20;
        assert_eq!(q, [20, 10, 30, 40]);
        // Delayed: index 0 means the entry after the front.
        let mut q = [10u32, 20, 30, 40];
        assert_eq!(take_recent(&mut q, 0, 1), 20);
        q[0] = 20;
        assert_eq!(q, [20, 10, 30, 40]);
        let mut q = [10u32, 20, 30, 40];
        assert_eq!(take_recent(&mut q, 2, 1), 40);
        q[0] = 40;
        assert_eq!(q, [40, 10, 20, 30]);
    }

    #[test]
    fn hostile_sizes_are_errors() {
        let mut d = LzmsDecoder::new(1 << 15);
        let mut out = vec![0u8; 100];
        assert!(d.decompress(&[0, 0], &mut out).is_err());
        assert!(d.decompress(&[0, 0, 0, 0, 0], &mut out).is_err());
        let mut big = vec![0u8; (1 << 15) + 1];
        assert!(matches!(
            d.decompress(&[0; 8], &mut big),
            Err(DecodeError::TooLarge { .. })
        ));
        // Zeros everywhere: whatever they decode to, the streams overlap long before 100 bytes.
        assert!(d.decompress(&[0; 8], &mut out).is_err());
    }
}

//! Table-driven decoding of canonical Huffman codes, shared by XPRESS, LZX and LZMS.
//!
//! A code is given by its codeword lengths; canonical codewords are assigned in order of
//! (length, symbol). The decode table is indexed by the next `table_bits` bits of input. A
//! codeword no longer than that fills every entry it prefixes; longer codewords share a root
//! entry that points to a subtable indexed by the bits after the root bits.
//!
//! Like wimlib's `make_huffman_decode_table` (src/decompress_common.c), a code must be complete
//! (fill the code space exactly) or empty. An empty code yields a table that fails on use.
//!
//! Sources: RFC 1951 section 3.2.2 (canonical codes); the LZX and MS-XCA documents (lengths
//! limits); wimlib src/decompress_common.c (the completeness rule).

use super::bitreader::BitReader;

/// A bit input a [`DecodeTable`] can decode from: the next bits, most significant first.
pub(crate) trait BitSource {
    /// The next `n` bits (1..=32) without consuming them; `n` bits must be buffered.
    fn peek(&self, n: u32) -> u32;
    /// Drops `n` buffered bits.
    fn consume(&mut self, n: u32);
}

impl BitSource for BitReader<'_> {
    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        BitReader::peek(self, n)
    }
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        BitReader::consume(self, n)
    }
}

/// Entry layout: bits 0..=4 bits to consume; bit 5 "subtable pointer" (then bits 0..=4 are the
/// subtable's index width); bit 6 "no code"; bits 16.. the symbol or subtable start.
const LEN_MASK: u32 = 0x1F;
const SUBTABLE: u32 = 0x20;
const EMPTY: u32 = 0x40;
const SLOW_MASK: u32 = SUBTABLE | EMPTY;
const VALUE_SHIFT: u32 = 16;

/// Largest codeword length any WIM codec uses (LZX main and length codes).
pub(crate) const MAX_CODEWORD_LEN: u32 = 16;

/// Why a set of codeword lengths does not form a usable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeError {
    /// More codewords than the code space holds.
    OverSubscribed,
    /// Some code space left unused by a non-empty code.
    Incomplete,
    /// A length above the code's maximum.
    TooLong,
}

impl CodeError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CodeError::OverSubscribed => "Huffman codeword lengths over-subscribe the code space",
            CodeError::Incomplete => "Huffman codeword lengths leave the code incomplete",
            CodeError::TooLong => "Huffman codeword length above the maximum",
        }
    }
}

/// A reusable decode table for one code (fixed symbol count, table width and maximum length).
pub(crate) struct DecodeTable {
    entries: Vec<u32>,
    table_bits: u32,
    max_len: u32,
    /// Scratch: symbols sorted by (length, symbol).
    sorted: Vec<u16>,
}

impl DecodeTable {
    /// Allocates a table for codes of `num_syms` symbols with codewords of at most `max_len`
    /// bits, indexed by `table_bits` bits. All allocation happens here, none in `build`.
    pub(crate) fn new(num_syms: usize, table_bits: u32, max_len: u32) -> Self {
        debug_assert!(table_bits <= max_len && max_len <= MAX_CODEWORD_LEN);
        // Each subtable serves a root prefix holding at least two codewords, so there are at
        // most num_syms / 2 of them, each of at most 2^(max_len - table_bits) entries.
        let sub_entries = 1usize << max_len.saturating_sub(table_bits);
        let size =
            (1usize << table_bits).saturating_add((num_syms / 2).saturating_mul(sub_entries));
        Self {
            entries: vec![EMPTY; size],
            table_bits,
            max_len,
            sorted: vec![0; num_syms],
        }
    }

    /// Rebuilds the table for the code with codeword lengths `lens` (0 = symbol unused).
    /// `lens.len()` must be the symbol count given to `new`.
    pub(crate) fn build(&mut self, lens: &[u8]) -> Result<(), CodeError> {
        let max_len = self.max_len as usize;
        let table_bits = self.table_bits as usize;
        let mut count = [0u32; MAX_CODEWORD_LEN as usize + 1];
        for &len in lens {
            let c = count
                .get_mut(usize::from(len))
                .filter(|_| usize::from(len) <= max_len)
                .ok_or(CodeError::TooLong)?;
            *c = c.wrapping_add(1);
        }
        count[0] = 0;

        // Code-space check: `left` is the number of unused codewords at the current length.
        let mut left: i64 = 1;
        for &c in count.iter().skip(1).take(max_len) {
            left = left.saturating_mul(2).saturating_sub(i64::from(c));
            if left < 0 {
                return Err(CodeError::OverSubscribed);
            }
        }
        if left != 0 {
            if left == 1i64 << max_len {
                // Empty code: any lookup fails.
                self.entries.fill(EMPTY);
                return Ok(());
            }
            return Err(CodeError::Incomplete);
        }

        // Sort symbols by (length, symbol), unused ones (length 0) first: `next[len]` is where
        // the next one of that length goes.
        let mut next = [0usize; MAX_CODEWORD_LEN as usize + 2];
        let unused = lens.iter().filter(|&&l| l == 0).count();
        next[1] = unused;
        for len in 1..=max_len {
            let c = count.get(len).copied().unwrap_or(0) as usize;
            let start = next.get(len).copied().unwrap_or(0);
            if let Some(n) = next.get_mut(len.saturating_add(1)) {
                *n = start.saturating_add(c);
            }
        }
        for (sym, &len) in lens.iter().enumerate() {
            if let Some(slot) = next.get_mut(usize::from(len)) {
                if let Some(s) = self.sorted.get_mut(*slot) {
                    *s = sym as u16;
                }
                *slot = slot.saturating_add(1);
            }
        }

        // Codewords no longer than the root index, length by length: canonical codewords of one
        // length are consecutive, so each symbol fills the next run of 2^(table_bits - len)
        // root entries.
        let mut sorted = self.sorted.get(unused..).unwrap_or_default().iter();
        let mut pos = 0usize;
        for len in 1..=table_bits.min(max_len) {
            let run = 1usize << table_bits.saturating_sub(len);
            let n = count.get(len).copied().unwrap_or(0) as usize;
            let end = pos.saturating_add(run.saturating_mul(n));
            let entry = |sym: u16| u32::from(sym) << VALUE_SHIFT | len as u32;
            // In bounds: the code-space check above keeps `end` within the root table.
            let group = self.entries.get_mut(pos..end).unwrap_or_default();
            if run == 1 {
                // The longest root codewords are the most numerous: one store each.
                for (slot, &sym) in group.iter_mut().zip(sorted.by_ref().take(n)) {
                    *slot = entry(sym);
                }
            } else {
                for (slots, &sym) in group.chunks_exact_mut(run).zip(sorted.by_ref().take(n)) {
                    slots.fill(entry(sym));
                }
            }
            pos = end;
        }

        // Longer codewords, through subtables. `code` is the current codeword left-justified
        // to `max_len` bits, so the table positions of successive codewords are consecutive.
        let shift = max_len.saturating_sub(table_bits); // bits of `code` below the root index
        let mut code: usize = pos << shift;
        let mut sub_end = 1usize << table_bits;
        let mut cur_prefix = usize::MAX;
        let mut cur_sub_start = 0usize;
        let mut cur_sub_bits = 0usize;
        let first_long = self.sorted.len().saturating_sub(sorted.len());
        for i in first_long..lens.len().min(self.sorted.len()) {
            let sym = self.sorted.get(i).copied().unwrap_or(0);
            let len = usize::from(lens.get(usize::from(sym)).copied().unwrap_or(0));
            let value = u32::from(sym) << VALUE_SHIFT;
            let prefix = code >> shift;
            if prefix != cur_prefix {
                // A new subtable, wide enough for the longest codeword under this prefix.
                cur_prefix = prefix;
                cur_sub_bits = self
                    .longest_under_prefix(lens, i, code)
                    .saturating_sub(table_bits);
                cur_sub_start = sub_end;
                sub_end = sub_end.saturating_add(1usize << cur_sub_bits);
                if let Some(e) = self.entries.get_mut(prefix) {
                    *e = ((cur_sub_start as u32) << VALUE_SHIFT) | SUBTABLE | cur_sub_bits as u32;
                }
            }
            // Index inside the subtable: the `cur_sub_bits` bits after the root bits.
            let sub_len = len.saturating_sub(table_bits);
            let low = code & ((1usize << shift).saturating_sub(1));
            let within = low >> shift.saturating_sub(cur_sub_bits);
            let first = cur_sub_start.saturating_add(within);
            let n = 1usize << (cur_sub_bits.saturating_sub(sub_len));
            if let Some(slice) = self.entries.get_mut(first..first.saturating_add(n)) {
                slice.fill(value | sub_len as u32);
            }
            code = code.saturating_add(1usize << max_len.saturating_sub(len));
        }
        Ok(())
    }

    /// Length of the longest codeword that shares the root prefix of the `i`-th codeword in
    /// sorted order (which starts at `code`). Codewords under one prefix are consecutive in
    /// sorted order and grow longer, so walk forward until the prefix changes.
    fn longest_under_prefix(&self, lens: &[u8], i: usize, code: usize) -> usize {
        let max_len = self.max_len as usize;
        let shift = max_len.saturating_sub(self.table_bits as usize);
        let prefix = code >> shift;
        let mut c = code;
        let mut longest = 0;
        for &sym in self.sorted.iter().skip(i) {
            if c >> shift != prefix {
                break;
            }
            let len = usize::from(lens.get(usize::from(sym)).copied().unwrap_or(0));
            longest = len;
            c = c.saturating_add(1usize << max_len.saturating_sub(len));
        }
        longest
    }

    /// Decodes one symbol. The reader must hold at least `max_len` bits (call `ensure` first).
    #[inline(always)]
    pub(crate) fn decode<B: BitSource>(&self, br: &mut B) -> Result<u32, ()> {
        let root = br.peek(self.table_bits) as usize;
        let entry = self.entries.get(root).copied().unwrap_or(EMPTY);
        if entry & SLOW_MASK == 0 {
            br.consume(entry & LEN_MASK);
            return Ok(entry >> VALUE_SHIFT);
        }
        self.decode_long(br, entry)
    }

    #[inline(never)]
    fn decode_long<B: BitSource>(&self, br: &mut B, entry: u32) -> Result<u32, ()> {
        if entry & EMPTY != 0 {
            return Err(());
        }
        br.consume(self.table_bits);
        let sub_bits = entry & LEN_MASK;
        let index = ((entry >> VALUE_SHIFT) as usize).wrapping_add(br.peek(sub_bits) as usize);
        let sub = self.entries.get(index).copied().unwrap_or(EMPTY);
        if sub & SLOW_MASK != 0 {
            return Err(());
        }
        br.consume(sub & LEN_MASK);
        Ok(sub >> VALUE_SHIFT)
    }
}

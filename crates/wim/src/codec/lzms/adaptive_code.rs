//! The adaptive Huffman codes of LZMS. Nothing about a code is stored in the stream: the decoder
//! counts how often each symbol was decoded and, every `rebuild_every` symbols, derives a new
//! code from those counts exactly as the encoder did, then halves the counts (`f / 2 + 1`) so the
//! code follows the recent data. A code starts with every count at 1.
//!
//! The derivation must give the very same codeword lengths as the encoder, so it follows the
//! rules wimlib documents for LZMS: symbols ordered by (count, symbol); the classic two-queue
//! Huffman construction in which, on equal counts, leaves are merged before internal nodes;
//! lengths handed out longest first to that order; depths above 15 limited by moving a node up
//! to the deepest shorter length that still has a leaf (never needed by real data, but an
//! adversary can build such counts, and both sides must then agree). Canonical codewords follow
//! from the lengths ([`super::super::huffman`]).
//!
//! Sources: wimlib src/lzms_decompress.c (file comment: rebuild frequencies, tie-breaking),
//! src/compress_common.c (the construction and its length limit); Moffat and Katajainen, "In-place
//! calculation of minimum-redundancy codes" (1995), for the two-queue method.

use super::super::huffman::{BitSource, CodeError, DecodeTable};

/// The longest codeword LZMS allows.
pub(super) const MAX_CODEWORD_LEN: u32 = 15;

/// Scratch arrays are this long: more than the largest LZMS alphabet (799 offset slots), a power
/// of two so that masked indices are in bounds by construction.
const SCRATCH: usize = 1024;
const MASK: usize = SCRATCH - 1;

/// One adaptive code: its decode table, symbol counts and rebuild countdown.
pub(super) struct AdaptiveCode {
    table: DecodeTable,
    /// Count of each symbol since the last rebuild (plus what the halving kept).
    freqs: Box<[u32; SCRATCH]>,
    lens: Box<[u8; SCRATCH]>,
    /// The lengths `table` was built from, for `table_syms` symbols (0: not built). A rebuild
    /// often gives the same lengths again; then the table is kept.
    table_lens: Box<[u8; SCRATCH]>,
    table_syms: usize,
    num_syms: usize,
    rebuild_every: u32,
    until_rebuild: u32,
    scratch: Box<Scratch>,
}

/// Bits of a symbol in a packed (count, symbol) key; counts sit above them.
const SYM_BITS: u32 = 10;
const SYM_MASK: u32 = (1 << SYM_BITS) - 1;
/// Largest count a key holds. Counts stay far below: a rebuild halves them and at most
/// `rebuild_every` (1024) symbols are counted between rebuilds, so they stay under 2,100.
const MAX_KEY_COUNT: u32 = u32::MAX >> SYM_BITS;

/// Working space of [`code_lengths`].
struct Scratch {
    /// Symbols in (count, symbol) order, each packed as `count << SYM_BITS | symbol`, so the
    /// order is that of the keys and a count needs no second lookup.
    order: [u32; SCRATCH],
    /// Counting-sort buckets.
    buckets: [u32; SCRATCH],
    /// Count of each internal node, in creation order.
    node_freq: [u32; SCRATCH],
    /// Parent of each internal node, then its depth.
    node_up: [u32; SCRATCH],
}

impl AdaptiveCode {
    /// A code of up to `max_syms` symbols (at most 1023), decoded through `table_bits` bits,
    /// rebuilt every `rebuild_every` symbols.
    pub(super) fn new(max_syms: usize, table_bits: u32, rebuild_every: u32) -> Self {
        debug_assert!(max_syms < SCRATCH && rebuild_every > 0);
        Self {
            table: DecodeTable::new(max_syms, table_bits, MAX_CODEWORD_LEN),
            freqs: Box::new([0; SCRATCH]),
            lens: Box::new([0; SCRATCH]),
            table_lens: Box::new([0; SCRATCH]),
            table_syms: 0,
            num_syms: 0,
            rebuild_every,
            until_rebuild: rebuild_every,
            scratch: Box::new(Scratch {
                order: [0; SCRATCH],
                buckets: [0; SCRATCH],
                node_freq: [0; SCRATCH],
                node_up: [0; SCRATCH],
            }),
        }
    }

    /// Starts a chunk: `num_syms` symbols (at most the `max_syms` given to `new`), each with
    /// count 1. Fewer than 2 symbols make a code that fails on use (LZMS has no 1-symbol code).
    pub(super) fn reset(&mut self, num_syms: usize) -> Result<(), CodeError> {
        self.num_syms = num_syms.min(MASK);
        self.freqs.fill(0);
        if let Some(f) = self.freqs.get_mut(..self.num_syms) {
            f.fill(1);
        }
        self.build()
    }

    /// Decodes one symbol (the reader must hold 15 bits) and counts it.
    #[inline(always)]
    pub(super) fn decode<B: BitSource>(&mut self, bits: &mut B) -> Result<usize, ()> {
        let sym = self.table.decode(bits)? as usize;
        if let Some(f) = self.freqs.get_mut(sym & MASK) {
            *f = f.wrapping_add(1);
        }
        self.until_rebuild = self.until_rebuild.wrapping_sub(1);
        if self.until_rebuild == 0 {
            self.rebuild().map_err(|_| ())?;
        }
        Ok(sym)
    }

    #[inline(never)]
    fn rebuild(&mut self) -> Result<(), CodeError> {
        self.build()?;
        for f in self.freqs.iter_mut().take(self.num_syms) {
            *f = (*f >> 1).wrapping_add(1);
        }
        Ok(())
    }

    fn build(&mut self) -> Result<(), CodeError> {
        self.until_rebuild = self.rebuild_every;
        let n = self.num_syms;
        let (Some(freqs), Some(lens)) = (self.freqs.get(..n), self.lens.get_mut(..n)) else {
            return Err(CodeError::Incomplete);
        };
        if n < 2 {
            // An empty code: no symbol can be decoded.
            lens.fill(0);
        } else {
            code_lengths(freqs, lens, &mut self.scratch);
        }
        let Some(built) = self.table_lens.get_mut(..n) else {
            return Err(CodeError::Incomplete);
        };
        if self.table_syms == n && built == lens {
            return Ok(());
        }
        self.table_syms = 0;
        self.table.build(lens)?;
        built.copy_from_slice(lens);
        self.table_syms = n;
        Ok(())
    }
}

/// Codeword lengths (at most [`MAX_CODEWORD_LEN`]) of the Huffman code for `freqs`, which are
/// all at least 1, 2 to 1023 of them, with the tie-breaking LZMS requires (module comment).
fn code_lengths(freqs: &[u32], lens: &mut [u8], s: &mut Scratch) {
    let n = freqs.len().min(MASK);
    sort_by_count(freqs, s);

    // Two queues: leaves in `order` (next unmerged: `leaf`), internal nodes in creation order
    // (next unmerged: `node`, created so far: `made`). Each step merges the two smallest.
    let leaf_freq = |s: &Scratch, i: usize| s.order.get(i & MASK).copied().unwrap_or(0) >> SYM_BITS;
    let last_leaf = n.wrapping_sub(1);
    let (mut leaf, mut node, mut made) = (0usize, 0usize, 0usize);
    while made < last_leaf {
        let node_freq = |s: &Scratch, i: usize| s.node_freq.get(i & MASK).copied().unwrap_or(0);
        let sum;
        if leaf < last_leaf
            && (node == made || leaf_freq(s, leaf.wrapping_add(1)) <= node_freq(s, node))
        {
            sum = leaf_freq(s, leaf).wrapping_add(leaf_freq(s, leaf.wrapping_add(1)));
            leaf = leaf.wrapping_add(2);
        } else if node.wrapping_add(2) <= made
            && (leaf > last_leaf || node_freq(s, node.wrapping_add(1)) < leaf_freq(s, leaf))
        {
            sum = node_freq(s, node).wrapping_add(node_freq(s, node.wrapping_add(1)));
            for child in [node, node.wrapping_add(1)] {
                if let Some(up) = s.node_up.get_mut(child & MASK) {
                    *up = made as u32;
                }
            }
            node = node.wrapping_add(2);
        } else {
            sum = leaf_freq(s, leaf).wrapping_add(node_freq(s, node));
            if let Some(up) = s.node_up.get_mut(node & MASK) {
                *up = made as u32;
            }
            leaf = leaf.wrapping_add(1);
            node = node.wrapping_add(1);
        }
        if let Some(f) = s.node_freq.get_mut(made & MASK) {
            *f = sum;
        }
        made = made.wrapping_add(1);
    }

    // Depths, root first (a parent is always created after its children). Start from the root
    // having two leaf children; each internal node met turns one leaf at its depth into two one
    // level deeper. Below the length limit, the node is moved up to the deepest shorter length
    // that still has a leaf to give.
    let max = MAX_CODEWORD_LEN as usize;
    let mut per_len = [0u32; MAX_CODEWORD_LEN as usize + 2];
    per_len[1] = 2;
    let root = last_leaf.wrapping_sub(1);
    if let Some(up) = s.node_up.get_mut(root & MASK) {
        *up = 0;
    }
    for k in (0..root).rev() {
        let parent = s.node_up.get(k & MASK).copied().unwrap_or(0) as usize;
        let depth = s
            .node_up
            .get(parent & MASK)
            .copied()
            .unwrap_or(0)
            .wrapping_add(1);
        if let Some(up) = s.node_up.get_mut(k & MASK) {
            *up = depth;
        }
        let mut len = depth as usize;
        if len >= max {
            len = max.wrapping_sub(1);
            while len > 1 && per_len.get(len).copied().unwrap_or(0) == 0 {
                len = len.wrapping_sub(1);
            }
        }
        if let Some(c) = per_len.get_mut(len) {
            *c = c.wrapping_sub(1);
        }
        if let Some(c) = per_len.get_mut(len.wrapping_add(1)) {
            *c = c.wrapping_add(2);
        }
    }

    // Longest codewords to the rarest symbols.
    let mut i = 0usize;
    for len in (1..=max).rev() {
        for _ in 0..per_len.get(len).copied().unwrap_or(0) {
            let sym = (s.order.get(i & MASK).copied().unwrap_or(0) & SYM_MASK) as usize;
            if let Some(l) = lens.get_mut(sym) {
                *l = len as u8;
            }
            i = i.wrapping_add(1);
        }
    }
}

/// Fills `s.order` with the keys of the symbols of `freqs` sorted by (count, symbol): a
/// counting sort on counts below the alphabet size (stable, so symbols stay in order), then a
/// sort of the few keys with larger counts.
fn sort_by_count(freqs: &[u32], s: &mut Scratch) {
    let n = freqs.len().min(MASK);
    let top = n.wrapping_sub(1);
    let bucket_of = |f: u32| (f as usize).min(top) & MASK;
    let buckets = &mut s.buckets;
    buckets.iter_mut().take(n).for_each(|b| *b = 0);
    for &f in freqs {
        if let Some(b) = buckets.get_mut(bucket_of(f)) {
            *b = b.wrapping_add(1);
        }
    }
    let mut start = 0u32;
    for b in buckets.iter_mut().take(n) {
        let c = *b;
        *b = start;
        start = start.wrapping_add(c);
    }
    for (sym, &f) in freqs.iter().enumerate() {
        if let Some(b) = buckets.get_mut(bucket_of(f)) {
            if let Some(slot) = s.order.get_mut(*b as usize & MASK) {
                *slot = f.min(MAX_KEY_COUNT) << SYM_BITS | (sym as u32 & SYM_MASK);
            }
            *b = b.wrapping_add(1);
        }
    }
    // The last bucket holds every count >= top, still in symbol order: sort it by key.
    let high_start = if top == 0 {
        0
    } else {
        buckets.get(top.wrapping_sub(1)).copied().unwrap_or(0) as usize
    };
    if let Some(high) = s.order.get_mut(high_start..n) {
        high.sort_unstable();
    }
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

    fn lengths(freqs: &[u32]) -> Vec<u8> {
        let mut s = Box::new(Scratch {
            order: [0; SCRATCH],
            buckets: [0; SCRATCH],
            node_freq: [0; SCRATCH],
            node_up: [0; SCRATCH],
        });
        let mut lens = vec![0u8; freqs.len()];
        code_lengths(freqs, &mut lens, &mut s);
        lens
    }

    fn kraft_complete(lens: &[u8]) -> bool {
        lens.iter().map(|&l| 1u64 << (20 - l)).sum::<u64>() == 1 << 20
    }

    #[test]
    fn equal_counts_give_equal_lengths() {
        assert_eq!(lengths(&[1; 256]), vec![8; 256]);
        assert_eq!(lengths(&[1; 8]), vec![3; 8]);
    }

    #[test]
    fn ties_favour_leaves_and_the_rarest_lowest_symbols_get_longest() {
        // (1,0) (1,1) merge first -> 2; then leaf 2 (count 1) with node 2 -> lengths 2, 2, 1.
        assert_eq!(lengths(&[1, 1, 1]), vec![2, 2, 1]);
        // Counts 1,1,2: leaves 0,1 -> node(2); next the leaf of count 2 ties the node: leaf
        // first is not possible alone, so leaf + node: lengths 2, 2, 1.
        assert_eq!(lengths(&[1, 1, 2]), vec![2, 2, 1]);
        // Counts 2,1,1,2 -> order 1,2,0,3; leaves 1+2 -> n0(2); leaves 0,3 (2 <= 2) -> n1(4);
        // n0+n1: all length 2.
        assert_eq!(lengths(&[2, 1, 1, 2]), vec![2, 2, 2, 2]);
    }

    #[test]
    fn skewed_counts_stay_within_15_bits_and_complete() {
        // Fibonacci counts would need depth 24 without the limit.
        let mut f = vec![1u32, 1];
        while f.len() < 25 {
            let k = f.len();
            f.push(f[k - 1] + f[k - 2]);
        }
        let lens = lengths(&f);
        assert!(lens.iter().all(|&l| (1..=15).contains(&l)), "{lens:?}");
        assert!(kraft_complete(&lens), "{lens:?}");
        // Large counts go through the comparison-sorted bucket.
        let f: Vec<u32> = (0..300).map(|i| (i * 7919 % 2000) + 1).collect();
        let lens = lengths(&f);
        assert!(kraft_complete(&lens));
        for a in 0..300 {
            for b in 0..300 {
                if f[a] < f[b] {
                    assert!(lens[a] >= lens[b], "count order vs length order");
                }
            }
        }
    }
}

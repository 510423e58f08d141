//! Undoing the LZMS x86 filter. Before compressing, the encoder rewrote the 32-bit relative
//! operands of some x86 instructions as absolute positions (so repeated calls to one function
//! become repeated bytes); after decoding, every chunk is scanned the same way and the rewrite is
//! reversed. The filter is applied to all data, code or not, so the decoder must make exactly
//! the encoder's choices:
//!
//! - Candidates are bytes at positions 1 .. len - 17 (chunks of 17 bytes or less are left as
//!   they are): `E8` (CALL rel32, operand after 1 byte), `FF 15` (CALL [rip+disp32], after 2),
//!   `F0 83 05` (LOCK ADD [rip+disp32], after 3), and after 3 bytes: `48 8D m` and `4C 8D m`
//!   (LEA) and `48 8B m` (MOV) whose ModR/M byte `m` has r/m = 101 (for MOV also `m < 0x10`).
//!   `E9` (JMP rel32) is recognised only to skip its operand. After a candidate that matched,
//!   scanning resumes after its operand, translated or not.
//! - An operand is translated only while the data "looks like code": within 1023 bytes (511 for
//!   `E8`) after the last position where two candidates' targets, taken modulo 2^16, were equal
//!   and at most 65535 bytes apart.
//!
//! Sources: wimlib src/lzms_common.c (`lzms_x86_filter`, the only description of this filter).

/// Largest distance from the last "looks like code" position at which an operand is translated.
const MAX_TRANSLATION_OFFSET: i64 = 1023;
/// Two uses of one 16-bit target at most this far apart mark code.
const ID_WINDOW: u32 = 65535;

/// Position of the last use of each 16-bit target, kept across chunks: entries are stored as
/// `epoch + position`, and each chunk starts a new epoch far enough above the last that every
/// older entry is more than [`ID_WINDOW`] away, so the 256 KiB table is not cleared per chunk.
pub(super) struct X86Filter {
    last_use: Box<[u32; 65536]>,
    epoch: u32,
}

impl X86Filter {
    pub(super) fn new() -> Self {
        Self {
            last_use: Box::new([0; 65536]),
            epoch: ID_WINDOW.wrapping_add(1),
        }
    }

    /// Reverses the encoder's translation in `data`, one whole chunk.
    pub(super) fn undo(&mut self, data: &mut [u8]) {
        let len = data.len();
        if len <= 17 {
            return;
        }
        // A new epoch must leave room for positions up to `len` without wrapping.
        let Some(len32) = u32::try_from(len).ok() else {
            return;
        };
        if self.epoch.checked_add(len32).is_none() {
            self.last_use.fill(0);
            self.epoch = ID_WINDOW.wrapping_add(1);
        }
        let epoch = self.epoch;
        // Next chunk: every entry written now is below epoch + len.
        self.epoch = epoch
            .saturating_add(len32)
            .saturating_add(ID_WINDOW.wrapping_add(1));

        let end = len.wrapping_sub(16);
        let mut last_code_pos: i64 = -MAX_TRANSLATION_OFFSET - 1;
        let mut i = 1usize;
        while i < end {
            i = next_candidate(data, i, end);
            if i >= end {
                break;
            }
            // i < len - 16, so the 8-byte window is inside `data`.
            let Some(w) = data
                .get_mut(i..i.wrapping_add(8))
                .and_then(|s| <&mut [u8; 8]>::try_from(s).ok())
            else {
                break;
            };
            let (opcode_len, max_offset) = match w[0] {
                0xE8 => (1usize, MAX_TRANSLATION_OFFSET >> 1),
                0xE9 => {
                    i = i.wrapping_add(5);
                    continue;
                }
                0xFF if w[1] == 0x15 => (2, MAX_TRANSLATION_OFFSET),
                0xF0 if w[1] == 0x83 && w[2] == 0x05 => (3, MAX_TRANSLATION_OFFSET),
                0x48 | 0x4C
                    if w[2] & 0x07 == 0x05
                        && (w[1] == 0x8D
                            || (w[1] == 0x8B && w[0] & 0x04 == 0 && w[2] & 0xF0 == 0)) =>
                {
                    (3, MAX_TRANSLATION_OFFSET)
                }
                _ => {
                    i = i.wrapping_add(1);
                    continue;
                }
            };
            // Positions are below 2^30 (the largest LZMS chunk), so they fit i64 and u32.
            let pos = i as i64;
            let Some(operand) = w
                .get_mut(opcode_len..opcode_len.wrapping_add(4))
                .and_then(|s| <&mut [u8; 4]>::try_from(s).ok())
            else {
                break;
            };
            if pos.wrapping_sub(last_code_pos) <= max_offset {
                let abs = u32::from_le_bytes(*operand);
                *operand = abs.wrapping_sub(i as u32).to_le_bytes();
            }
            let target = (i as u32)
                .wrapping_add(u32::from(u16::from_le_bytes([operand[0], operand[1]])))
                as u16;
            let operand_end = i.wrapping_add(opcode_len).wrapping_add(3);
            let stamp = epoch.wrapping_add(operand_end as u32);
            if let Some(last) = self.last_use.get_mut(usize::from(target)) {
                if stamp.wrapping_sub(*last) <= ID_WINDOW {
                    last_code_pos = operand_end as i64;
                }
                *last = stamp;
            }
            i = operand_end.wrapping_add(1);
        }
    }
}

/// Bytes that can start an instruction the filter looks at, found eight at a time: a byte is
/// a candidate when it is 48 or 4C, E8 or E9, F0, or FF.
#[inline(always)]
fn candidate_mask(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn splat(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    // High bit of each byte set when that byte of `v` is not zero (exact, no carries between
    // bytes: (v & 7F) + 7F <= FE).
    let nonzero = |v: u64| ((v & LOW7).wrapping_add(LOW7) | v) & HIGH;
    let not_48_4c = nonzero((x & splat(0xFB)) ^ splat(0x48));
    let not_e8_e9 = nonzero((x & splat(0xFE)) ^ splat(0xE8));
    let not_f0 = nonzero(x ^ splat(0xF0));
    let not_ff = nonzero(!x);
    HIGH & !(not_48_4c & not_e8_e9 & not_f0 & not_ff)
}

/// The first candidate position at or after `i` and below `end` (`end` + 8 <= `data.len()`),
/// or `end`.
#[inline(always)]
fn next_candidate(data: &[u8], mut i: usize, end: usize) -> usize {
    while i < end {
        let Some(bytes) = data
            .get(i..i.wrapping_add(8))
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        else {
            return end;
        };
        let mask = candidate_mask(u64::from_le_bytes(bytes));
        if mask != 0 {
            return i
                .wrapping_add((mask.trailing_zeros() >> 3) as usize)
                .min(end);
        }
        i = i.wrapping_add(8);
    }
    end
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
    fn short_chunks_and_non_code_are_unchanged() {
        let mut f = X86Filter::new();
        let mut small = [0xE8u8; 17];
        f.undo(&mut small);
        assert_eq!(small, [0xE8; 17]);
        let mut text = b"plain text with no candidate bytes at all, repeated..".repeat(10);
        let before = text.clone();
        f.undo(&mut text);
        assert_eq!(text, before);
    }

    #[test]
    fn translation_starts_only_after_a_repeated_target() {
        // Two CALLs to the same target, close together: the second marks code, so a third
        // (within 511 bytes) is translated and the first two are not.
        let mut data = vec![0u8; 64];
        let call = |d: &mut Vec<u8>, at: usize, operand: u32| {
            d[at] = 0xE8;
            d[at + 1..at + 5].copy_from_slice(&operand.to_le_bytes());
        };
        // Relative operands chosen so both point at absolute 0x1000.
        call(&mut data, 1, 0x1000 - 1);
        call(&mut data, 10, 0x1000 - 10);
        // Third: stored as absolute (the encoder translated it); undo gives relative.
        call(&mut data, 20, 0x2000);
        let mut f = X86Filter::new();
        f.undo(&mut data);
        assert_eq!(
            u32::from_le_bytes(data[2..6].try_into().unwrap()),
            0x1000 - 1
        );
        assert_eq!(
            u32::from_le_bytes(data[11..15].try_into().unwrap()),
            0x1000 - 10
        );
        assert_eq!(
            u32::from_le_bytes(data[21..25].try_into().unwrap()),
            0x2000 - 20
        );
        // A second chunk starts afresh: the same bytes again decode the same way.
        let mut again = vec![0u8; 64];
        call(&mut again, 1, 0x1000 - 1);
        call(&mut again, 10, 0x1000 - 10);
        call(&mut again, 20, 0x2000);
        f.undo(&mut again);
        assert_eq!(again, data);
    }
}

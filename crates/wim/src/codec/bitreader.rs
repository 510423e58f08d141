//! The bit input shared by XPRESS and LZX: 16-bit little-endian units read most significant bit
//! first, with whole bytes interleaved in the same stream (XPRESS long match lengths, LZX
//! uncompressed blocks).
//!
//! Bits live left-justified in a 64-bit buffer that is refilled several units at a time. Reading
//! past the end of the input yields zero bits rather than an error, so the hot loops need no
//! check per symbol; decoders call [`BitReader::check_not_overrun`] at block and chunk ends, which
//! fails if more bits were *consumed* than the input holds. Peeking past the end is normal: the
//! last codeword of a valid stream may be shorter than the longest possible one.

use super::DecodeError;

/// A reader of 16-bit-unit bitstreams over one compressed chunk.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Where the next 16-bit unit is loaded from. May run past `data.len()` (by zero units fed
    /// after the end); `check_not_overrun` turns that into an error once the bits are used.
    pos: usize,
    /// Bits not yet consumed, left-justified (the next bit is bit 63). Bits below the top
    /// `count` are either zero or the stream's own next bits, so OR-ing a unit in is safe.
    buf: u64,
    /// Number of valid bits at the top of `buf`.
    count: u32,
}

/// Reorders eight input bytes so the four 16-bit little-endian units they hold read most
/// significant bit first from bit 63 down.
#[inline(always)]
fn units_msb_first(bytes: [u8; 8]) -> u64 {
    let swapped = u64::from_be_bytes(bytes);
    ((swapped >> 8) & 0x00FF_00FF_00FF_00FF) | ((swapped & 0x00FF_00FF_00FF_00FF) << 8)
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first byte of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Tops the buffer up to at least 49 bits (zeros past the end of the input).
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        if self.count > 48 {
            return;
        }
        let end = self.pos.wrapping_add(8);
        if let Some(bytes) = self
            .data
            .get(self.pos..end)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        {
            // Whole units that fit; any partial unit below them is the stream's next bits, which
            // the following refill ORs in again unchanged.
            let units = 64u32.wrapping_sub(self.count) >> 4;
            self.buf |= units_msb_first(bytes).wrapping_shr(self.count);
            self.pos = self.pos.wrapping_add((units as usize) << 1);
            self.count = self.count.wrapping_add(units << 4);
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.count <= 48 {
            let lo = self.data.get(self.pos).copied().unwrap_or(0);
            let hi = self
                .data
                .get(self.pos.saturating_add(1))
                .copied()
                .unwrap_or(0);
            let unit = u64::from(u16::from_le_bytes([lo, hi]));
            self.buf |= unit.wrapping_shl(48u32.wrapping_sub(self.count));
            self.pos = self.pos.saturating_add(2);
            self.count = self.count.wrapping_add(16);
        }
    }

    /// Makes sure at least `n` bits (`n` <= 49) are buffered.
    #[inline(always)]
    pub(crate) fn ensure(&mut self, n: u32) {
        if self.count < n {
            self.refill();
        }
    }

    /// The next `n` bits (1..=32) without consuming them; needs `n` buffered bits.
    #[inline(always)]
    pub(crate) fn peek(&self, n: u32) -> u32 {
        // A shift by 64 - n for n in 1..=32 never wraps; the cast keeps the low 32 bits.
        self.buf.wrapping_shr(64u32.wrapping_sub(n)) as u32
    }

    /// Drops `n` buffered bits.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.buf = self.buf.wrapping_shl(n);
        self.count = self.count.wrapping_sub(n);
    }

    /// Reads `n` bits (0..=32), refilling as needed.
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        self.ensure(n);
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Input position (bytes) of the first bit not yet consumed, rounded down to its byte.
    pub(crate) fn byte_position(&self) -> usize {
        self.pos.saturating_sub((self.count >> 3) as usize)
    }

    /// Fails if the bits consumed so far reach past the end of the input.
    pub(crate) fn check_not_overrun(&self) -> Result<(), DecodeError> {
        let consumed_bits = self
            .pos
            .saturating_mul(8)
            .saturating_sub(self.count as usize);
        if consumed_bits > self.data.len().saturating_mul(8) {
            return Err(DecodeError::Truncated {
                at: self.data.len(),
            });
        }
        Ok(())
    }

    /// Puts the byte cursor where a reader that loads one unit at a time, and keeps 16 to 31
    /// bits buffered, would have it (XPRESS reads its raw length bytes there): loads units if
    /// fewer than 16 bits are buffered, gives back whole units while 32 or more are. Clears the
    /// bits below the kept ones (raw bytes, not those units, come next now).
    pub(crate) fn hold_16_to_31_bits(&mut self) {
        self.ensure(16);
        while self.count >= 32 {
            self.count = self.count.wrapping_sub(16);
            self.pos = self.pos.saturating_sub(2);
        }
        self.buf &= !u64::MAX.checked_shr(self.count).unwrap_or(0);
    }

    /// Skips to the next 16-bit boundary of the stream; a stream that is already on one skips a
    /// whole unit (LZX uncompressed blocks need this). Leaves the buffer empty.
    pub(crate) fn align_to_unit(&mut self) {
        let consumed_bits = self
            .pos
            .saturating_mul(8)
            .saturating_sub(self.count as usize);
        let aligned_bits = (consumed_bits >> 4).saturating_add(1) << 4;
        self.pos = aligned_bits >> 3;
        self.buf = 0;
        self.count = 0;
    }

    /// Reads `dst.len()` raw bytes at the byte cursor. Bits below the buffered ones must be zero:
    /// call `align_to_unit` or `hold_16_to_31_bits` first.
    pub(crate) fn read_bytes(&mut self, dst: &mut [u8]) -> Result<(), DecodeError> {
        debug_assert!(self.count == 0 || self.buf.checked_shl(self.count).unwrap_or(0) == 0);
        let end = self
            .pos
            .checked_add(dst.len())
            .ok_or(DecodeError::Truncated {
                at: self.data.len(),
            })?;
        let src = self.data.get(self.pos..end).ok_or(DecodeError::Truncated {
            at: self.data.len(),
        })?;
        dst.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }

    /// Reads one raw byte at the byte cursor (see [`Self::read_bytes`]).
    pub(crate) fn read_u8(&mut self) -> Result<u8, DecodeError> {
        let mut b = [0u8; 1];
        self.read_bytes(&mut b)?;
        Ok(b[0])
    }

    /// Reads a raw little-endian u16 at the byte cursor.
    pub(crate) fn read_u16(&mut self) -> Result<u16, DecodeError> {
        let mut b = [0u8; 2];
        self.read_bytes(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a raw little-endian u32 at the byte cursor.
    pub(crate) fn read_u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        self.read_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

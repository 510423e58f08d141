//! Checked little-endian field access and arithmetic for patching on-disk structures in place.
//! Every patcher edits a copy of the sector or record it read, field by field, so bytes it does
//! not know about are kept as they were.

use crate::error::{Error, Result};

fn field<'a>(buf: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    at.checked_add(len)
        .and_then(|end| buf.get(at..end))
        .ok_or_else(|| {
            Error::corrupt(
                what,
                at as u64,
                format!("field of {len} bytes past the end ({})", buf.len()),
            )
        })
}

fn field_mut<'a>(buf: &'a mut [u8], at: usize, len: usize, what: &str) -> Result<&'a mut [u8]> {
    let buf_len = buf.len();
    at.checked_add(len)
        .and_then(move |end| buf.get_mut(at..end))
        .ok_or_else(|| {
            Error::corrupt(
                what,
                at as u64,
                format!("field of {len} bytes past the end ({buf_len})"),
            )
        })
}

/// Reads `N` bytes at `at`.
pub fn get<const N: usize>(buf: &[u8], at: usize, what: &str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(field(buf, at, N, what)?);
    Ok(out)
}

/// Writes `bytes` at `at`.
pub fn put(buf: &mut [u8], at: usize, bytes: &[u8], what: &str) -> Result<()> {
    field_mut(buf, at, bytes.len(), what)?.copy_from_slice(bytes);
    Ok(())
}

/// Reads a little-endian u16.
pub fn u16_at(buf: &[u8], at: usize, what: &str) -> Result<u16> {
    Ok(u16::from_le_bytes(get(buf, at, what)?))
}

/// Reads a little-endian u32.
pub fn u32_at(buf: &[u8], at: usize, what: &str) -> Result<u32> {
    Ok(u32::from_le_bytes(get(buf, at, what)?))
}

/// Reads a little-endian u64.
pub fn u64_at(buf: &[u8], at: usize, what: &str) -> Result<u64> {
    Ok(u64::from_le_bytes(get(buf, at, what)?))
}

/// Writes a little-endian u16.
pub fn put_u16(buf: &mut [u8], at: usize, v: u16, what: &str) -> Result<()> {
    put(buf, at, &v.to_le_bytes(), what)
}

/// Writes a little-endian u32.
pub fn put_u32(buf: &mut [u8], at: usize, v: u32, what: &str) -> Result<()> {
    put(buf, at, &v.to_le_bytes(), what)
}

/// Writes a little-endian u64.
pub fn put_u64(buf: &mut [u8], at: usize, v: u64, what: &str) -> Result<()> {
    put(buf, at, &v.to_le_bytes(), what)
}

/// Checked arithmetic that names what overflowed.
pub fn add(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| Error::corrupt(what, 0, format!("{a} + {b} overflows")))
}

/// `a - b`, an error when `b > a`.
pub fn sub(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_sub(b)
        .ok_or_else(|| Error::corrupt(what, 0, format!("{a} - {b} is negative")))
}

/// `a * b`, checked.
pub fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| Error::corrupt(what, 0, format!("{a} * {b} overflows")))
}

/// `ceil(a / b)` for `b > 0`.
pub fn div_ceil(a: u64, b: u64, what: &str) -> Result<u64> {
    if b == 0 {
        return Err(Error::corrupt(what, 0, "division by zero"));
    }
    Ok(a.div_ceil(b))
}

/// `a` rounded up to a multiple of `b` (`b > 0`).
pub fn align_up(a: u64, b: u64, what: &str) -> Result<u64> {
    mul(div_ceil(a, b, what)?, b, what)
}

/// A u64 as usize, or an error naming the value.
pub fn usize_of(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::corrupt(what, 0, format!("{v} does not fit in memory")))
}

/// `a / b`, an error for `b == 0`.
pub fn div(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_div(b)
        .ok_or_else(|| Error::corrupt(what, 0, "division by zero"))
}

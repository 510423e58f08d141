//! GUIDs as Microsoft stores them: the first three fields little-endian, the last eight bytes as
//! they are. VHDX names its regions and metadata items this way.

use std::fmt;

/// A GUID in its on-disk byte order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written as `AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE`, given as its fields.
    pub(crate) const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Self {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }

    /// True for the all-zero GUID.
    pub(crate) fn is_nil(&self) -> bool {
        self.0 == [0u8; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a0, a1, a2, a3, b0, b1, c0, c1, d @ ..] = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-",
            u32::from_le_bytes([a0, a1, a2, a3]),
            u16::from_le_bytes([b0, b1]),
            u16::from_le_bytes([c0, c1])
        )?;
        let [d0, d1, rest @ ..] = d;
        write!(f, "{d0:02x}{d1:02x}-")?;
        for byte in rest {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_form() {
        let g = Guid::from_fields(
            0x2DC2_7766,
            0xF623,
            0x4200,
            [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
        );
        assert_eq!(g.0[..4], [0x66, 0x77, 0xC2, 0x2D]);
        assert_eq!(g.to_string(), "2dc27766-f623-4200-9d64-115e9bfd4a08");
    }
}

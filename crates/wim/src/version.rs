//! Windows version numbers as WIM XML records them: MAJOR.MINOR.BUILD.SPBUILD, e.g.
//! 10.0.19041.5728, where SPBUILD is the update build revision (UBR) of the captured image.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Windows version, compared numerically part by part (10.0.19041.10 < 10.0.19041.9999 <
/// 10.0.22621.1). Displays and serializes as "10.0.19041.5728".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WindowsVersion {
    /// MAJOR, e.g. 10.
    pub major: u32,
    /// MINOR, e.g. 0.
    pub minor: u32,
    /// BUILD, e.g. 19041.
    pub build: u32,
    /// SPBUILD (the UBR), e.g. 5728.
    pub spbuild: u32,
}

impl WindowsVersion {
    /// A version from its four parts.
    pub const fn new(major: u32, minor: u32, build: u32, spbuild: u32) -> Self {
        Self {
            major,
            minor,
            build,
            spbuild,
        }
    }
}

impl fmt::Display for WindowsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.spbuild
        )
    }
}

/// Why a string is not a Windows version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Windows version (expected MAJOR.MINOR.BUILD[.SPBUILD] in decimal): {0:?}")]
pub struct ParseVersionError(pub String);

impl FromStr for WindowsVersion {
    type Err = ParseVersionError;

    /// Parses "10.0.19041.5728", or "10.0.19041" (SPBUILD 0). Each part is a decimal number of
    /// at most 10 digits that fits in 32 bits; no signs, spaces or empty parts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_owned());
        let mut parts = [0u32; 4];
        let mut count = 0usize;
        for piece in s.split('.') {
            let slot = parts.get_mut(count).ok_or_else(err)?;
            if piece.is_empty() || piece.len() > 10 || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            *slot = piece.parse().map_err(|_| err())?;
            count = count.saturating_add(1);
        }
        if count < 3 {
            return Err(err());
        }
        let [major, minor, build, spbuild] = parts;
        Ok(Self {
            major,
            minor,
            build,
            spbuild,
        })
    }
}

impl Serialize for WindowsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WindowsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn parses_displays_and_orders_numerically() {
        let v: WindowsVersion = "10.0.19041.5728".parse().unwrap();
        assert_eq!(v, WindowsVersion::new(10, 0, 19041, 5728));
        assert_eq!(v.to_string(), "10.0.19041.5728");
        assert_eq!(
            "10.0.22621".parse::<WindowsVersion>().unwrap(),
            WindowsVersion::new(10, 0, 22621, 0)
        );
        // Numeric, not lexicographic.
        let a: WindowsVersion = "10.0.19041.999".parse().unwrap();
        let b: WindowsVersion = "10.0.19041.1000".parse().unwrap();
        assert!(a < b);
        assert!(WindowsVersion::new(10, 0, 19045, 1) > WindowsVersion::new(10, 0, 19041, 9999));
        assert!(WindowsVersion::new(6, 3, 9600, 0) < WindowsVersion::new(10, 0, 0, 0));
        for bad in [
            "",
            "10",
            "10.0",
            "10.0.x.1",
            "10..0.1",
            "10.0.1.2.3",
            "+1.0.0.0",
            " 10.0.0.0",
            "10.0.0.4294967296",
            "10.0.0.-1",
        ] {
            assert!(bad.parse::<WindowsVersion>().is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"10.0.19041.5728\"");
        assert_eq!(
            serde_json::from_str::<WindowsVersion>("\"10.0.19041.5728\"").unwrap(),
            v
        );
    }
}

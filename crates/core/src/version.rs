//! Windows build versions as WinRE reports them: MAJOR.MINOR.BUILD.REVISION, e.g. 10.0.19041.5728.
//!
//! The registry value `WinREVersion` holds this string; a WIM's XML gives the same four numbers as
//! MAJOR, MINOR, BUILD and SPBUILD. Versions compare numerically part by part ("10.0.19041.999" is
//! older than "10.0.19041.5728"), never as text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A four-part Windows version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WinreVersion {
    /// 10 for Windows 10 and 11.
    pub major: u32,
    /// 0 for Windows 10 and 11.
    pub minor: u32,
    /// The build, e.g. 19041 (WinRE of Windows 10 2004..22H2), 22621, 26100.
    pub build: u32,
    /// The update revision (UBR / SPBUILD), e.g. 5728.
    pub revision: u32,
}

/// Why a string is not a four-part version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Windows version MAJOR.MINOR.BUILD.REVISION: {reason}")]
pub struct ParseVersionError {
    /// The text given (cut to 64 characters).
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl WinreVersion {
    /// A version from its four parts.
    pub const fn new(major: u32, minor: u32, build: u32, revision: u32) -> Self {
        WinreVersion {
            major,
            minor,
            build,
            revision,
        }
    }
}

impl FromStr for WinreVersion {
    type Err = ParseVersionError;

    /// Parses exactly four decimal parts separated by dots; surrounding whitespace and a NUL
    /// terminator (as registry strings sometimes keep) are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseVersionError {
            input: s.chars().take(64).collect(),
            reason,
        };
        let text = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        let parts: Vec<&str> = text.split('.').collect();
        let [major, minor, build, revision] = parts.as_slice() else {
            return Err(err(format!("{} parts, expected 4", parts.len())));
        };
        let num = |p: &str| -> Result<u32, ParseVersionError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("part {p:?} is not a decimal number")));
            }
            p.parse()
                .map_err(|_| err(format!("part {p:?} is too large")))
        };
        Ok(WinreVersion::new(
            num(major)?,
            num(minor)?,
            num(build)?,
            num(revision)?,
        ))
    }
}

impl fmt::Display for WinreVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.revision
        )
    }
}

impl Serialize for WinreVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WinreVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_displays_and_compares_numerically() {
        let v: WinreVersion = "10.0.19041.5728".parse().unwrap();
        assert_eq!(v, WinreVersion::new(10, 0, 19041, 5728));
        assert_eq!(v.to_string(), "10.0.19041.5728");
        let older: WinreVersion = "10.0.19041.999".parse().unwrap();
        assert!(older < v, "numeric, not textual, comparison");
        assert!("10.0.22621.3000".parse::<WinreVersion>().unwrap() > v);
        assert_eq!(
            " 10.0.19041.3920\0"
                .parse::<WinreVersion>()
                .unwrap()
                .revision,
            3920
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "10.0.19041",
            "10.0.19041.1.2",
            "10.0.x.1",
            "10..19041.1",
            "10.0.19041.-1",
            "10.0.19041.99999999999",
        ] {
            assert!(bad.parse::<WinreVersion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serializes_as_a_string() {
        let v = WinreVersion::new(10, 0, 26100, 7149);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"10.0.26100.7149\"");
        assert_eq!(serde_json::from_str::<WinreVersion>(&json).unwrap(), v);
        assert!(serde_json::from_str::<WinreVersion>("\"10.0\"").is_err());
    }
}

//! SHA-1 digests, the names of blobs in a WIM.

use std::fmt;

use serde::Serialize;

/// A SHA-1 digest; displayed and serialized as 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sha1Digest(pub [u8; 20]);

impl Sha1Digest {
    /// True for the all-zero digest, which marks unused blob table entries.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }

    /// SHA-1 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha1::Digest;
        Self(sha1::Sha1::digest(bytes).into())
    }
}

impl fmt::Display for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Sha1Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

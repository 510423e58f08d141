//! The resource header: where a resource (a blob, the blob table, the XML data, the integrity
//! table) sits in the WIM and how it is stored.
//!
// Sources: wimlib include/wimlib/resource.h (`struct wim_reshdr_disk`, `WIM_RESHDR_FLAG_*`) and
// src/resource.c (`get_wim_reshdr`).

use serde::Serialize;
use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::{Error, Result};

/// A resource header as stored: 24 bytes, little-endian, no alignment (the integrity table's
/// header sits at +0x7C of the WIM header, 4-byte aligned only).
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ResourceHeaderDisk {
    /// +0x00 bytes 0..7: stored size (56 bits); byte 7: flags.
    pub size_and_flags: [u8; 8],
    /// +0x08 offset of the resource in the WIM.
    pub offset: U64,
    /// +0x10 size once decompressed.
    pub original_size: U64,
}

/// Resource flags (the top byte of the first field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceFlags(pub u8);

impl ResourceFlags {
    /// The space is free (the resource was deleted).
    pub const FREE: u8 = 0x01;
    /// Image metadata (also set on the blob table and the XML data).
    pub const METADATA: u8 = 0x02;
    /// Stored in compressed chunks behind a chunk table.
    pub const COMPRESSED: u8 = 0x04;
    /// Spans parts of a split WIM.
    pub const SPANNED: u8 = 0x08;
    /// Part of a solid resource (WIM version 0xE00).
    pub const SOLID: u8 = 0x10;

    /// True when every bit of `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }

    /// The names of the set flags, for reports.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::FREE, "free"),
            (Self::METADATA, "metadata"),
            (Self::COMPRESSED, "compressed"),
            (Self::SPANNED, "spanned"),
            (Self::SOLID, "solid"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

impl Serialize for ResourceFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// A resource header in native form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ResourceHeader {
    /// Byte offset of the stored resource in the WIM.
    pub offset: u64,
    /// Stored size in the WIM (chunk table included when compressed).
    pub size_in_wim: u64,
    /// Size once decompressed.
    pub original_size: u64,
    /// The flags byte.
    pub flags: ResourceFlags,
}

impl From<&ResourceHeaderDisk> for ResourceHeader {
    fn from(disk: &ResourceHeaderDisk) -> Self {
        let [b0, b1, b2, b3, b4, b5, b6, flags] = disk.size_and_flags;
        Self {
            offset: disk.offset.get(),
            size_in_wim: u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, 0]),
            original_size: disk.original_size.get(),
            flags: ResourceFlags(flags),
        }
    }
}

impl ResourceHeader {
    /// True when the resource is stored in compressed chunks.
    pub fn is_compressed(&self) -> bool {
        self.flags.has(ResourceFlags::COMPRESSED)
    }

    /// True for a resource inside (or describing) a solid resource.
    pub fn is_solid(&self) -> bool {
        self.flags.has(ResourceFlags::SOLID)
    }

    /// True when no resource is described (all sizes zero).
    pub fn is_empty(&self) -> bool {
        self.size_in_wim == 0 && self.original_size == 0
    }

    /// The offset just past the stored resource, or an error naming `what` on overflow.
    pub fn end(&self, what: &str) -> Result<u64> {
        self.offset.checked_add(self.size_in_wim).ok_or_else(|| {
            Error::corrupt(
                what,
                self.offset,
                format!("offset + size {} overflows", self.size_in_wim),
            )
        })
    }

    /// Checks that the stored resource lies within a file of `file_len` bytes and that an
    /// uncompressed resource's two sizes agree.
    pub fn check_within(&self, what: &str, file_len: u64) -> Result<()> {
        let end = self.end(what)?;
        if end > file_len {
            return Err(Error::corrupt(
                what,
                self.offset,
                format!("resource of {} bytes ends at {end}, past the end of the file ({file_len} bytes)", self.size_in_wim),
            ));
        }
        if !self.is_compressed() && !self.is_solid() && self.size_in_wim != self.original_size {
            return Err(Error::corrupt(
                what,
                self.offset,
                format!(
                    "uncompressed resource has stored size {} but original size {}",
                    self.size_in_wim, self.original_size
                ),
            ));
        }
        Ok(())
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
    fn decodes_56_bit_size_and_flags() {
        let mut raw = [0u8; 24];
        raw[..7].copy_from_slice(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        raw[7] = ResourceFlags::COMPRESSED | ResourceFlags::METADATA;
        raw[8..16].copy_from_slice(&0x1122u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x99u64.to_le_bytes());
        let disk = ResourceHeaderDisk::read_from_bytes(&raw[..])
            .map_err(|_| ())
            .unwrap();
        let h = ResourceHeader::from(&disk);
        assert_eq!(h.size_in_wim, 0x07_0605_0403_0201);
        assert_eq!(h.offset, 0x1122);
        assert_eq!(h.original_size, 0x99);
        assert!(h.is_compressed());
        assert_eq!(h.flags.names(), ["metadata", "compressed"]);
    }
}

//! The security data block at the start of a metadata resource: the image's security
//! descriptors, which dentries name by index.
//!
//! Layout: `u32 total_length`, `u32 num_entries`, `u64 sizes[num_entries]`, then the descriptors
//! back to back. `total_length` covers the whole block; the dentry tree starts at
//! `total_length` rounded up to 8, and a stored 0 means 8 (an empty block).
//!
// Sources: wimlib src/security.c (`read_wim_security_data`) and include/wimlib/security.h.

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::{Error, Result};

/// Largest single security descriptor: the format stores sizes as u64 but the block's total
/// length is a u32, so nothing larger can be valid.
pub const MAX_DESCRIPTOR_BYTES: u64 = u32::MAX as u64;

/// The fixed start of the block as stored.
#[derive(Debug, Clone, Copy, FromBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SecurityHeaderDisk {
    /// +0x00 length of the whole block in bytes (rounded up to 8 when read; 0 means 8).
    pub total_length: U32,
    /// +0x04 number of descriptors.
    pub num_entries: U32,
}

/// The security data block, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityData {
    /// Length of the block as used: rounded up to 8; where the root dentry starts.
    pub total_length_bytes: u64,
    /// Each descriptor's bytes (self-relative SECURITY_DESCRIPTOR), by security id.
    pub descriptors: Vec<Vec<u8>>,
    /// Oddities that do not stop reading (a stored length that disagrees with the sizes).
    pub warnings: Vec<String>,
}

impl SecurityData {
    /// Parses the block at the start of `resource` (an image's uncompressed metadata resource,
    /// which begins at `resource_offset` in the WIM, for messages). Refuses a block longer than
    /// the resource, a size table that does not fit in the block, or descriptors that overrun
    /// it, as [`Error::Corrupt`]; every size is checked before anything is allocated.
    pub fn parse(resource: &[u8], resource_offset: u64) -> Result<Self> {
        let what = "metadata security data";
        let corrupt = |detail: String| Error::corrupt(what, resource_offset, detail);
        let (head, _) = SecurityHeaderDisk::ref_from_prefix(resource).map_err(|_| {
            corrupt(format!(
                "metadata resource of {} bytes is too short for the 8-byte security header",
                resource.len()
            ))
        })?;
        let stored_length = u64::from(head.total_length.get());
        let total_length_bytes = match stored_length.next_multiple_of(8) {
            0 => 8,
            n => n,
        };
        let resource_len = resource.len() as u64;
        if total_length_bytes > resource_len {
            return Err(corrupt(format!(
                "block claims {stored_length} bytes but the metadata resource holds {resource_len}"
            )));
        }
        let count = u64::from(head.num_entries.get());
        // 8 header bytes + 8 per size; both factors are < 2^33, no overflow.
        let sizes_end = count.saturating_mul(8).saturating_add(8);
        if sizes_end > total_length_bytes {
            return Err(corrupt(format!(
                "{count} descriptor sizes need {sizes_end} bytes but the block holds {total_length_bytes}"
            )));
        }
        let block = resource
            .get(..usize::try_from(total_length_bytes).unwrap_or(usize::MAX))
            .unwrap_or_default();
        let sizes_bytes = block
            .get(8..usize::try_from(sizes_end).unwrap_or(usize::MAX))
            .unwrap_or_default();
        let mut descriptors = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut at = sizes_end;
        for (i, raw) in sizes_bytes.chunks_exact(8).enumerate() {
            let size = u64::from_le_bytes(raw.try_into().unwrap_or([0xff; 8]));
            let end = at
                .checked_add(size)
                .filter(|&e| size <= MAX_DESCRIPTOR_BYTES && e <= total_length_bytes);
            let Some(end) = end else {
                return Err(Error::corrupt(
                    what,
                    resource_offset.saturating_add(at),
                    format!(
                        "descriptor {i} of {size} bytes at block offset {at} overruns the block of {total_length_bytes} bytes"
                    ),
                ));
            };
            let bytes = block
                .get(
                    usize::try_from(at).unwrap_or(usize::MAX)
                        ..usize::try_from(end).unwrap_or(usize::MAX),
                )
                .unwrap_or_default();
            descriptors.push(bytes.to_vec());
            at = end;
        }
        let mut warnings = Vec::new();
        if at.next_multiple_of(8) != total_length_bytes {
            warnings.push(format!(
                "security data length is {stored_length} bytes but its descriptors end at {at}"
            ));
        }
        Ok(Self {
            total_length_bytes,
            descriptors,
            warnings,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn block(total: u32, sizes: &[u64], body: &[u8]) -> Vec<u8> {
        let mut b = total.to_le_bytes().to_vec();
        b.extend((sizes.len() as u32).to_le_bytes());
        for s in sizes {
            b.extend(s.to_le_bytes());
        }
        b.extend(body);
        b
    }

    #[test]
    fn reads_descriptors_and_rounds_the_length() {
        let mut b = block(8 + 16 + 5 + 3, &[5, 3], b"AAAAABBB");
        b.resize(40, 0);
        let sd = SecurityData::parse(&b, 100).unwrap();
        assert_eq!(sd.total_length_bytes, 32);
        assert_eq!(sd.descriptors, vec![b"AAAAA".to_vec(), b"BBB".to_vec()]);
        assert!(sd.warnings.is_empty());
    }

    #[test]
    fn zero_length_means_eight() {
        let sd = SecurityData::parse(&[0u8; 16], 0).unwrap();
        assert_eq!(sd.total_length_bytes, 8);
        assert!(sd.descriptors.is_empty());
    }

    #[test]
    fn refuses_hostile_lengths() {
        // A block claiming 4 GiB in a small resource.
        let b = block(0xFFFF_FFF8, &[], &[0; 64]);
        let e = SecurityData::parse(&b, 7).unwrap_err().to_string();
        assert!(
            e.contains("security data") && e.contains("4294967288"),
            "{e}"
        );
        // A count whose sizes cannot fit.
        let mut b = block(64, &[], &[0; 56]);
        b[4..8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        assert!(SecurityData::parse(&b, 0).is_err());
        // A descriptor size past the block (and one near u64::MAX).
        for size in [100, u64::MAX - 4] {
            let mut b = block(24, &[size], &[0; 8]);
            b.resize(64, 0);
            assert!(SecurityData::parse(&b, 0).is_err());
        }
        assert!(SecurityData::parse(&[1, 2, 3], 0).is_err());
    }
}

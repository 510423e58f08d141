//! Free space of an NTFS volume: the clear bits of `$Bitmap` (MFT record 6), one bit per
//! cluster, bit `i % 8` of byte `i / 8` for cluster `i`, times the cluster size.
//!
// Sources: Linux-NTFS documentation, "Files - $Bitmap" (flatcap.github.io/linux-ntfs/ntfs/files/bitmap.html).

use winre_readat::ReadAt;

use super::volume::NtfsVolume;
use crate::error::{Error, Result};

/// MFT record number of `$Bitmap`.
const BITMAP_RECORD: u64 = 6;

/// Bytes of `$Bitmap` read at a time: memory stays bounded whatever the volume size.
const BLOCK_BYTES: usize = 1 << 20;

/// Free and total clusters of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FreeSpace {
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Clusters in the volume.
    pub total_clusters: u64,
    /// Clusters whose `$Bitmap` bit is clear.
    pub free_clusters: u64,
}

impl FreeSpace {
    /// Free bytes: free clusters times the cluster size.
    pub fn free_bytes(&self) -> u64 {
        self.free_clusters
            .saturating_mul(u64::from(self.cluster_size))
    }

    /// Volume bytes in whole clusters.
    pub fn total_bytes(&self) -> u64 {
        self.total_clusters
            .saturating_mul(u64::from(self.cluster_size))
    }
}

impl NtfsVolume {
    /// Counts the free clusters in `$Bitmap`. Bits past the last cluster (the bitmap is rounded
    /// up to 8 bytes or more) are ignored. A bitmap too short for the volume's cluster count is
    /// [`Error::Corrupt`].
    pub fn free_space(&self) -> Result<FreeSpace> {
        let bitmap_file = self.open_record(BITMAP_RECORD)?;
        let bitmap = bitmap_file.data_reader()?;
        let total_clusters = self.total_clusters();
        let needed_bytes = total_clusters.div_ceil(8);
        if bitmap.len() < needed_bytes {
            return Err(Error::corrupt(
                "$Bitmap",
                bitmap_file.record_offset(),
                format!(
                    "it has {} bytes, but the volume's {total_clusters} clusters need {needed_bytes}",
                    bitmap.len()
                ),
            ));
        }
        let used = count_set_bits(&bitmap, total_clusters)?;
        Ok(FreeSpace {
            cluster_size: self.cluster_size(),
            total_clusters,
            free_clusters: total_clusters.saturating_sub(used),
        })
    }
}

/// Counts the set bits among the first `bits` bits of `source`, reading it in blocks.
pub(crate) fn count_set_bits(source: &dyn ReadAt, bits: u64) -> Result<u64> {
    let whole_bytes = bits / 8;
    let mut buffer = vec![0u8; BLOCK_BYTES];
    let mut set = 0u64;
    let mut offset = 0u64;
    while offset < whole_bytes {
        let take = usize::try_from(whole_bytes.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(BLOCK_BYTES);
        let block = buffer.get_mut(..take).unwrap_or_default();
        source.read_exact_at(offset, block)?;
        set = set.saturating_add(popcount(block));
        offset = offset.saturating_add(take as u64);
    }
    let tail_bits = bits % 8;
    if tail_bits != 0 {
        let mut last = [0u8; 1];
        source.read_exact_at(whole_bytes, &mut last)?;
        let mask = (1u8 << tail_bits).wrapping_sub(1);
        set = set.saturating_add(u64::from((last[0] & mask).count_ones()));
    }
    Ok(set)
}

/// Set bits in `bytes`, eight bytes at a time. A block holds at most 2^23 bits, so the sum cannot
/// wrap; plain wrapping adds let the compiler vectorize the loop.
fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut set = 0u64;
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        set = set.wrapping_add(u64::from(w.count_ones()));
    }
    for byte in words.remainder() {
        set = set.wrapping_add(u64::from(byte.count_ones()));
    }
    set
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
    fn counts_only_the_wanted_bits() {
        let bytes: Vec<u8> = vec![
            0xff,
            0x0f,
            0b1010_0101,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x01,
        ];
        assert_eq!(count_set_bits(&bytes, 0).unwrap(), 0);
        assert_eq!(count_set_bits(&bytes, 8).unwrap(), 8);
        assert_eq!(count_set_bits(&bytes, 12).unwrap(), 12);
        assert_eq!(count_set_bits(&bytes, 16).unwrap(), 12);
        assert_eq!(count_set_bits(&bytes, 19).unwrap(), 14);
        assert_eq!(count_set_bits(&bytes, 80).unwrap(), 12 + 4 + 48 + 1);
        assert!(count_set_bits(&bytes, 81).is_err());
    }

    #[test]
    fn counts_across_blocks() {
        let mut bytes = vec![0u8; BLOCK_BYTES * 2 + 3];
        bytes[0] = 1;
        bytes[BLOCK_BYTES - 1] = 0x80;
        bytes[BLOCK_BYTES] = 0x03;
        bytes[BLOCK_BYTES * 2 + 2] = 0xff;
        let bits = bytes.len() as u64 * 8;
        assert_eq!(count_set_bits(&bytes, bits).unwrap(), 1 + 1 + 2 + 8);
        assert_eq!(count_set_bits(&bytes, bits - 4).unwrap(), 1 + 1 + 2 + 4);
    }
}

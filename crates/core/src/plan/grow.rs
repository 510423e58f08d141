//! The NTFS arithmetic of a partition size change: how many clusters a volume has in a
//! partition of a given size, what its `$Bitmap` takes, and the smallest aligned growth that
//! leaves the required free space.
//!
//! The formula, for a volume with `S` bytes per sector and `C` bytes per cluster filling a
//! partition of `P` bytes:
//!
//! - The boot sector's total sectors is `P / S - 1`: the last sector of the partition holds the
//!   backup boot sector and lies outside the volume (Windows and mkntfs both do this), so the
//!   volume has `clusters(P) = floor((P - S) / C)` clusters. Growing a 1 MiB-aligned partition by
//!   `G` bytes (a multiple of `C`) adds exactly `G / C` clusters; the new backup boot sector costs
//!   no cluster of its own, because the old one's sector (in the partial cluster past the old
//!   end) becomes part of the first added cluster, and the new one takes the same place at the
//!   new end. The formula is used as is, so a partition that is not aligned is counted exactly.
//! - `$Bitmap` holds one bit per cluster, its data size rounded up to a multiple of 8 bytes, in
//!   whole clusters: `bitmap_clusters(N) = ceil(ceil8(ceil(N / 8)) / C)`. Growing the volume
//!   from `N` to `N'` clusters makes `$Bitmap` take `bitmap_clusters(N') - allocated` more
//!   clusters (its current allocation may already cover them), and those come out of the added
//!   space.
//! - Free clusters after = free now + `(N' - N)` - the extra `$Bitmap` clusters. The volume
//!   needs `ceil(required / C)` free clusters.
//!
//! The growth is searched, not solved: start at the shortfall rounded up to the alignment, add
//! one alignment step while the free clusters fall short. `$Bitmap` grows by one cluster per
//! `8 C` clusters added, so one or two steps always suffice; the search stops after
//! [`MAX_STEPS`] anyway.
//!
// Sources: Linux-NTFS documentation, "Files - $Boot" (total sectors at +0x28, the backup boot
// sector in the last sector) and "Files - $Bitmap"; ntfs-3g's ntfsresize, which sizes the
// volume of a partition as `(bytes - sector size) / cluster size` and the bitmap as
// `ceil(clusters / 8)` rounded up to 8 bytes.

/// Most alignment steps the growth search takes.
const MAX_STEPS: u64 = 64;

/// What the plan needs to know about an NTFS volume to resize it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtfsFacts {
    /// NTFS bytes per sector (boot sector +0x0B).
    pub bytes_per_sector: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Clusters now (from the boot sector's total sectors).
    pub total_clusters: u64,
    /// Free clusters now (clear `$Bitmap` bits).
    pub free_clusters: u64,
    /// Bytes allocated to `$Bitmap` now.
    pub bitmap_allocated_bytes: u64,
}

/// Clusters of a volume that fills a partition of `partition_bytes`; `None` when the partition
/// is not larger than one sector or the cluster size is 0.
pub fn clusters_for(partition_bytes: u64, facts: &NtfsFacts) -> Option<u64> {
    partition_bytes
        .checked_sub(u64::from(facts.bytes_per_sector))?
        .checked_div(u64::from(facts.cluster_size))
}

/// Boot sector total sectors of a volume filling `partition_bytes`: all but the last sector.
pub fn total_sectors_for(partition_bytes: u64, facts: &NtfsFacts) -> Option<u64> {
    partition_bytes
        .checked_div(u64::from(facts.bytes_per_sector))?
        .checked_sub(1)
}

/// Clusters `$Bitmap` takes for `clusters` bits.
pub fn bitmap_clusters(clusters: u64, cluster_size: u32) -> u64 {
    let bytes = clusters.div_ceil(8).div_ceil(8).saturating_mul(8);
    bytes.div_ceil(u64::from(cluster_size.max(1)))
}

/// The volume after growing into a partition of `new_partition_bytes`: (clusters, free clusters,
/// `$Bitmap` clusters). `None` when the arithmetic does not work out (a smaller partition).
pub fn grown(new_partition_bytes: u64, facts: &NtfsFacts) -> Option<(u64, u64, u64)> {
    let clusters = clusters_for(new_partition_bytes, facts)?;
    let added = clusters.checked_sub(facts.total_clusters)?;
    let bitmap_now = facts
        .bitmap_allocated_bytes
        .div_ceil(u64::from(facts.cluster_size.max(1)));
    let bitmap_after = bitmap_clusters(clusters, facts.cluster_size).max(bitmap_now);
    let bitmap_extra = bitmap_after.saturating_sub(bitmap_now);
    let free = facts
        .free_clusters
        .checked_add(added)?
        .checked_sub(bitmap_extra)?;
    Some((clusters, free, bitmap_after))
}

/// Free clusters a volume of cluster size `cluster_size` needs for `required_bytes` free.
pub fn required_clusters(required_bytes: u64, cluster_size: u32) -> u64 {
    required_bytes.div_ceil(u64::from(cluster_size.max(1)))
}

/// The smallest new partition size, among `size_for(0)`, `size_for(1)`, ... (each candidate one
/// alignment step larger), whose volume has `required_bytes` free. `None` when none of the
/// first [`MAX_STEPS`] does, or `size_for` says no (it runs out of room).
pub fn smallest_growth(
    facts: &NtfsFacts,
    required_bytes: u64,
    mut size_for: impl FnMut(u64) -> Option<u64>,
) -> Option<u64> {
    let needed = required_clusters(required_bytes, facts.cluster_size);
    for step in 0..MAX_STEPS {
        let size = size_for(step)?;
        if let Some((_, free, _)) = grown(size, facts) {
            if free >= needed {
                return Some(size);
            }
        }
    }
    None
}

/// `value` rounded up to a multiple of `align` (a power of two); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    value.checked_add(mask).map(|v| v & !mask)
}

/// `value` rounded down to a multiple of `align` (a power of two).
pub fn align_down(value: u64, align: u64) -> u64 {
    value & !align.saturating_sub(1)
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

    const MIB: u64 = 1 << 20;

    fn facts(partition: u64, free: u64) -> NtfsFacts {
        let mut f = NtfsFacts {
            bytes_per_sector: 512,
            cluster_size: 4096,
            total_clusters: 0,
            free_clusters: free,
            bitmap_allocated_bytes: 0,
        };
        f.total_clusters = clusters_for(partition, &f).unwrap();
        f.bitmap_allocated_bytes = bitmap_clusters(f.total_clusters, 4096) * 4096;
        f
    }

    #[test]
    fn volume_of_a_partition() {
        let f = facts(100 * MIB, 0);
        // 100 MiB = 25600 clusters; the last sector is the backup boot sector, so one is lost.
        assert_eq!(f.total_clusters, 25_599);
        assert_eq!(total_sectors_for(100 * MIB, &f), Some(204_799));
        // 25599 bits = 3200 bytes, already a multiple of 8: one cluster.
        assert_eq!(bitmap_clusters(25_599, 4096), 1);
        // 32768 clusters fill one bitmap cluster exactly; one more needs a second.
        assert_eq!(bitmap_clusters(32_768, 4096), 1);
        assert_eq!(bitmap_clusters(32_769, 4096), 2);
        assert_eq!(bitmap_clusters(0, 4096), 0);
    }

    #[test]
    fn growth_adds_clusters_minus_bitmap() {
        let f = facts(100 * MIB, 1000);
        // +100 MiB: 25600 clusters more, 51199 in all: the bitmap needs 2 clusters (one more).
        let (clusters, free, bitmap) = grown(200 * MIB, &f).unwrap();
        assert_eq!(clusters, 51_199);
        assert_eq!(bitmap, 2);
        assert_eq!(free, 1000 + 25_600 - 1);
        assert!(grown(50 * MIB, &f).is_none());
    }

    #[test]
    fn smallest_growth_covers_the_bitmap() {
        // Short by exactly 100 MiB of clusters: 100 MiB more is one bitmap cluster short, so the
        // search takes one more MiB.
        let required = 250 * MIB;
        let f = facts(100 * MIB, (150 * MIB) / 4096);
        let size = smallest_growth(&f, required, |k| Some(200 * MIB + k * MIB)).unwrap();
        assert_eq!(size, 201 * MIB);
        // Enough already: the first candidate.
        let rich = facts(100 * MIB, required / 4096);
        assert_eq!(
            smallest_growth(&rich, required, |k| Some(100 * MIB + k * MIB)),
            Some(100 * MIB)
        );
        // No room: None.
        assert_eq!(smallest_growth(&f, required, |_| None), None);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0, MIB), Some(0));
        assert_eq!(align_up(1, MIB), Some(MIB));
        assert_eq!(align_up(MIB, MIB), Some(MIB));
        assert_eq!(align_up(u64::MAX, MIB), None);
        assert_eq!(align_down(MIB + 5, MIB), MIB);
    }
}

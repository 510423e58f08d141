//! What the last clusters of an NTFS volume hold: whether a shrink is possible without moving
//! data, the largest such shrink, and the files in the way.
//!
//! Free or used comes from `$Bitmap` (one bit per cluster). The files come from a walk over the
//! MFT: every in-use record's non-resident attributes (any type, named streams and
//! `$INDEX_ALLOCATION` included) and their data runs; clusters of an extension record are
//! counted for its base record. The walk reads at most [`MAX_MFT_RECORDS`] records and names at
//! most [`MAX_NAMED_FILES`] files; records it cannot parse are counted, not fatal.
//!
// Sources: Linux-NTFS documentation, "Files - $Bitmap", "FILE record" (+0x16 flags, +0x20 base
// record reference) and "Data runs" (flatcap.github.io/linux-ntfs).

use std::collections::BTreeMap;

use ntfs::structured_values::{NtfsFileName, NtfsFileNamespace};
use ntfs::{NtfsAttributeType, NtfsFile};
use winre_readat::ReadAt;

use super::{TailFile, MAX_MFT_RECORDS, MAX_NAMED_FILES};
use crate::ntfs::cursor::NtfsCursor;
use crate::ntfs::volume::byte_position;
use crate::ntfs::{NtfsVolume, MAX_PATH_COMPONENTS};
use crate::{Error, Result};

/// MFT record number of `$MFT` itself.
const MFT_RECORD: u64 = 0;
/// MFT record number of `$Bitmap`.
const BITMAP_RECORD: u64 = 6;
/// MFT record number of the root directory.
const ROOT_RECORD: u64 = 5;
/// Offset of the base record reference in a FILE record header.
const BASE_REFERENCE_OFFSET: u64 = 0x20;
/// Bytes of `$Bitmap` read at a time.
const BLOCK_BYTES: u64 = 1 << 20;

/// Where the used clusters of a volume end, and how many a tail holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// The highest cluster in use, `None` when none is.
    pub last_used_cluster: Option<u64>,
    /// Used clusters in `from_cluster..total_clusters`.
    pub used_tail_clusters: u64,
}

/// Reads `$Bitmap` of `volume`: the last used cluster and the used clusters from `from_cluster`
/// to the end of the volume.
pub fn occupancy(volume: &NtfsVolume, from_cluster: u64) -> Result<Occupancy> {
    let bitmap_file = volume.open_record(BITMAP_RECORD)?;
    let bitmap = bitmap_file.data_reader()?;
    let total = volume.total_clusters();
    if bitmap.len() < total.div_ceil(8) {
        return Err(Error::corrupt(
            "$Bitmap",
            bitmap_file.record_offset(),
            format!(
                "it has {} bytes, but the volume's {total} clusters need {}",
                bitmap.len(),
                total.div_ceil(8)
            ),
        ));
    }
    Ok(Occupancy {
        last_used_cluster: last_set_bit(&bitmap, total)?,
        used_tail_clusters: count_set_bits(&bitmap, from_cluster.min(total), total)?,
    })
}

/// The set bits among bits `from..to` of `source` (bit `i % 8` of byte `i / 8`).
pub(crate) fn count_set_bits(source: &dyn ReadAt, from: u64, to: u64) -> Result<u64> {
    let mut set = 0u64;
    let mut block = Vec::new();
    let mut bit = from;
    while bit < to {
        let first_byte = bit / 8;
        let last_byte = (to.saturating_sub(1)) / 8;
        let bytes = (last_byte.saturating_sub(first_byte).saturating_add(1)).min(BLOCK_BYTES);
        block.resize(usize::try_from(bytes).unwrap_or(0), 0);
        source.read_exact_at(first_byte, &mut block)?;
        for (i, byte) in block.iter().enumerate() {
            let base = first_byte.saturating_add(i as u64).saturating_mul(8);
            if base.saturating_add(8) <= to && base >= bit {
                set = set.saturating_add(u64::from(byte.count_ones()));
                continue;
            }
            for b in 0..8u64 {
                let index = base.saturating_add(b);
                if index >= bit && index < to && byte >> b & 1 == 1 {
                    set = set.saturating_add(1);
                }
            }
        }
        bit = first_byte.saturating_add(bytes).saturating_mul(8);
    }
    Ok(set)
}

/// The highest set bit below `bits` in `source`, read backwards a block at a time.
pub(crate) fn last_set_bit(source: &dyn ReadAt, bits: u64) -> Result<Option<u64>> {
    let mut end_byte = bits.div_ceil(8);
    let mut block = Vec::new();
    while end_byte > 0 {
        let start_byte = end_byte.saturating_sub(BLOCK_BYTES);
        block.resize(
            usize::try_from(end_byte.saturating_sub(start_byte)).unwrap_or(0),
            0,
        );
        source.read_exact_at(start_byte, &mut block)?;
        for (i, byte) in block.iter().enumerate().rev() {
            if *byte == 0 {
                continue;
            }
            let base = start_byte.saturating_add(i as u64).saturating_mul(8);
            for b in (0..8u64).rev() {
                let index = base.saturating_add(b);
                if index < bits && byte >> b & 1 == 1 {
                    return Ok(Some(index));
                }
            }
        }
        end_byte = start_byte;
    }
    Ok(None)
}

/// The files holding clusters in `from_cluster..to_cluster`, the biggest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TailWalk {
    /// At most [`MAX_NAMED_FILES`] files, named.
    pub files: Vec<TailFile>,
    /// Files with clusters there beyond those named.
    pub more: u64,
    /// True when the walk stopped at [`MAX_MFT_RECORDS`].
    pub truncated: bool,
    /// Records that could not be parsed (skipped).
    pub unreadable_records: u64,
}

/// Walks the MFT of `volume` for the files with clusters in `from_cluster..to_cluster`.
pub fn files_in(volume: &NtfsVolume, from_cluster: u64, to_cluster: u64) -> Result<TailWalk> {
    let record_bytes = u64::from(volume.record_size());
    let mft = volume.open_record(MFT_RECORD)?;
    let records = mft.size().checked_div(record_bytes).unwrap_or(0);
    let walked = records.min(MAX_MFT_RECORDS);
    let cluster_size = u64::from(volume.cluster_size());
    let mut owners: BTreeMap<u64, u64> = BTreeMap::new();
    let mut unreadable = 0u64;
    for record in 0..walked {
        let mut fs = volume.cursor();
        match tail_clusters_of(
            volume,
            &mut fs,
            record,
            cluster_size,
            from_cluster,
            to_cluster,
        ) {
            Ok(Some((owner, clusters))) if clusters > 0 => {
                let entry = owners.entry(owner).or_insert(0);
                *entry = entry.saturating_add(clusters);
            }
            Ok(_) => {}
            Err(_) => unreadable = unreadable.saturating_add(1),
        }
    }
    let mut by_size: Vec<(u64, u64)> = owners.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = by_size.len().saturating_sub(MAX_NAMED_FILES) as u64;
    let files = by_size
        .into_iter()
        .take(MAX_NAMED_FILES)
        .map(|(record, tail_clusters)| TailFile {
            path: path_of(volume, record).unwrap_or_else(|| format!("MFT record {record}")),
            record,
            tail_clusters,
        })
        .collect();
    Ok(TailWalk {
        files,
        more,
        truncated: walked < records,
        unreadable_records: unreadable,
    })
}

/// The clusters record `record`'s own non-resident attributes hold in the range, and the base
/// record they belong to; `None` when the record is not in use.
fn tail_clusters_of(
    volume: &NtfsVolume,
    fs: &mut NtfsCursor,
    record: u64,
    cluster_size: u64,
    from_cluster: u64,
    to_cluster: u64,
) -> Result<Option<(u64, u64)>> {
    let Some(file) = volume.file_if_in_use(fs, record)? else {
        return Ok(None);
    };
    let owner = base_record(volume, &file)?.unwrap_or(record);
    let mut clusters = 0u64;
    for attribute in file.attributes_raw() {
        let attribute =
            attribute.map_err(|e| Error::ntfs(format!("attributes of MFT record {record}"), e))?;
        if attribute.is_resident() {
            continue;
        }
        let what = || format!("data runs of MFT record {record}");
        let value = attribute.value(fs).map_err(|e| Error::ntfs(what(), e))?;
        let ntfs::attribute_value::NtfsAttributeValue::NonResident(value) = value else {
            continue;
        };
        for run in value.data_runs() {
            let run = run.map_err(|e| Error::ntfs(what(), e))?;
            let Some(start) = run.data_position().value() else {
                continue; // a hole
            };
            let first = start.get().checked_div(cluster_size).unwrap_or(0);
            let count = run.allocated_size().checked_div(cluster_size).unwrap_or(0);
            let end = first.saturating_add(count);
            let overlap = end.min(to_cluster).saturating_sub(first.max(from_cluster));
            clusters = clusters.saturating_add(overlap);
        }
    }
    Ok(Some((owner, clusters)))
}

/// The base record of an extension record (`None` for a base record): the FILE header's
/// reference at +0x20, its low 48 bits. Read before the update sequence is undone, which is
/// safe: the fixups touch only the last two bytes of each 512-byte stride.
fn base_record(volume: &NtfsVolume, file: &NtfsFile) -> Result<Option<u64>> {
    let mut bytes = [0u8; 8];
    let at = byte_position(file.position()).saturating_add(BASE_REFERENCE_OFFSET);
    volume.partition().read_exact_at(at, &mut bytes)?;
    let number = u64::from_le_bytes(bytes) & 0x0000_ffff_ffff_ffff;
    Ok((number != 0).then_some(number))
}

/// `\dir\...\name` of record `record`, following each `$FILE_NAME`'s parent up to the root;
/// `None` when a name cannot be read or the chain is deeper than [`MAX_PATH_COMPONENTS`].
fn path_of(volume: &NtfsVolume, record: u64) -> Option<String> {
    let mut names = Vec::new();
    let mut current = record;
    let mut fs = volume.cursor();
    while current != ROOT_RECORD {
        if names.len() >= MAX_PATH_COMPONENTS {
            return None;
        }
        let file = volume.file(&mut fs, current).ok()?;
        let name = long_name(&file, &mut fs)?;
        names.push(name.name().to_string_lossy());
        let parent = name.parent_directory_reference().file_record_number();
        if parent == current {
            return None;
        }
        current = parent;
    }
    names.reverse();
    Some(format!("\\{}", names.join("\\")))
}

/// The file's long (Win32 or POSIX) name, else its DOS name.
fn long_name(file: &NtfsFile, fs: &mut NtfsCursor) -> Option<NtfsFileName> {
    let mut fallback = None;
    let mut attributes = file.attributes();
    while let Some(item) = attributes.next(fs) {
        let item = item.ok()?;
        let attribute = item.to_attribute().ok()?;
        if attribute.ty().ok() != Some(NtfsAttributeType::FileName) {
            continue;
        }
        let name = attribute.structured_value::<_, NtfsFileName>(fs).ok()?;
        if name.namespace() == NtfsFileNamespace::Dos {
            fallback.get_or_insert(name);
        } else {
            return Some(name);
        }
    }
    fallback
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

    fn slow_count(bytes: &[u8], from: u64, to: u64) -> u64 {
        (from..to)
            .filter(|&i| bytes[(i / 8) as usize] >> (i % 8) & 1 == 1)
            .count() as u64
    }

    #[test]
    fn counts_ranges() {
        let bytes: Vec<u8> = vec![0xff, 0x0f, 0b1010_0101, 0, 0x80, 0x01, 0xff];
        let bits = bytes.len() as u64 * 8;
        for from in 0..bits {
            for to in from..=bits {
                assert_eq!(
                    count_set_bits(&bytes, from, to).unwrap(),
                    slow_count(&bytes, from, to),
                    "{from}..{to}"
                );
            }
        }
        assert!(count_set_bits(&bytes, 0, bits + 1).is_err());
    }

    #[test]
    fn finds_the_last_set_bit() {
        let bytes: Vec<u8> = vec![0x01, 0, 0b0001_0100, 0, 0];
        assert_eq!(last_set_bit(&bytes, 40).unwrap(), Some(20));
        assert_eq!(last_set_bit(&bytes, 20).unwrap(), Some(18));
        assert_eq!(last_set_bit(&bytes, 18).unwrap(), Some(0));
        assert_eq!(last_set_bit(&bytes, 0).unwrap(), None);
        assert_eq!(last_set_bit(&vec![0u8; 4], 32).unwrap(), None);
        // Across blocks.
        let mut big = vec![0u8; (BLOCK_BYTES * 2 + 5) as usize];
        big[3] = 0x80;
        let bits = big.len() as u64 * 8;
        assert_eq!(last_set_bit(&big, bits).unwrap(), Some(31));
        big[BLOCK_BYTES as usize + 1] = 0x02;
        assert_eq!(
            last_set_bit(&big, bits).unwrap(),
            Some((BLOCK_BYTES + 1) * 8 + 1)
        );
        assert_eq!(
            count_set_bits(&big, 0, bits).unwrap(),
            2,
            "count across blocks"
        );
    }
}

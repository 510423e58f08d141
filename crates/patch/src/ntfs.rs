//! NTFS resize in place: what must change when a volume gets more or fewer clusters, without
//! moving any data. Grow (the recovery volume) and shrink (the OS volume, when its tail is free)
//! touch the same four things:
//!
//! - the boot sector's total sectors (+0x28), in the primary at the volume start and in the
//!   backup in the partition's last sector;
//! - `$Bitmap` (MFT record 6): one bit per cluster, its size a multiple of 8 bytes, the bits past
//!   the last cluster set; its clusters are extended (grow: a new run at the start of the added
//!   space) or cut back (shrink), and its `$DATA` attribute's runs and sizes rewritten;
//! - `$BadClus:$Bad` (MFT record 8): a sparse stream as long as the volume, rewritten as one
//!   sparse run (a volume with bad clusters recorded is refused);
//! - the MFT records are written back with their update-sequence fixups. Records 0-3 are not
//!   touched, so `$MFTMirr` stays equal to them (checked before anything is planned).
//!
//! Sources: the Linux-NTFS documentation (flatcap.github.io/linux-ntfs: boot sector, FILE record
//! header, attribute header, data runs, update sequence arrays); ntfs-3g's ntfsresize.c was read
//! to learn which metadata a resize must update (this code is our own).

use std::mem::offset_of;

use winre_core::ntfs::layout::{BootSectorDisk, NTFS_OEM_ID};
use winre_readat::ReadAt;
use zerocopy::FromBytes;

use crate::bytes::{
    add, align_up, div, div_ceil, get, mul, put, put_u16, put_u32, put_u64, sub, u16_at, u32_at,
    u64_at, usize_of,
};
use crate::error::{Error, Result};
use crate::Write;

/// Largest `$Bitmap` we edit in memory (one bit per cluster: 2 TiB of 4 KiB clusters).
const MAX_BITMAP_BYTES: u64 = 64 * 1024 * 1024;
/// The 512-byte stride the update sequence array protects, whatever the sector size.
const USA_STRIDE: usize = 512;
const RECORD_BITMAP: u64 = 6;
const RECORD_BADCLUS: u64 = 8;
/// The `$DATA` attribute type.
pub const ATTR_DATA: u32 = 0x80;
const ATTR_END: u32 = 0xFFFF_FFFF;

/// Boot sector values a resize needs.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Bytes per sector (+0x0B).
    pub sector_bytes: u64,
    /// Bytes per cluster.
    pub cluster_bytes: u64,
    /// Total sectors (+0x28).
    pub total_sectors: u64,
    /// Clusters in the volume.
    pub clusters: u64,
    /// First cluster of `$MFT` (+0x30).
    pub mft_lcn: u64,
    /// First cluster of `$MFTMirr` (+0x38).
    pub mftmirr_lcn: u64,
    /// Bytes per MFT record.
    pub record_bytes: u64,
}

/// Reads the boot sector (the whole first sector) and its geometry, through winre-core's
/// [`BootSectorDisk`] (the reader's definition of the layout).
pub fn read_geometry(volume: &dyn ReadAt) -> Result<(Vec<u8>, Geometry)> {
    let what = "NTFS boot sector";
    let at = |offset: usize| offset as u64;
    let mut head = [0u8; 512];
    volume.read_exact_at(0, &mut head)?;
    let (b, _) = BootSectorDisk::read_from_prefix(head.as_slice())
        .map_err(|_| Error::corrupt(what, 0, "shorter than a boot sector"))?;
    if b.oem_id != NTFS_OEM_ID {
        return Err(Error::corrupt(
            what,
            at(offset_of!(BootSectorDisk, oem_id)),
            "OEM ID is not \"NTFS    \"",
        ));
    }
    let sector_bytes = u64::from(b.bytes_per_sector.get());
    if !matches!(sector_bytes, 512 | 1024 | 2048 | 4096) {
        return Err(Error::corrupt(
            what,
            at(offset_of!(BootSectorDisk, bytes_per_sector)),
            format!("{sector_bytes} bytes per sector"),
        ));
    }
    let spc_at = at(offset_of!(BootSectorDisk, sectors_per_cluster));
    let sectors_per_cluster = b
        .sectors_per_cluster()
        .filter(|n| n.is_power_of_two())
        .ok_or_else(|| {
            Error::corrupt(
                what,
                spc_at,
                format!("sectors per cluster byte {:#x}", b.sectors_per_cluster),
            )
        })?;
    let cluster_bytes = mul(sector_bytes, sectors_per_cluster, what)?;
    if cluster_bytes > 2 * 1024 * 1024 {
        return Err(Error::corrupt(
            what,
            spc_at,
            format!("{cluster_bytes}-byte clusters"),
        ));
    }
    let total_sectors = b.total_sectors.get();
    let clusters = div(total_sectors, sectors_per_cluster, what)?;
    let record_bytes = b.record_bytes(cluster_bytes).unwrap_or(0);
    if !(512..=65536).contains(&record_bytes) || !record_bytes.is_power_of_two() {
        return Err(Error::corrupt(
            what,
            at(offset_of!(BootSectorDisk, clusters_per_record)),
            format!("{record_bytes}-byte MFT records"),
        ));
    }
    let geometry = Geometry {
        sector_bytes,
        cluster_bytes,
        total_sectors,
        clusters,
        mft_lcn: b.mft_lcn.get(),
        mftmirr_lcn: b.mftmirr_lcn.get(),
        record_bytes,
    };
    let volume_bytes = mul(clusters, cluster_bytes, what)?;
    if volume_bytes > volume.len()
        || geometry.mft_lcn >= clusters
        || geometry.mftmirr_lcn >= clusters
    {
        return Err(Error::corrupt(
            what,
            at(offset_of!(BootSectorDisk, total_sectors)),
            format!(
                "{clusters} clusters ({volume_bytes} bytes), MFT at cluster {}, mirror at {}, in a partition of {} bytes",
                geometry.mft_lcn,
                geometry.mftmirr_lcn,
                volume.len()
            ),
        ));
    }
    let mut sector = vec![0u8; usize_of(sector_bytes, what)?];
    volume.read_exact_at(0, &mut sector)?;
    Ok((sector, geometry))
}

/// One data run: `lcn` None is sparse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First cluster, or None for a hole.
    pub lcn: Option<u64>,
    /// Clusters.
    pub clusters: u64,
}

/// Decodes mapping pairs (data runs). Stops at the 0 terminator; refuses runs that leave the
/// volume or overflow.
pub fn decode_runs(mp: &[u8], volume_clusters: u64, what: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut at = 0usize;
    let mut lcn: i64 = 0;
    loop {
        let header = *mp
            .get(at)
            .ok_or_else(|| Error::corrupt(what, at as u64, "data runs without a terminator"))?;
        if header == 0 {
            return Ok(runs);
        }
        let len_bytes = usize::from(header & 0x0F);
        let off_bytes = usize::from(header >> 4);
        if len_bytes == 0 || len_bytes > 8 || off_bytes > 8 {
            return Err(Error::corrupt(
                what,
                at as u64,
                format!("run header {header:#04x}"),
            ));
        }
        let start = at.saturating_add(1);
        let len_field = mp
            .get(start..start.saturating_add(len_bytes))
            .ok_or_else(|| Error::corrupt(what, at as u64, "run cut short"))?;
        let clusters = le_signed(len_field);
        if clusters <= 0 {
            return Err(Error::corrupt(
                what,
                at as u64,
                format!("run of {clusters} clusters"),
            ));
        }
        let off_start = start.saturating_add(len_bytes);
        let off_end = off_start.saturating_add(off_bytes);
        let run_lcn = if off_bytes == 0 {
            None
        } else {
            let off_field = mp
                .get(off_start..off_end)
                .ok_or_else(|| Error::corrupt(what, at as u64, "run cut short"))?;
            lcn = lcn
                .checked_add(le_signed(off_field))
                .ok_or_else(|| Error::corrupt(what, at as u64, "LCN overflows"))?;
            let l = u64::try_from(lcn)
                .map_err(|_| Error::corrupt(what, at as u64, format!("negative LCN {lcn}")))?;
            let end = l.checked_add(clusters as u64);
            if end.is_none_or(|e| e > volume_clusters) {
                return Err(Error::corrupt(
                    what,
                    at as u64,
                    format!("run at cluster {l} of {clusters} clusters leaves the volume ({volume_clusters} clusters)"),
                ));
            }
            Some(l)
        };
        runs.push(Run {
            lcn: run_lcn,
            clusters: clusters as u64,
        });
        at = off_end;
    }
}

fn le_signed(bytes: &[u8]) -> i64 {
    let mut buf = [0u8; 8];
    for (d, s) in buf.iter_mut().zip(bytes) {
        *d = *s;
    }
    let n = bytes.len().min(8);
    let v = i64::from_le_bytes(buf);
    // Sign-extend from n bytes.
    let shift = 64u32.saturating_sub(8u32.saturating_mul(n as u32));
    if shift == 0 || shift >= 64 {
        v
    } else {
        v.wrapping_shl(shift).wrapping_shr(shift)
    }
}

/// The fewest little-endian bytes that hold `v` as a signed number.
fn signed_bytes(v: i64) -> Vec<u8> {
    let all = v.to_le_bytes();
    for n in 1..=8usize {
        let part = all.get(..n).unwrap_or(&all);
        if le_signed(part) == v {
            return part.to_vec();
        }
    }
    all.to_vec()
}

/// Encodes runs as mapping pairs, with the 0 terminator.
pub fn encode_runs(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: i64 = 0;
    for run in runs {
        let len = signed_bytes(i64::try_from(run.clusters).unwrap_or(i64::MAX));
        let off = match run.lcn {
            Some(lcn) => {
                let lcn = i64::try_from(lcn).unwrap_or(i64::MAX);
                let delta = lcn.saturating_sub(prev);
                prev = lcn;
                signed_bytes(delta)
            }
            None => Vec::new(),
        };
        out.push(((off.len() as u8) << 4) | len.len() as u8);
        out.extend_from_slice(&len);
        out.extend_from_slice(&off);
    }
    out.push(0);
    out
}

/// An MFT record with its fixups applied, and where it sits in the volume.
#[derive(Debug, Clone)]
pub struct MftRecord {
    /// Byte offset in the volume.
    pub offset: u64,
    /// The record, fixed up (the sector-end bytes restored).
    pub bytes: Vec<u8>,
    number: u64,
}

/// Reads MFT record `number` (one of the first 16, which lie in the MFT's first cluster run)
/// and undoes its update-sequence fixups.
pub fn read_record(volume: &dyn ReadAt, g: &Geometry, number: u64) -> Result<MftRecord> {
    if number >= 16 {
        return Err(Error::Unsupported(format!("editing MFT record {number}")));
    }
    let offset = add(
        mul(g.mft_lcn, g.cluster_bytes, "MFT")?,
        mul(number, g.record_bytes, "MFT")?,
        "MFT",
    )?;
    read_record_at(volume, offset, g.record_bytes, number)
}

/// Reads the MFT record of `record_bytes` at byte `offset` of the volume (record `number`, for
/// messages) and undoes its update-sequence fixups.
pub fn read_record_at(
    volume: &dyn ReadAt,
    offset: u64,
    record_bytes: u64,
    number: u64,
) -> Result<MftRecord> {
    if !(512..=65536).contains(&record_bytes) || !record_bytes.is_power_of_two() {
        return Err(Error::corrupt(
            "MFT record",
            offset,
            format!("{record_bytes}-byte records"),
        ));
    }
    let mut bytes = vec![0u8; usize_of(record_bytes, "MFT record")?];
    volume.read_exact_at(offset, &mut bytes)?;
    let what = format!("MFT record {number}");
    if bytes.get(..4) != Some(b"FILE".as_slice()) {
        return Err(Error::corrupt(&what, offset, "no FILE signature"));
    }
    let (usa_at, usa_count) = usa(&bytes, &what)?;
    let usn = get::<2>(&bytes, usa_at, &what)?;
    for i in 1..usa_count {
        let end = i.saturating_mul(USA_STRIDE).saturating_sub(2);
        if get::<2>(&bytes, end, &what)? != usn {
            return Err(Error::corrupt(
                &what,
                offset.saturating_add(end as u64),
                "update sequence number does not match (torn record)",
            ));
        }
        let saved = get::<2>(&bytes, usa_at.saturating_add(i.saturating_mul(2)), &what)?;
        put(&mut bytes, end, &saved, &what)?;
    }
    Ok(MftRecord {
        offset,
        bytes,
        number,
    })
}

fn usa(bytes: &[u8], what: &str) -> Result<(usize, usize)> {
    let usa_at = usize::from(u16_at(bytes, 4, what)?);
    let usa_count = usize::from(u16_at(bytes, 6, what)?);
    if usa_count != (bytes.len() / USA_STRIDE).saturating_add(1)
        || usa_at < 0x28
        || usa_at.saturating_add(usa_count.saturating_mul(2)) > USA_STRIDE
    {
        return Err(Error::corrupt(
            what,
            4,
            format!("update sequence array at {usa_at}, {usa_count} entries"),
        ));
    }
    Ok((usa_at, usa_count))
}

impl MftRecord {
    /// The record as it goes to disk: the sequence number bumped and the fixups applied.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let what = format!("MFT record {}", self.number);
        let mut out = self.bytes.clone();
        let (usa_at, usa_count) = usa(&out, &what)?;
        let mut usn = u16_at(&out, usa_at, &what)?.wrapping_add(1);
        if usn == 0 || usn == 0xFFFF {
            usn = 1;
        }
        put_u16(&mut out, usa_at, usn, &what)?;
        for i in 1..usa_count {
            let end = i.saturating_mul(USA_STRIDE).saturating_sub(2);
            let original = get::<2>(&out, end, &what)?;
            put(
                &mut out,
                usa_at.saturating_add(i.saturating_mul(2)),
                &original,
                &what,
            )?;
            put_u16(&mut out, end, usn, &what)?;
        }
        Ok(out)
    }

    /// Finds the attribute of `kind` with name `name` ("" for unnamed); returns its offset.
    fn find(&self, kind: u32, name: &str) -> Result<usize> {
        let what = format!("MFT record {}", self.number);
        let mut at = usize::from(u16_at(&self.bytes, 0x14, &what)?);
        let in_use =
            usize_of(u64::from(u32_at(&self.bytes, 0x18, &what)?), &what)?.min(self.bytes.len());
        while at < in_use {
            let t = u32_at(&self.bytes, at, &what)?;
            if t == ATTR_END {
                break;
            }
            let len = usize_of(
                u64::from(u32_at(&self.bytes, at.saturating_add(4), &what)?),
                &what,
            )?;
            if len < 0x18 || at.saturating_add(len) > in_use {
                return Err(Error::corrupt(
                    &what,
                    at as u64,
                    format!("attribute of {len} bytes"),
                ));
            }
            if t == kind {
                let name_len = usize::from(get::<1>(&self.bytes, at.saturating_add(9), &what)?[0]);
                let name_at = usize::from(u16_at(&self.bytes, at.saturating_add(0x0A), &what)?);
                let start = at.saturating_add(name_at);
                let units: Vec<u16> = self
                    .bytes
                    .get(start..start.saturating_add(2 * name_len))
                    .unwrap_or_default()
                    .chunks_exact(2)
                    .map(|c| {
                        u16::from_le_bytes([
                            c.first().copied().unwrap_or(0),
                            c.get(1).copied().unwrap_or(0),
                        ])
                    })
                    .collect();
                if String::from_utf16_lossy(&units) == name {
                    return Ok(at);
                }
            }
            at = at.saturating_add(len);
        }
        Err(Error::corrupt(
            &what,
            self.offset,
            format!("no attribute {kind:#x} named {name:?}"),
        ))
    }

    /// The value of the resident attribute of `kind` named `name`: (offset in the record, length).
    pub fn resident_value(&self, kind: u32, name: &str) -> Result<(usize, usize)> {
        let at = self.find(kind, name)?;
        let what = format!("MFT record {} attribute at {at}", self.number);
        if get::<1>(&self.bytes, at.saturating_add(8), &what)?[0] != 0 {
            return Err(Error::corrupt(&what, self.offset, "not resident"));
        }
        let attr_len = usize_of(
            u64::from(u32_at(&self.bytes, at.saturating_add(4), &what)?),
            &what,
        )?;
        let len = usize_of(
            u64::from(u32_at(&self.bytes, at.saturating_add(0x10), &what)?),
            &what,
        )?;
        let value_at = usize::from(u16_at(&self.bytes, at.saturating_add(0x14), &what)?);
        if value_at.saturating_add(len) > attr_len {
            return Err(Error::corrupt(
                &what,
                self.offset,
                format!(
                    "value of {len} bytes at {value_at} outside the attribute ({attr_len} bytes)"
                ),
            ));
        }
        Ok((at.saturating_add(value_at), len))
    }

    /// Replaces `len` bytes at `at` of the record (fixed-up form).
    pub fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<()> {
        put(&mut self.bytes, at, bytes, "MFT record")
    }

    /// The runs and sizes of the non-resident attribute at `at`.
    fn non_resident(&self, at: usize, volume_clusters: u64) -> Result<NonResident> {
        let what = format!("MFT record {} attribute at {at}", self.number);
        if get::<1>(&self.bytes, at.saturating_add(8), &what)?[0] != 1 {
            return Err(Error::Unsupported(format!("{what} is resident")));
        }
        if u64_at(&self.bytes, at.saturating_add(0x10), &what)? != 0 {
            return Err(Error::Unsupported(format!(
                "{what} continues in another record"
            )));
        }
        let flags = u16_at(&self.bytes, at.saturating_add(0x0C), &what)?;
        if flags & 0x4001 != 0 {
            return Err(Error::Unsupported(format!(
                "{what} is compressed or encrypted"
            )));
        }
        let len = usize_of(
            u64::from(u32_at(&self.bytes, at.saturating_add(4), &what)?),
            &what,
        )?;
        let mp_at = usize::from(u16_at(&self.bytes, at.saturating_add(0x20), &what)?);
        let mp = self
            .bytes
            .get(at.saturating_add(mp_at)..at.saturating_add(len))
            .ok_or_else(|| {
                Error::corrupt(&what, at as u64, "mapping pairs outside the attribute")
            })?;
        Ok(NonResident {
            runs: decode_runs(mp, volume_clusters, &what)?,
            allocated: u64_at(&self.bytes, at.saturating_add(0x28), &what)?,
            data: u64_at(&self.bytes, at.saturating_add(0x30), &what)?,
            initialized: u64_at(&self.bytes, at.saturating_add(0x38), &what)?,
        })
    }

    /// Rewrites the non-resident attribute at `at` with new runs and sizes, moving the
    /// attributes after it when its length changes.
    fn set_non_resident(&mut self, at: usize, nr: &NonResident) -> Result<()> {
        let what = format!("MFT record {} attribute at {at}", self.number);
        let old_len = usize_of(
            u64::from(u32_at(&self.bytes, at.saturating_add(4), &what)?),
            &what,
        )?;
        let mp_at = usize::from(u16_at(&self.bytes, at.saturating_add(0x20), &what)?);
        let mp = encode_runs(&nr.runs);
        let new_len = mp_at.saturating_add(mp.len()).next_multiple_of(8);
        let in_use = usize_of(u64::from(u32_at(&self.bytes, 0x18, &what)?), &what)?;
        let allocated =
            usize_of(u64::from(u32_at(&self.bytes, 0x1C, &what)?), &what)?.min(self.bytes.len());
        let new_in_use = in_use
            .checked_add(new_len)
            .and_then(|v| v.checked_sub(old_len))
            .ok_or_else(|| Error::corrupt(&what, at as u64, "record size overflows"))?;
        if new_in_use > allocated || in_use > allocated {
            return Err(Error::Unsupported(format!(
                "{what}: the new data runs need {new_in_use} bytes, the record has {allocated}"
            )));
        }
        let tail_from = at.saturating_add(old_len);
        let tail: Vec<u8> = self
            .bytes
            .get(tail_from..in_use)
            .ok_or_else(|| Error::corrupt(&what, at as u64, "attribute past bytes in use"))?
            .to_vec();
        let mut attr = self
            .bytes
            .get(at..at.saturating_add(mp_at))
            .ok_or_else(|| Error::corrupt(&what, at as u64, "attribute header"))?
            .to_vec();
        attr.extend_from_slice(&mp);
        attr.resize(new_len, 0);
        put_u32(
            &mut attr,
            4,
            u32::try_from(new_len).unwrap_or(u32::MAX),
            &what,
        )?;
        let clusters: u64 = nr.runs.iter().map(|r| r.clusters).sum();
        put_u64(&mut attr, 0x18, clusters.saturating_sub(1), &what)?;
        put_u64(&mut attr, 0x28, nr.allocated, &what)?;
        put_u64(&mut attr, 0x30, nr.data, &what)?;
        put_u64(&mut attr, 0x38, nr.initialized, &what)?;
        put(&mut self.bytes, at, &attr, &what)?;
        put(&mut self.bytes, at.saturating_add(new_len), &tail, &what)?;
        // Clear what the record no longer uses.
        for b in self
            .bytes
            .get_mut(new_in_use..in_use.max(new_in_use))
            .unwrap_or_default()
        {
            *b = 0;
        }
        put_u32(
            &mut self.bytes,
            0x18,
            u32::try_from(new_in_use).unwrap_or(u32::MAX),
            &what,
        )?;
        Ok(())
    }
}

/// The parts of a non-resident attribute a resize changes.
#[derive(Debug, Clone)]
struct NonResident {
    runs: Vec<Run>,
    allocated: u64,
    data: u64,
    initialized: u64,
}

/// What a plan says a resized volume must look like (its `ShrinkNtfs` / `GrowNtfs` step); the
/// writer computes the same numbers on its own and refuses to write when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtfsTarget {
    /// The partition size the volume will fill.
    pub partition_bytes: u64,
    /// Boot sector total sectors after (+0x28).
    pub total_sectors: u64,
    /// Clusters after.
    pub total_clusters: u64,
    /// NTFS bytes per sector (+0x0B).
    pub bytes_per_sector: u32,
}

/// The writes that resize an NTFS volume in place, relative to the volume start.
#[derive(Debug, Clone)]
pub struct NtfsResize {
    /// Byte writes, volume-relative.
    pub writes: Vec<Write>,
    /// Clusters before.
    pub old_clusters: u64,
    /// Clusters after.
    pub new_clusters: u64,
    /// Boot sector total sectors after (what is written at +0x28).
    pub new_total_sectors: u64,
    /// Cluster size.
    pub cluster_bytes: u64,
    /// Free bytes after the resize (clear bits of the new bitmap within the volume).
    pub free_bytes_after: u64,
}

fn bit(bm: &[u8], i: u64) -> bool {
    bm.get(usize::try_from(i / 8).unwrap_or(usize::MAX))
        .is_some_and(|b| b >> (i % 8) & 1 == 1)
}

fn set_bit(bm: &mut [u8], i: u64, on: bool) {
    if let Some(b) = bm.get_mut(usize::try_from(i / 8).unwrap_or(usize::MAX)) {
        let mask = 1u8 << (i % 8);
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }
}

/// Plans the resize of the NTFS volume in `volume` (its current partition) to fill a partition
/// of `target.partition_bytes`: the boot sector says all the partition's sectors but the last,
/// which takes the backup boot sector (as Windows and mkntfs format), so the volume gets
/// `(partition_bytes - sector) / cluster` clusters. Those numbers must equal the plan's
/// (`target`), else nothing is planned.
///
/// Refuses a shrink when any cluster past the new end is in use (naming the first), a volume
/// whose `$MFTMirr` differs from `$MFT` records 0-3, a `$BadClus` that lists bad clusters, and
/// metadata laid out in ways this code does not edit (resident or multi-record `$Bitmap`).
///
/// `new_start_lba` (for a volume that is also moved) goes into the boot sector's hidden-sectors
/// field (+0x1C), which says where the partition starts.
pub fn plan_resize(
    volume: &dyn ReadAt,
    target: &NtfsTarget,
    new_start_lba: Option<u64>,
) -> Result<NtfsResize> {
    let (boot, g) = read_geometry(volume)?;
    check_mirror(volume, &g)?;
    let new_partition_bytes = target.partition_bytes;
    let new_sectors = sub(
        div(new_partition_bytes, g.sector_bytes, "new NTFS size")?,
        1,
        "new NTFS size",
    )?;
    let spc = div(g.cluster_bytes, g.sector_bytes, "boot sector")?;
    let new_clusters = div(new_sectors, spc, "new NTFS size")?;
    let ours = NtfsTarget {
        partition_bytes: new_partition_bytes,
        total_sectors: new_sectors,
        total_clusters: new_clusters,
        bytes_per_sector: u32::try_from(g.sector_bytes).unwrap_or(0),
    };
    if ours != *target {
        return Err(Error::Refused(format!(
            "the plan and the NTFS writer disagree about the resized volume: the plan says {} sectors of {} bytes, {} clusters; the boot sector gives {} sectors of {} bytes, {} clusters; nothing was written",
            target.total_sectors, target.bytes_per_sector, target.total_clusters,
            ours.total_sectors, ours.bytes_per_sector, ours.total_clusters
        )));
    }
    if new_clusters == g.clusters {
        return Err(Error::Unsupported(
            "the volume already has that size".into(),
        ));
    }
    let grow = new_clusters > g.clusters;
    let cs = g.cluster_bytes;

    // $Bitmap.
    let mut bitmap_rec = read_record(volume, &g, RECORD_BITMAP)?;
    let bitmap_attr = bitmap_rec.find(ATTR_DATA, "")?;
    let mut bitmap_nr = bitmap_rec.non_resident(bitmap_attr, g.clusters)?;
    if bitmap_nr.data > MAX_BITMAP_BYTES || bitmap_nr.runs.iter().any(|r| r.lcn.is_none()) {
        return Err(Error::Unsupported(format!(
            "$Bitmap of {} bytes (cap {MAX_BITMAP_BYTES}) or with holes",
            bitmap_nr.data
        )));
    }
    let old_bm = read_runs(volume, &bitmap_nr.runs, cs, bitmap_nr.data)?;
    let new_bm_bytes = align_up(div_ceil(new_clusters, 8, "bitmap")?, 8, "bitmap")?;
    if new_bm_bytes > MAX_BITMAP_BYTES {
        return Err(Error::Unsupported(format!(
            "a $Bitmap of {new_bm_bytes} bytes"
        )));
    }
    let mut bm = vec![0u8; usize_of(new_bm_bytes, "bitmap")?];
    let keep = old_bm.len().min(bm.len());
    put(&mut bm, 0, old_bm.get(..keep).unwrap_or_default(), "bitmap")?;
    if !grow {
        if let Some(used) = (new_clusters..g.clusters).find(|&c| bit(&old_bm, c)) {
            return Err(Error::Refused(format!(
                "cannot shrink the NTFS volume to {new_clusters} clusters: cluster {used} (byte {} of the volume) is in use; free the volume's tail first (defragment, or move the files)",
                used.saturating_mul(cs)
            )));
        }
    }
    for c in g.clusters.min(new_clusters)..new_clusters {
        set_bit(&mut bm, c, false);
    }
    for c in new_clusters..new_bm_bytes.saturating_mul(8) {
        set_bit(&mut bm, c, true);
    }
    let need_clusters = div_ceil(new_bm_bytes, cs, "bitmap")?;
    let have_clusters: u64 = bitmap_nr.runs.iter().map(|r| r.clusters).sum();
    if need_clusters > have_clusters {
        // Grow: the new clusters go at the start of the added space, which is free.
        let extra = need_clusters.saturating_sub(have_clusters);
        let start = g.clusters;
        if add(start, extra, "bitmap")? > new_clusters {
            return Err(Error::Unsupported(
                "growing by less than the new $Bitmap needs".into(),
            ));
        }
        for c in start..start.saturating_add(extra) {
            set_bit(&mut bm, c, true);
        }
        match bitmap_nr.runs.last_mut() {
            Some(Run {
                lcn: Some(l),
                clusters,
            }) if l.saturating_add(*clusters) == start => {
                *clusters = clusters.saturating_add(extra)
            }
            _ => bitmap_nr.runs.push(Run {
                lcn: Some(start),
                clusters: extra,
            }),
        }
    } else if need_clusters < have_clusters {
        let mut left = need_clusters;
        let mut kept = Vec::new();
        for run in &bitmap_nr.runs {
            let lcn = run.lcn.unwrap_or(0);
            let take = run.clusters.min(left);
            if take > 0 {
                kept.push(Run {
                    lcn: run.lcn,
                    clusters: take,
                });
            }
            for c in lcn.saturating_add(take)..lcn.saturating_add(run.clusters) {
                set_bit(&mut bm, c, false);
            }
            left = left.saturating_sub(take);
        }
        bitmap_nr.runs = kept;
    }
    for run in &bitmap_nr.runs {
        let lcn = run.lcn.unwrap_or(0);
        if add(lcn, run.clusters, "bitmap")? > new_clusters {
            return Err(Error::Refused(format!(
                "$Bitmap lies at clusters {lcn}..{} past the new end ({new_clusters})",
                lcn.saturating_add(run.clusters)
            )));
        }
    }
    bitmap_nr.allocated = mul(need_clusters, cs, "bitmap")?;
    bitmap_nr.data = new_bm_bytes;
    bitmap_nr.initialized = new_bm_bytes;
    bitmap_rec.set_non_resident(bitmap_attr, &bitmap_nr)?;

    // $BadClus:$Bad.
    let mut bad_rec = read_record(volume, &g, RECORD_BADCLUS)?;
    let bad_attr = bad_rec.find(ATTR_DATA, "$Bad")?;
    let mut bad = bad_rec.non_resident(bad_attr, g.clusters)?;
    if bad.runs.iter().any(|r| r.lcn.is_some()) {
        return Err(Error::Unsupported(
            "the volume has bad clusters listed in $BadClus; run chkdsk on Windows first".into(),
        ));
    }
    let was_initialized = bad.initialized == bad.data && bad.data > 0;
    bad.runs = vec![Run {
        lcn: None,
        clusters: new_clusters,
    }];
    bad.allocated = mul(new_clusters, cs, "$Bad")?;
    bad.data = bad.allocated;
    bad.initialized = if was_initialized {
        bad.data
    } else {
        bad.initialized.min(bad.data)
    };
    bad_rec.set_non_resident(bad_attr, &bad)?;

    // Boot sector.
    let mut new_boot = boot.clone();
    let (fields, _) = BootSectorDisk::mut_from_prefix(new_boot.as_mut_slice())
        .map_err(|_| Error::corrupt("NTFS boot sector", 0, "shorter than a boot sector"))?;
    fields.total_sectors.set(new_sectors);
    if let Some(lba) = new_start_lba {
        let hidden = u32::try_from(lba).map_err(|_| {
            Error::Unsupported(format!(
                "a partition starting at sector {lba} (past the 32-bit hidden-sectors field)"
            ))
        })?;
        fields.hidden_sectors.set(hidden);
    }
    let backup_at = sub(new_partition_bytes, g.sector_bytes, "backup boot sector")?;

    let mut writes = Vec::new();
    writes.extend(write_runs(&bitmap_nr.runs, cs, &bm)?);
    writes.push(Write {
        offset: bitmap_rec.offset,
        bytes: bitmap_rec.encode()?,
    });
    writes.push(Write {
        offset: bad_rec.offset,
        bytes: bad_rec.encode()?,
    });
    writes.push(Write {
        offset: backup_at,
        bytes: new_boot.clone(),
    });
    writes.push(Write {
        offset: 0,
        bytes: new_boot,
    });
    let used = (0..new_clusters).filter(|&c| bit(&bm, c)).count() as u64;
    Ok(NtfsResize {
        writes,
        old_clusters: g.clusters,
        new_clusters,
        new_total_sectors: new_sectors,
        cluster_bytes: cs,
        free_bytes_after: new_clusters.saturating_sub(used).saturating_mul(cs),
    })
}

/// `$MFTMirr` must hold `$MFT` records 0-3 (the first 4 records, or one cluster if larger).
fn check_mirror(volume: &dyn ReadAt, g: &Geometry) -> Result<()> {
    let len = mul(4, g.record_bytes, "$MFTMirr")?;
    let mut mft = vec![0u8; usize_of(len, "$MFTMirr")?];
    let mut mirr = mft.clone();
    volume.read_exact_at(mul(g.mft_lcn, g.cluster_bytes, "$MFT")?, &mut mft)?;
    volume.read_exact_at(mul(g.mftmirr_lcn, g.cluster_bytes, "$MFTMirr")?, &mut mirr)?;
    if mft != mirr {
        return Err(Error::Refused(
            "$MFTMirr differs from $MFT records 0-3; run chkdsk (or ntfsfix) first".into(),
        ));
    }
    Ok(())
}

/// Reads `len` bytes of a stream through its runs.
fn read_runs(volume: &dyn ReadAt, runs: &[Run], cs: u64, len: u64) -> Result<Vec<u8>> {
    let mut out = vec![0u8; usize_of(len, "stream")?];
    let mut done = 0usize;
    for run in runs {
        if done >= out.len() {
            break;
        }
        let n = usize_of(mul(run.clusters, cs, "run")?, "run")?.min(out.len().saturating_sub(done));
        let dst = out
            .get_mut(done..done.saturating_add(n))
            .unwrap_or_default();
        if let Some(lcn) = run.lcn {
            volume.read_exact_at(mul(lcn, cs, "run")?, dst)?;
        }
        done = done.saturating_add(n);
    }
    Ok(out)
}

/// The writes that put `data` into a stream's runs.
fn write_runs(runs: &[Run], cs: u64, data: &[u8]) -> Result<Vec<Write>> {
    let mut writes = Vec::new();
    let mut done = 0usize;
    for run in runs {
        if done >= data.len() {
            break;
        }
        let n =
            usize_of(mul(run.clusters, cs, "run")?, "run")?.min(data.len().saturating_sub(done));
        if let Some(lcn) = run.lcn {
            writes.push(Write {
                offset: mul(lcn, cs, "run")?,
                bytes: data
                    .get(done..done.saturating_add(n))
                    .unwrap_or_default()
                    .to_vec(),
            });
        }
        done = done.saturating_add(n);
    }
    Ok(writes)
}

/// The clusters of a volume that are in use from `first` on, as the count of used clusters
/// at or after `first` (for reports).
pub fn used_clusters_from(volume: &dyn ReadAt, first: u64) -> Result<u64> {
    let (_, g) = read_geometry(volume)?;
    let rec = read_record(volume, &g, RECORD_BITMAP)?;
    let attr = rec.find(ATTR_DATA, "")?;
    let nr = rec.non_resident(attr, g.clusters)?;
    let bm = read_runs(
        volume,
        &nr.runs,
        g.cluster_bytes,
        nr.data.min(MAX_BITMAP_BYTES),
    )?;
    Ok((first..g.clusters).filter(|&c| bit(&bm, c)).count() as u64)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip() {
        let runs = vec![
            Run {
                lcn: Some(4),
                clusters: 3,
            },
            Run {
                lcn: None,
                clusters: 70000,
            },
            Run {
                lcn: Some(1),
                clusters: 200,
            },
            Run {
                lcn: Some(0x12345678),
                clusters: 1,
            },
        ];
        let mp = encode_runs(&runs);
        assert_eq!(decode_runs(&mp, 1 << 40, "t").unwrap(), runs);
        // The documented example: 0x21 0x18 0x34 0x56 = 0x18 clusters at 0x5634.
        assert_eq!(
            decode_runs(&[0x21, 0x18, 0x34, 0x56, 0], 1 << 20, "t").unwrap(),
            vec![Run {
                lcn: Some(0x5634),
                clusters: 0x18
            }]
        );
    }

    #[test]
    fn runs_leaving_the_volume_are_refused() {
        assert!(decode_runs(&[0x11, 0x10, 0x7f, 0], 0x80, "t").is_err());
        assert!(decode_runs(&[0x11, 0x10], 0x8000, "t").is_err());
    }
}

//! The read loop that VHD, VHDX and qcow2 share: a format-specific [`Mapper`] says where each
//! run of guest bytes lives (a file offset, zeros, the parent disk, or something the format
//! decodes itself, like a compressed cluster), and [`MappedReader`] turns that into reads,
//! joining runs that continue each other in the file into one read.

use std::io;
use std::sync::Arc;

use winre_readat::{check_bounds, ReadAt};

use crate::Result;

/// Where a run of guest bytes comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Stored in the container file from this offset on.
    Host(u64),
    /// Reads as zeros (unallocated, or a zero block / cluster).
    Zero,
    /// Comes from the parent disk at the same guest offset; zeros past the parent's end.
    Parent,
    /// Decoded by [`Mapper::read_special`]: `unit` names the stored unit (e.g. the L2 entry of a
    /// compressed cluster), `skip` is how far into the unit's guest bytes the run starts.
    Special { unit: u64, skip: u64 },
}

/// A run: `len` guest bytes (at least 1) starting at the asked offset that all come from `run`
/// (contiguously, for [`Run::Host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub run: Run,
    pub len: u64,
}

/// A container's guest-to-file map.
pub(crate) trait Mapper: Send + Sync {
    /// Where the guest byte at `guest_offset` (below the virtual size) lives, and for how long.
    /// A [`Run::Host`] run must lie inside the file: the mapper checks it and names the table
    /// entry when it does not.
    fn map(&self, guest_offset: u64) -> Result<Mapping>;

    /// Fills `buf` from a [`Run::Special`] unit, starting `skip` bytes into its guest bytes.
    fn read_special(&self, unit: u64, skip: u64, buf: &mut [u8]) -> Result<()>;
}

/// The guest disk of a block-mapped container.
pub(crate) struct MappedReader<M> {
    mapper: M,
    file: Arc<dyn ReadAt>,
    parent: Option<Arc<dyn ReadAt>>,
    len: u64,
}

impl<M: Mapper> MappedReader<M> {
    /// A reader of `len` guest bytes; [`Run::Parent`] runs read `parent` (zeros without one).
    pub(crate) fn new(
        mapper: M,
        file: Arc<dyn ReadAt>,
        parent: Option<Arc<dyn ReadAt>>,
        len: u64,
    ) -> Self {
        Self {
            mapper,
            file,
            parent,
            len,
        }
    }

    fn read_parent(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some(parent) = &self.parent else {
            buf.fill(0);
            return Ok(());
        };
        // The parent may be shorter than the child (a qcow2 grown after it was made): the part
        // past its end reads as zeros.
        let available = parent.len().saturating_sub(offset);
        let inside = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let (head, tail) = buf.split_at_mut(inside);
        if !head.is_empty() {
            parent.read_exact_at(offset, head)?;
        }
        tail.fill(0);
        Ok(())
    }
}

impl<M: Mapper> ReadAt for MappedReader<M> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        let mut pos = offset;
        let mut rest = buf;
        let mut pending: Option<Mapping> = None;
        while !rest.is_empty() {
            let mapping = match pending.take() {
                Some(m) => m,
                None => self.mapper.map(pos)?,
            };
            let clamp =
                |len: u64, room: usize| usize::try_from(len).unwrap_or(usize::MAX).min(room);
            let mut take = clamp(mapping.len, rest.len()).max(1).min(rest.len());
            match mapping.run {
                Run::Host(host) => {
                    // Join the following runs while they continue in the file.
                    let mut host_end = host.saturating_add(take as u64);
                    while take < rest.len() {
                        let next = self.mapper.map(pos.saturating_add(take as u64))?;
                        if next.run != Run::Host(host_end) {
                            pending = Some(next);
                            break;
                        }
                        let more = clamp(next.len, rest.len().saturating_sub(take)).max(1);
                        take = take.saturating_add(more).min(rest.len());
                        host_end = host_end.saturating_add(more as u64);
                    }
                    let (now, _) = rest.split_at_mut(take);
                    self.file.read_exact_at(host, now)?;
                }
                Run::Zero => rest.split_at_mut(take).0.fill(0),
                Run::Parent => self.read_parent(pos, rest.split_at_mut(take).0)?,
                Run::Special { unit, skip } => {
                    self.mapper
                        .read_special(unit, skip, rest.split_at_mut(take).0)?
                }
            }
            rest = std::mem::take(&mut rest).split_at_mut(take).1;
            pos = pos.saturating_add(take as u64);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    /// Walks the map: zero runs, and parent runs the parent knows to be zero (or that lie past
    /// its end, or without a parent), are zeros; stored and special runs are not known.
    fn known_zero(&self, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.len) else {
            return false;
        };
        let mut pos = offset;
        while pos < end {
            let Ok(mapping) = self.mapper.map(pos) else {
                return false;
            };
            let take = mapping.len.max(1).min(end.saturating_sub(pos));
            let zero = match mapping.run {
                Run::Zero => true,
                Run::Parent => self.parent.as_ref().is_none_or(|parent| {
                    let inside = parent.len().saturating_sub(pos).min(take);
                    inside == 0 || parent.known_zero(pos, inside)
                }),
                Run::Host(_) | Run::Special { .. } => false,
            };
            if !zero {
                return false;
            }
            pos = pos.saturating_add(take);
        }
        true
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
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Blocks of 4 bytes: block 0 and 1 stored back to back at 8, block 2 zero, block 3 from
    /// the parent, block 4 special, block 5 stored at 0.
    struct Toy(AtomicU64);
    impl Mapper for Toy {
        fn map(&self, guest: u64) -> Result<Mapping> {
            self.0.fetch_add(1, Ordering::Relaxed);
            let (block, within) = (guest / 4, guest % 4);
            let run = match block {
                0 | 1 => Run::Host(8 + guest),
                2 => Run::Zero,
                3 => Run::Parent,
                4 => Run::Special {
                    unit: 4,
                    skip: within,
                },
                _ => Run::Host(within),
            };
            Ok(Mapping {
                run,
                len: 4 - within,
            })
        }
        fn read_special(&self, unit: u64, skip: u64, buf: &mut [u8]) -> Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (unit * 10 + skip) as u8 + i as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn reads_every_kind_of_run() {
        let file: Arc<dyn ReadAt> = Arc::new((100u8..130).collect::<Vec<u8>>());
        let parent: Arc<dyn ReadAt> = Arc::new(vec![7u8; 14]); // ends inside block 3
        let r = MappedReader::new(Toy(AtomicU64::new(0)), file, Some(parent), 24);
        let mut all = [0u8; 24];
        r.read_exact_at(0, &mut all).unwrap();
        assert_eq!(
            all,
            [
                108, 109, 110, 111, 112, 113, 114, 115, 0, 0, 0, 0, 7, 7, 0, 0, 40, 41, 42, 43,
                100, 101, 102, 103
            ]
        );
        let mut part = [0u8; 5];
        r.read_exact_at(17, &mut part).unwrap();
        assert_eq!(part, [41, 42, 43, 100, 101]);
        assert!(r.read_exact_at(20, &mut part).is_err());
    }

    #[test]
    fn knows_zero_only_for_zero_runs_and_zero_parent() {
        let file: Arc<dyn ReadAt> = Arc::new((100u8..130).collect::<Vec<u8>>());
        // A Vec parent never claims known zeros, so block 3 is not known zero with it...
        let parent: Arc<dyn ReadAt> = Arc::new(vec![0u8; 14]);
        let r = MappedReader::new(Toy(AtomicU64::new(0)), Arc::clone(&file), Some(parent), 24);
        assert!(r.known_zero(8, 4));
        assert!(r.known_zero(9, 2));
        assert!(!r.known_zero(8, 5)); // block 3 comes from the parent's bytes
        assert!(r.known_zero(14, 2)); // ...except past the parent's end
        assert!(!r.known_zero(7, 2)); // block 1 is stored
        assert!(!r.known_zero(16, 1)); // block 4 is special
        assert!(!r.known_zero(20, 8)); // past the end
                                       // Without a parent, its runs read as zeros.
        let r = MappedReader::new(Toy(AtomicU64::new(0)), file, None, 24);
        assert!(r.known_zero(8, 8));
    }
}

/// How a sector bitmap numbers its bits within a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitOrder {
    /// Sector 0 is bit 7 of byte 0 (VHD).
    MsbFirst,
    /// Sector 0 is bit 0 of byte 0 (VHDX).
    LsbFirst,
}

/// Whether the bit of sector `first` is set in `bits`, and where (exclusive, at most `limit`)
/// the run of sectors from `first` with that same bit ends. Bits past the end of `bits` read as
/// clear. Whole bytes of the run are skipped a byte at a time, so a run over a 64 KiB bitmap
/// (a 256 MiB block) costs one pass over its bytes, not half a million bit tests per read.
pub(crate) fn bit_run(bits: &[u8], order: BitOrder, first: u64, limit: u64) -> (bool, u64) {
    let bit = |sector: u64| {
        let mask = match order {
            BitOrder::MsbFirst => 0x80u8 >> (sector % 8),
            BitOrder::LsbFirst => 1u8 << (sector % 8),
        };
        usize::try_from(sector / 8)
            .ok()
            .and_then(|i| bits.get(i))
            .is_some_and(|b| b & mask != 0)
    };
    let set = bit(first);
    let mut end = first.saturating_add(1);
    while end < limit && !end.is_multiple_of(8) {
        if bit(end) != set {
            return (set, end);
        }
        end = end.saturating_add(1);
    }
    let fill = if set { 0xFF } else { 0x00 };
    let from = usize::try_from(end / 8).unwrap_or(usize::MAX);
    let to = usize::try_from(limit / 8)
        .unwrap_or(usize::MAX)
        .min(bits.len());
    if let Some(whole) = bits.get(from..to) {
        let same = whole.iter().position(|&b| b != fill).unwrap_or(whole.len());
        end = end.saturating_add((same as u64).saturating_mul(8));
    }
    let bits_len = (bits.len() as u64).saturating_mul(8);
    if !set && end >= bits_len {
        // Everything past the bitmap reads as clear.
        return (set, limit.max(first.saturating_add(1)));
    }
    // At most the 8 bits of the byte that differs, or the partial byte before `limit`.
    while end < limit && bit(end) == set {
        end = end.saturating_add(1);
    }
    (set, end)
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod bit_run_tests {
    use super::{bit_run, BitOrder};

    /// The plain bit-by-bit scan `bit_run` replaces: the reference it must agree with.
    fn slow(bits: &[u8], order: BitOrder, first: u64, limit: u64) -> (bool, u64) {
        let bit = |s: u64| {
            let b = bits.get((s / 8) as usize).copied().unwrap_or(0);
            match order {
                BitOrder::MsbFirst => b & (0x80 >> (s % 8)) != 0,
                BitOrder::LsbFirst => b & (1 << (s % 8)) != 0,
            }
        };
        let set = bit(first);
        let mut end = first + 1;
        while end < limit && bit(end) == set {
            end += 1;
        }
        (set, end)
    }

    #[test]
    fn agrees_with_the_bit_by_bit_scan() {
        let mut bits = vec![0u8; 64];
        bits[3..20].fill(0xFF);
        bits[2] = 0b1110_0000;
        bits[20] = 0b0000_0111;
        bits[30] = 0x5A;
        bits[40..64].fill(0xFF);
        for order in [BitOrder::MsbFirst, BitOrder::LsbFirst] {
            for first in 0..600u64 {
                for limit in [first + 1, first + 3, 256, 512, 700] {
                    if limit <= first {
                        continue;
                    }
                    assert_eq!(
                        bit_run(&bits, order, first, limit),
                        slow(&bits, order, first, limit),
                        "{order:?} first {first} limit {limit}"
                    );
                }
            }
        }
    }
}

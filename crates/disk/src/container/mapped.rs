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
    clippy::arithmetic_side_effects
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

//! A block cache in front of a slow byte source, so a scan that makes hundreds of small reads
//! sends a few dozen range requests.
//!
//! The object is cut into aligned blocks (256 KiB by default). A read takes the blocks it covers
//! from the cache; the blocks it misses are fetched in as few requests as possible: adjacent
//! misses become one range request (at most [`CacheConfig::max_request_bytes`] each). When reads
//! walk forward through the object (hashing a WIM, verifying), each miss also fetches the blocks
//! after it, twice as many each time up to the request cap, so a sequential read costs
//! `log2` requests to reach full speed. Memory is bounded: at most
//! [`CacheConfig::capacity_bytes`] of blocks are kept, the least recently used dropped first,
//! plus the blocks of the reads in flight.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use winre_readat::{check_bounds, ReadAt};

/// A byte source that answers range requests: an object in a store, a file in a benchmark.
pub trait Fetch: Send + Sync {
    /// Exactly `len` bytes at `offset` (the caller keeps the range inside the object).
    fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// Block size, memory and request size of a [`CachedReader`].
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Block size: the unit of caching and alignment of requests. A power of two.
    pub block_bytes: u64,
    /// Blocks kept at most, in bytes (rounded down to whole blocks, at least one).
    pub capacity_bytes: u64,
    /// The largest single range request, in bytes (whole blocks, at least one).
    pub max_request_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            block_bytes: 256 * 1024,
            capacity_bytes: 64 * 1024 * 1024,
            max_request_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Requests made and bytes fetched, kept by the fetcher (which also sees retries).
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    bytes_fetched: AtomicU64,
}

/// What a remote source cost so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchStats {
    /// Requests sent (range GETs, retries included).
    pub requests: u64,
    /// Bytes received in response bodies.
    pub bytes_fetched: u64,
}

impl Counters {
    /// Counts one request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts `n` bytes received.
    pub fn fetched(&self, n: u64) {
        self.bytes_fetched.fetch_add(n, Ordering::Relaxed);
    }
    /// The counters now.
    pub fn stats(&self) -> FetchStats {
        FetchStats {
            requests: self.requests.load(Ordering::Relaxed),
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
        }
    }
}

type Block = Arc<[u8]>;

struct Entry {
    data: Block,
    last_used: u64,
}

#[derive(Default)]
struct State {
    blocks: HashMap<u64, Entry>,
    clock: u64,
    /// The block just past the previous read, to recognise a forward walk.
    next_block: u64,
    /// Blocks to fetch beyond a miss; grows while reads walk forward, 0 otherwise.
    ahead_blocks: u64,
}

/// A [`ReadAt`] over a [`Fetch`], through the block cache described in the module docs.
pub struct CachedReader<F> {
    fetch: F,
    len: u64,
    block_bytes: u64,
    capacity_blocks: usize,
    max_request_blocks: u64,
    state: Mutex<State>,
}

impl<F: Fetch> CachedReader<F> {
    /// A cache over `fetch`, an object of `len` bytes. `config` values are clamped to sane ones
    /// (block 4 KiB..16 MiB, a power of two; capacity and request at least one block).
    pub fn new(fetch: F, len: u64, config: CacheConfig) -> Self {
        let block_bytes = config
            .block_bytes
            .clamp(4096, 16 << 20)
            .checked_next_power_of_two()
            .unwrap_or(256 * 1024);
        let blocks_in = |bytes: u64| bytes.checked_div(block_bytes).unwrap_or(0).max(1);
        let capacity_blocks =
            usize::try_from(blocks_in(config.capacity_bytes)).unwrap_or(usize::MAX);
        // Read-ahead beyond half the cache would evict itself before it is read.
        let max_request_blocks = blocks_in(config.max_request_bytes)
            .min((capacity_blocks as u64).checked_div(2).unwrap_or(0).max(1));
        Self {
            fetch,
            len,
            block_bytes,
            capacity_blocks,
            max_request_blocks,
            state: Mutex::new(State::default()),
        }
    }

    /// Seeds the cache with bytes already fetched from offset 0 (the request that learnt the
    /// object's length); only whole blocks, or the object's short last block, are kept.
    pub fn seed(&self, head: &[u8]) {
        let mut state = self.lock();
        for (index, chunk) in head.chunks(self.block_size()).enumerate() {
            let index = index as u64;
            if chunk.len() as u64 == self.block_len(index) {
                insert(&mut state, index, Arc::from(chunk), self.capacity_blocks);
            }
        }
    }

    /// The fetcher (for its counters).
    pub fn fetcher(&self) -> &F {
        &self.fetch
    }

    /// The block holding byte `offset`.
    fn block_of(&self, offset: u64) -> u64 {
        offset.checked_div(self.block_bytes).unwrap_or(0)
    }

    fn block_size(&self) -> usize {
        usize::try_from(self.block_bytes).unwrap_or(256 * 1024)
    }

    fn block_count(&self) -> u64 {
        self.len.div_ceil(self.block_bytes)
    }

    /// Bytes in block `index` (the last one may be short).
    fn block_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.block_bytes);
        self.len.saturating_sub(start).min(self.block_bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only a cache behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches blocks `first..first + count` in one request and cuts them into blocks.
    fn fetch_run(&self, first: u64, count: u64) -> io::Result<Vec<(u64, Block)>> {
        let start = first.saturating_mul(self.block_bytes);
        let end = first
            .saturating_add(count)
            .saturating_mul(self.block_bytes)
            .min(self.len);
        let want = usize::try_from(end.saturating_sub(start))
            .map_err(|_| io::Error::other("range request larger than memory"))?;
        let bytes = self.fetch.fetch(start, want)?;
        if bytes.len() != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "asked for {want} bytes at offset {start}, got {}",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes
            .chunks(self.block_size())
            .zip(first..)
            .map(|(chunk, index)| (index, Arc::from(chunk)))
            .collect())
    }
}

/// Inserts a block, dropping the least recently used ones beyond `capacity`.
fn insert(state: &mut State, index: u64, data: Block, capacity: usize) {
    state.clock = state.clock.saturating_add(1);
    let last_used = state.clock;
    state.blocks.insert(index, Entry { data, last_used });
    while state.blocks.len() > capacity {
        let oldest = state
            .blocks
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(&i, _)| i);
        match oldest {
            Some(i) => state.blocks.remove(&i),
            None => break,
        };
    }
}

/// Groups sorted block indices into runs of consecutive ones, each at most `max` long.
fn runs(missing: &[u64], max: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &index in missing {
        match out.last_mut() {
            Some((first, count)) if first.saturating_add(*count) == index && *count < max => {
                *count = count.saturating_add(1);
            }
            _ => out.push((index, 1)),
        }
    }
    out
}

impl<F: Fetch> ReadAt for CachedReader<F> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        if buf.is_empty() {
            return Ok(());
        }
        // In bounds, so end >= 1 and nothing below overflows.
        let end = offset.saturating_add(buf.len() as u64);
        let first = self.block_of(offset);
        let last = self.block_of(end.saturating_sub(1));

        let mut pieces: BTreeMap<u64, Block> = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let mut state = self.lock();
            for index in first..=last {
                state.clock = state.clock.saturating_add(1);
                let now = state.clock;
                match state.blocks.get_mut(&index) {
                    Some(entry) => {
                        entry.last_used = now;
                        pieces.insert(index, Arc::clone(&entry.data));
                    }
                    None => missing.push(index),
                }
            }
            // A read that starts where the previous one ended (or in its last block) walks forward.
            let forward = first == state.next_block || first.saturating_add(1) == state.next_block;
            state.ahead_blocks = if forward {
                state
                    .ahead_blocks
                    .saturating_mul(2)
                    .max(1)
                    .min(self.max_request_blocks)
            } else {
                0
            };
            state.next_block = last.saturating_add(1);
            // Read-ahead rides along with a miss, within one request's size.
            let ahead = if missing.is_empty() {
                0
            } else {
                state
                    .ahead_blocks
                    .min(self.max_request_blocks.saturating_sub(missing.len() as u64))
            };
            // Read-ahead: blocks after the read, up to the first one already cached.
            let mut next = last.saturating_add(1);
            let stop = last
                .saturating_add(1)
                .saturating_add(ahead)
                .min(self.block_count());
            while next < stop && !state.blocks.contains_key(&next) {
                missing.push(next);
                next = next.saturating_add(1);
            }
        }

        let mut fetched = Vec::new();
        for (run_first, count) in runs(&missing, self.max_request_blocks) {
            fetched.extend(self.fetch_run(run_first, count)?);
        }
        {
            let mut state = self.lock();
            for (index, data) in fetched {
                if (first..=last).contains(&index) {
                    pieces.insert(index, Arc::clone(&data));
                }
                insert(&mut state, index, data, self.capacity_blocks);
            }
        }

        for (index, data) in pieces {
            let block_start = index.saturating_mul(self.block_bytes);
            let from = offset.max(block_start);
            // `len` here is ReadAt's (Arc<[u8]> is one): already a u64.
            let to = end.min(block_start.saturating_add(data.len()));
            let src = usize::try_from(from.saturating_sub(block_start))
                .ok()
                .and_then(|a| Some(a..usize::try_from(to.saturating_sub(block_start)).ok()?))
                .and_then(|r| data.get(r));
            let dst = usize::try_from(from.saturating_sub(offset))
                .ok()
                .and_then(|a| Some(a..usize::try_from(to.saturating_sub(offset)).ok()?))
                .and_then(|r| buf.get_mut(r));
            match (src, dst) {
                (Some(src), Some(dst)) if src.len() == dst.len() => dst.copy_from_slice(src),
                _ => {
                    return Err(io::Error::other(format!(
                        "block cache: block {index} does not cover bytes {from}..{to}"
                    )))
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
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
    use std::sync::Mutex as StdMutex;

    /// An in-memory object that logs every range it is asked for.
    struct Logged {
        data: Vec<u8>,
        log: StdMutex<Vec<(u64, usize)>>,
    }

    impl Fetch for Logged {
        fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.log.lock().unwrap().push((offset, len));
            Ok(self.data[offset as usize..offset as usize + len].to_vec())
        }
    }

    fn object(len: usize) -> Logged {
        Logged {
            data: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
            log: StdMutex::new(Vec::new()),
        }
    }

    fn config(block: u64, capacity_blocks: u64, max_request_blocks: u64) -> CacheConfig {
        CacheConfig {
            block_bytes: block,
            capacity_bytes: block * capacity_blocks,
            max_request_bytes: block * max_request_blocks,
        }
    }

    #[test]
    fn reads_equal_the_object_whatever_the_pattern() {
        let len = 100_000;
        let reader = CachedReader::new(object(len), len as u64, config(4096, 3, 4));
        let expect = reader.fetcher().data.clone();
        // Deterministic pseudo-random reads, some crossing blocks, some at the short tail.
        let mut x: u64 = 12345;
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 33) % len as u64;
            let n = ((x >> 13) % 20_000).min(len as u64 - at) as usize;
            let mut buf = vec![0u8; n];
            reader.read_exact_at(at, &mut buf).unwrap();
            assert_eq!(buf, expect[at as usize..at as usize + n]);
        }
        let mut buf = [0u8; 2];
        assert!(reader.read_exact_at(len as u64 - 1, &mut buf).is_err());
    }

    #[test]
    fn adjacent_misses_become_one_request_and_hits_none() {
        let reader = CachedReader::new(object(64 * 4096), 64 * 4096, config(4096, 64, 64));
        let mut buf = vec![0u8; 3 * 4096];
        reader.read_exact_at(10 * 4096 + 5, &mut buf).unwrap();
        assert_eq!(
            *reader.fetcher().log.lock().unwrap(),
            vec![(10 * 4096, 4 * 4096)]
        );
        reader.read_exact_at(10 * 4096 + 5, &mut buf).unwrap();
        assert_eq!(reader.fetcher().log.lock().unwrap().len(), 1);
    }

    #[test]
    fn forward_walks_read_ahead_and_memory_stays_bounded() {
        let blocks = 256u64;
        let reader = CachedReader::new(
            object(blocks as usize * 4096),
            blocks * 4096,
            config(4096, 64, 16),
        );
        let mut buf = vec![0u8; 4096];
        for i in 0..blocks {
            reader.read_exact_at(i * 4096, &mut buf).unwrap();
        }
        let log = reader.fetcher().log.lock().unwrap().clone();
        // Requests grow 1, 2, 4, 8, 16 blocks (plus the read's own block) and stay capped.
        assert!(
            log.len() < 30,
            "{} requests for a forward walk: {log:?}",
            log.len()
        );
        assert!(log.iter().all(|&(_, n)| n <= 16 * 4096));
        let total: usize = log.iter().map(|&(_, n)| n).sum();
        assert_eq!(total, blocks as usize * 4096, "each block fetched once");
        assert!(reader.lock().blocks.len() <= 64);
        // A cache smaller than the requests wanted: requests shrink to half of it, and still
        // no block is fetched twice.
        let small = CachedReader::new(
            object(blocks as usize * 4096),
            blocks * 4096,
            config(4096, 8, 16),
        );
        for i in 0..blocks {
            small.read_exact_at(i * 4096, &mut buf).unwrap();
        }
        let log = small.fetcher().log.lock().unwrap().clone();
        assert!(log.iter().all(|&(_, n)| n <= 4 * 4096), "{log:?}");
        assert_eq!(
            log.iter().map(|&(_, n)| n).sum::<usize>(),
            blocks as usize * 4096
        );
        assert!(small.lock().blocks.len() <= 8);
    }

    #[test]
    fn seeded_blocks_are_not_fetched_again() {
        let len = 10 * 4096 + 100;
        let obj = object(len);
        let head = obj.data[..3 * 4096].to_vec();
        let reader = CachedReader::new(obj, len as u64, config(4096, 16, 4));
        reader.seed(&head);
        let mut buf = vec![0u8; 2 * 4096];
        reader.read_exact_at(100, &mut buf).unwrap();
        assert!(reader.fetcher().log.lock().unwrap().is_empty());
        let mut tail = vec![0u8; 50];
        reader.read_exact_at(len as u64 - 50, &mut tail).unwrap();
        assert_eq!(
            *reader.fetcher().log.lock().unwrap(),
            vec![(10 * 4096, 100)]
        );
    }
}

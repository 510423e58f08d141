//! Streaming a range of a `ReadAt` (a guest disk, a partition) to a writer, with reads running
//! on worker threads ahead of the writer, as `winre disk cat` does.
//!
//! One thread reading then writing leaves the disk idle while it writes and the CPU idle while
//! it waits for reads; decompressing containers (qcow2 compressed clusters) also gain from more
//! than one reader. Chunks are written in order; memory stays at about `2 * threads` chunks.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use winre_readat::ReadAt;

/// Bytes per read.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Writes bytes `start..start + len` of `source` to `out`, reading with `threads` workers (at
/// least one). Fails on the first read or write error; nothing after the failed chunk is written.
pub fn copy_range(
    source: &dyn ReadAt,
    start: u64,
    len: u64,
    out: &mut dyn Write,
    threads: usize,
) -> io::Result<()> {
    let threads = threads.max(1);
    let chunk = CHUNK_BYTES as u64;
    let chunks = len.div_ceil(chunk);
    let next = AtomicU64::new(0);
    let (done_tx, done_rx) = mpsc::sync_channel::<(u64, io::Result<Vec<u8>>)>(threads);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(threads.saturating_mul(2));
    let free_rx = std::sync::Mutex::new(free_rx);
    for _ in 0..threads.saturating_mul(2) {
        // Cannot fail: the channel has room for exactly these buffers.
        let _ = free_tx.try_send(vec![0u8; CHUNK_BYTES]);
    }
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (done_tx, next, free_rx) = (done_tx.clone(), &next, &free_rx);
            scope.spawn(move || loop {
                // Buffer first, then the chunk number: every numbered chunk then has a buffer
                // and will arrive, so the writer never waits on a chunk stuck behind later ones.
                let buffer = free_rx
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok(mut buffer) = buffer else { return };
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= chunks {
                    return;
                }
                let offset = index.saturating_mul(chunk);
                let take =
                    usize::try_from(len.saturating_sub(offset).min(chunk)).unwrap_or(CHUNK_BYTES);
                buffer.resize(take, 0);
                let result = source
                    .read_exact_at(start.saturating_add(offset), &mut buffer)
                    .map(|()| buffer);
                let failed = result.is_err();
                if done_tx.send((index, result)).is_err() || failed {
                    return;
                }
            });
        }
        drop(done_tx);
        // Write in order, parking chunks that arrive early.
        let mut waiting: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut wanted = 0u64;
        let outcome = (|| {
            for (index, result) in done_rx.iter() {
                waiting.insert(index, result?);
                while let Some(buffer) = waiting.remove(&wanted) {
                    out.write_all(&buffer)?;
                    let _ = free_tx.send(buffer);
                    wanted = wanted.saturating_add(1);
                }
            }
            if wanted == chunks {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "copy stopped after {wanted} of {chunks} chunks"
                )))
            }
        })();
        // Stop the workers: no more chunks, and no buffers for the ones still waiting.
        next.store(chunks, Ordering::Relaxed);
        drop(free_tx);
        drop(done_rx);
        outcome
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn copies_in_order_with_any_thread_count() {
        let data: Vec<u8> = (0..(CHUNK_BYTES * 3 + 1234))
            .map(|i| (i % 251) as u8)
            .collect();
        for threads in [1, 2, 5] {
            let mut out = Vec::new();
            copy_range(&data, 7, data.len() as u64 - 7, &mut out, threads).unwrap();
            assert!(out == data[7..], "threads {threads}");
        }
        let mut out = Vec::new();
        assert!(copy_range(&data, 10, data.len() as u64, &mut out, 2).is_err());
        assert!(out.len() < data.len());
    }
}

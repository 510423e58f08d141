//! Parallel decoding with in-order delivery, for verifying large resources: worker threads
//! decode work items (groups of chunks) as fast as they can, and the calling thread receives
//! each item's bytes in item order (to hash them; SHA-1 is sequential).
//!
//! There is no barrier between rounds: a worker that finishes takes the next item at once, so
//! two cores stay busy even when chunks take unequal time (a batch-at-a-time scheme waits for
//! the slowest chunk of every batch). Memory is bounded by a fixed set of output buffers: a
//! worker takes a free buffer *before* it claims the next item, so the item the caller waits
//! for always has a buffer and the pipeline cannot deadlock, and a buffer comes back only once
//! the caller is done with its bytes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex, PoisonError};

/// Output buffers in flight beyond one per worker: lets a worker start the next item while the
/// caller still hashes the previous one. One is enough to keep 2 workers busy on 64 MiB LZMS
/// chunks (a second spare bought no speed and cost 64 MiB, measured with
/// benches/verify-solid-vs-wimlib.sh).
const SPARE_BUFFERS: usize = 1;

/// Free output buffers, and a flag that tells waiting workers to give up.
struct FreeBuffers {
    buffers: Mutex<Vec<Vec<u8>>>,
    returned: Condvar,
    stop: AtomicBool,
}

impl FreeBuffers {
    /// A free buffer, or None once the run is stopping.
    fn take(&self) -> Option<Vec<u8>> {
        let mut free = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            if let Some(buf) = free.pop() {
                return Some(buf);
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buf);
        self.returned.notify_one();
    }

    fn stop(&self) {
        // Under the lock, so a worker between its check and its wait cannot miss the wake-up.
        let _free = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        self.stop.store(true, Ordering::Release);
        self.returned.notify_all();
    }
}

/// Stops the run when a thread unwinds: without it the workers could wait forever for buffers
/// that are never given back (held for an item that never comes, or by a caller that is
/// unwinding), and the scope, which joins them, would hang instead of passing the panic on.
struct StopOnPanic<'a>(&'a FreeBuffers);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Runs `work(item, out, scratch)` for every item in `0..items` on up to `workers` threads
/// (`out` is an output buffer to fill, `scratch` the thread's own buffer, e.g. for stored
/// bytes), and calls `deliver(result, out)` on the calling thread for each item in item order.
/// `deliver` returning `Break` stops the run: no further item is started or delivered.
/// Memory: `workers + 1` output buffers and one scratch buffer per worker, each as large as
/// `work` makes it.
pub(crate) fn decode_in_order<T: Send>(
    items: u64,
    workers: usize,
    work: impl Fn(u64, &mut Vec<u8>, &mut Vec<u8>) -> T + Sync,
    mut deliver: impl FnMut(T, &[u8]) -> ControlFlow<()>,
) {
    let workers = usize::try_from(items)
        .unwrap_or(usize::MAX)
        .min(workers.max(1));
    if workers == 0 {
        return;
    }
    let free = FreeBuffers {
        buffers: Mutex::new(
            (0..workers.saturating_add(SPARE_BUFFERS))
                .map(|_| Vec::new())
                .collect(),
        ),
        returned: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    let next = AtomicU64::new(0);
    let (done_tx, done_rx) = mpsc::channel::<(u64, T, Vec<u8>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (free, next, work) = (&free, &next, &work);
            scope.spawn(move || {
                let _stop_on_panic = StopOnPanic(free);
                let mut scratch = Vec::new();
                // Buffer first, then the item: see the module comment.
                while let Some(mut out) = free.take() {
                    let item = next.fetch_add(1, Ordering::Relaxed);
                    if item >= items {
                        free.give_back(out);
                        break;
                    }
                    let result = work(item, &mut out, &mut scratch);
                    if done_tx.send((item, result, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let _stop_on_panic = StopOnPanic(&free);
        // Items that finished ahead of the one awaited.
        let mut early: BTreeMap<u64, (T, Vec<u8>)> = BTreeMap::new();
        let mut awaited = 0u64;
        let mut stopped = false;
        for (item, result, out) in done_rx.iter() {
            if stopped {
                free.give_back(out);
                continue;
            }
            early.insert(item, (result, out));
            while let Some((result, out)) = early.remove(&awaited) {
                let flow = deliver(result, &out);
                free.give_back(out);
                awaited = awaited.saturating_add(1);
                if flow.is_break() {
                    stopped = true;
                    free.stop();
                    early.clear();
                    break;
                }
            }
        }
        // All senders are gone: every worker has finished (scope joins them).
    });
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delivers_every_item_in_order_whatever_the_finishing_order() {
        for workers in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            decode_in_order(
                50,
                workers,
                |item, out, _| {
                    // Early items are slow, so later ones finish first.
                    std::thread::sleep(Duration::from_micros((50 - item) * 50));
                    out.clear();
                    out.extend_from_slice(&item.to_le_bytes());
                    item
                },
                |item, out| {
                    assert_eq!(out, item.to_le_bytes());
                    seen.push(item);
                    ControlFlow::Continue(())
                },
            );
            assert_eq!(seen, (0..50).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    #[test]
    fn break_stops_the_run_and_nothing_after_is_delivered() {
        let started = AtomicU64::new(0);
        let mut seen = Vec::new();
        decode_in_order(
            10_000,
            2,
            |item, _, _| {
                started.fetch_add(1, Ordering::Relaxed);
                item
            },
            |item, _| {
                seen.push(item);
                if item == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(seen, (0..=5).collect::<Vec<_>>());
        // Bounded buffers: workers cannot run far ahead of delivery.
        assert!(started.load(Ordering::Relaxed) < 100);
    }

    #[test]
    fn a_panicking_worker_reaches_the_caller_instead_of_hanging() {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                decode_in_order(
                    1_000,
                    2,
                    |item, _, _| {
                        if item == 3 {
                            panic!("decoder bug");
                        }
                        item
                    },
                    |_, _| ControlFlow::Continue(()),
                )
            });
            let _ = done_tx.send(outcome.is_err());
        });
        let panicked = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("decode_in_order hung after a worker panicked");
        assert!(panicked);
    }

    #[test]
    fn a_panicking_caller_does_not_hang_the_workers() {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                decode_in_order(
                    1_000,
                    2,
                    |item, _, _| item,
                    |item, _| {
                        if item == 3 {
                            panic!("hasher bug");
                        }
                        ControlFlow::Continue(())
                    },
                )
            });
            let _ = done_tx.send(outcome.is_err());
        });
        let panicked = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("decode_in_order hung after the caller panicked");
        assert!(panicked);
    }

    #[test]
    fn no_items_and_more_workers_than_items() {
        let mut n = 0;
        decode_in_order(
            0,
            4,
            |i, _, _| i,
            |_, _| {
                n += 1;
                ControlFlow::Continue(())
            },
        );
        assert_eq!(n, 0);
        decode_in_order(
            1,
            4,
            |i, _, _| i,
            |_, _| {
                n += 1;
                ControlFlow::Continue(())
            },
        );
        assert_eq!(n, 1);
    }
}

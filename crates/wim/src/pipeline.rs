//! Parallel decoding with in-order delivery, for verifying large resources: worker threads
//! decode work items (groups of chunks) as fast as they can, and the calling thread receives
//! each item's bytes in item order (to hash them; SHA-1 is sequential).
//!
//! There is no barrier between rounds: a worker that finishes takes the next item at once, so
//! two cores stay busy even when chunks take unequal time (a batch-at-a-time scheme waits for
//! the slowest chunk of every batch). Memory is bounded twice: by a fixed set of buffer pairs
//! (output and stored bytes), and by a byte budget ([`MemoryBudget`]) that each item takes its
//! cost from, so that huge chunks (64 MiB LZMS) have fewer items in flight. A worker takes a
//! free buffer pair *before* it claims the next item, and items take their grants in item
//! order, so the item the caller waits for always gets its buffers and its grant (every grant
//! held is for an earlier item, which is decoding or delivered next) and the pipeline cannot
//! deadlock; buffers and grant come back only once the caller is done with the bytes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex, PoisonError};

use crate::budget::{Grant, MemoryBudget};

/// Buffer pairs in flight beyond one per worker: lets a worker start the next item while the
/// caller still hashes the previous one (when the byte budget allows).
const SPARE_BUFFERS: usize = 1;

/// An item's output buffer and the buffer its stored bytes are read into.
#[derive(Default)]
struct Buffers {
    out: Vec<u8>,
    input: Vec<u8>,
}

impl Buffers {
    fn capacity(&self) -> u64 {
        (self.out.capacity() as u64).saturating_add(self.input.capacity() as u64)
    }
}

/// Free buffer pairs, and a flag that tells waiting workers to give up.
struct FreeBuffers {
    buffers: Mutex<Vec<Buffers>>,
    returned: Condvar,
    stop: AtomicBool,
}

impl FreeBuffers {
    /// A free buffer pair, or None once the run is stopping.
    fn take(&self) -> Option<Buffers> {
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

    fn give_back(&self, buf: Buffers) {
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

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Stops the run when a thread unwinds: without it the workers could wait forever for buffers
/// that are never given back (held for an item that never comes, or by a caller that is
/// unwinding), and the scope, which joins them, would hang instead of passing the panic on.
/// (Grants need no such help: the unwinding thread drops those it holds, and the channel drops
/// those in transit.)
struct StopOnPanic<'a>(&'a FreeBuffers);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// A decoded item waiting for delivery: its result, buffers and grant.
type Decoded<'g, T> = (T, Buffers, Grant<'g>);

/// Runs `work(item, out, input)` for every item in `0..items` on up to `workers` threads (`out`
/// is an output buffer to fill, `input` one for the item's stored bytes), and calls
/// `deliver(result, out)` on the calling thread for each item in item order. `deliver`
/// returning `Break` stops the run: no further item is started or delivered.
/// Memory: at most `workers + 1` buffer pairs, and the items in flight hold at most `budget`
/// bytes by `cost` (an item's output plus stored bytes), but always one item.
pub(crate) fn decode_in_order<T: Send>(
    items: u64,
    workers: usize,
    budget: &MemoryBudget,
    cost: impl Fn(u64) -> u64 + Sync,
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
                .map(|_| Buffers::default())
                .collect(),
        ),
        returned: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    // The next item to claim; held while its grant is taken, so grants go in item order.
    let next = Mutex::new(0u64);
    let (done_tx, done_rx) = mpsc::channel::<(u64, Decoded<'_, T>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (free, next, work, cost) = (&free, &next, &work, &cost);
            scope.spawn(move || {
                let _stop_on_panic = StopOnPanic(free);
                // Buffers first, then the item: see the module comment.
                while let Some(mut bufs) = free.take() {
                    let claimed = {
                        let mut next = next.lock().unwrap_or_else(PoisonError::into_inner);
                        let item = *next;
                        if item < items {
                            *next = item.saturating_add(1);
                            let need = cost(item);
                            Some((item, need, budget.acquire(need)))
                        } else {
                            None
                        }
                    };
                    let Some((item, need, grant)) = claimed.filter(|_| !free.stopped()) else {
                        free.give_back(bufs);
                        break;
                    };
                    // Buffers grown for a larger item would hold memory the grant does not
                    // count: start afresh.
                    if bufs.capacity() > need.saturating_mul(2).max(1 << 20) {
                        bufs = Buffers::default();
                    }
                    let result = work(item, &mut bufs.out, &mut bufs.input);
                    if done_tx.send((item, (result, bufs, grant))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let _stop_on_panic = StopOnPanic(&free);
        // Items that finished ahead of the one awaited.
        let mut early: BTreeMap<u64, Decoded<'_, T>> = BTreeMap::new();
        let mut awaited = 0u64;
        let mut stopped = false;
        for (item, (result, bufs, grant)) in done_rx.iter() {
            if stopped {
                free.give_back(bufs);
                drop(grant);
                continue;
            }
            early.insert(item, (result, bufs, grant));
            while let Some((result, bufs, grant)) = early.remove(&awaited) {
                let flow = deliver(result, &bufs.out);
                free.give_back(bufs);
                drop(grant);
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
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// decode_in_order with a budget that never binds.
    fn unbounded<T: Send>(
        items: u64,
        workers: usize,
        work: impl Fn(u64, &mut Vec<u8>, &mut Vec<u8>) -> T + Sync,
        deliver: impl FnMut(T, &[u8]) -> ControlFlow<()>,
    ) {
        let budget = MemoryBudget::new(u64::MAX);
        decode_in_order(items, workers, &budget, |_| 1, work, deliver);
    }

    /// Most items decoding at once with 4 workers, items costing `cost` and a budget of 100.
    fn most_at_once(cost: impl Fn(u64) -> u64 + Sync) -> u64 {
        let budget = MemoryBudget::new(100);
        let (now, most) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut seen = 0;
        decode_in_order(
            40,
            4,
            &budget,
            cost,
            |item, _, _| {
                most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(300));
                now.fetch_sub(1, Ordering::SeqCst);
                item
            },
            |item, _| {
                assert_eq!(item, seen);
                seen += 1;
                ControlFlow::Continue(())
            },
        );
        assert_eq!(seen, 40);
        most.load(Ordering::SeqCst)
    }

    #[test]
    fn the_byte_budget_limits_the_items_in_flight() {
        // 60 of 100: one at a time; 30: three (the budget allows three, the buffers five).
        assert_eq!(most_at_once(|_| 60), 1);
        assert!(most_at_once(|_| 30) <= 3);
        // An item above the budget still runs, alone; cheap ones around it share.
        assert_eq!(most_at_once(|_| 500), 1);
        assert!(most_at_once(|i| if i % 10 == 0 { 500 } else { 10 }) <= 4);
    }

    #[test]
    fn delivers_every_item_in_order_whatever_the_finishing_order() {
        for workers in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            unbounded(
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
        unbounded(
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
                unbounded(
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
                unbounded(
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
        unbounded(
            0,
            4,
            |i, _, _| i,
            |_, _| {
                n += 1;
                ControlFlow::Continue(())
            },
        );
        assert_eq!(n, 0);
        unbounded(
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

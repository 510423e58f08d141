//! A byte budget for decode buffers, shared by every thread of a verification, so that peak
//! memory stays bounded whatever the chunk size (64 MiB solid LZMS chunks, ESDs with larger
//! ones): a thread takes a grant for the bytes it is about to hold and waits while the budget is
//! spent. One grant is always allowed when nothing else is held, so a single chunk larger than
//! the budget still decodes (alone) and nothing waits forever.

use std::sync::{Condvar, Mutex, PoisonError};

/// Bytes of decode buffers (uncompressed and stored chunk bytes) a verification holds at most by
/// default: with the rest of the process (code, blob table, decoders' tables: about 15 MiB) it
/// keeps peak RSS within 128 MiB. One 64 MiB LZMS chunk and its stored bytes fit; two do not, so
/// such chunks decode one at a time (wimlib and 7-Zip decode them one at a time too).
pub const DEFAULT_BUFFER_BYTES: u64 = 100 << 20;

/// A byte budget (see the module comment).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct State {
    held: u64,
}

/// Bytes taken from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Grant<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            state: Mutex::new(State::default()),
            released: Condvar::new(),
        }
    }

    /// Bytes held by grants now.
    #[cfg(test)]
    pub fn held(&self) -> u64 {
        self.lock().held
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `bytes`, waiting while other grants leave too little room; when nothing is held the
    /// grant is given whatever its size.
    pub fn acquire(&self, bytes: u64) -> Grant<'_> {
        let mut state = self.lock();
        loop {
            if state.held == 0 || state.held.saturating_add(bytes) <= self.limit {
                state.held = state.held.saturating_add(bytes);
                return Grant {
                    budget: self,
                    bytes,
                };
            }
            state = self
                .released
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.held = state.held.saturating_sub(self.bytes);
        drop(state);
        self.budget.released.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn holders_never_exceed_the_limit_and_an_oversized_grant_goes_alone() {
        let budget = MemoryBudget::new(100);
        let peak = AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let (budget, peak) = (&budget, &peak);
                s.spawn(move || {
                    for _ in 0..20 {
                        // 40 or 150 bytes: two of 40 fit, 150 only alone.
                        let size = if i == 0 { 150 } else { 40 };
                        let grant = budget.acquire(size);
                        let held = budget.held();
                        assert!(held <= 100 || held == 150, "held {held}");
                        peak.fetch_max(held, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(200));
                        drop(grant);
                    }
                });
            }
        });
        assert_eq!(budget.held(), 0);
        assert!(peak.load(Ordering::Relaxed) >= 80);
    }
}

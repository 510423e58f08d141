//! A small bounded cache of decoded blocks (grain tables, grains, EWF chunks), shared by readers
//! on many threads. A handful of entries is enough for sequential reads and for the repeated table
//! lookups a partition-table scan makes; memory stays at `capacity` times the block size.

use std::sync::{Arc, Mutex, MutexGuard};

/// Least-recently-used cache from a block number to a decoded block.
pub(crate) struct LruCache<V> {
    /// Most recently used last. Linear scans are fine for the few dozen entries we keep.
    slots: Mutex<Vec<(u64, Arc<V>)>>,
    capacity: usize,
}

impl<V> LruCache<V> {
    /// A cache that keeps at most `capacity` blocks (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<(u64, Arc<V>)>> {
        // A panic elsewhere while holding the lock leaves the Vec consistent (every operation
        // below is a single push or remove), so a poisoned lock is safe to keep using.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The block for `key`, decoding it with `load` when it is not cached. `load` runs without
    /// the lock held, so threads decode different blocks at the same time.
    pub(crate) fn get_or_load<E>(
        &self,
        key: u64,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        {
            let mut slots = self.slots();
            if let Some(index) = slots.iter().position(|(k, _)| *k == key) {
                let entry = slots.remove(index);
                let value = Arc::clone(&entry.1);
                slots.push(entry);
                return Ok(value);
            }
        }
        let value = Arc::new(load()?);
        let mut slots = self.slots();
        if !slots.iter().any(|(k, _)| *k == key) {
            if slots.len() >= self.capacity {
                slots.remove(0);
            }
            slots.push((key, Arc::clone(&value)));
        }
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let cache = LruCache::new(2);
        let loads = std::cell::Cell::new(0);
        let load = |v: u32| {
            loads.set(loads.get() + 1);
            Ok::<_, ()>(v)
        };
        assert_eq!(*cache.get_or_load(1, || load(10)).unwrap(), 10);
        assert_eq!(*cache.get_or_load(2, || load(20)).unwrap(), 20);
        assert_eq!(*cache.get_or_load(1, || load(99)).unwrap(), 10); // hit, 1 becomes newest
        assert_eq!(*cache.get_or_load(3, || load(30)).unwrap(), 30); // evicts 2
        assert_eq!(*cache.get_or_load(1, || load(99)).unwrap(), 10);
        assert_eq!(*cache.get_or_load(2, || load(21)).unwrap(), 21);
        assert_eq!(loads.get(), 4);
        assert!(cache.get_or_load(7, || Err::<u32, _>("bad")).is_err());
    }
}

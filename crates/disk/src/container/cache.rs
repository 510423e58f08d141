//! A small bounded least-recently-used cache for table pages (qcow2 L2 tables, VHDX BAT pages,
//! VHD sector bitmaps), shared by all reader threads.
//!
//! Loads happen outside the lock, so a slow read does not stall other threads; two threads that
//! miss on the same key at once both load it and the second insert is dropped.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::Result;

/// At most `capacity` values, evicting the least recently used.
pub(crate) struct LruCache<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    tick: u64,
    /// (key, last use, value). Small (tens of entries), so a linear scan beats a map.
    entries: Vec<(u64, u64, Arc<V>)>,
}

impl<V> LruCache<V> {
    /// A cache holding at most `capacity` values (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            inner: Mutex::new(Inner {
                tick: 0,
                entries: Vec::with_capacity(capacity),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // A panic elsewhere while holding the lock cannot leave the Vec half-updated in a way
        // that matters here (entries are whole), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value for `key`, loading it with `load` on a miss.
    pub(crate) fn get_or_load(&self, key: u64, load: impl FnOnce() -> Result<V>) -> Result<Arc<V>> {
        {
            let mut inner = self.lock();
            inner.tick = inner.tick.wrapping_add(1);
            let tick = inner.tick;
            if let Some(entry) = inner.entries.iter_mut().find(|(k, _, _)| *k == key) {
                entry.1 = tick;
                return Ok(Arc::clone(&entry.2));
            }
        }
        let value = Arc::new(load()?);
        let mut inner = self.lock();
        inner.tick = inner.tick.wrapping_add(1);
        let tick = inner.tick;
        if inner.entries.iter().any(|(k, _, _)| *k == key) {
            return Ok(value);
        }
        if inner.entries.len() >= self.capacity {
            if let Some(oldest) = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, used, _))| *used)
                .map(|(i, _)| i)
            {
                inner.entries.swap_remove(oldest);
            }
        }
        inner.entries.push((key, tick, Arc::clone(&value)));
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let cache = LruCache::new(2);
        let mut loads = 0;
        let get = |k: u64, loads: &mut i32| {
            *cache
                .get_or_load(k, || {
                    *loads += 1;
                    Ok(k * 10)
                })
                .unwrap()
        };
        assert_eq!(get(1, &mut loads), 10);
        assert_eq!(get(2, &mut loads), 20);
        assert_eq!(get(1, &mut loads), 10); // hit; 2 is now oldest
        assert_eq!(get(3, &mut loads), 30); // evicts 2
        assert_eq!(loads, 3);
        assert_eq!(get(1, &mut loads), 10);
        assert_eq!(loads, 3);
        assert_eq!(get(2, &mut loads), 20);
        assert_eq!(loads, 4);
    }
}

//! [`ShardedLru`]: an LRU bounded in entries and split into mutex-guarded
//! shards, so cores rarely queue on one lock. It holds the negative cache
//! (`cache`) and the classifier's user-agent memo (`events::classify`); it
//! knows nothing of either, which is why it sits at the bottom on its own.
//!
//! Each shard's lock is a `std::sync::Mutex` held only for a lookup or an
//! insert, never across `.await`.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Shards of every sharded cache in the crate.
pub const SHARDS: usize = 16;

/// An LRU bounded in entries, split into mutex-guarded shards so cores
/// rarely queue on one lock. The caller picks the shard from a well-spread
/// part of the key (any number; it is taken modulo the shard count).
#[derive(Debug)]
pub struct ShardedLru<K: Hash + Eq, V> {
    shards: Vec<Mutex<LruCache<K, V>>>,
}

impl<K: Hash + Eq, V: Clone> ShardedLru<K, V> {
    /// At most about `entries` entries (0 disables it: nothing is kept).
    pub fn new(entries: usize) -> ShardedLru<K, V> {
        let per = NonZeroUsize::new(entries.div_ceil(SHARDS)).unwrap_or(NonZeroUsize::MIN);
        let n = if entries == 0 { 0 } else { SHARDS };
        ShardedLru { shards: (0..n).map(|_| Mutex::new(LruCache::new(per))).collect() }
    }

    fn shard(&self, spread: usize) -> Option<&Mutex<LruCache<K, V>>> {
        self.shards.get(spread % SHARDS)
    }

    pub fn get(&self, spread: usize, key: &K) -> Option<V> {
        self.shard(spread)?.lock().expect("cache shard poisoned").get(key).cloned()
    }

    pub fn put(&self, spread: usize, key: K, value: V) {
        if let Some(shard) = self.shard(spread) {
            shard.lock().expect("cache shard poisoned").put(key, value);
        }
    }

    pub fn remove(&self, spread: usize, key: &K) {
        if let Some(shard) = self.shard(spread) {
            shard.lock().expect("cache shard poisoned").pop(key);
        }
    }
}

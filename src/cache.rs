//! The redirect path's caches in front of the store: [`LinkCache`], the
//! resolved links, and [`NegativeCache`], well-formed tokens the store did not
//! know.
//!
//! Both are sharded LRUs keyed by (day, random part). The random part is
//! uniformly distributed, so its first byte picks the shard and cores rarely
//! queue on one mutex. Each shard's lock is a `std::sync::Mutex` held only for
//! a lookup or an insert, never across `.await`.
//!
//! The link cache is bounded in *bytes* (URL length plus a fixed entry
//! overhead), so a flood of 2 KB URLs cannot exceed its budget. The negative
//! cache is a [`ShardedLru`] bounded in entries, and each entry expires after
//! a TTL.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use crate::day::Day;
use crate::link::{LinkIds, LinkKind};
use crate::sharded_lru::{SHARDS, ShardedLru};
use crate::token::Random;
/// Per-entry bookkeeping on top of the URL bytes: key, value, LRU links, hash slot.
pub const ENTRY_OVERHEAD: usize = 128;

type Key = (Day, Random);

/// A link as the redirect path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLink {
    pub kind: LinkKind,
    /// Destination bytes, validated at mint; empty for the open pixel.
    pub location: Bytes,
    /// The link's letter and URL ids, handed on to its events.
    pub ids: LinkIds,
}

impl CachedLink {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.location.len()
    }
}

#[derive(Debug)]
struct Shard {
    lru: LruCache<Key, CachedLink>,
    bytes: usize,
}

/// Resolved links, bounded in bytes.
#[derive(Debug)]
pub struct LinkCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
}

/// The shard of a link: its last byte, which is random for both token
/// formats (v1: random bits; v2: the last byte of the secret, whereas the
/// first bytes of a v2 block are the id's high bytes, zero for years).
fn shard_of(random: &Random) -> usize {
    usize::from(random.0[15]) % SHARDS
}

impl LinkCache {
    /// A cache holding at most `budget_bytes` (0 disables it).
    pub fn new(budget_bytes: usize) -> LinkCache {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard { lru: LruCache::unbounded(), bytes: 0 })).collect();
        LinkCache { shards, shard_budget: budget_bytes / SHARDS }
    }

    pub fn get(&self, day: Day, random: &Random) -> Option<CachedLink> {
        let mut shard = self.shards[shard_of(random)].lock().expect("cache shard poisoned");
        shard.lru.get(&(day, *random)).cloned()
    }

    pub fn insert(&self, day: Day, random: Random, link: CachedLink) {
        let cost = link.cost();
        if cost > self.shard_budget {
            return;
        }
        let mut shard = self.shards[shard_of(&random)].lock().expect("cache shard poisoned");
        if let Some(old) = shard.lru.put((day, random), link) {
            shard.bytes -= old.cost();
        }
        shard.bytes += cost;
        while shard.bytes > self.shard_budget {
            match shard.lru.pop_lru() {
                Some((_, evicted)) => shard.bytes -= evicted.cost(),
                None => break,
            }
        }
    }

    /// Bytes accounted across all shards.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("cache shard poisoned").bytes).sum()
    }

    /// Entries across all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("cache shard poisoned").lru.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Well-formed tokens the store did not know, remembered for a while so a
/// repeated probe costs no query.
#[derive(Debug)]
pub struct NegativeCache {
    seen: ShardedLru<Key, Instant>,
    ttl: Duration,
}

impl NegativeCache {
    /// At most `entries` entries (0 disables it), each trusted for `ttl`.
    pub fn new(entries: usize, ttl: Duration) -> NegativeCache {
        NegativeCache { seen: ShardedLru::new(entries), ttl }
    }

    /// True if `(day, random)` was recently found missing.
    pub fn contains(&self, day: Day, random: &Random) -> bool {
        match self.seen.get(shard_of(random), &(day, *random)) {
            Some(at) if at.elapsed() < self.ttl => true,
            Some(_) => {
                self.seen.remove(shard_of(random), &(day, *random));
                false
            }
            None => false,
        }
    }

    pub fn insert(&self, day: Day, random: Random) {
        self.seen.put(shard_of(&random), (day, random), Instant::now());
    }

    /// Forget `(day, random)`: it was just minted.
    pub fn remove(&self, day: Day, random: &Random) {
        self.seen.remove(shard_of(random), &(day, *random));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v2 blocks of consecutive ids spread over every shard (their first
    /// bytes are all zero; the secret decides).
    #[test]
    fn v2_links_spread_over_the_shards() {
        let mut out = Vec::new();
        let keys = crate::token::KeyRing::parse("1:000102030405060708090a0b0c0d0e0f").unwrap();
        crate::token::generate_v2(&keys, Day(10), 1, 1600, &mut out);
        let mut per_shard = [0usize; SHARDS];
        for (_, block) in &out {
            per_shard[shard_of(block)] += 1;
        }
        assert!(per_shard.iter().all(|n| (40..=160).contains(n)), "{per_shard:?}");
    }

    fn link(url: &str) -> CachedLink {
        CachedLink { kind: LinkKind::Click, location: Bytes::copy_from_slice(url.as_bytes()), ids: LinkIds { letter_id: 1, url_id: 2 } }
    }

    fn rnd(i: u32) -> Random {
        let mut r = [0u8; 16];
        r[..4].copy_from_slice(&i.to_le_bytes());
        r[12..].copy_from_slice(&i.to_be_bytes());
        Random(r)
    }

    #[test]
    fn stays_within_byte_budget() {
        let budget = 64 * 1024;
        let cache = LinkCache::new(budget);
        let url = "https://example.com/".repeat(50); // 1000 bytes
        for i in 0..10_000 {
            cache.insert(Day(1), rnd(i), link(&url));
        }
        assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        assert!(cache.len() > 16, "cache kept too little: {}", cache.len());
        // the most recent insert survives, the first is long gone
        assert!(cache.get(Day(1), &rnd(9_999)).is_some());
        assert!(cache.get(Day(1), &rnd(0)).is_none());
    }

    #[test]
    fn day_is_part_of_the_key() {
        let cache = LinkCache::new(1 << 20);
        cache.insert(Day(1), rnd(7), link("https://a.example/"));
        assert!(cache.get(Day(2), &rnd(7)).is_none());
        assert_eq!(cache.get(Day(1), &rnd(7)).unwrap().location, "https://a.example/");
    }

    #[test]
    fn negative_entries_expire_and_can_be_removed() {
        let neg = NegativeCache::new(100, Duration::from_millis(0));
        neg.insert(Day(1), rnd(1));
        assert!(!neg.contains(Day(1), &rnd(1)), "ttl 0 must not be trusted");
        let neg = NegativeCache::new(100, Duration::from_secs(60));
        neg.insert(Day(1), rnd(1));
        assert!(neg.contains(Day(1), &rnd(1)));
        neg.remove(Day(1), &rnd(1));
        assert!(!neg.contains(Day(1), &rnd(1)));
        assert!(!NegativeCache::new(0, Duration::from_secs(1)).contains(Day(1), &rnd(1)));
    }
}

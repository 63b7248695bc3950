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
//! overhead), so a flood of 2 KB URLs cannot exceed its budget. Its entries
//! are compact, because the budget is meant to hold a whole send's links (a
//! million of them in the default 256 MiB): each shard keeps its entries in
//! one `Vec` of slots linked into LRU order by `u32` indices, and a
//! `hashbrown::HashTable` of slot numbers (4 bytes a bucket) finds them; no
//! per-entry allocation besides the URL's own bytes. The negative cache is a
//! [`ShardedLru`] bounded in entries, and each entry expires after a TTL.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::day::Day;
use crate::link::{LinkIds, LinkKind};
use crate::sharded_lru::{SHARDS, ShardedLru};
use crate::token::Random;
/// Per-entry bookkeeping on top of the URL bytes: the slot (key, kind, URL
/// handle, letter and URL ids, LRU links: 88 bytes), its hash-table bucket
/// (4 to 9 bytes with the table's spare room) and the allocator's header and
/// rounding of the URL bytes. Measured with `examples/cache_rss.rs`: resident
/// bytes per cached link minus the URL length (111.8 B), rounded up.
pub const ENTRY_OVERHEAD: usize = 120;

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

/// No slot: the end of the LRU list.
const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    key: Key,
    link: CachedLink,
    /// Towards the most recently used end.
    newer: u32,
    /// Towards the least recently used end.
    older: u32,
}

/// One shard: slots in a `Vec`, an index of slot numbers, a free list of
/// slots whose entry was evicted, and the LRU list through the slots.
#[derive(Debug)]
struct Shard {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    bytes: usize,
}

/// The hash of a key. The secret bytes of a random part are uniformly
/// distributed (only a valid, minted token gets cached), so a multiply-mix
/// of them is as good as a keyed hash here, and cheaper.
fn hash(key: &Key) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key.1.0[8..]);
    (u64::from_le_bytes(b) ^ u64::from(key.0.0)).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26)
}

impl Shard {
    fn new() -> Shard {
        Shard { index: HashTable::new(), slots: Vec::new(), free: Vec::new(), newest: NIL, oldest: NIL, bytes: 0 }
    }

    fn find(&self, key: &Key) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(hash(key), |&i| slots[i as usize].key == *key).copied()
    }

    fn unlink(&mut self, i: u32) {
        let (newer, older) = (self.slots[i as usize].newer, self.slots[i as usize].older);
        match newer {
            NIL => self.newest = older,
            n => self.slots[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o as usize].newer = newer,
        }
    }

    fn push_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        let slot = &mut self.slots[i as usize];
        slot.newer = NIL;
        slot.older = old_newest;
        match old_newest {
            NIL => self.oldest = i,
            n => self.slots[n as usize].newer = i,
        }
        self.newest = i;
    }

    fn touch(&mut self, i: u32) {
        if self.newest != i {
            self.unlink(i);
            self.push_newest(i);
        }
    }

    fn get(&mut self, key: &Key) -> Option<CachedLink> {
        let i = self.find(key)?;
        self.touch(i);
        Some(self.slots[i as usize].link.clone())
    }

    fn put(&mut self, key: Key, link: CachedLink) {
        let cost = link.cost();
        if let Some(i) = self.find(&key) {
            let slot = &mut self.slots[i as usize];
            self.bytes = self.bytes - slot.link.cost() + cost;
            slot.link = link;
            self.touch(i);
            return;
        }
        let slot = Slot { key, link, newer: NIL, older: NIL };
        let i = if let Some(i) = self.free.pop() {
            self.slots[i as usize] = slot;
            i
        } else {
            // A shard never holds 4 G entries: the byte budget stops it long before.
            let i = u32::try_from(self.slots.len()).expect("link cache shard over u32::MAX slots");
            self.slots.push(slot);
            i
        };
        let slots = &self.slots;
        self.index.insert_unique(hash(&key), i, |&j| hash(&slots[j as usize].key));
        self.push_newest(i);
        self.bytes += cost;
    }

    /// Drop the least recently used entry; false when empty.
    fn evict_oldest(&mut self) -> bool {
        let i = self.oldest;
        if i == NIL {
            return false;
        }
        self.unlink(i);
        let key = self.slots[i as usize].key;
        if let Ok(entry) = self.index.find_entry(hash(&key), |&j| j == i) {
            entry.remove();
        }
        // Release the URL now; the slot is reused by the next insert.
        let link = std::mem::replace(
            &mut self.slots[i as usize].link,
            CachedLink { kind: LinkKind::Click, location: Bytes::new(), ids: LinkIds { letter_id: 0, url_id: 0 } },
        );
        self.bytes -= link.cost();
        self.free.push(i);
        true
    }

    fn len(&self) -> usize {
        self.index.len()
    }
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
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect();
        LinkCache { shards, shard_budget: budget_bytes / SHARDS }
    }

    pub fn get(&self, day: Day, random: &Random) -> Option<CachedLink> {
        // Held for one lookup; never across `.await`.
        let mut shard = self.shards[shard_of(random)].lock().expect("cache shard poisoned");
        shard.get(&(day, *random))
    }

    pub fn insert(&self, day: Day, random: Random, link: CachedLink) {
        if link.cost() > self.shard_budget {
            return;
        }
        let mut shard = self.shards[shard_of(&random)].lock().expect("cache shard poisoned");
        shard.put((day, random), link);
        while shard.bytes > self.shard_budget && shard.evict_oldest() {}
    }

    /// Bytes accounted across all shards.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("cache shard poisoned").bytes).sum()
    }

    /// Entries across all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("cache shard poisoned").len()).sum()
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
    fn evicts_least_recently_used_and_reuses_slots() {
        let url = "https://example.com/x";
        let per_entry = ENTRY_OVERHEAD + url.len();
        // Three entries per shard; every key below lands in shard 0.
        let cache = LinkCache::new(per_entry * 3 * SHARDS);
        let key = |i: u8| {
            let mut r = [0u8; 16];
            r[8] = i;
            r[15] = 0;
            Random(r)
        };
        for i in 0..3 {
            cache.insert(Day(1), key(i), link(url));
        }
        assert!(cache.get(Day(1), &key(0)).is_some(), "0 is now the most recent");
        cache.insert(Day(1), key(3), link(url));
        assert!(cache.get(Day(1), &key(1)).is_none(), "1 was the least recently used");
        for i in [0, 2, 3] {
            assert!(cache.get(Day(1), &key(i)).is_some(), "{i} kept");
        }
        // Replacing an entry keeps one entry and its new bytes.
        cache.insert(Day(1), key(3), link("https://example.com/y"));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(Day(1), &key(3)).unwrap().location, "https://example.com/y");
        assert_eq!(cache.bytes(), per_entry * 3);
        // Churn: slots are reused, the shard never grows past what the budget holds.
        for i in 10..200 {
            cache.insert(Day(1), key(i), link(url));
        }
        assert_eq!(cache.len(), 3);
        let shard = cache.shards[0].lock().unwrap();
        assert!(shard.slots.len() <= 4, "{} slots", shard.slots.len());
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

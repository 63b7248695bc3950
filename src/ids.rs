//! Link ids for token v2, handed out before the insert: each process takes
//! a block of ids from the store's sequence at a time (one short statement
//! per block, so the sequence row is never hot) and deals them out to mints
//! from memory. Ids are unique across replicas; a restart leaves a gap.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::Result;
use crate::store::Store;

/// Deals out link ids from blocks reserved in the store.
#[derive(Debug)]
pub struct IdAllocator<S> {
    store: Arc<S>,
    block: u64,
    /// The unused rest of the current block. A std mutex: held only to take
    /// from the range, never across `.await` (the store call happens unlocked).
    free: Mutex<Range<u64>>,
}

impl<S: Store> IdAllocator<S> {
    /// `block`: ids reserved per store round trip (at least 1).
    pub fn new(store: Arc<S>, block: u64) -> IdAllocator<S> {
        IdAllocator { store, block: block.max(1), free: Mutex::new(0..0) }
    }

    /// `n` consecutive unused ids, as the first of them.
    pub async fn take(&self, n: u64) -> Result<u64> {
        if let Some(first) = self.take_free(n) {
            return Ok(first);
        }
        // Not enough left: reserve a new block (or a run of exactly `n` for a
        // batch larger than a block). Two requests may both reserve here; the
        // later block then replaces the earlier one's rest, which becomes a gap.
        let want = n.max(self.block);
        let first = self.store.reserve_ids(want).await?;
        let mut free = self.free.lock().expect("id allocator poisoned");
        *free = first + n..first + want;
        Ok(first)
    }

    fn take_free(&self, n: u64) -> Option<u64> {
        let mut free = self.free.lock().expect("id allocator poisoned");
        if free.end - free.start < n {
            return None;
        }
        let first = free.start;
        free.start += n;
        Some(first)
    }
}

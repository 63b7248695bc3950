//! The bounded in-memory queue between the redirect path and the event
//! writer. Pushing never waits: when the queue is full (the writer is stuck
//! behind a full spool) the hit is dropped and counted, so a redirect is
//! never slowed by event recording.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::events::Hit;

/// Counters of the event pipeline, read by `/metrics` and the tests.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Hits accepted into the queue.
    pub captured: AtomicU64,
    /// Hits dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Event rows written to the store (directly or by replay).
    pub stored: AtomicU64,
    /// Events appended to the spool.
    pub spooled: AtomicU64,
    /// Events replayed from the spool into the store.
    pub replayed: AtomicU64,
    /// Spool records skipped because they were torn or corrupt.
    pub spool_corrupt: AtomicU64,
    /// Spooled batches found already stored on replay (not stored twice).
    pub duplicate_batches: AtomicU64,
    /// Current spool size in bytes.
    pub spool_bytes: AtomicU64,
    /// Events counted into the stats totals by this process's rollup passes.
    pub rolled_up: AtomicU64,
    /// The rollup's `as_of` (ms since the epoch: every stored event hit at or
    /// before it is counted) as this process last read or moved it; 0 until
    /// its first pass. `/metrics` shows now minus this as the rollup lag.
    pub rollup_as_of_ms: AtomicU64,
}

impl EventCounters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(c: &AtomicU64, v: u64) {
        c.store(v, Ordering::Relaxed);
    }
}

/// The redirect side of the queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventQueue {
    tx: mpsc::Sender<Hit>,
    pub counters: Arc<EventCounters>,
}

impl EventQueue {
    /// A queue holding at most `capacity` hits, and the writer's end of it.
    pub fn new(capacity: usize, counters: Arc<EventCounters>) -> (EventQueue, mpsc::Receiver<Hit>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (EventQueue { tx, counters }, rx)
    }

    /// Enqueue without waiting; false (and counted) when the queue is full or closed.
    pub fn push(&self, hit: Hit) -> bool {
        if self.tx.try_send(hit).is_ok() {
            EventCounters::add(&self.counters.captured, 1);
            true
        } else {
            EventCounters::add(&self.counters.dropped, 1);
            false
        }
    }

    /// Hits waiting for the writer.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;
    use crate::events::{IpBytes, Method, Reason};
    use crate::link::LinkKind;
    use crate::token::Random;

    fn hit() -> Hit {
        Hit {
            at_ms: 0,
            kind: LinkKind::Click,
            method: Method::Get,
            link_day: Day(1),
            version: crate::token::Version::V1,
            random: Random([0; 16]),
            link_ids: None,
            ip: IpBytes::new("192.0.2.1".parse().unwrap()),
            user_agent: Vec::new(),
            reason: Reason::None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (q, mut rx) = EventQueue::new(2, Arc::default());
        assert!(q.push(hit()));
        assert!(q.push(hit()));
        assert_eq!(q.depth(), 2);
        assert!(!q.push(hit()));
        assert_eq!(EventCounters::get(&q.counters.dropped), 1);
        assert_eq!(EventCounters::get(&q.counters.captured), 2);
        assert!(rx.try_recv().is_ok());
        assert!(q.push(hit()));
        assert_eq!(EventCounters::get(&q.counters.dropped), 1);
    }
}

//! The event writer: one task that drains the queue into batches and writes
//! each batch to the store in one transaction, flushing when a batch is full
//! or the flush interval has passed since its first hit.
//!
//! When the store fails, the batch goes to the on-disk spool (fsynced) and
//! the writer retries later. While the spool holds anything, new batches are
//! appended behind it, so batches reach the store in the order they were
//! formed; a few spooled batches are replayed per loop turn, so the queue
//! keeps draining during a long replay. If the spool is full too (or cannot
//! be written), the writer holds its batch and stops draining the queue: the
//! queue fills, and only then are hits dropped (and counted) at capture.
//! While it holds a batch the writer keeps replaying the spool each retry
//! interval, oldest first, so once the store is back the spool drains, the
//! held batch follows it, and the queue drains again without a restart.
//!
//! On cancellation the writer takes everything still queued and writes it to
//! the store, or to the spool when the store is down, before it returns. A
//! kill -9 loses at most what was queued or batched in memory: one flush
//! interval of hits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::day::Clock;
use crate::events::queue::EventCounters;
use crate::events::spool::{Spool, SpoolError};
use crate::events::{EventBatch, Hit, WriteOutcome};
use crate::store::Store;
use crate::{Error, Result};

/// Spooled batches replayed per loop turn before the queue is drained again.
const REPLAY_PER_TURN: usize = 8;

/// How the writer batches and retries.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most hits in one batch (one transaction).
    pub batch_max: usize,
    /// A batch is written at most this long after its first hit.
    pub flush_interval: Duration,
    /// After a store failure, wait this long before trying it again.
    pub retry_interval: Duration,
}

/// The writer task's state.
#[derive(Debug)]
pub struct EventWriter<S> {
    store: Arc<S>,
    clock: Clock,
    /// A std mutex: locked only inside `spawn_blocking` closures, never across `.await`.
    spool: Arc<Mutex<Spool>>,
    counters: Arc<EventCounters>,
    cfg: WriterConfig,
    /// No store attempt before this instant (set after a failure).
    retry_at: Option<Instant>,
}

fn spool_err(e: SpoolError) -> Error {
    match e {
        SpoolError::Io(e) => Error::Io(e),
        full @ SpoolError::Full { .. } => Error::Unavailable(full.to_string()),
    }
}

impl<S: Store> EventWriter<S> {
    pub fn new(store: Arc<S>, clock: Clock, spool: Spool, counters: Arc<EventCounters>, cfg: WriterConfig) -> EventWriter<S> {
        EventCounters::add(&counters.spool_corrupt, spool.stats().corrupt_skipped);
        counters.spool_bytes.store(spool.stats().bytes, std::sync::atomic::Ordering::Relaxed);
        EventWriter { store, clock, spool: Arc::new(Mutex::new(spool)), counters, cfg, retry_at: None }
    }

    /// Run until `cancel` fires, then flush everything queued and return.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Hit>, cancel: CancellationToken) {
        let mut buf: Vec<Hit> = Vec::with_capacity(self.cfg.batch_max);
        // A batch that could be neither stored nor spooled: retried before anything else.
        let mut held: Option<EventBatch> = None;
        while !cancel.is_cancelled() {
            if self.may_try_store() {
                // The spool first: it holds older batches than `held`, and
                // replaying it is what makes room when the spool is full.
                self.replay(REPLAY_PER_TURN).await;
                if let Some(batch) = held.take() {
                    held = self.deliver(batch).await;
                }
            }
            if held.is_some() {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(self.cfg.retry_interval) => {}
                }
                continue;
            }
            let idle_wake = if self.spool_is_empty() { None } else { Some(self.cfg.retry_interval) };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = collect(&mut rx, &mut buf, self.cfg.batch_max, self.cfg.flush_interval, idle_wake) => {}
            }
            if !buf.is_empty() {
                let batch = self.form(std::mem::take(&mut buf));
                held = self.deliver(batch).await;
            }
        }
        self.shutdown(rx, buf, held).await;
    }

    /// Final flush: queue → store, or → spool when the store is down.
    async fn shutdown(mut self, mut rx: mpsc::Receiver<Hit>, mut buf: Vec<Hit>, held: Option<EventBatch>) {
        rx.close();
        while let Ok(hit) = rx.try_recv() {
            buf.push(hit);
        }
        // Replay what the spool holds first, if the store is back, so order is kept.
        self.retry_at = None;
        self.replay(usize::MAX).await;
        let mut batches: Vec<EventBatch> = held.into_iter().collect();
        while !buf.is_empty() {
            let rest = buf.split_off(buf.len().min(self.cfg.batch_max));
            batches.push(self.form(std::mem::replace(&mut buf, rest)));
        }
        let mut lost = 0;
        for batch in batches {
            if let Some(batch) = self.deliver(batch).await {
                lost += batch.hits.len() as u64;
            }
        }
        if lost > 0 {
            EventCounters::add(&self.counters.dropped, lost);
            tracing::error!(lost, "shutdown: store and spool both unavailable; events lost");
        }
        let s = self.spool_stats();
        tracing::info!(spooled_records = s.records, spool_bytes = s.bytes, "event writer stopped");
    }

    fn form(&self, hits: Vec<Hit>) -> EventBatch {
        EventBatch { id: rand::rng().random(), formed: self.clock.today(), hits }
    }

    fn may_try_store(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    fn store_failed(&mut self, e: &Error) {
        if self.retry_at.is_none() {
            crate::log_limited!(warn, error = %e, "event store failed; spooling until it is back");
        }
        self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
    }

    /// Store `batch`, or spool it. Returns it back only if both failed.
    async fn deliver(&mut self, batch: EventBatch) -> Option<EventBatch> {
        if self.may_try_store() && self.spool_is_empty() {
            match self.store.write_events(&batch, self.clock.today()).await {
                Ok(outcome) => {
                    self.count_written(outcome, &batch, false);
                    return None;
                }
                Err(e) => self.store_failed(&e),
            }
        }
        let bytes = batch.encode();
        match self.with_spool(move |s| s.append(&bytes)).await {
            Ok(()) => {
                EventCounters::add(&self.counters.spooled, batch.hits.len() as u64);
                None
            }
            Err(e) => {
                crate::log_limited!(warn, error = %e, events = batch.hits.len(), "could not spool a batch; holding it");
                Some(batch)
            }
        }
    }

    fn count_written(&self, outcome: WriteOutcome, batch: &EventBatch, replayed: bool) {
        match outcome {
            WriteOutcome::Stored => {
                let n = batch.hits.len() as u64;
                EventCounters::add(&self.counters.stored, n);
                if replayed {
                    EventCounters::add(&self.counters.replayed, n);
                }
            }
            WriteOutcome::AlreadyStored => EventCounters::add(&self.counters.duplicate_batches, 1),
        }
    }

    /// Replay up to `max` spooled batches in order; stops at the first store failure.
    async fn replay(&mut self, max: usize) {
        for _ in 0..max {
            if !self.may_try_store() {
                return;
            }
            let record = match self.with_spool(Spool::peek).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    crate::log_limited!(error, error = %e, "could not read the spool");
                    return;
                }
            };
            match EventBatch::decode(&record) {
                Ok(batch) => match self.store.write_events(&batch, self.clock.today()).await {
                    Ok(outcome) => self.count_written(outcome, &batch, true),
                    Err(e) => {
                        self.store_failed(&e);
                        return;
                    }
                },
                // The checksum matched but the payload is not a batch: a bug or a foreign file. Skip it, loudly.
                Err(e) => {
                    crate::log_limited!(error, error = %e, "skipping an undecodable spool record");
                    EventCounters::add(&self.counters.spool_corrupt, 1);
                }
            }
            let popped = self.with_spool(|s| {
                s.pop();
                Ok(())
            });
            if let Err(e) = popped.await {
                crate::log_limited!(error, error = %e, "could not advance the spool");
                return;
            }
        }
    }

    fn spool_is_empty(&self) -> bool {
        self.spool_stats().records == 0
    }

    /// Stats are kept in memory: no I/O, so no blocking thread. Only this task
    /// uses the spool, so the lock is never contended here.
    fn spool_stats(&self) -> crate::events::spool::SpoolStats {
        self.spool.lock().expect("spool mutex poisoned").stats()
    }

    /// Run a spool operation on a blocking thread.
    async fn with_spool<T: Send + 'static>(&self, f: impl FnOnce(&mut Spool) -> Result<T, SpoolError> + Send + 'static) -> Result<T> {
        let spool = self.spool.clone();
        let counters = self.counters.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = spool.lock().expect("spool mutex poisoned");
            let out = f(&mut s);
            counters.spool_bytes.store(s.stats().bytes, std::sync::atomic::Ordering::Relaxed);
            out
        })
        .await
        .map_err(|source| Error::Task { what: "spool", source })?
        .map_err(spool_err)
    }
}

/// While a batch is being collected, how often the writer looks at the
/// queue. Between looks no waker is registered, so capturing a hit wakes
/// nobody: without this, a writer that drained the queue went back to sleep
/// on it, and the next redirect's push woke it again (at 10k hits/s, 10k
/// wake-ups a second, each a thread unpark on the request path once the
/// writer runs on a runtime of its own).
const COLLECT_TICK: Duration = Duration::from_millis(20);

/// Fill `buf` with up to `max` hits: wait for the first (or, with
/// `idle_wake`, give up after that long), then take more every
/// [`COLLECT_TICK`] until the batch is full or `interval` has passed since
/// the first. Cancel-safe: hits already received stay in `buf`.
async fn collect(rx: &mut mpsc::Receiver<Hit>, buf: &mut Vec<Hit>, max: usize, interval: Duration, idle_wake: Option<Duration>) {
    if buf.is_empty() {
        let got = match idle_wake {
            Some(wait) => tokio::time::timeout(wait, rx.recv_many(buf, max)).await.unwrap_or(0),
            None => rx.recv_many(buf, max).await,
        };
        if got == 0 {
            return;
        }
    }
    let deadline = Instant::now() + interval;
    loop {
        while buf.len() < max {
            match rx.try_recv() {
                Ok(hit) => buf.push(hit),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        if buf.len() >= max || now >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.min(now + COLLECT_TICK)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;
    use crate::events::{IpBytes, Method, Reason};
    use crate::link::LinkKind;
    use crate::token::Random;

    fn hit(at_ms: i64) -> Hit {
        Hit {
            at_ms,
            kind: LinkKind::Click,
            method: Method::Get,
            link_day: Day(1),
            version: crate::token::Version::V2,
            random: Random([0; 16]),
            link_ids: None,
            ip: IpBytes::new("192.0.2.1".parse().unwrap()),
            user_agent: Vec::new(),
            reason: Reason::None,
        }
    }

    #[tokio::test]
    async fn collect_returns_a_full_batch_early_and_a_partial_one_at_the_interval() {
        let interval = Duration::from_millis(300);
        let (tx, mut rx) = mpsc::channel(100);
        for i in 0..10 {
            tx.try_send(hit(i)).unwrap();
        }
        let mut buf = Vec::new();
        let t0 = Instant::now();
        collect(&mut rx, &mut buf, 4, interval, None).await;
        assert_eq!(buf.len(), 4, "a full batch");
        assert!(t0.elapsed() < interval / 2, "taken at once: {:?}", t0.elapsed());
        buf.clear();
        let t0 = Instant::now();
        collect(&mut rx, &mut buf, 100, interval, None).await;
        assert_eq!(buf.len(), 6);
        assert!(t0.elapsed() >= interval, "a partial batch waits out the flush interval: {:?}", t0.elapsed());
        // Hits pushed while the writer sleeps between looks are picked up by a later look.
        buf.clear();
        tx.try_send(hit(20)).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            late.try_send(hit(21)).unwrap();
        });
        let t0 = Instant::now();
        collect(&mut rx, &mut buf, 2, Duration::from_secs(60), None).await;
        assert_eq!(buf.len(), 2);
        assert!(t0.elapsed() < Duration::from_secs(5), "a full batch does not wait for the interval: {:?}", t0.elapsed());
        // A closed queue ends collection.
        buf.clear();
        tx.try_send(hit(30)).unwrap();
        drop(tx);
        collect(&mut rx, &mut buf, 100, Duration::from_secs(60), None).await;
        assert_eq!(buf.len(), 1);
    }
}

//! Readiness: whether this replica should get traffic, as `/readyz` says.
//! A background task checks, every interval, that the store answers, that
//! its schema is current and today's and tomorrow's partitions exist, and
//! that the event spool is below its high-water mark. Liveness (`/healthz`)
//! stays separate: a replica that still answers cached redirects during a
//! database outage is alive, but not ready.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::day::Clock;
use crate::events::queue::EventCounters;
use crate::store::Store;

/// When a replica stops being ready.
#[derive(Debug, Clone, Copy)]
pub struct ReadyConfig {
    /// Pause between checks.
    pub every: Duration,
    /// The store may fail this long before the replica is not ready (one blip is not an outage).
    pub db_grace: Duration,
    /// Spool bytes above which the replica is not ready (its database writes are falling behind).
    pub spool_high_water: u64,
}

/// The outcome of the last check: why this replica is not ready (empty when it is).
#[derive(Debug)]
pub struct Readiness {
    /// A std mutex: held to copy or replace the list, never across `.await`.
    reasons: Mutex<Vec<String>>,
    /// Times the answer flipped between ready and not ready (`/metrics`:
    /// `linktrack_ready_transitions_total`, what a flapping alert counts).
    transitions: AtomicU64,
}

impl Readiness {
    /// Not ready until the first check has run.
    pub fn new() -> Readiness {
        Readiness { reasons: Mutex::new(vec!["starting: not checked yet".into()]), transitions: AtomicU64::new(0) }
    }

    /// Why the replica is not ready; empty when it is.
    pub fn reasons(&self) -> Vec<String> {
        self.reasons.lock().expect("readiness poisoned").clone()
    }

    /// Times the replica went from ready to not ready or back, since it started.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    fn set(&self, reasons: Vec<String>) {
        let mut held = self.reasons.lock().expect("readiness poisoned");
        if held.is_empty() != reasons.is_empty() {
            self.transitions.fetch_add(1, Ordering::Relaxed);
        }
        *held = reasons;
    }
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness::new()
    }
}

/// Check every `cfg.every` until `cancel` fires. Nothing to flush on the way out.
pub async fn run_loop<S: Store>(
    store: Arc<S>,
    clock: Clock,
    counters: Arc<EventCounters>,
    cfg: ReadyConfig,
    ready: Arc<Readiness>,
    cancel: CancellationToken,
) {
    let mut last_ok = Instant::now();
    loop {
        let mut reasons = Vec::new();
        match store.readiness(clock.today()).await {
            Ok(problems) => {
                last_ok = Instant::now();
                reasons.extend(problems);
            }
            Err(e) => {
                // The error text (hosts, driver messages) goes to the log, not to the unauthenticated probe.
                crate::log_limited!(warn, error = %e, "readiness: the store did not answer");
                if last_ok.elapsed() >= cfg.db_grace {
                    reasons.push(format!("database unreachable for {} s", last_ok.elapsed().as_secs()));
                }
            }
        }
        let spool = EventCounters::get(&counters.spool_bytes);
        if spool > cfg.spool_high_water {
            reasons.push(format!("event spool holds {spool} bytes, above the high-water mark of {}", cfg.spool_high_water));
        }
        if !reasons.is_empty() {
            tracing::debug!(?reasons, "not ready");
        }
        ready.set(reasons);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(cfg.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn transitions_count_flips_between_ready_and_not_ready() {
        let r = Readiness::new();
        r.set(vec!["no partition for tomorrow".into()]);
        assert_eq!(r.transitions(), 0, "still not ready: no flip");
        r.set(Vec::new());
        r.set(Vec::new());
        assert_eq!(r.transitions(), 1, "ready once");
        r.set(vec!["database unreachable for 5 s".into()]);
        r.set(Vec::new());
        assert_eq!(r.transitions(), 3);
    }
}

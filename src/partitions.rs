//! The partition maintenance timer: [`run_loop`] keeps the plan of
//! [`crate::store::plan`] applied while the service runs. Startup runs the
//! first pass itself, before serving; each backend applies a pass under its
//! own lock, so of several replicas one does the work. It also remembers the
//! newest link partition a pass of this process saw, for `/metrics`
//! (`linktrack_partitions_ahead_days`): how many days ahead are left if
//! maintenance stopped now.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::day::{Clock, Day};
use crate::store::{MaintenanceReport, Retention, Store};

/// Keep partitions maintained until `cancel` fires: one pass per `every`.
/// (Startup runs the first pass itself, before serving.)
pub async fn run_loop<S: Store>(store: &S, clock: &Clock, retention: Retention, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        log_report(store.maintain(retention.policy(clock.today(), false)).await);
    }
}

/// The newest link partition the last applied pass of this process saw; 0
/// until one has. Process-wide, so the loop needs no handle to `/metrics`:
/// a deployed process serves one database (tests that run several servers
/// in one process share it, and none of them reads it).
static NEWEST_PARTITION: AtomicU16 = AtomicU16::new(0);

/// Remember the newest partition of an applied pass (a skipped pass saw nothing).
pub fn note_partitions(report: &MaintenanceReport) {
    if let Some(newest) = report.partitions.iter().max().filter(|_| report.acquired) {
        NEWEST_PARTITION.store(newest.0, Ordering::Relaxed);
    }
}

/// Days from `today` to the newest partition a pass of this process saw, or
/// `None` before its first applied pass (another replica may hold the lock).
pub fn days_ahead(today: Day) -> Option<i64> {
    let newest = NEWEST_PARTITION.load(Ordering::Relaxed);
    (newest != 0).then(|| i64::from(newest) - i64::from(today.0))
}

fn log_report(r: crate::Result<MaintenanceReport>) {
    if let Ok(rep) = &r {
        note_partitions(rep);
    }
    match r {
        Ok(rep) if !rep.acquired => tracing::debug!("partition maintenance skipped: another replica holds the lock"),
        Ok(rep) if rep.created.is_empty() && rep.dropped.is_empty() => {
            tracing::debug!(partitions = rep.partitions.len(), "partitions current");
        }
        Ok(rep) => {
            tracing::info!(created = ?rep.created, dropped = ?rep.dropped, partitions = rep.partitions.len(), "partitions maintained");
        }
        Err(e) => tracing::error!(error = %e, "partition maintenance failed"),
    }
}

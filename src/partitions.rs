//! The partition maintenance timer: [`run_loop`] keeps the plan of
//! [`crate::store::plan`] applied while the service runs. Startup runs the
//! first pass itself, before serving; each backend applies a pass under its
//! own lock, so of several replicas one does the work.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::day::Clock;
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

fn log_report(r: crate::Result<MaintenanceReport>) {
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

//! The tokio runtimes `serve` runs on. The *request runtime* (built by
//! `main`, one worker per core) answers requests and runs the light
//! periodic tasks. The *background runtime* (one worker thread,
//! `linktrack-bg`) runs the event writer and the stats rollup, whose polls
//! can take milliseconds: a batch insert encoded as one statement, a rollup
//! read-back of thousands of rows, a rollup pass over them. Keeping them off
//! the request workers keeps such a poll from delaying every request queued
//! behind it on the same worker.
//!
//! The background runtime is created once per process and never shut down:
//! database connections it opened stay in the store's pool and must keep
//! working after `app::run` returns (tests reuse the store). Its tasks are
//! tracked, cancelled and flushed by `app::run` like any other.
//!
//! Built with `RUSTFLAGS="--cfg tokio_unstable"`, both runtimes record how
//! long each task poll took (tokio's poll-time histogram, 100 µs buckets up
//! to 10 ms) and [`log_poll_times`] logs the distribution when `serve`
//! stops: the check that nothing runs long on the request workers. Without
//! that flag the histogram does not exist and nothing is recorded.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::{Error, Result};

static BACKGROUND: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The request runtime: multi-threaded, one worker per core, I/O and timers.
pub fn request_runtime() -> std::io::Result<Runtime> {
    let mut b = Builder::new_multi_thread();
    b.enable_all();
    record_poll_times(&mut b);
    b.build()
}

/// The background runtime's handle, creating the runtime on first use.
pub fn background() -> Result<Handle> {
    let built = BACKGROUND.get_or_init(|| {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(1).thread_name("linktrack-bg").enable_all();
        record_poll_times(&mut b);
        b.build().map_err(|e| e.to_string())
    });
    match built {
        Ok(rt) => Ok(rt.handle().clone()),
        Err(e) => Err(Error::Io(std::io::Error::other(format!("background runtime: {e}")))),
    }
}

#[cfg(tokio_unstable)]
fn record_poll_times(b: &mut Builder) {
    use std::time::Duration;
    b.enable_metrics_poll_time_histogram()
        .metrics_poll_time_histogram_configuration(tokio::runtime::HistogramConfiguration::linear(Duration::from_micros(100), 100));
}

#[cfg(not(tokio_unstable))]
fn record_poll_times(_: &mut Builder) {}

/// Log the poll-time distribution of the runtime this is called on (as
/// `request`) and of the background runtime, one line each; nothing unless
/// built with `--cfg tokio_unstable`.
pub fn log_poll_times() {
    #[cfg(tokio_unstable)]
    {
        report("request", &Handle::current().metrics());
        if let Some(Ok(rt)) = BACKGROUND.get() {
            report("background", &rt.metrics());
        }
    }
}

#[cfg(tokio_unstable)]
fn report(runtime: &str, m: &tokio::runtime::RuntimeMetrics) {
    use std::time::Duration;
    if !m.poll_time_histogram_enabled() {
        return;
    }
    let buckets = m.poll_time_histogram_num_buckets();
    let counts: Vec<u64> = (0..buckets).map(|b| (0..m.num_workers()).map(|w| m.poll_time_histogram_bucket_count(w, b)).sum()).collect();
    let from =
        |min: Duration| -> u64 { (0..buckets).filter(|&b| m.poll_time_histogram_bucket_range(b).start >= min).map(|b| counts[b]).sum() };
    let slowest_from_us =
        (0..buckets).rev().find(|&b| counts[b] > 0).map_or(0, |b| m.poll_time_histogram_bucket_range(b).start.as_micros());
    tracing::info!(
        runtime,
        workers = m.num_workers(),
        polls = counts.iter().sum::<u64>(),
        polls_from_100us = from(Duration::from_micros(100)),
        polls_from_500us = from(Duration::from_micros(500)),
        polls_from_1ms = from(Duration::from_millis(1)),
        polls_from_5ms = from(Duration::from_millis(5)),
        slowest_from_us,
        "poll times"
    );
}

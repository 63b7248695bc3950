//! Rate-limited log lines for repeating faults. A database outage fails every
//! request the same way; logging each one buries the rest of the log and
//! costs I/O when the service is already in trouble. [`log_limited!`] logs a
//! call site's line at most once per interval and puts the number of lines
//! it held back since the last one in the next line's `suppressed` field.
//!
//! Each call site owns one [`LogLimiter`] (a `static` the macro declares), so
//! different faults never hide each other. The interval is process-wide,
//! set once at start-up from `--log-repeat-ms` ([`set_interval`]); zero logs
//! every line. No lock: two atomics per call site.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The interval a call site waits between lines, in milliseconds.
static INTERVAL_MS: AtomicU64 = AtomicU64::new(DEFAULT_INTERVAL_MS);
/// The default of `--log-repeat-ms`.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;

/// Set the interval of every call site (at start-up; later calls apply to the next line).
pub fn set_interval(interval: Duration) {
    INTERVAL_MS.store(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Milliseconds since the first limited line of the process.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One call site's state: when it may log next, and how many lines it held back since it last did.
#[derive(Debug)]
pub struct LogLimiter {
    /// When (ms, [`now_ms`]'s clock) the last line was logged, plus one; 0 before the first.
    /// The interval is applied when a line arrives, so a new interval counts at once.
    last_ms_plus_one: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    pub const fn new() -> LogLimiter {
        LogLimiter { last_ms_plus_one: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// May the line be logged now? `Some(n)`: yes, and `n` lines were held back
    /// since the last one; `None`: no, it is counted instead.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(now_ms(), INTERVAL_MS.load(Ordering::Relaxed))
    }

    /// [`LogLimiter::admit`] at a given time, with a given interval (both in ms).
    pub fn admit_at(&self, now_ms: u64, interval_ms: u64) -> Option<u64> {
        let last = self.last_ms_plus_one.load(Ordering::Acquire);
        let too_soon = last != 0 && now_ms < (last - 1).saturating_add(interval_ms);
        // One caller wins the slot; a racing one is counted like any other held-back line.
        if too_soon || self.last_ms_plus_one.compare_exchange(last, now_ms.saturating_add(1), Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// A `tracing` event at `$level` (`warn`, `error`, ...), logged at most once
/// per interval from this call site, with a `suppressed` field counting the
/// lines held back since the previous one. Takes the arguments of
/// `tracing::warn!` and the like, fields first:
///
/// ```
/// # let e = "connection refused";
/// linktrack::log_limited!(warn, error = %e, "store unavailable");
/// ```
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimiter = $crate::log_limit::LogLimiter::new();
        if let Some(suppressed) = LIMIT.admit() {
            ::tracing::$level!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn first_line_passes_then_one_per_interval_with_the_held_back_count() {
        let l = LogLimiter::new();
        assert_eq!(l.admit_at(5, 1000), Some(0));
        for t in [6, 500, 1004] {
            assert_eq!(l.admit_at(t, 1000), None, "at {t} ms");
        }
        assert_eq!(l.admit_at(1005, 1000), Some(3));
        assert_eq!(l.admit_at(1006, 1000), None);
        // A quiet spell: the next line passes at once and reports only what was held back.
        assert_eq!(l.admit_at(60_000, 1000), Some(1));
        assert_eq!(l.admit_at(61_000, 1000), Some(0));
    }

    #[test]
    fn zero_interval_logs_every_line() {
        let l = LogLimiter::new();
        for t in [0, 0, 1, 1] {
            assert_eq!(l.admit_at(t, 0), Some(0));
        }
    }

    #[test]
    fn racing_threads_log_once_and_lose_no_count() {
        let l = Arc::new(LogLimiter::new());
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (l, admitted) = (l.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if l.admit_at(10, 1000).is_some() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 1);
        assert_eq!(l.admit_at(2000, 1000), Some(3999));
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn fault_a(i: u32) {
        crate::log_limited!(warn, attempt = i, "fault a");
    }

    fn fault_b() {
        crate::log_limited!(error, "fault b");
    }

    /// The macro through a real subscriber: one line per call site per
    /// interval, separate call sites apart, the count in the next line.
    #[test]
    fn the_macro_limits_each_call_site_and_reports_the_count() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt().json().with_writer(out.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            // Long enough that the loop never spans two intervals; only this test sets it.
            set_interval(Duration::from_secs(3600));
            for i in 0..100 {
                fault_a(i);
                fault_b();
            }
            // Interval zero: the next line passes at once and carries the count.
            set_interval(Duration::ZERO);
            fault_a(100);
            set_interval(Duration::from_millis(DEFAULT_INTERVAL_MS));
        });
        let text = String::from_utf8(out.0.lock().expect("capture lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["fields"]["message"], "fault a");
        assert_eq!(lines[0]["fields"]["attempt"], 0);
        assert_eq!(lines[0]["fields"]["suppressed"], 0);
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[1]["fields"]["message"], "fault b");
        assert_eq!(lines[1]["level"], "ERROR");
        assert_eq!(lines[2]["fields"]["message"], "fault a");
        assert_eq!(lines[2]["fields"]["attempt"], 100);
        assert_eq!(lines[2]["fields"]["suppressed"], 99);
    }
}

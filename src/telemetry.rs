//! Logging setup: structured `tracing` output, text or JSON, filtered by `RUST_LOG`
//! (default `info`). Log fields are key=value; recipient data is never a field.
//! Repeating faults go through [`crate::log_limited!`], whose interval is set here.

use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::log_limit;

/// Install the global subscriber and the interval of rate-limited lines. Call once, from `main`.
pub fn init(format: LogFormat, repeat_interval: Duration) {
    log_limit::set_interval(repeat_interval);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

//! The crate's error type. Every library function returns [`Result<T>`];
//! `anyhow` appears only in `main.rs`. HTTP status mapping for these errors
//! lives in one place, `http::error`.

use crate::day::{ClockOutOfRange, Day};
use crate::token::KeyError;

/// Errors from the store and the service around it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database did not answer in time or could not be reached. Callers
    /// answer `503` with `Retry-After`; nothing was committed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// An insert targeted a day with no partition. Maintenance keeps today and
    /// tomorrow created, so this is a bug or a stopped maintenance task.
    #[error("no partition for day {0}")]
    NoPartition(Day),
    /// An idempotency key was reused with a different request body.
    #[error("idempotency key reused with a different request body")]
    IdempotencyMismatch,
    /// A migration or schema expectation failed.
    #[error("schema: {0}")]
    Schema(String),
    /// Misconfiguration detected at startup.
    #[error("config: {0}")]
    Config(String),
    /// The clock is outside the days the service can name: refused at startup.
    #[error(transparent)]
    Clock(#[from] ClockOutOfRange),
    #[error("token key: {0}")]
    Key(#[from] KeyError),
    /// Any other database error.
    #[error("database: {0}")]
    Database(String),
    /// A spool record passed its checksum but is not an event batch: a bug
    /// or a foreign file. Names the part that failed to decode.
    #[error("spooled batch is malformed: {0}")]
    MalformedBatch(&'static str),
    /// A response body or an export row could not be written as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A blocking task (a store read, a spool operation) panicked or was cancelled.
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's error type. Every library function returns [`Result<T>`];
//! `anyhow` appears only in `main.rs`. HTTP status mapping for these errors
//! lives in one place, `http::error`.

use crate::day::Day;
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
    #[error("token key: {0}")]
    Key(#[from] KeyError),
    /// Any other database error.
    #[error("database: {0}")]
    Database(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Click and open events: capture, classification, the bounded queue, the
//! batch writer with its on-disk spool, and the stats rollup.
//!
//! Layout:
//! - `classify`: bot/scanner verdicts and their reasons (pure, no I/O).
//! - `spool`: the append-only, checksummed on-disk spool used while the
//!   database is unreachable.

pub mod classify;
pub mod spool;

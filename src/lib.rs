//! linktrack: a link-tracking redirect service.
//!
//! Email builders mint tracking URLs in batches; recipients' browsers follow
//! them. Every token is random, carries its mint day at a random interior
//! position between dashes, and is authenticated by a MAC, so a redirect
//! rejects forgeries with no I/O and reads exactly one day-partition.
//!
//! # Layout
//!
//! - [`token`]: the token format: generate, encode, parse and verify. No I/O.
//! - [`day`]: `Day` (the partition key) and the injectable clock.
//! - [`store`]: the `Store` trait and its backends: `store::mysql` (production)
//!   and `store::sqlite` (the embedded default, one file per day).
//! - [`partitions`]: which days to create and drop, and the maintenance loop.
//! - [`cache`]: sharded, byte-bounded LRU of resolved links plus a negative cache.
//! - [`http`]: hyper server, routing, mint and redirect handlers, error mapping.
//! - [`app`]: wiring for `linktrack serve`: startup checks, keys, tasks, shutdown.
//! - [`config`]: clap configuration, one field per setting, secrets redacted.
//! - [`telemetry`]: tracing setup.
//! - [`error`]: the crate `Error` and `Result`.

pub mod app;
pub mod cache;
pub mod config;
pub mod day;
pub mod error;
pub mod events;
pub mod http;
pub mod partitions;
pub mod store;
pub mod telemetry;
pub mod token;

pub use error::{Error, Result};

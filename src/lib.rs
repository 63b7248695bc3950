//! linktrack: a link-tracking redirect service.
//!
//! Email builders mint tracking URLs in batches; recipients' browsers follow
//! them. Every token is random, carries its mint day at a random interior
//! position between dashes, and is authenticated by a MAC, so a redirect
//! rejects forgeries with no I/O and reads exactly one day-partition.
//!
//! # Layout
//!
//! From the bottom up: a module imports only modules listed before it, except
//! that the event services (writer, rollup, export) drive a `Store` and so
//! sit above `store` (`scripts/check-layers` checks the rules):
//!
//! - [`day`]: `Day` (the partition key) and the injectable clock.
//! - [`token`]: the token format: generate, encode, parse and verify. No I/O.
//! - [`link`]: the domain floor: links, letters, mint batches, resolved links,
//!   URL and letter rules, the truncated digest.
//! - [`tenant`]: tenants, key scopes, stored API keys (digests only).
//! - [`rewrite`]: whole-letter rewrite, the pure part: find a letter's links with
//!   `lol_html`, classify them, splice tracking URLs and the pixel into the
//!   original bytes.
//! - [`private_fs`]: directories `0700` and files `0600`, set at creation.
//! - [`log_limit`]: `log_limited!`, a log line per call site per interval,
//!   with the count of the lines held back.
//! - [`sharded_lru`]: an entry-bounded LRU split into mutex-guarded shards.
//! - [`error`]: the crate `Error` and `Result`.
//! - [`cache`]: sharded, byte-bounded LRU of resolved links plus a negative cache.
//! - [`events`]: click and open events; its data types sit below the store,
//!   its writer, rollup and export above it.
//! - [`store`]: the `Store` trait, the partition plan and the backends:
//!   `store::mysql` (production) and `store::sqlite` (the embedded default,
//!   one file per day).
//! - [`token_keys`]: the token key ring kept in the store: load, add,
//!   retire, and the reload loop of running servers.
//! - [`webhooks`]: webhook endpoints and Standard Webhooks signatures (data,
//!   below the store) and the delivery service (`webhooks::deliver`, above it).
//! - [`ids`]: link ids for v2 tokens, reserved from the store in blocks.
//! - [`partitions`]: the maintenance loop that keeps the plan applied.
//! - [`ready`]: the readiness checks behind `/readyz`.
//! - [`http`]: hyper server, routing, mint and redirect handlers, error mapping.
//! - [`config`]: clap configuration, one field per setting, secrets redacted.
//! - [`runtime`]: the request runtime and the background runtime the event
//!   writer and rollup run on; poll-time reports in `tokio_unstable` builds.
//! - [`app`]: wiring for `linktrack serve`: startup checks, keys, tasks,
//!   shutdown; turns the clap arguments into the plain settings below it.
//! - [`telemetry`]: tracing setup.

pub mod app;
pub mod cache;
pub mod config;
pub mod day;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod link;
pub mod log_limit;
pub mod partitions;
pub mod private_fs;
pub mod ready;
pub mod rewrite;
pub mod runtime;
pub mod sharded_lru;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod token;
pub mod token_keys;
pub mod webhooks;

pub use error::{Error, Result};

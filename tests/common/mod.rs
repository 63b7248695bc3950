//! Helpers shared by linktrack's integration tests. Each test binary pulls
//! this module in with `mod common;`, so everything here is compiled once per
//! binary.

// Not every test binary uses every helper, and an unused `pub` item in an
// integration-test crate is reported as dead code.
#![allow(dead_code)]

pub mod client;
pub mod conformance;
pub mod events_suite;
pub mod integrity_suite;
pub mod keys_suite;
pub mod load;
pub mod mariadb;
pub mod mysql;
pub mod process;
pub mod proxy;
pub mod replication;
pub mod report_suite;
pub mod rewrite_suite;
pub mod server;
pub mod store_metrics_suite;
pub mod tenancy_suite;
pub mod webhooks_suite;

//! The storage seam: one trait, [`Store`], speaking domain types only.
//!
//! Backends live in submodules (`mysql`, and the embedded `sqlite`). Driver rows
//! and driver errors are converted inside each backend; nothing above this
//! module sees SQL. The backend is chosen once, in `main`, from the database
//! URL's scheme, and the server is generic over it.

use std::future::Future;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::Result;
use crate::day::Day;
use crate::events::{EventBatch, EventQuery, EventRow, MailingStats, RollupApply, RollupState, WriteOutcome};
use crate::token::{Random, Token};

pub mod mysql;
pub mod sqlite;

/// First 16 bytes of SHA-256(url): the per-day dedup key of stored URLs, in every backend.
pub fn url_hash(url: &str) -> [u8; 16] {
    first16(&Sha256::digest(url.as_bytes()))
}

/// The first 16 bytes of SHA-256 over length-prefixed `parts`: the one
/// truncated digest the crate uses (URL dedup keys, idempotency keys).
pub fn hash16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    first16(&h.finalize())
}

fn first16(digest: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// What a link points at. Stored as its integer value; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LinkKind {
    /// A tracked click: `/c/<token>` redirects to the minted URL.
    Click = 1,
    /// An open pixel: `/o/<token>` answers a 1x1 GIF.
    Open = 2,
}

impl LinkKind {
    pub fn from_u8(v: u8) -> Option<LinkKind> {
        match v {
            1 => Some(LinkKind::Click),
            2 => Some(LinkKind::Open),
            _ => None,
        }
    }
}

/// The letter a batch of links belongs to: recipient and mailing, stored
/// once per mint request, never once per link.
#[derive(Debug, Clone)]
pub struct Letter {
    pub mailing_id: String,
    pub recipient: String,
    /// Compact JSON text of the request's `meta`, if any.
    pub meta: Option<String>,
    /// Unix seconds of the mint.
    pub minted_at: i64,
    /// Click links in the letter (the burst rule compares hits against it).
    pub click_links: u32,
}

/// One link to store.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub kind: LinkKind,
    pub random: Random,
    pub token: Token,
    /// The destination; `None` for the open pixel.
    pub url: Option<Arc<str>>,
}

/// Idempotency for one mint: scoped by API key, checked against the body.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency {
    /// SHA-256 of (API key, Idempotency-Key), truncated to 16 bytes.
    pub key_hash: [u8; 16],
    /// SHA-256 of the request body, truncated to 16 bytes.
    pub body_hash: [u8; 16],
}

/// One mint request, ready to store.
#[derive(Debug, Clone)]
pub struct MintBatch {
    pub day: Day,
    pub letter: Letter,
    /// Links in request order; the pixel, if any, is last.
    pub links: Vec<NewLink>,
    pub idempotency: Option<Idempotency>,
}

/// What a mint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintOutcome {
    /// The batch was stored durably.
    Stored,
    /// The idempotency key was seen before with the same body: these are the
    /// tokens minted then, in request order (pixel last), and nothing new was stored.
    Replayed(Vec<String>),
}

/// A link found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub link_id: u64,
    pub letter_id: u64,
    pub kind: LinkKind,
    /// The destination; `None` for the open pixel.
    pub url: Option<Arc<str>>,
}

/// One day-partition that exists in the store, named by the last day it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    pub last_day: Day,
}

/// What one maintenance pass did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// False when another replica held the maintenance lock and this pass did nothing.
    pub acquired: bool,
    pub created: Vec<Day>,
    pub dropped: Vec<Day>,
    /// Link partitions after the pass (before it, for a dry run).
    pub partitions: Vec<Day>,
}

/// What maintenance should achieve.
#[derive(Debug, Clone, Copy)]
pub struct MaintenancePolicy {
    pub today: Day,
    pub ahead: u16,
    pub retention: u16,
    pub dry_run: bool,
}

/// The storage operations the service relies on. Both backends implement it
/// and pass the same conformance suite.
pub trait Store: Send + Sync + 'static {
    /// Apply pending migrations; returns the names applied (empty when current).
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Return the persisted setting `name`, storing `generated` first if there is none.
    /// Concurrent replicas all get the same value.
    fn setting_or_insert(&self, name: &str, generated: &[u8]) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Store a batch durably in one transaction, or replay an idempotent one.
    fn mint(&self, batch: &MintBatch) -> impl Future<Output = Result<MintOutcome>> + Send;

    /// Find a link by its token's day and random part, reading only that day.
    fn resolve(&self, day: Day, random: &Random) -> impl Future<Output = Result<Option<Resolved>>> + Send;

    /// Create days ahead and drop days past retention, under a store-wide lock.
    fn maintain(&self, policy: MaintenancePolicy) -> impl Future<Output = Result<MaintenanceReport>> + Send;

    /// Store a batch of events in `today`'s partition in one transaction,
    /// with its id, unless a batch with that id was stored since `batch.formed`.
    /// Writers are serialised, so event ids become visible in commit order.
    fn write_events(&self, batch: &EventBatch, today: Day) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// Events strictly after `query.after` in (day, id) order, with their links joined in.
    fn read_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// Where the rollup stands.
    fn rollup_state(&self) -> impl Future<Output = Result<RollupState>> + Send;

    /// Apply one rollup pass: relabels, verdict deltas, first hits (unique
    /// counts for links not seen before) and the new watermark. Returns
    /// false, changing nothing, if the watermark is no longer `apply.from`.
    fn apply_rollup(&self, apply: &RollupApply) -> impl Future<Output = Result<bool>> + Send;

    /// Rolled-up totals of one mailing.
    fn mailing_stats(&self, mailing_id: &str) -> impl Future<Output = Result<MailingStats>> + Send;
}

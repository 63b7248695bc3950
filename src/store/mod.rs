//! The storage seam: one trait, [`Store`], speaking domain types only
//! (`crate::link` for links and mints, the event data types of
//! `crate::events`), plus the maintenance types and the plain settings the
//! backends take.
//!
//! Backends live in submodules (`mysql`, and the embedded `sqlite`); [`plan`]
//! is the partition policy both apply. Driver rows and driver errors are
//! converted inside each backend; nothing above this module sees SQL. The
//! backend is chosen once, in `main`, from the database URL's scheme, and the
//! server is generic over it.

use std::future::Future;
use std::time::Duration;

use crate::Result;
use crate::day::Day;
use crate::events::{EventBatch, EventQuery, EventRow, MailingStats, RollupApply, RollupState, SeriesRow, WriteOutcome};
use crate::link::{MintBatch, MintOutcome, Resolved};
use crate::tenant::{NewApiKey, StoredApiKey, TenantId};
use crate::token::{Random, Version};
use crate::webhooks::{Change as WebhookChange, Progress as WebhookProgress, Webhook};

pub mod metered;
pub mod mysql;
pub mod plan;
pub mod read_replicas;
pub mod sqlite;

pub use self::metered::{Metered, StatementCounts, StatementKind};
pub use self::read_replicas::{ReadRouting, ReplicaState, ReplicaStatus};

/// Connection settings every backend takes: plain values, built by `main`
/// from the command line, so no backend knows how they were configured.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Upper bound on pooled connections (MySQL).
    pub pool_max: usize,
    /// How long a call waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// Deadline of one database call (client side, and on the server where it has one).
    pub statement_timeout: Duration,
    /// Lock wait timeout in seconds, so DDL and row locks fail fast (MySQL).
    pub lock_wait_timeout_secs: u32,
    /// How long the first connection is retried before giving up (MySQL).
    pub connect_wait: Duration,
}

/// A connection pool as `/metrics` shows it: read at scrape time.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    /// Connections lent out to callers now.
    pub in_use: u64,
    /// Callers waiting for a connection now.
    pub waiting: u64,
    /// Seconds each call waited for a pooled connection (shared with the pool's owner).
    pub acquire: prometheus_client::metrics::histogram::Histogram,
}

/// How many days exist around today: the settings every maintenance pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days kept before today; older days are dropped whole.
    pub days: u16,
    /// Days created ahead of today.
    pub ahead: u16,
}

impl Retention {
    /// The policy of a pass run `today`.
    pub fn policy(self, today: Day, dry_run: bool) -> MaintenancePolicy {
        MaintenancePolicy { today, ahead: self.ahead, retention: self.days, dry_run }
    }
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

    // ---- settings beyond `setting_or_insert` (token key rotation) and pool gauges ----

    /// The persisted setting `name`, if there is one. Creates nothing.
    fn setting(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Compare and swap the setting `name`: if its value is `expected`
    /// (`None`: absent), make it `new` (`None`: delete it) and return true;
    /// otherwise change nothing and return false.
    fn swap_setting(&self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> impl Future<Output = Result<bool>> + Send;

    /// The connection pool's gauges and acquire times, for backends with a
    /// pool (MySQL); `None` for the embedded store, which has none.
    fn pool_metrics(&self) -> Option<PoolMetrics> {
        None
    }

    /// Store a batch durably in one transaction, or replay an idempotent one.
    fn mint(&self, batch: &MintBatch) -> impl Future<Output = Result<MintOutcome>> + Send;

    /// Find a link by its token's day and identity, reading only that day:
    /// v1 by its random bits, v2 by the id its block hides (primary key),
    /// answering only if the stored secret matches.
    fn resolve(&self, day: Day, version: Version, random: &Random) -> impl Future<Output = Result<Option<Resolved>>> + Send;

    /// What keeps this store from serving `today` fully, in words an operator
    /// can act on: pending migrations, no partition for today or tomorrow.
    /// Empty when ready; `Err` when the store cannot be reached.
    fn readiness(&self, today: Day) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Reserve `n` consecutive link ids no other caller (replica) will get,
    /// and return the first. Ids are never reused; unused ones are gaps.
    fn reserve_ids(&self, n: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Create days ahead and drop days past retention, under a store-wide lock.
    fn maintain(&self, policy: MaintenancePolicy) -> impl Future<Output = Result<MaintenanceReport>> + Send;

    /// Store a batch of events in `today`'s partition in one transaction,
    /// with its id, unless a batch with that id was stored since `batch.formed`.
    /// Writers are serialised, so event ids become visible in commit order.
    fn write_events(&self, batch: &EventBatch, today: Day) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// Events strictly after `query.after` in (day, id) order, with their links joined in.
    fn read_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<EventRow>>> + Send;

    /// The same rows as [`Store::read_events`], for the export (HTTP and
    /// CLI): a store with read replicas may read them there, and must then
    /// answer exactly what the primary would (no row skipped because a
    /// replica had not applied it yet). The rollup and webhook delivery call
    /// `read_events`, which stays on the primary.
    fn export_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<EventRow>>> + Send {
        self.read_events(query)
    }

    /// The read replicas' states and the routing counters, for `/readyz` and
    /// `/metrics`; `None` for a store without read replicas.
    fn read_routing(&self) -> Option<ReadRouting> {
        None
    }

    /// Where the rollup stands.
    fn rollup_state(&self) -> impl Future<Output = Result<RollupState>> + Send;

    /// Apply one rollup pass: relabels, verdict deltas, first hits (unique
    /// counts for links not seen before) and the new watermark. Returns
    /// false, changing nothing, if the watermark is no longer `apply.from`.
    fn apply_rollup(&self, apply: &RollupApply) -> impl Future<Output = Result<bool>> + Send;

    /// Rolled-up totals of one of `tenant`'s mailings; `None` when the
    /// tenant never minted for that mailing id (another tenant's mailing
    /// included, so its existence is not revealed).
    fn mailing_stats(&self, tenant: TenantId, mailing_id: &str) -> impl Future<Output = Result<Option<MailingStats>>> + Send;

    /// The stored time-series slots of one of `tenant`'s mailings in
    /// `from..=to` (slot numbers, [`crate::events::slot_of`]), in slot order,
    /// only those with hits; `None` like [`Store::mailing_stats`].
    fn mailing_series(
        &self,
        tenant: TenantId,
        mailing_id: &str,
        from: u32,
        to: u32,
    ) -> impl Future<Output = Result<Option<Vec<SeriesRow>>>> + Send;

    /// The tenant named `name`; created (with the next free id) when `create`.
    fn tenant(&self, name: &str, create: bool) -> impl Future<Output = Result<Option<TenantId>>> + Send;

    /// Store a new API key (its digest); returns its id.
    fn insert_api_key(&self, key: &NewApiKey) -> impl Future<Output = Result<u32>> + Send;

    /// Every stored API key, revoked ones included, by id.
    fn api_keys(&self) -> impl Future<Output = Result<Vec<StoredApiKey>>> + Send;

    /// Mark key `id` revoked at `now` (unix seconds). False if there is no such
    /// key or it was already revoked.
    fn revoke_api_key(&self, id: u32, now: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Erase `recipient` (its address and the letter's meta) from every
    /// letter of `tenant` in every day still kept; returns the letters
    /// changed. Links keep redirecting; events of those letters become
    /// anonymous. Idempotent: a second call changes nothing and returns 0.
    fn erase_recipient(&self, tenant: TenantId, recipient: &str) -> impl Future<Output = Result<u64>> + Send;

    /// Store a new webhook endpoint (`w.id` is ignored); returns its id.
    fn create_webhook(&self, w: &Webhook) -> impl Future<Output = Result<u32>> + Send;

    /// The endpoints of `tenant`, or of every tenant, by id.
    fn webhooks(&self, tenant: Option<TenantId>) -> impl Future<Output = Result<Vec<Webhook>>> + Send;

    /// Delete one of `tenant`'s endpoints; false if it has none with that id.
    fn delete_webhook(&self, tenant: TenantId, id: u32) -> impl Future<Output = Result<bool>> + Send;

    /// Pause, resume or rotate the secret of one of `tenant`'s endpoints.
    fn change_webhook(&self, tenant: TenantId, id: u32, change: &WebhookChange) -> impl Future<Output = Result<bool>> + Send;

    /// Take or renew the delivery lease of endpoint `id` for `owner` until
    /// `until_ms`: granted when nobody holds it, `owner` does, or the
    /// holder's lease ended before `now_ms`.
    fn lease_webhook(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Record delivery progress, only while `owner` holds the lease; false (nothing written) otherwise.
    fn webhook_progress(&self, id: u32, owner: [u8; 16], progress: &WebhookProgress) -> impl Future<Output = Result<bool>> + Send;
}

//! The embedded store: SQLite (bundled through `rusqlite`), partitioned by
//! day at application level: one database file per day.
//!
//! # Layout
//!
//! `sqlite://./data/linktrack.db` means:
//! - `./data/linktrack.db`: the main file, with `settings` and `schema_migrations`
//!   (`schema/sqlite/0001_main.sql`, applied by `migrate`);
//! - `./data/linktrack.db.days/YYYY-MM-DD.db`: one file per UTC day with that
//!   day's `urls`, `letters`, `links` and `idempotency` rows
//!   (`schema/sqlite/0001_day.sql`, mirroring `schema/mysql/0001_core.sql`);
//! - `./data/linktrack.db.lock`: the maintenance lock.
//!
//! A day exists exactly when its file does. Partition maintenance creates day
//! files (complete, via a temporary name and a rename) and drops a day by
//! closing its connections and deleting its file: the space comes back whole,
//! with no row-by-row DELETE. A mint never creates a day file: a mint for a
//! missing day fails with [`Error::NoPartition`] and stores nothing. A resolve
//! opens only the token's day file.
//!
//! # Writes, durability, reads
//!
//! - One writer thread ([`writer`]) owns every writable connection, fed by a
//!   bounded channel; callers await a oneshot reply. Mints that queue up
//!   together are group-committed per day file, with a SAVEPOINT per mint.
//! - Every file is in WAL mode with `synchronous = FULL`: a mint returns only
//!   after its commit is fsynced, as the spec promises. Group commit is what
//!   pays for the fsync under load, so `NORMAL` (which can lose the last
//!   commits on power loss) is not used.
//! - Resolves run on `spawn_blocking` with pooled read-only connections per
//!   day file and cached prepared statements. Under WAL, readers never wait
//!   for the writer.
//! - Every data call (mint, resolve, setting) has the deadline of
//!   [`StoreConfig`] (statement + acquire timeout) and every connection a
//!   `busy_timeout` of the statement timeout; expiry is [`Error::Unavailable`].
//!   Migrate and maintenance are admin calls with a longer deadline, as on MySQL.
//!   The writer skips a mint whose deadline passed while it was queued; one
//!   whose caller gives up during its commit may still be stored (as on
//!   MySQL), and a retry with the same Idempotency-Key replays it.
//! - Maintenance runs on the writer thread under two locks: this store's async
//!   mutex and an exclusive SQLite lock on `<main>.lock` that keeps a second
//!   store on the same files (in this or another process) out. A pass that
//!   does not get both reports `acquired: false`.
//!
//! Serving one data directory from several processes at once is not
//! supported beyond that lock: each process assumes it is the only writer.

mod days;
mod events;
mod serving;
mod tenants;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use self::days::{Days, Layout};
pub use self::serving::ServingLock;
use self::writer::{Admin, Command, PendingMint, WebhookCall, WriterHandle};
use crate::day::Day;
use crate::events::{EventBatch, EventQuery, EventRow, MailingStats, RollupApply, RollupState, SeriesRow, WriteOutcome};
use crate::link::{MintBatch, MintOutcome, Resolved};
use crate::store::{MaintenancePolicy, MaintenanceReport, Store, StoreConfig};
use crate::tenant::{NewApiKey, StoredApiKey, TenantId};
use crate::token::{Random, Version};
use crate::webhooks::{Change as WebhookChange, Progress as WebhookProgress, Webhook};
use crate::{Error, Result};

/// Numbered migrations of the main file, applied in order by [`SqliteStore::migrate`](Store::migrate).
const MAIN_MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "0001_main", include_str!("../../../schema/sqlite/0001_main.sql")),
    (2, "0002_main", include_str!("../../../schema/sqlite/0002_main.sql")),
    (3, "0003_main", include_str!("../../../schema/sqlite/0003_main.sql")),
    (4, "0004_main", include_str!("../../../schema/sqlite/0004_main.sql")),
    (5, "0005_main", include_str!("../../../schema/sqlite/0005_main.sql")),
    (6, "0006_main", include_str!("../../../schema/sqlite/0006_main.sql")),
];

/// Day file schema versions, in order; each script ends by setting `PRAGMA user_version` to its version.
/// New files get all of them; `migrate` upgrades existing files.
const DAY_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/sqlite/0001_day.sql")),
    (2, include_str!("../../../schema/sqlite/0002_day.sql")),
    (3, include_str!("../../../schema/sqlite/0003_day.sql")),
    (4, include_str!("../../../schema/sqlite/0004_day.sql")),
    (5, include_str!("../../../schema/sqlite/0005_day.sql")),
    (6, include_str!("../../../schema/sqlite/0006_day.sql")),
];
const DAY_SCHEMA_VERSION: i64 = 6;

/// Deadline of migrate and maintenance, which may create many files.
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

/// SQLite's "try again later" codes: the database was busy or locked past `busy_timeout`.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

#[allow(clippy::needless_pass_by_value, reason = "used as `map_err(db_err)`")]
fn db_err(e: rusqlite::Error) -> Error {
    if is_busy(&e) { Error::Unavailable(e.to_string()) } else { Error::Database(e.to_string()) }
}

/// A SQLite-backed [`Store`] keeping one file per day.
#[derive(Debug)]
pub struct SqliteStore {
    days: Arc<Days>,
    writer: WriterHandle,
    /// Held for a whole maintenance pass; a concurrent pass on this store
    /// reports `acquired: false`. An async mutex, only ever `try_lock`ed.
    maintaining: tokio::sync::Mutex<()>,
    /// Deadline of one data call: statement plus acquire timeout.
    deadline: Duration,
}

impl SqliteStore {
    /// Prepare a store whose main file is `path`. Nothing is created on disk
    /// until `migrate` (main file) and `maintain` (day files).
    pub fn open(path: &Path, cfg: &StoreConfig) -> Result<SqliteStore> {
        if path.file_name().is_none() {
            return Err(Error::Config(format!("sqlite path {} must name a file", path.display())));
        }
        let days = Arc::new(Days::new(Layout::new(path), cfg.statement_timeout));
        let writer = WriterHandle::spawn(days.clone())?;
        Ok(SqliteStore { days, writer, maintaining: tokio::sync::Mutex::new(()), deadline: cfg.statement_timeout + cfg.acquire_timeout })
    }

    /// The file holding `day`'s data (whether or not it exists).
    pub fn day_path(&self, day: Day) -> PathBuf {
        self.days.layout.day_path(day)
    }

    /// The directory of the day files.
    pub fn days_dir(&self) -> &Path {
        &self.days.layout.days
    }

    async fn within<T>(deadline: Duration, f: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(deadline, f).await.map_err(|_| Error::Unavailable("embedded store deadline exceeded".into()))?
    }
}

impl Store for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<Vec<String>> {
        Self::within(ADMIN_DEADLINE, self.writer.call(|reply| Command::Admin(Admin::Migrate { reply }))).await
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn setting_or_insert(&self, name: &str, generated: &[u8]) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.deadline;
        let (name, generated) = (name.to_owned(), generated.to_vec());
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Setting { name, generated, deadline, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::ReadSetting { name, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn swap_setting(&self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        let (name, expected, new) = (name.to_owned(), expected.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::SwapSetting { name, expected, new, reply }))).await
    }

    #[tracing::instrument(skip_all)]
    async fn readiness(&self, today: Day) -> Result<Vec<String>> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Readiness { today, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(n))]
    async fn reserve_ids(&self, n: u64) -> Result<u64> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::ReserveIds { n, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(day = batch.day.0, links = batch.links.len()))]
    async fn mint(&self, batch: &MintBatch) -> Result<MintOutcome> {
        let deadline = Instant::now() + self.deadline;
        Self::within(self.deadline, self.writer.call(|reply| Command::Mint(PendingMint { batch: batch.clone(), deadline, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(day = day.0))]
    async fn resolve(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        let (days, random) = (self.days.clone(), *random);
        Self::within(self.deadline, async move {
            tokio::task::spawn_blocking(move || days.resolve(day, version, &random))
                .await
                .map_err(|source| Error::Task { what: "resolve", source })?
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(today = policy.today.0, dry_run = policy.dry_run))]
    async fn maintain(&self, policy: MaintenancePolicy) -> Result<MaintenanceReport> {
        let Ok(_pass) = self.maintaining.try_lock() else {
            return Ok(MaintenanceReport::default());
        };
        Self::within(ADMIN_DEADLINE, self.writer.call(|reply| Command::Admin(Admin::Maintain { policy, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(events = batch.hits.len()))]
    async fn write_events(&self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        let batch = batch.clone();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::WriteEvents { batch, today, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(limit = query.limit))]
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventRow>> {
        let (days, query) = (self.days.clone(), query.clone());
        Self::within(self.deadline, async move {
            tokio::task::spawn_blocking(move || days.read_events(&query))
                .await
                .map_err(|source| Error::Task { what: "event read", source })?
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn rollup_state(&self) -> Result<RollupState> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::RollupState { reply }))).await
    }

    #[tracing::instrument(skip_all, fields(relabels = apply.relabels.len(), keys = apply.deltas.len()))]
    async fn apply_rollup(&self, apply: &RollupApply) -> Result<bool> {
        let apply = apply.clone();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::ApplyRollup { apply, reply }))).await
    }

    #[tracing::instrument(skip_all)]
    async fn mailing_stats(&self, tenant: TenantId, mailing_id: &str) -> Result<Option<MailingStats>> {
        let mailing_id = mailing_id.to_owned();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::MailingStats { tenant, mailing_id, reply }))).await
    }

    async fn mailing_series(&self, tenant: TenantId, mailing_id: &str, from: u32, to: u32) -> Result<Option<Vec<SeriesRow>>> {
        let mailing_id = mailing_id.to_owned();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::MailingSeries { tenant, mailing_id, from, to, reply })))
            .await
    }

    async fn tenant(&self, name: &str, create: bool) -> Result<Option<TenantId>> {
        let name = name.to_owned();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Tenant { name, create, reply }))).await
    }

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<u32> {
        let key = key.clone();
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::InsertApiKey { key, reply }))).await
    }

    async fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::ApiKeys { reply }))).await
    }

    async fn revoke_api_key(&self, id: u32, now: i64) -> Result<bool> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::RevokeApiKey { id, now, reply }))).await
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant.0))]
    async fn erase_recipient(&self, tenant: TenantId, recipient: &str) -> Result<u64> {
        let recipient = recipient.to_owned();
        // Every day file in turn: an admin call, with the admin deadline.
        Self::within(ADMIN_DEADLINE, self.writer.call(|reply| Command::Admin(Admin::EraseRecipient { tenant, recipient, reply }))).await
    }

    async fn create_webhook(&self, w: &Webhook) -> Result<u32> {
        let webhook = Box::new(w.clone());
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::Create { webhook, reply })))).await
    }

    async fn webhooks(&self, tenant: Option<TenantId>) -> Result<Vec<Webhook>> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::List { tenant, reply })))).await
    }

    async fn delete_webhook(&self, tenant: TenantId, id: u32) -> Result<bool> {
        Self::within(self.deadline, self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::Delete { tenant, id, reply }))))
            .await
    }

    async fn change_webhook(&self, tenant: TenantId, id: u32, change: &WebhookChange) -> Result<bool> {
        let change = change.clone();
        Self::within(
            self.deadline,
            self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::Change { tenant, id, change, reply }))),
        )
        .await
    }

    async fn lease_webhook(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> Result<bool> {
        Self::within(
            self.deadline,
            self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::Lease { id, owner, now_ms, until_ms, reply }))),
        )
        .await
    }

    async fn webhook_progress(&self, id: u32, owner: [u8; 16], progress: &WebhookProgress) -> Result<bool> {
        let progress = progress.clone();
        Self::within(
            self.deadline,
            self.writer.call(|reply| Command::Admin(Admin::Webhook(WebhookCall::Progress { id, owner, progress, reply }))),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_locked_are_unavailable() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(matches!(db_err(busy), Error::Unavailable(_)));
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED), None);
        assert!(matches!(db_err(locked), Error::Unavailable(_)));
        let other = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), None);
        assert!(matches!(db_err(other), Error::Database(_)));
    }

    #[test]
    fn day_schema_sets_its_version() {
        for (version, sql) in DAY_MIGRATIONS {
            assert!(sql.contains(&format!("PRAGMA user_version = {version};")), "day schema {version}");
        }
        assert_eq!(DAY_MIGRATIONS.last().map(|m| m.0), Some(DAY_SCHEMA_VERSION));
    }
}

//! The production store: MySQL 8.0/8.4, tested on MariaDB 10.11.
//!
//! Every day-scoped table is RANGE-partitioned on `day` (see
//! `schema/mysql/`), and every statement names the day so it reads or writes
//! exactly one partition. Fixed-shape statements are prepared (cached per
//! connection); statements whose length follows the data (multi-row INSERTs,
//! `IN` lists) are text with literal values ([`literal`]), never `exec_batch`
//! nor one prepared statement per row count, and are chunked under
//! `max_allowed_packet`. Every call has a client deadline and the server-side
//! statement timeout, so a slow database gives a fast `Error::Unavailable`.
//! The only MySQL/MariaDB dialect branch is [`Dialect`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use prometheus_client::metrics::histogram::Histogram;
use subtle::ConstantTimeEq;

use crate::day::Day;
use crate::events::{self as events_types, registry_fingerprint};
use crate::events::{Counts, EventBatch, EventQuery, EventRow, MailingStats, RollupApply, RollupState, SeriesRow, StatKey, WriteOutcome};
use crate::link::{LinkIds, LinkKind, MintBatch, MintOutcome, NewLink, Resolved, hash16, url_hash};
use crate::store::plan;
use crate::store::{MaintenancePolicy, MaintenanceReport, PoolMetrics, ReadRouting, Store, StoreConfig};
use crate::tenant::{NewApiKey, StoredApiKey, TenantId};
use crate::token::{Random, Sealed, Version};
use crate::webhooks::{Change as WebhookChange, Progress as WebhookProgress, Webhook};
use crate::{Error, Result};
use literal::Lit;

mod events;
mod literal;
mod replicas;
pub mod routing;
mod tenants;
mod webhooks;

pub use self::replicas::{MAX_LAG_LIMIT, ReplicaConfig};

/// Numbered migrations, applied in order by [`MysqlStore::migrate`].
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "0001_core", include_str!("../../../schema/mysql/0001_core.sql")),
    (2, "0002_events", include_str!("../../../schema/mysql/0002_events.sql")),
    (3, "0003_event_day", include_str!("../../../schema/mysql/0003_event_day.sql")),
    (4, "0004_links_v2", include_str!("../../../schema/mysql/0004_links_v2.sql")),
    (5, "0005_event_link_ids", include_str!("../../../schema/mysql/0005_event_link_ids.sql")),
    (6, "0006_tenants", include_str!("../../../schema/mysql/0006_tenants.sql")),
    (7, "0007_webhooks", include_str!("../../../schema/mysql/0007_webhooks.sql")),
    (8, "0008_insights", include_str!("../../../schema/mysql/0008_insights.sql")),
];

/// Tables partitioned by day; maintenance keeps them in step.
const DAY_TABLES: &[&str] = &["links", "links_v2", "urls", "letters", "idempotency", "user_agents", "events", "event_batches", "link_seen"];

/// The resolve query of a v1 token: both tables are pinned to the token's
/// day, so each reads one partition; `links` by `UNIQUE (rnd, day)`. The
/// letter and URL ids come from the same row, for the hit's event.
pub const RESOLVE_SQL: &str = "SELECT l.kind, u.url, l.letter_id, l.url_id FROM links l \
     LEFT JOIN urls u ON u.id = l.url_id AND u.day = ? WHERE l.rnd = ? AND l.day = ?";

/// The resolve query of a v2 token: one primary-key dive in the token's day
/// partition (`const` on `PRIMARY`), then the URL by primary key; the
/// secret is compared by the caller.
pub const RESOLVE_V2_SQL: &str = "SELECT l.kind, u.url, l.letter_id, l.url_id, l.secret FROM links_v2 l \
     LEFT JOIN urls u ON u.id = l.url_id AND u.day = ? WHERE l.id = ? AND l.day = ?";

/// A `RESOLVE_SQL` row: kind, url, letter id, URL id.
type ResolveRow = (u8, Option<Vec<u8>>, u64, u64);
/// A `RESOLVE_V2_SQL` row: a [`ResolveRow`], then the secret.
type ResolveV2Row = (u8, Option<Vec<u8>>, u64, u64, Vec<u8>);

const INTERNED_ID_CACHE: usize = 131_072;
/// Mailings remembered as recorded in `mailings` (36 bytes each, plus the LRU's links).
const MAILING_CACHE: usize = 16_384;

/// A `stats_totals` primary key, in its column order.
type RegistryKey = (u16, [u8; 16], u8, [u8; 16], u16);

/// The primary key of a key's `stats_totals` row: the order rows are written in.
fn registry_key(k: &StatKey) -> RegistryKey {
    let (mh, uh) = events::stat_hashes(k);
    (k.tenant.0, mh, k.kind as u8, uh, k.stored_position())
}

/// Named locks are server-wide, so each is scoped to the current database:
/// two deployments sharing a server never block each other.
fn lock_name(purpose: &str) -> String {
    format!("CONCAT('linktrack.{purpose}.', LEFT(SHA1(DATABASE()), 24))")
}

/// The one place MySQL and MariaDB differ for this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MariaDb,
    MySql,
}

impl Dialect {
    /// Detect from `SELECT VERSION()`.
    pub fn from_version(version: &str) -> Dialect {
        if version.to_ascii_lowercase().contains("mariadb") { Dialect::MariaDb } else { Dialect::MySql }
    }

    /// Session statements that bound how long one statement may run.
    /// MariaDB's `max_statement_time` (seconds) covers every statement;
    /// MySQL's `max_execution_time` (ms) covers SELECTs; writes are bounded by
    /// `innodb_lock_wait_timeout` and the client deadline.
    fn statement_timeout_sql(self, timeout: Duration) -> String {
        match self {
            Dialect::MariaDb => format!("SET SESSION max_statement_time = {:.3}", timeout.as_secs_f64()),
            Dialect::MySql => format!("SET SESSION max_execution_time = {}", timeout.as_millis()),
        }
    }
}

/// A MySQL-backed [`Store`].
#[derive(Debug)]
pub struct MysqlStore {
    pool: Pool,
    /// Options for one-off admin connections (migrate, maintenance): no statement timeout.
    admin_opts: Opts,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    /// Budget for one statement's parameters: half of `max_allowed_packet`.
    packet_budget: usize,
    /// (table, day, hash) -> id of interned URLs and user agents, so repeats cost no statement.
    /// A std mutex: held only for a lookup or insert, never across `.await`.
    interned: Mutex<LruCache<InternKey, u64>>,
    /// (tenant, mailing hash) of mailings known to be in `mailings`, so only
    /// a mailing's first mint in this process writes its row.
    mailings: Mutex<LruCache<(u16, [u8; 16]), ()>>,
    /// Links whose totals row this process has made sure of ([`MysqlStore::register_links`]).
    registered: Mutex<LruCache<u64, ()>>,
    /// Seconds each `conn()` waited for a pooled connection (`/metrics`).
    acquire: Histogram,
    dialect: Dialect,
    /// Read replicas for resolves, stats and exports (`replicas.rs`), if any.
    replicas: Option<replicas::Replicas>,
}

/// Buckets of the pool acquire histogram: 10 µs to ~1.3 s, doubling (the
/// acquire timeout defaults to 500 ms).
fn acquire_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_01, 2.0, 18))
}

/// An interned value: its table, day and hash.
type InternKey = (Interned, Day, [u8; 16]);

/// The day-scoped tables that store each distinct value once per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Interned {
    Urls,
    UserAgents,
}

impl Interned {
    /// Table and value column.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Interned::Urls => ("urls", "url"),
            Interned::UserAgents => ("user_agents", "ua"),
        }
    }
}

#[allow(clippy::needless_pass_by_value, reason = "used as `map_err(db_err)`")]
fn db_err(e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(s) => match s.code {
            // 1205 lock wait timeout, 1969 MariaDB statement timeout, 3024 MySQL query timeout,
            // 1040 too many connections, 1053 server shutdown, 1213 deadlock.
            1205 | 1969 | 3024 | 1040 | 1053 | 1213 => Error::Unavailable(s.message.clone()),
            _ => Error::Database(format!("{} ({})", s.message, s.code)),
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Error::Unavailable(e.to_string()),
        _ => Error::Database(e.to_string()),
    }
}

/// The server's version and `max_allowed_packet`, retrying a server that is
/// not reachable yet (a pod started before its database) with backoff for up
/// to `wait`, and logging each attempt. A refusal from the server itself
/// (bad password, unknown database) is not retried.
async fn first_contact(opts: &Opts, wait: Duration) -> Result<(String, u64)> {
    let target = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    for attempt in 1u32.. {
        let probe = async {
            let mut conn = Conn::new(opts.clone()).await?;
            let row: Option<(String, u64)> = conn.query_first("SELECT VERSION(), @@max_allowed_packet").await?;
            conn.disconnect().await?;
            Ok::<_, mysql_async::Error>(row)
        };
        let why = match tokio::time::timeout(Duration::from_secs(10), probe).await {
            Ok(Ok(Some(row))) => return Ok(row),
            Ok(Ok(None)) => return Err(Error::Database("no version row".into())),
            Ok(Err(e @ mysql_async::Error::Server(_))) => return Err(Error::Config(format!("MySQL at {target} refused us: {e}"))),
            Ok(Err(e)) => root_cause(&e),
            Err(_) => "no answer within 10 s".to_owned(),
        };
        if started.elapsed() + backoff > wait {
            return Err(Error::Unavailable(format!(
                "cannot reach MySQL at {target} ({why}) after {attempt} attempts in {} s; check --database-url, or wait longer with --db-connect-wait-secs",
                started.elapsed().as_secs()
            )));
        }
        tracing::warn!(target = %target, attempt, error = %why, "database not reachable yet; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    unreachable!("the loop returns")
}

/// The innermost error of a chain: drivers wrap an I/O error in itself again
/// ("Input/output error: Input/output error: Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Options of one-off admin connections to `url`: short lock waits, no statement timeout.
fn admin_opts(url: &str, cfg: &StoreConfig) -> Result<Opts> {
    let base = Opts::from_url(url).map_err(|e| Error::Config(format!("bad mysql url: {e}")))?;
    let lock_wait = cfg.lock_wait_timeout_secs;
    Ok(OptsBuilder::from_opts(base)
        .init(vec![format!("SET SESSION lock_wait_timeout = {lock_wait}"), format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}")])
        .into())
}

/// Options of a bounded pool over `admin`: the statement timeout on top, and
/// for a read replica's pool, read-only sessions (a write sent there by
/// mistake fails instead of diverging the replica).
fn pool_opts(admin: &Opts, dialect: Dialect, cfg: &StoreConfig, read_only: bool) -> Result<Opts> {
    let lock_wait = cfg.lock_wait_timeout_secs;
    let max = cfg.pool_max.max(1);
    let constraints = PoolConstraints::new(1.min(max), max).ok_or_else(|| Error::Config("bad pool size".into()))?;
    let mut init = vec![
        format!("SET SESSION lock_wait_timeout = {lock_wait}"),
        format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}"),
        dialect.statement_timeout_sql(cfg.statement_timeout),
    ];
    if read_only {
        init.push("SET SESSION TRANSACTION READ ONLY".to_owned());
    }
    Ok(OptsBuilder::from_opts(admin.clone())
        .init(init)
        .stmt_cache_size(256)
        // mysql_async keeps only `min` idle connections unless they get an
        // inactive TTL; without it every request above `min` reconnects
        // (measured: 0.43 new connections per cold redirect, 2.5x slower).
        .pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_reset_connection(false)
                .with_inactive_connection_ttl(Duration::from_secs(300)),
        )
        .into())
}

/// 1526: "table has no partition for value".
const ER_NO_PARTITION_FOR_GIVEN_VALUE: u16 = 1526;
const ER_DUP_ENTRY: u16 = 1062;

impl MysqlStore {
    /// Connect to `url` (`mysql://user:pass@host:port/db`), detect the
    /// dialect and build the bounded pool.
    pub async fn connect(url: &str, cfg: &StoreConfig) -> Result<MysqlStore> {
        let admin_opts = admin_opts(url, cfg)?;
        let (version, max_packet) = first_contact(&admin_opts, cfg.connect_wait).await?;
        let dialect = Dialect::from_version(&version);
        let opts = pool_opts(&admin_opts, dialect, cfg, false)?;
        tracing::info!(%version, ?dialect, max_allowed_packet = max_packet, pool_max = cfg.pool_max.max(1), "connected to mysql");
        Ok(MysqlStore {
            pool: Pool::new(opts),
            admin_opts,
            acquire_timeout: cfg.acquire_timeout,
            statement_timeout: cfg.statement_timeout,
            packet_budget: usize::try_from(max_packet / 2).unwrap_or(usize::MAX).max(64 * 1024),
            interned: Mutex::new(LruCache::new(std::num::NonZeroUsize::new(INTERNED_ID_CACHE).expect("nonzero"))),
            mailings: Mutex::new(LruCache::new(std::num::NonZeroUsize::new(MAILING_CACHE).expect("nonzero"))),
            registered: Mutex::new(LruCache::new(std::num::NonZeroUsize::new(events_types::REGISTRY_CACHE).expect("nonzero"))),
            acquire: acquire_histogram(),
            dialect,
            replicas: None,
        })
    }

    /// Close the pool, waiting for connections to be returned.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
        Self::close_replicas(self.replicas).await;
    }

    async fn conn(&self) -> Result<Conn> {
        let started = std::time::Instant::now();
        let got = tokio::time::timeout(self.acquire_timeout, self.pool.get_conn()).await;
        // Timeouts are observed too (at the timeout), so the tail shows them.
        self.acquire.observe(started.elapsed().as_secs_f64());
        got.map_err(|_| Error::Unavailable("timed out waiting for a pooled connection".into()))?.map_err(db_err)
    }

    /// Run `f` under the statement deadline.
    async fn deadline<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.statement_timeout + self.acquire_timeout, f)
            .await
            .map_err(|_| Error::Unavailable("database deadline exceeded".into()))?
    }

    async fn admin_conn(&self) -> Result<Conn> {
        tokio::time::timeout(Duration::from_secs(10), Conn::new(self.admin_opts.clone()))
            .await
            .map_err(|_| Error::Unavailable("timed out connecting to mysql".into()))?
            .map_err(db_err)
    }

    async fn replay(conn: &mut Conn, day: Day, key_hash: &[u8; 16], body_hash: &[u8; 16]) -> Result<Option<MintOutcome>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .exec_first(
                "SELECT body_hash, tokens FROM idempotency WHERE key_hash = ? AND day IN (?, ?) ORDER BY day DESC LIMIT 1",
                (key_hash.as_slice(), day.0, day.minus(1).0),
            )
            .await
            .map_err(db_err)?;
        let Some((stored_body, tokens)) = row else { return Ok(None) };
        if stored_body != body_hash {
            return Err(Error::IdempotencyMismatch);
        }
        let tokens = String::from_utf8(tokens).map_err(|_| Error::Database("idempotency tokens are not utf-8".into()))?;
        Ok(Some(MintOutcome::Replayed(tokens.split('\n').map(str::to_owned).collect())))
    }

    /// `urls.id` for every distinct URL of the batch, inserting the new ones.
    async fn url_ids(&self, conn: &mut Conn, batch: &MintBatch) -> Result<HashMap<[u8; 16], u64>> {
        let urls = batch.links.iter().filter_map(|l| l.url.as_deref()).map(|u| (url_hash(u), u.as_bytes()));
        self.intern(conn, Interned::Urls, batch.day, urls).await
    }

    /// Ids of day-scoped interned values (`urls`, `user_agents`), keyed by
    /// their 16-byte hash, inserting the ones not stored yet. Cached ids cost
    /// no statement.
    async fn intern<'a>(
        &self,
        conn: &mut Conn,
        table: Interned,
        day: Day,
        values: impl Iterator<Item = ([u8; 16], &'a [u8])>,
    ) -> Result<HashMap<[u8; 16], u64>> {
        let mut ids = HashMap::new();
        let mut missing: HashMap<[u8; 16], &[u8]> = HashMap::new();
        {
            let mut cache = self.interned.lock().expect("interned id cache poisoned");
            for (h, v) in values {
                if ids.contains_key(&h) || missing.contains_key(&h) {
                    continue;
                }
                match cache.get(&(table, day, h)) {
                    Some(id) => {
                        ids.insert(h, *id);
                    }
                    None => {
                        missing.insert(h, v);
                    }
                }
            }
        }
        let missing: Vec<([u8; 16], &[u8])> = missing.into_iter().collect();
        let (name, column) = table.names();
        // Text, not prepared: the row count varies (see `literal`). A value is at most twice its bytes as hex.
        for range in chunk_by_bytes(missing.iter().map(|(_, v)| 2 * v.len() + 64), self.packet_budget) {
            let rows = &missing[range];
            let values = literal::tuples(rows.iter().map(|(h, v)| [Lit::from(day.0), Lit::from(&h[..]), Lit::from(*v)]));
            #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
            let sql = format!("INSERT INTO {name} (day, hash, {column}) VALUES {} ON DUPLICATE KEY UPDATE id = id", values);
            conn.query_drop(sql).await.map_err(|e| insert_err(e, day))?;
            let hashes = literal::list(rows.iter().map(|(h, _)| Lit::from(&h[..])));
            let sql = format!("SELECT hash, id FROM {name} WHERE day = {} AND hash IN ({})", day.0, hashes);
            let found: Vec<(Vec<u8>, u64)> = conn.query(sql).await.map_err(db_err)?;
            let mut cache = self.interned.lock().expect("interned id cache poisoned");
            for (h, id) in found {
                let h: [u8; 16] = h.try_into().map_err(|_| Error::Database(format!("{name}.hash is not 16 bytes")))?;
                cache.put((table, day, h), id);
                ids.insert(h, id);
            }
        }
        Ok(ids)
    }

    /// Give every (URL, position) of the letter, and its pixel, a totals row
    /// of zeros unless this process did so before, so a mailing's stats list
    /// links nobody clicked. One statement, before the mint's transaction
    /// (like the embedded store): a mint that then fails leaves a row of
    /// zeros, never a minted link missing from its mailing's stats. Rows in
    /// key order, as the rollup writes them.
    async fn register_links(&self, conn: &mut mysql_async::Conn, batch: &MintBatch) -> Result<()> {
        let mut keys: Vec<StatKey> = StatKey::of_mint(batch)
            .filter(|k| !self.registered.lock().expect("registry cache poisoned").contains(&registry_fingerprint(&registry_key(k))))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_by_key(registry_key);
        keys.dedup();
        let hashes: Vec<([u8; 16], [u8; 16])> = keys.iter().map(events::stat_hashes).collect();
        let zero = Counts::default();
        let rows: Vec<[Lit<'_>; 12]> = keys.iter().zip(&hashes).map(|(k, h)| events::totals_row(k, &zero, h)).collect();
        for range in chunk_by_bytes(rows.iter().map(|r| literal::row_len(&r[..])), self.packet_budget) {
            conn.query_drop(events::totals_register_sql(&rows[range])).await.map_err(db_err)?;
        }
        let mut registered = self.registered.lock().expect("registry cache poisoned");
        for k in &keys {
            registered.put(registry_fingerprint(&registry_key(k)), ());
        }
        Ok(())
    }

    async fn mint_inner(&self, batch: &MintBatch) -> Result<MintOutcome> {
        let mut conn = self.conn().await?;
        if let Some(idem) = &batch.idempotency
            && let Some(replayed) = Self::replay(&mut conn, batch.day, &idem.key_hash, &idem.body_hash).await?
        {
            return Ok(replayed);
        }
        let url_ids = self.url_ids(&mut conn, batch).await?;
        self.register_links(&mut conn, batch).await?;
        let day = batch.day.0;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
        let l = &batch.letter;
        // The first mint of a mailing (that this process sees) records which tenant it belongs to.
        let mailing = (l.tenant.0, hash16(&[l.mailing_id.as_bytes()]));
        let known = self.mailings.lock().expect("mailing cache poisoned").get(&mailing).is_some();
        if !known {
            tx.exec_drop(
                "INSERT INTO mailings (tenant, mailing_hash, mailing_id) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE tenant = tenant",
                (mailing.0, &mailing.1[..], l.mailing_id.as_bytes()),
            )
            .await
            .map_err(db_err)?;
        }
        tx.exec_drop(
            "INSERT INTO letters (day, minted_at, click_links, mailing_id, recipient, meta, tenant) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                day,
                l.minted_at,
                l.click_links.min(u32::from(u16::MAX)),
                l.mailing_id.as_bytes(),
                l.recipient.as_bytes(),
                l.meta.as_deref().map(str::as_bytes),
                l.tenant.0,
            ),
        )
        .await
        .map_err(|e| insert_err(e, batch.day))?;
        let letter_id = tx.last_insert_id().ok_or_else(|| Error::Database("no letter id".into()))?;
        let ids = batch
            .links
            .iter()
            .map(|link| match link.url.as_deref() {
                Some(u) => url_ids.get(&url_hash(u)).map(|&url_id| LinkIds { letter_id, url_id }),
                None => Some(LinkIds { letter_id, url_id: 0 }),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Database("url id missing".into()))?;
        // A link row is under 160 bytes of text; chunk only if a batch outgrows the packet.
        for range in chunk_by_bytes(batch.links.iter().map(|_| 160), self.packet_budget) {
            let sql = links_insert_sql(batch, &batch.links[range.clone()], &ids[range]);
            tx.query_drop(sql).await.map_err(|e| insert_err(e, batch.day))?;
        }
        if let Some(idem) = &batch.idempotency {
            let tokens = batch.links.iter().map(|l| l.token.as_str()).collect::<Vec<_>>().join("\n").into_bytes();
            // The key's row for today, and a guard row for yesterday: a request
            // with the same key either side of midnight (today D+1) writes its
            // own guard on D and so collides with this one, instead of minting
            // a second letter. Replays look at today and yesterday, as before.
            let (key, body) = (idem.key_hash.as_slice(), idem.body_hash.as_slice());
            let res = tx
                .exec_drop(
                    "INSERT INTO idempotency (key_hash, day, body_hash, tokens) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
                    (key, day, body, &tokens, key, batch.day.minus(1).0, body, &tokens),
                )
                .await;
            if let Err(e) = res {
                if server_code(&e) == Some(ER_DUP_ENTRY) {
                    // A concurrent request with the same key won: discard ours, return theirs.
                    tx.rollback().await.map_err(db_err)?;
                    return Self::replay(&mut conn, batch.day, &idem.key_hash, &idem.body_hash)
                        .await?
                        .ok_or_else(|| Error::Database("idempotency row vanished".into()));
                }
                return Err(insert_err(e, batch.day));
            }
        }
        tx.commit().await.map_err(db_err)?;
        if !known {
            self.mailings.lock().expect("mailing cache poisoned").put(mailing, ());
        }
        Ok(MintOutcome::Stored(ids))
    }

    /// One resolve on the connection [`Self::read_conn`] gives: a replica's
    /// inside [`Self::on_replica`], else the primary's.
    async fn resolve_here(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        let mut conn = self.read_conn().await?;
        let row: Option<ResolveRow> = match version {
            Version::V1 => conn.exec_first(RESOLVE_SQL, (day.0, random.0.as_slice(), day.0)).await.map_err(db_err)?,
            Version::V2 => {
                let sealed = Sealed::from_block(random);
                let row: Option<ResolveV2Row> = conn.exec_first(RESOLVE_V2_SQL, (day.0, sealed.id, day.0)).await.map_err(db_err)?;
                row.filter(|r| bool::from(r.4.as_slice().ct_eq(&sealed.secret))).map(|(k, u, letter, url, _)| (k, u, letter, url))
            }
        };
        let Some((kind, url, letter_id, url_id)) = row else { return Ok(None) };
        let kind = LinkKind::from_u8(kind).ok_or_else(|| Error::Database(format!("unknown link kind {kind}")))?;
        let url = match url {
            Some(bytes) => Some(Arc::from(String::from_utf8(bytes).map_err(|_| Error::Database("url is not utf-8".into()))?)),
            None => None,
        };
        Ok(Some(Resolved { kind, url, ids: LinkIds { letter_id, url_id } }))
    }

    /// Existing partitions of the day tables: table -> [(last day, partition name)].
    async fn list_partitions(conn: &mut Conn) -> Result<HashMap<String, Vec<(Day, String)>>> {
        let rows: Vec<(String, String, String)> = conn
            .query(format!(
                "SELECT TABLE_NAME, PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS \
                 WHERE TABLE_SCHEMA = DATABASE() AND PARTITION_NAME IS NOT NULL AND TABLE_NAME IN ({})",
                DAY_TABLES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
            ))
            .await
            .map_err(db_err)?;
        let mut out: HashMap<String, Vec<(Day, String)>> = DAY_TABLES.iter().map(|t| ((*t).to_owned(), Vec::new())).collect();
        for (table, name, bound) in rows {
            let bound: u32 = bound.trim().parse().map_err(|_| Error::Schema(format!("unexpected partition bound {bound:?} on {table}")))?;
            if bound <= 1 {
                continue; // p_start: holds no real day
            }
            let last = u16::try_from(bound - 1).map_err(|_| Error::Schema(format!("partition bound {bound} out of range")))?;
            out.entry(table).or_default().push((Day(last), name));
        }
        Ok(out)
    }

    async fn maintain_locked(conn: &mut Conn, policy: MaintenancePolicy) -> Result<MaintenanceReport> {
        let existing = Self::list_partitions(conn).await?;
        let mut report = MaintenanceReport { acquired: true, ..MaintenanceReport::default() };
        // Each partition is a tablespace file, `p_start` included.
        let mut files = 0;
        for table in DAY_TABLES {
            let parts = &existing[*table];
            let days: Vec<Day> = parts.iter().map(|(d, _)| *d).collect();
            let plan = plan::plan(&days, &policy);
            files += 1 + days.len() + plan.create.len() - plan.drop.len();
            if *table == "links" {
                report.created.clone_from(&plan.create);
                report.dropped.clone_from(&plan.drop);
                let mut after: Vec<Day> = if policy.dry_run {
                    days.clone()
                } else {
                    days.iter().filter(|d| !plan.drop.contains(d)).chain(plan.create.iter()).copied().collect()
                };
                after.sort_unstable();
                report.partitions = after;
            }
            if policy.dry_run {
                continue;
            }
            if !plan.create.is_empty() {
                let defs: Vec<String> = plan
                    .create
                    .iter()
                    .map(|d| format!("PARTITION {} VALUES LESS THAN ({})", partition_name(*d), u32::from(d.0) + 1))
                    .collect();
                conn.query_drop(format!("ALTER TABLE {table} ADD PARTITION ({})", defs.join(", "))).await.map_err(db_err)?;
            }
            if !plan.drop.is_empty() {
                let names: Vec<&str> = parts.iter().filter(|(d, _)| plan.drop.contains(d)).map(|(_, n)| n.as_str()).collect();
                conn.query_drop(format!("ALTER TABLE {table} DROP PARTITION {}", names.join(", "))).await.map_err(db_err)?;
            }
        }
        Self::check_open_files(conn, files).await;
        Ok(report)
    }

    /// Warn when the day partitions need more open tablespaces than
    /// `innodb_open_files` keeps: InnoDB then closes and reopens partition
    /// files all day, which the growth run measured as slower mints and
    /// resolves with 365 days kept (`loadtests/RESULTS.md`, "Growth").
    async fn check_open_files(conn: &mut Conn, files: usize) {
        let limit: Option<u64> = conn.query_first("SELECT @@innodb_open_files").await.ok().flatten();
        if let Some(limit) = limit
            && files as u64 * 4 > limit * 3
        {
            tracing::warn!(
                partition_files = files,
                innodb_open_files = limit,
                "the day partitions are {files} tablespace files, more than 3/4 of innodb_open_files ({limit}): \
                 raise innodb_open_files (not dynamic) to at least {} or keep fewer days (--retention-days)",
                files * 2
            );
        }
    }
}

fn insert_err(e: mysql_async::Error, day: Day) -> Error {
    if server_code(&e) == Some(ER_NO_PARTITION_FOR_GIVEN_VALUE) { Error::NoPartition(day) } else { db_err(e) }
}

/// The INSERT of a mint's `links` (with their `ids`), as text: letters have
/// any number of links, and one prepared statement per count would fill the
/// statement cache (see [`literal`]).
fn links_insert_sql(batch: &MintBatch, links: &[NewLink], ids: &[LinkIds]) -> String {
    let day = batch.day.0;
    let rows = links.iter().zip(ids);
    match batch.version {
        Version::V1 => format!(
            "INSERT INTO links (day, rnd, kind, url_id, letter_id) VALUES {}",
            literal::tuples(rows.map(|(link, to)| {
                [Lit::from(day), Lit::from(&link.random.0[..]), Lit::from(link.kind as u8), Lit::from(to.url_id), Lit::from(to.letter_id)]
            }))
        ),
        Version::V2 => {
            let sealed: Vec<(Sealed, &NewLink, &LinkIds)> = rows.map(|(link, to)| (Sealed::from_block(&link.random), link, to)).collect();
            format!(
                "INSERT INTO links_v2 (day, id, secret, kind, url_id, letter_id, pos, spell) VALUES {}",
                literal::tuples(sealed.iter().map(|(s, link, to)| {
                    [
                        Lit::from(day),
                        Lit::from(s.id),
                        Lit::from(&s.secret[..]),
                        Lit::from(link.kind as u8),
                        Lit::from(to.url_id),
                        Lit::from(to.letter_id),
                        Lit::from(link.position),
                        Lit::from(link.token.spelling().pack()),
                    ]
                }))
            )
        }
    }
}

/// `p20261122`: the partition holding (up to and including) `day`.
pub fn partition_name(day: Day) -> String {
    let d = day.date();
    format!("p{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Split rows (given their estimated encoded sizes) into consecutive ranges
/// whose total stays under `budget`; every range holds at least one row.
fn chunk_by_bytes(sizes: impl Iterator<Item = usize>, budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut acc, mut i) = (0, 0, 0);
    for size in sizes {
        if acc + size > budget && i > start {
            out.push(start..i);
            start = i;
            acc = 0;
        }
        acc += size;
        i += 1;
    }
    if i > start {
        out.push(start..i);
    }
    out
}

impl Store for MysqlStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<Vec<String>> {
        let mut conn = self.admin_conn().await?;
        let locked: Option<i64> = conn.query_first(format!("SELECT GET_LOCK({}, 60)", lock_name("migrate"))).await.map_err(db_err)?;
        if locked != Some(1) {
            return Err(Error::Unavailable("another process holds the migration lock".into()));
        }
        let result = async {
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INT UNSIGNED NOT NULL PRIMARY KEY, \
                 name VARCHAR(255) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
            )
            .await
            .map_err(db_err)?;
            let done: Vec<u32> = conn.query("SELECT version FROM schema_migrations").await.map_err(db_err)?;
            let mut applied = Vec::new();
            for (version, name, sql) in MIGRATIONS {
                if done.contains(version) {
                    continue;
                }
                for stmt in split_statements(sql) {
                    conn.query_drop(stmt).await.map_err(|e| Error::Schema(format!("migration {name}: {e}")))?;
                }
                conn.exec_drop("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name)).await.map_err(db_err)?;
                tracing::info!(migration = name, "applied");
                applied.push((*name).to_owned());
            }
            Ok(applied)
        }
        .await;
        let _ = conn.query_drop(format!("DO RELEASE_LOCK({})", lock_name("migrate"))).await;
        let _ = conn.disconnect().await;
        result
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn setting_or_insert(&self, name: &str, generated: &[u8]) -> Result<Vec<u8>> {
        self.deadline(async {
            let mut conn = self.conn().await?;
            conn.exec_drop("INSERT INTO settings (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = name", (name, generated))
                .await
                .map_err(db_err)?;
            let v: Option<Vec<u8>> = conn.exec_first("SELECT value FROM settings WHERE name = ?", (name,)).await.map_err(db_err)?;
            v.ok_or_else(|| Error::Database(format!("setting {name} vanished")))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.deadline(async {
            let mut conn = self.conn().await?;
            conn.exec_first("SELECT value FROM settings WHERE name = ?", (name,)).await.map_err(db_err)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(name))]
    async fn swap_setting(&self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        self.deadline(async {
            let mut conn = self.conn().await?;
            match (expected, new) {
                (None, Some(new)) => {
                    conn.exec_drop("INSERT IGNORE INTO settings (name, value) VALUES (?, ?)", (name, new)).await.map_err(db_err)?;
                }
                // Without CLIENT_FOUND_ROWS an UPDATE to the same value reports 0 rows: compare instead.
                (Some(old), Some(new)) if old == new => {
                    let v: Option<Vec<u8>> = conn.exec_first("SELECT value FROM settings WHERE name = ?", (name,)).await.map_err(db_err)?;
                    return Ok(v.as_deref() == Some(old));
                }
                (Some(old), Some(new)) => {
                    conn.exec_drop("UPDATE settings SET value = ? WHERE name = ? AND value = ?", (new, name, old)).await.map_err(db_err)?;
                }
                (Some(old), None) => {
                    conn.exec_drop("DELETE FROM settings WHERE name = ? AND value = ?", (name, old)).await.map_err(db_err)?;
                }
                (None, None) => {
                    let v: Option<Vec<u8>> = conn.exec_first("SELECT value FROM settings WHERE name = ?", (name,)).await.map_err(db_err)?;
                    return Ok(v.is_none());
                }
            }
            Ok(conn.affected_rows() == 1)
        })
        .await
    }

    fn pool_metrics(&self) -> Option<PoolMetrics> {
        let m = self.pool.metrics();
        let get = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed) as u64;
        Some(PoolMetrics { in_use: get(&m.connections_in_use), waiting: get(&m.active_wait_requests), acquire: self.acquire.clone() })
    }

    #[tracing::instrument(skip_all, fields(day = batch.day.0, links = batch.links.len()))]
    async fn mint(&self, batch: &MintBatch) -> Result<MintOutcome> {
        self.deadline(self.mint_inner(batch)).await
    }

    #[tracing::instrument(skip_all, fields(day = day.0))]
    async fn resolve(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        self.deadline(self.resolve_routed(day, version, random)).await
    }

    #[tracing::instrument(skip_all)]
    async fn readiness(&self, today: Day) -> Result<Vec<String>> {
        self.deadline(async {
            // The read replicas' positions are checked with the primary's, every readiness check.
            self.check_replicas().await?;
            let mut conn = self.conn().await?;
            let mut problems = Vec::new();
            let schema: Option<Option<u32>> = conn.query_first("SELECT MAX(version) FROM schema_migrations").await.map_err(db_err)?;
            let (have, want) = (schema.flatten().unwrap_or(0), MIGRATIONS.last().map_or(0, |m| m.0));
            if have < want {
                problems.push(format!("migrations pending: the schema is at {have}, this build needs {want}; run `linktrack migrate`"));
            }
            // Each partition holds days below its bound, so tomorrow needs a bound above it.
            let bound: Option<Option<u32>> = conn
                .query_first(
                    "SELECT MAX(CAST(PARTITION_DESCRIPTION AS UNSIGNED)) FROM information_schema.PARTITIONS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'links_v2'",
                )
                .await
                .map_err(db_err)?;
            let tomorrow = today.plus(1);
            if bound.flatten().unwrap_or(0) <= u32::from(tomorrow.0) {
                problems.push(format!("no partition for {tomorrow} yet; partition maintenance is behind"));
            }
            Ok(problems)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(n))]
    async fn reserve_ids(&self, n: u64) -> Result<u64> {
        self.deadline(async {
            let mut conn = self.conn().await?;
            // One autocommit statement: the row lock lasts only for it.
            conn.exec_drop("UPDATE sequences SET next_id = LAST_INSERT_ID(next_id + ?) WHERE name = 'links'", (n,))
                .await
                .map_err(db_err)?;
            let next =
                conn.last_insert_id().ok_or_else(|| Error::Schema("sequences has no 'links' row; run `linktrack migrate`".into()))?;
            next.checked_sub(n).filter(|first| *first > 0).ok_or_else(|| Error::Database(format!("bad id range ending at {next}")))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(today = policy.today.0, dry_run = policy.dry_run))]
    async fn maintain(&self, policy: MaintenancePolicy) -> Result<MaintenanceReport> {
        let mut conn = self.admin_conn().await?;
        let locked: Option<i64> = conn.query_first(format!("SELECT GET_LOCK({}, 0)", lock_name("partitions"))).await.map_err(db_err)?;
        if locked != Some(1) {
            let _ = conn.disconnect().await;
            return Ok(MaintenanceReport::default());
        }
        let result = Self::maintain_locked(&mut conn, policy).await;
        let _ = conn.query_drop(format!("DO RELEASE_LOCK({})", lock_name("partitions"))).await;
        let _ = conn.disconnect().await;
        result
    }

    #[tracing::instrument(skip_all, fields(events = batch.hits.len()))]
    async fn write_events(&self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        self.deadline(self.write_events_inner(batch, today)).await
    }

    #[tracing::instrument(skip_all, fields(limit = query.limit))]
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<EventRow>> {
        self.deadline(self.read_events_inner(query)).await
    }

    #[tracing::instrument(skip_all, fields(limit = query.limit))]
    async fn export_events(&self, query: &EventQuery) -> Result<Vec<EventRow>> {
        self.deadline(self.export_routed(query)).await
    }

    fn read_routing(&self) -> Option<ReadRouting> {
        self.read_routing_snapshot()
    }

    #[tracing::instrument(skip_all)]
    async fn rollup_state(&self) -> Result<RollupState> {
        self.deadline(self.rollup_state_inner()).await
    }

    #[tracing::instrument(skip_all, fields(relabels = apply.relabels.len(), keys = apply.deltas.len()))]
    async fn apply_rollup(&self, apply: &RollupApply) -> Result<bool> {
        self.deadline(self.apply_rollup_inner(apply)).await
    }

    #[tracing::instrument(skip_all)]
    async fn mailing_stats(&self, tenant: TenantId, mailing_id: &str) -> Result<Option<MailingStats>> {
        self.deadline(async { Ok(self.on_replica(|| self.mailing_stats_inner(tenant, mailing_id)).await?.value) }).await
    }

    async fn mailing_series(&self, tenant: TenantId, mailing_id: &str, from: u32, to: u32) -> Result<Option<Vec<SeriesRow>>> {
        self.deadline(async { Ok(self.on_replica(|| self.mailing_series_inner(tenant, mailing_id, from, to)).await?.value) }).await
    }

    async fn tenant(&self, name: &str, create: bool) -> Result<Option<TenantId>> {
        self.deadline(self.tenant_inner(name, create)).await
    }

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<u32> {
        self.deadline(self.insert_api_key_inner(key)).await
    }

    async fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        self.deadline(self.api_keys_inner()).await
    }

    async fn revoke_api_key(&self, id: u32, now: i64) -> Result<bool> {
        self.deadline(self.revoke_api_key_inner(id, now)).await
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant.0))]
    async fn erase_recipient(&self, tenant: TenantId, recipient: &str) -> Result<u64> {
        // One statement per kept day: each reads one partition, under the admin deadline.
        self.erase_recipient_inner(tenant, recipient).await
    }

    async fn create_webhook(&self, w: &Webhook) -> Result<u32> {
        self.deadline(self.create_webhook_inner(w)).await
    }

    async fn webhooks(&self, tenant: Option<TenantId>) -> Result<Vec<Webhook>> {
        self.deadline(self.webhooks_inner(tenant)).await
    }

    async fn delete_webhook(&self, tenant: TenantId, id: u32) -> Result<bool> {
        self.deadline(self.delete_webhook_inner(tenant, id)).await
    }

    async fn change_webhook(&self, tenant: TenantId, id: u32, change: &WebhookChange) -> Result<bool> {
        self.deadline(self.change_webhook_inner(tenant, id, change)).await
    }

    async fn lease_webhook(&self, id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64) -> Result<bool> {
        self.deadline(self.lease_webhook_inner(id, owner, now_ms, until_ms)).await
    }

    async fn webhook_progress(&self, id: u32, owner: [u8; 16], progress: &WebhookProgress) -> Result<bool> {
        self.deadline(self.webhook_progress_inner(id, owner, progress)).await
    }
}

/// Split a migration file into statements: `;` at the end of a line ends one.
/// `--` comment lines are dropped.
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.ends_with(';') {
            out.push(cur.trim().trim_end_matches(';').to_owned());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_budget_and_cover_all_rows() {
        let sizes = [10, 10, 10, 25, 5, 100, 1];
        let chunks = chunk_by_bytes(sizes.iter().copied(), 30);
        assert_eq!(chunks, vec![0..3, 3..5, 5..6, 6..7]);
        assert!(chunk_by_bytes(std::iter::empty(), 30).is_empty());
    }

    #[test]
    fn migration_splits_into_statements() {
        let stmts = split_statements(MIGRATIONS[0].2);
        assert_eq!(stmts.len(), 5, "{stmts:#?}");
        assert!(stmts.iter().all(|s| s.starts_with("CREATE TABLE")));
        let stmts = split_statements(MIGRATIONS[1].2);
        assert_eq!(stmts.len(), 10, "{stmts:#?}");
        assert!(stmts[0].starts_with("ALTER TABLE letters"));
    }

    #[test]
    fn partition_names_are_dates() {
        assert_eq!(partition_name(Day::parse_iso("2026-11-22").unwrap()), "p20261122");
    }

    #[test]
    fn dialect_detection() {
        assert_eq!(Dialect::from_version("10.11.6-MariaDB-0+deb12u1"), Dialect::MariaDb);
        assert_eq!(Dialect::from_version("8.4.2"), Dialect::MySql);
    }
}

//! The single writer: one dedicated thread owns every writable connection of
//! the store and applies all writes (mints, settings, migrations,
//! maintenance) in the order they arrive on a bounded channel.
//!
//! Mints that queue up together are group-committed: one `BEGIN IMMEDIATE`
//! ... `COMMIT` (one WAL fsync) per day file, with a SAVEPOINT per mint so a
//! failing mint rolls back alone and its neighbours still commit. Each caller
//! gets its own result on a oneshot. When every sender is gone the thread
//! drains what is queued, closes its connections and exits; the handle's
//! `Drop` joins it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::days::{self, Days};
use super::events;
use super::tenants;
use super::webhooks;
use super::{MAIN_MIGRATIONS, db_err, is_busy};
use crate::day::Day;
use crate::events::{EventBatch, MailingStats, Relabel, RollupApply, RollupState, SeriesRow, StatKey, WriteOutcome, registry_fingerprint};
use crate::link::{LinkIds, MintBatch, MintOutcome, hash16, url_hash};
use crate::private_fs;
use crate::store::plan::{self, oldest_kept};
use crate::store::{MaintenancePolicy, MaintenanceReport};
use crate::tenant::{NewApiKey, StoredApiKey, TenantId};
use crate::token::{Sealed, Version};
use crate::webhooks::{Change as WebhookChange, Progress as WebhookProgress, Webhook};
use crate::{Error, Result};

/// Commands queued before callers wait for room.
const QUEUE: usize = 1024;
/// Most commands taken off the queue for one group commit.
const MAX_GROUP: usize = 256;
/// Day files the writer keeps open (today, yesterday, a little slack).
const OPEN_DAYS: usize = 4;
/// Mailings remembered as recorded in the main file's `mailings`.
const MAILING_CACHE: usize = 16_384;

type Reply<T> = oneshot::Sender<Result<T>>;

/// One unit of work for the writer thread.
#[derive(Debug)]
pub enum Command {
    /// Group-committed with the mints queued next to it.
    Mint(PendingMint),
    /// Applied alone, in queue order.
    Admin(Admin),
}

/// The writes that are not mints.
#[derive(Debug)]
pub enum Admin {
    Setting { name: String, generated: Vec<u8>, deadline: Instant, reply: Reply<Vec<u8>> },
    ReadSetting { name: String, reply: Reply<Option<Vec<u8>>> },
    SwapSetting { name: String, expected: Option<Vec<u8>>, new: Option<Vec<u8>>, reply: Reply<bool> },
    Migrate { reply: Reply<Vec<String>> },
    Maintain { policy: MaintenancePolicy, reply: Reply<MaintenanceReport> },
    WriteEvents { batch: EventBatch, today: Day, reply: Reply<WriteOutcome> },
    ApplyRollup { apply: RollupApply, reply: Reply<bool> },
    RollupState { reply: Reply<RollupState> },
    MailingStats { tenant: TenantId, mailing_id: String, reply: Reply<Option<MailingStats>> },
    MailingSeries { tenant: TenantId, mailing_id: String, from: u32, to: u32, reply: Reply<Option<Vec<SeriesRow>>> },
    Tenant { name: String, create: bool, reply: Reply<Option<TenantId>> },
    InsertApiKey { key: NewApiKey, reply: Reply<u32> },
    ApiKeys { reply: Reply<Vec<StoredApiKey>> },
    RevokeApiKey { id: u32, now: i64, reply: Reply<bool> },
    EraseRecipient { tenant: TenantId, recipient: String, reply: Reply<u64> },
    Webhook(WebhookCall),
    ReserveIds { n: u64, reply: Reply<u64> },
    Readiness { today: Day, reply: Reply<Vec<String>> },
}

/// The webhook calls, all on the main file.
#[derive(Debug)]
pub enum WebhookCall {
    Create { webhook: Box<Webhook>, reply: Reply<u32> },
    List { tenant: Option<TenantId>, reply: Reply<Vec<Webhook>> },
    Delete { tenant: TenantId, id: u32, reply: Reply<bool> },
    Change { tenant: TenantId, id: u32, change: WebhookChange, reply: Reply<bool> },
    Lease { id: u32, owner: [u8; 16], now_ms: i64, until_ms: i64, reply: Reply<bool> },
    Progress { id: u32, owner: [u8; 16], progress: WebhookProgress, reply: Reply<bool> },
}

/// A mint waiting for its group commit.
#[derive(Debug)]
pub struct PendingMint {
    pub batch: MintBatch,
    /// The caller gives up at this instant; a mint not started by then is not stored.
    pub deadline: Instant,
    pub reply: Reply<MintOutcome>,
}

/// The async side's end of the writer: send a command, await its reply.
/// Dropping it closes the channel and joins the thread once the queue is flushed.
#[derive(Debug)]
pub struct WriterHandle {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> Error {
    Error::Unavailable("the embedded store's writer has stopped".into())
}

impl WriterHandle {
    pub fn spawn(days: Arc<Days>) -> Result<WriterHandle> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mailings = lru::LruCache::new(std::num::NonZeroUsize::new(MAILING_CACHE).expect("nonzero"));
        let registered = lru::LruCache::new(std::num::NonZeroUsize::new(crate::events::REGISTRY_CACHE).expect("nonzero"));
        let writer = Writer { days, main: None, open: Vec::new(), events_day: None, mailings, registered };
        let thread = std::thread::Builder::new().name("linktrack-sqlite-writer".into()).spawn(move || writer.run(rx))?;
        Ok(WriterHandle { tx: Some(tx), thread: Some(thread) })
    }

    /// Queue the command built by `make` and wait for its result. Callers bound this with their deadline.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(make(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("sqlite writer thread panicked");
        }
    }
}

/// An idempotency row: the body it was minted for and the tokens minted then.
struct StoredIdem {
    body_hash: Vec<u8>,
    tokens: String,
}

struct Writer {
    days: Arc<Days>,
    /// The main file (settings), opened on first use.
    main: Option<Connection>,
    /// Open day files, least recently used first.
    open: Vec<(Day, Connection)>,
    /// The newest day event rows were written to; found on the first write.
    events_day: Option<Day>,
    /// (tenant, mailing hash) of mailings recorded in the main file.
    mailings: lru::LruCache<(u16, [u8; 16]), ()>,
    /// Totals rows of links recorded in the main file ([`events::registry_key`]).
    registered: lru::LruCache<u64, ()>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut queued = Vec::new();
        // `None` only once every sender is gone and the queue is empty: everything queued is applied first.
        while let Some(first) = rx.blocking_recv() {
            queued.push(first);
            while queued.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => queued.push(c),
                    Err(_) => break,
                }
            }
            self.apply(queued.drain(..));
        }
        tracing::debug!("sqlite writer stopped");
    }

    /// Apply commands in arrival order; consecutive mints form one group commit.
    fn apply(&mut self, commands: impl Iterator<Item = Command>) {
        let mut mints = Vec::new();
        for command in commands {
            match command {
                Command::Mint(m) => mints.push(m),
                Command::Admin(admin) => {
                    self.mint_groups(std::mem::take(&mut mints));
                    self.admin(admin);
                }
            }
        }
        self.mint_groups(mints);
    }

    fn admin(&mut self, admin: Admin) {
        match admin {
            Admin::Setting { reply, deadline, .. } if Instant::now() >= deadline => drop(reply.send(Err(expired()))),
            Admin::Setting { name, generated, reply, .. } => drop(reply.send(self.setting(&name, &generated))),
            Admin::ReadSetting { name, reply } => drop(reply.send(self.main_conn(false).and_then(|c| read_setting(c, &name)))),
            Admin::SwapSetting { name, expected, new, reply } => {
                drop(reply.send(self.swap_setting(&name, expected.as_deref(), new.as_deref())));
            }
            Admin::Migrate { reply } => drop(reply.send(self.migrate())),
            Admin::Maintain { policy, reply } => drop(reply.send(self.maintain(policy))),
            Admin::WriteEvents { batch, today, reply } => drop(reply.send(self.write_events(&batch, today))),
            Admin::ApplyRollup { apply, reply } => drop(reply.send(self.apply_rollup(&apply))),
            Admin::RollupState { reply } => drop(reply.send(self.main_conn(false).and_then(|c| events::rollup_state(c)))),
            Admin::ReserveIds { n, reply } => drop(reply.send(self.reserve_ids(n))),
            Admin::Readiness { today, reply } => drop(reply.send(self.readiness(today))),
            Admin::MailingStats { tenant, mailing_id, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| events::mailing_stats(c, tenant, &mailing_id))));
            }
            Admin::MailingSeries { tenant, mailing_id, from, to, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| events::mailing_series(c, tenant, &mailing_id, from, to))));
            }
            Admin::Tenant { name, create, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| tenants::tenant(c, &name, create))));
            }
            Admin::InsertApiKey { key, reply } => drop(reply.send(self.main_conn(false).and_then(|c| tenants::insert_api_key(c, &key)))),
            Admin::ApiKeys { reply } => drop(reply.send(self.main_conn(false).and_then(|c| tenants::api_keys(c)))),
            Admin::RevokeApiKey { id, now, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| tenants::revoke_api_key(c, id, now))));
            }
            Admin::EraseRecipient { tenant, recipient, reply } => drop(reply.send(self.erase_recipient(tenant, &recipient))),
            Admin::Webhook(call) => self.webhook(call),
        }
    }

    fn mint_groups(&mut self, mints: Vec<PendingMint>) {
        let mut by_day: BTreeMap<Day, Vec<PendingMint>> = BTreeMap::new();
        let now = Instant::now();
        for m in mints {
            // The caller has given up (or is about to): don't store what it will report as failed.
            if now >= m.deadline || m.reply.is_closed() {
                let _ = m.reply.send(Err(expired()));
                continue;
            }
            by_day.entry(m.batch.day).or_default().push(m);
        }
        for (day, group) in by_day {
            match self.mint_group(day, &group) {
                Ok(results) => {
                    for (m, r) in group.into_iter().zip(results) {
                        let _ = m.reply.send(r);
                    }
                }
                // The group transaction failed as a whole: nothing of it is stored.
                Err(e) => {
                    for m in group {
                        let _ = m.reply.send(Err(copy_error(&e)));
                    }
                }
            }
        }
    }

    /// One transaction on `day`'s file, one savepoint per mint.
    fn mint_group(&mut self, day: Day, group: &[PendingMint]) -> Result<Vec<Result<MintOutcome>>> {
        if self.days.get(day).is_none() {
            return Err(Error::NoPartition(day));
        }
        self.note_mailings(group)?;
        // Keys are honoured for the day before too, and for the day after: a
        // mint dated tomorrow that this (serial) writer applied first, either
        // side of midnight, holds the key. Those files are not written by this
        // group, so their committed rows are read first, from the pool.
        let mut earlier = Vec::with_capacity(group.len());
        for m in group {
            let Some(idem) = &m.batch.idempotency else {
                earlier.push(None);
                continue;
            };
            let mut found = self.days.read(day.plus(1), |c| find_idem(c, &idem.key_hash))?.flatten();
            if found.is_none() && day.0 > 0 {
                found = self.days.read(day.minus(1), |c| find_idem(c, &idem.key_hash))?.flatten();
            }
            earlier.push(found);
        }
        let conn = self.day_conn(day)?;
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        let mut results = Vec::with_capacity(group.len());
        for (m, earlier) in group.iter().zip(earlier) {
            let sp = tx.savepoint().map_err(db_err)?;
            let r = mint_one(&sp, &m.batch, earlier);
            if r.is_ok() {
                sp.commit().map_err(db_err)?;
            } // else: dropping the savepoint rolls this mint back, alone.
            results.push(r);
        }
        tx.commit().map_err(db_err)?;
        Ok(results)
    }

    /// Record the mailings of `group` this writer has not seen yet in the
    /// main file, with a totals row of zeros for each of their links not
    /// recorded yet (so stats list links nobody clicked), before their
    /// letters: a mint that then fails leaves a mailing with no letters
    /// (zeros in its stats), never letters of an unrecorded mailing.
    fn note_mailings(&mut self, group: &[PendingMint]) -> Result<()> {
        let new: Vec<(TenantId, &str)> = group
            .iter()
            .map(|m| (m.batch.letter.tenant, m.batch.letter.mailing_id.as_str()))
            .filter(|(t, id)| !self.mailings.contains(&(t.0, hash16(&[id.as_bytes()]))))
            .collect();
        let mut links: Vec<StatKey> = group
            .iter()
            .flat_map(|m| StatKey::of_mint(&m.batch))
            .filter(|k| !self.registered.contains(&registry_fingerprint(&events::registry_key(k))))
            .collect();
        if new.is_empty() && links.is_empty() {
            return Ok(());
        }
        links.sort_by_key(events::registry_key);
        links.dedup();
        let main = self.main_conn(false)?;
        let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        for (tenant, id) in &new {
            tenants::note_mailing(&tx, *tenant, id)?;
        }
        events::register_links(&tx, &links)?;
        tx.commit().map_err(db_err)?;
        for (tenant, id) in new {
            self.mailings.put((tenant.0, hash16(&[id.as_bytes()])), ());
        }
        for k in &links {
            self.registered.put(registry_fingerprint(&events::registry_key(k)), ());
        }
        Ok(())
    }

    fn webhook(&mut self, call: WebhookCall) {
        match call {
            WebhookCall::Create { webhook, reply } => drop(reply.send(self.main_conn(false).and_then(|c| webhooks::create(c, &webhook)))),
            WebhookCall::List { tenant, reply } => drop(reply.send(self.main_conn(false).and_then(|c| webhooks::list(c, tenant)))),
            WebhookCall::Delete { tenant, id, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| webhooks::delete(c, tenant, id))));
            }
            WebhookCall::Change { tenant, id, change, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| webhooks::change(c, tenant, id, &change))));
            }
            WebhookCall::Lease { id, owner, now_ms, until_ms, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| webhooks::lease(c, id, owner, now_ms, until_ms))));
            }
            WebhookCall::Progress { id, owner, progress, reply } => {
                drop(reply.send(self.main_conn(false).and_then(|c| webhooks::progress(c, id, owner, &progress))));
            }
        }
    }

    /// Erase a recipient from the letters of every day file, one transaction per file.
    fn erase_recipient(&mut self, tenant: TenantId, recipient: &str) -> Result<u64> {
        let (existing, _) = self.days.layout.scan()?;
        let mut erased = 0;
        for day in existing {
            if self.days.get(day).is_none() {
                continue;
            }
            erased += tenants::erase_in_day(self.day_conn(day)?, tenant, recipient)?;
        }
        Ok(erased)
    }

    /// The writable connection of `day`'s file, opening it (and closing the least recently used) as needed.
    fn day_conn(&mut self, day: Day) -> Result<&mut Connection> {
        if let Some(i) = self.open.iter().position(|(d, _)| *d == day) {
            let entry = self.open.remove(i);
            self.open.push(entry);
        } else {
            let conn = days::open_day_writer(&self.days.layout.day_path(day), self.days.busy)?;
            if self.open.len() >= OPEN_DAYS {
                self.open.remove(0);
            }
            self.open.push((day, conn));
        }
        Ok(&mut self.open.last_mut().expect("just pushed").1)
    }

    fn main_conn(&mut self, create: bool) -> Result<&mut Connection> {
        if self.main.is_none() {
            let path = &self.days.layout.main;
            if !create && !path.exists() {
                return Err(Error::Schema(format!("{} does not exist; run `linktrack migrate` first", path.display())));
            }
            if let Some(dir) = path.parent() {
                private_fs::create_dir_all(dir).map_err(|e| path_err("create the directory", dir, &e))?;
            }
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if create {
                private_fs::touch(path).map_err(|e| path_err("create the database", path, &e))?;
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            let conn = Connection::open_with_flags(path, flags).map_err(db_err)?;
            days::configure_writable(&conn, self.days.busy)?;
            self.main = Some(conn);
        }
        Ok(self.main.as_mut().expect("just opened"))
    }

    /// Pending main-file migrations and missing day files for today and tomorrow.
    fn readiness(&mut self, today: Day) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let have: Option<u32> =
            self.main_conn(false)?.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| r.get(0)).map_err(db_err)?;
        let (have, want) = (have.unwrap_or(0), MAIN_MIGRATIONS.last().map_or(0, |m| m.0));
        if have < want {
            problems.push(format!("migrations pending: the schema is at {have}, this build needs {want}; run `linktrack migrate`"));
        }
        for day in [today, today.plus(1)] {
            if self.days.get(day).is_none() {
                problems.push(format!("no day file for {day} yet; partition maintenance is behind"));
            }
        }
        Ok(problems)
    }

    /// The next `n` link ids from the main file's sequence, as the first.
    fn reserve_ids(&mut self, n: u64) -> Result<u64> {
        let conn = self.main_conn(false)?;
        let step = i64::try_from(n).map_err(|_| Error::Config(format!("cannot reserve {n} ids")))?;
        let next: i64 = conn
            .prepare_cached("UPDATE sequences SET next_id = next_id + ?1 WHERE name = 'links' RETURNING next_id")
            .and_then(|mut s| s.query_row([step], |r| r.get(0)).optional())
            .map_err(db_err)?
            .ok_or_else(|| Error::Schema("sequences has no 'links' row; run `linktrack migrate`".into()))?;
        u64::try_from(next - step).map_err(|_| Error::Database(format!("bad id range ending at {next}")))
    }

    /// Compare and swap one setting in one transaction (see `Store::swap_setting`).
    fn swap_setting(&mut self, name: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        let conn = self.main_conn(false)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        if read_setting(&tx, name)?.as_deref() != expected {
            return Ok(false);
        }
        let changed = match new {
            Some(v) => tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2",
                params![name, v],
            ),
            None => tx.execute("DELETE FROM settings WHERE name = ?1", [name]),
        };
        changed.map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(true)
    }

    fn setting(&mut self, name: &str, generated: &[u8]) -> Result<Vec<u8>> {
        let conn = self.main_conn(false)?;
        conn.prepare_cached("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![name, generated]))
            .map_err(db_err)?;
        let value: Option<Vec<u8>> = conn
            .prepare_cached("SELECT value FROM settings WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(db_err)?;
        value.ok_or_else(|| Error::Database(format!("setting {name} vanished")))
    }

    fn migrate(&mut self) -> Result<Vec<String>> {
        let conn = self.main_conn(true)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL DEFAULT (unixepoch())) STRICT",
        )
        .map_err(db_err)?;
        let done: Vec<u32> = tx
            .prepare("SELECT version FROM schema_migrations")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db_err)?;
        let mut applied = Vec::new();
        for (version, name, sql) in MAIN_MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| Error::Schema(format!("migration {name}: {e}")))?;
            if *name == "0006_main" {
                events::add_seen_human(&tx)?;
            }
            tx.execute("INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)", params![version, name]).map_err(db_err)?;
            tracing::info!(migration = name, "applied");
            applied.push((*name).to_owned());
        }
        tx.commit().map_err(db_err)?;
        // Bring every existing day file to the current day schema (opening it for writing upgrades it).
        let (existing, _) = self.days.layout.scan()?;
        let backfill = applied.iter().any(|name| name == "0004_main");
        let mut mailings = Vec::new();
        for day in existing {
            let conn = self.day_conn(day)?;
            if backfill {
                mailings.extend(tenants::day_mailings(conn)?);
            }
        }
        // Migration 0004 registers the mailings of letters stored before it.
        if !mailings.is_empty() {
            let main = self.main_conn(false)?;
            let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
            for (tenant, id) in &mailings {
                tenants::note_mailing(&tx, TenantId(*tenant), id)?;
            }
            tx.commit().map_err(db_err)?;
        }
        Ok(applied)
    }

    /// Store a batch of events in the file of max(`today`, the newest day
    /// written so far) unless its id was stored since the day the batch was
    /// formed. Days never go backwards (a clock stepped back over midnight),
    /// so a reader walking (day, id) never passes a row it has not returned.
    fn write_events(&mut self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        let newest = match self.events_day {
            Some(d) => d,
            None => self.newest_event_day(today)?,
        };
        let today = today.max(newest);
        let outcome = self.write_events_on(batch, today)?;
        self.events_day = Some(today);
        Ok(outcome)
    }

    /// The newest day file after `today` that holds events, else `today`.
    fn newest_event_day(&self, today: Day) -> Result<Day> {
        let (days, _) = self.days.layout.scan()?;
        for day in days.into_iter().rev().take_while(|d| *d > today) {
            if self.days.read(day, events::has_events)?.unwrap_or(false) {
                return Ok(day);
            }
        }
        Ok(today)
    }

    fn write_events_on(&mut self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        if self.days.get(today).is_none() {
            return Err(Error::NoPartition(today));
        }
        // Bounded look-back: a batch is never spooled for longer than a year.
        let from = batch.formed.max(today.minus(366)).min(today);
        for d in from.0..today.0 {
            if self.days.read(Day(d), |c| events::batch_seen(c, &batch.id))?.unwrap_or(false) {
                return Ok(WriteOutcome::AlreadyStored);
            }
        }
        let conn = self.day_conn(today)?;
        if events::batch_seen(conn, &batch.id)? {
            return Ok(WriteOutcome::AlreadyStored);
        }
        events::write_events(conn, batch)?;
        Ok(WriteOutcome::Stored)
    }

    /// Re-labels into the day files, then totals and watermark into the main file.
    fn apply_rollup(&mut self, apply: &RollupApply) -> Result<bool> {
        if events::rollup_state(self.main_conn(false)?)?.watermark != apply.from {
            return Ok(false);
        }
        let mut by_day: BTreeMap<Day, Vec<&Relabel>> = BTreeMap::new();
        for r in &apply.relabels {
            by_day.entry(r.event.day).or_default().push(r);
        }
        for (day, relabels) in by_day {
            if self.days.get(day).is_some() {
                events::relabel(self.day_conn(day)?, &relabels)?;
            }
        }
        events::apply_main(self.main_conn(false)?, apply)
    }

    fn maintain(&mut self, policy: MaintenancePolicy) -> Result<MaintenanceReport> {
        let layout = self.days.layout.clone();
        private_fs::create_dir_all(&layout.days).map_err(|e| path_err("create the day directory", &layout.days, &e))?;
        let Some(_lock) = MaintenanceLock::try_acquire(&layout.lock)? else {
            return Ok(MaintenanceReport::default());
        };
        let (existing, stale) = layout.scan()?;
        let plan = plan::plan(&existing, &policy);
        let mut report =
            MaintenanceReport { acquired: true, created: plan.create.clone(), dropped: plan.drop.clone(), partitions: existing.clone() };
        if policy.dry_run {
            return Ok(report);
        }
        for tmp in stale {
            days::remove_db_files(&tmp)?;
        }
        for day in &plan.create {
            days::create_day_file(&layout.day_path(*day), self.days.busy)?;
        }
        for day in &plan.drop {
            // Stop readers, close our own connection, then delete: the space is reclaimed at once.
            self.days.retire(*day);
            self.open.retain(|(d, _)| d != day);
            days::remove_db_files(&layout.day_path(*day))?;
            self.days.forget(*day);
        }
        days::sync_dir(&layout.days)?;
        if self.days.layout.main.exists() {
            events::drop_seen_before(self.main_conn(false)?, oldest_kept(policy.today, policy.retention))?;
        }
        report.partitions = existing.into_iter().filter(|d| !plan.drop.contains(d)).chain(plan.create.iter().copied()).collect();
        report.partitions.sort_unstable();
        Ok(report)
    }
}

/// Store one mint inside the caller's savepoint, or replay its idempotency key.
fn mint_one(c: &Connection, batch: &MintBatch, earlier: Option<StoredIdem>) -> Result<MintOutcome> {
    if let Some(idem) = &batch.idempotency {
        // Today's row wins over the day before's, as in MySQL's `ORDER BY day DESC`.
        if let Some(stored) = find_idem(c, &idem.key_hash)?.or(earlier) {
            if stored.body_hash != idem.body_hash {
                return Err(Error::IdempotencyMismatch);
            }
            return Ok(MintOutcome::Replayed(stored.tokens.split('\n').map(str::to_owned).collect()));
        }
    }
    let mut url_ids: HashMap<[u8; 16], i64> = HashMap::new();
    let mut link_urls = Vec::with_capacity(batch.links.len());
    {
        let mut find = c.prepare_cached("SELECT id FROM urls WHERE hash = ?1").map_err(db_err)?;
        let mut add = c.prepare_cached("INSERT INTO urls (hash, url) VALUES (?1, ?2)").map_err(db_err)?;
        for link in &batch.links {
            let Some(url) = link.url.as_deref() else {
                link_urls.push(0);
                continue;
            };
            let h = url_hash(url);
            if let Some(id) = url_ids.get(&h) {
                link_urls.push(*id);
                continue;
            }
            let id = if let Some(id) = find.query_row([&h[..]], |r| r.get(0)).optional().map_err(db_err)? {
                id
            } else {
                add.execute(params![&h[..], url]).map_err(db_err)?;
                c.last_insert_rowid()
            };
            url_ids.insert(h, id);
            link_urls.push(id);
        }
    }
    let l = &batch.letter;
    c.prepare_cached("INSERT INTO letters (minted_at, click_links, mailing_id, recipient, meta, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .and_then(|mut s| s.execute(params![l.minted_at, l.click_links, l.mailing_id, l.recipient, l.meta, l.tenant.0]))
        .map_err(db_err)?;
    let letter_id = c.last_insert_rowid();
    let ids = link_urls
        .iter()
        .map(|&url_id| Some(LinkIds { letter_id: u64::try_from(letter_id).ok()?, url_id: u64::try_from(url_id).ok()? }))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Database("negative row id".into()))?;
    match batch.version {
        Version::V1 => {
            let mut insert =
                c.prepare_cached("INSERT INTO links (rnd, kind, url_id, letter_id) VALUES (?1, ?2, ?3, ?4)").map_err(db_err)?;
            for (link, url_id) in batch.links.iter().zip(&link_urls) {
                insert.execute(params![&link.random.0[..], link.kind as u8, url_id, letter_id]).map_err(db_err)?;
            }
        }
        Version::V2 => {
            let mut insert = c
                .prepare_cached(
                    "INSERT INTO links_v2 (id, secret, kind, url_id, letter_id, pos, spell) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db_err)?;
            for (link, url_id) in batch.links.iter().zip(&link_urls) {
                let sealed = Sealed::from_block(&link.random);
                let id = i64::try_from(sealed.id).map_err(|_| Error::Database(format!("link id {} out of range", sealed.id)))?;
                let spell = link.token.spelling().pack();
                insert
                    .execute(params![id, &sealed.secret[..], link.kind as u8, url_id, letter_id, link.position, spell])
                    .map_err(db_err)?;
            }
        }
    }
    if let Some(idem) = &batch.idempotency {
        let tokens: Vec<&str> = batch.links.iter().map(|l| l.token.as_str()).collect();
        c.prepare_cached("INSERT INTO idempotency (key_hash, body_hash, tokens) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![&idem.key_hash[..], &idem.body_hash[..], tokens.join("\n")]))
            .map_err(db_err)?;
    }
    Ok(MintOutcome::Stored(ids))
}

fn find_idem(c: &Connection, key_hash: &[u8; 16]) -> Result<Option<StoredIdem>> {
    c.prepare_cached("SELECT body_hash, tokens FROM idempotency WHERE key_hash = ?1")
        .and_then(|mut s| s.query_row([&key_hash[..]], |r| Ok(StoredIdem { body_hash: r.get(0)?, tokens: r.get(1)? })).optional())
        .map_err(db_err)
}

/// A file-system failure that names the path and what was being done.
fn path_err(doing: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Config(format!("cannot {doing} {}: {e}", path.display()))
}

fn expired() -> Error {
    Error::Unavailable("deadline passed before the write started".into())
}

/// The same error again, for each mint of a failed group (`Error` is not `Clone`).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::NoPartition(day) => Error::NoPartition(*day),
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Schema(m) => Error::Schema(m.clone()),
        other => Error::Database(other.to_string()),
    }
}

/// The cross-process maintenance lock: an exclusive SQLite transaction on
/// `<main>.lock`, i.e. an advisory `fcntl` lock that SQLite also keeps
/// consistent between connections inside one process. Released on drop, or
/// by the OS if the process dies.
struct MaintenanceLock(Connection);

impl MaintenanceLock {
    /// `None` when another store (in this or another process) holds it.
    fn try_acquire(path: &Path) -> Result<Option<MaintenanceLock>> {
        private_fs::touch(path)?;
        let conn = Connection::open(path).map_err(db_err)?;
        // No waiting: a held lock means another replica is maintaining.
        conn.busy_timeout(Duration::ZERO).map_err(db_err)?;
        match conn.execute_batch("BEGIN EXCLUSIVE") {
            Ok(()) => Ok(Some(MaintenanceLock(conn))),
            Err(e) if is_busy(&e) => Ok(None),
            Err(e) => Err(db_err(e)),
        }
    }
}

impl Drop for MaintenanceLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// The setting `name`, if there is one.
fn read_setting(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db_err)
}

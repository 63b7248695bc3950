//! Read replicas: resolves, stats and exports may read from MariaDB (or
//! MySQL) replicas of the primary; mints, events, the rollup, webhooks,
//! settings and maintenance never do (`docs/scaling.md`, "Read replicas").
//!
//! **Routing.** A read that may go to a replica runs inside
//! [`MysqlStore::on_replica`], which picks a serving replica round-robin and
//! runs the read with the task-local [`READ_FROM`] set, so the read's
//! [`MysqlStore::read_conn`] takes a connection from that replica's pool.
//! Outside such a scope `read_conn` is the primary: a read that nobody
//! routed (the rollup's `read_events`, say) can never reach a replica. A
//! read that fails on a replica marks it down and runs again on the primary.
//!
//! **Lag never breaks a fresh link.** A resolve that misses on a replica for
//! a token of today or yesterday (by this host's clock; any later day too)
//! is asked again on the primary before it is answered "not found", at most
//! `primary_retries_max` at once (the others wait, within the call's
//! deadline). So a `None` from [`MysqlStore::resolve_routed`] is always the
//! primary's answer, or a day old enough (before yesterday) that a replica
//! within the lag limit (at most an hour) has every link of it: the negative
//! cache above stays correct.
//!
//! **Exports never skip a late commit.** Event ids commit in cursor order on
//! the primary (the `event_writer` lock), and a replica applies the
//! primary's transactions in the primary's commit order (MariaDB: always,
//! serial or parallel, within one GTID domain; MySQL: with
//! `replica_preserve_commit_order`, the default since 8.0.27), so a
//! replica's events are always a prefix of the primary's in id order. A
//! page that comes back full from a replica is therefore the primary's page
//! exactly; a short page may lack the tail the replica has not applied yet,
//! so the rest of the page is read from the primary after the page's last
//! cursor ([`MysqlStore::export_routed`]).
//!
//! **Lag** is measured by replication position, with no privilege and no
//! heartbeat table: each readiness check samples the primary's GTID
//! position, then reads each replica's applied position. A replica's lag is
//! at most "now minus the time of the newest primary sample it has applied"
//! (an upper bound, to the resolution of the check interval). A replica that
//! applied no sample taken since start, or none within the kept history, is
//! treated as too far behind. MariaDB reads `@@gtid_binlog_pos` on the
//! primary and `@@gtid_slave_pos` on the replica; MySQL `@@gtid_executed` on
//! both (the one dialect branch here, [`Dialect::position_sql`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Pool};
use tokio::sync::Semaphore;

use super::{Dialect, MysqlStore, db_err};
use crate::day::{Clock, Day};
use crate::events::{EventQuery, EventRow};
use crate::link::Resolved;
use crate::store::{ReadRouting, ReplicaState, ReplicaStatus, StoreConfig};
use crate::token::{Random, Version};
use crate::{Error, Result};

tokio::task_local! {
    /// The replica (index into [`Replicas::list`]) the reads of the current scope go to.
    static READ_FROM: usize;
}

/// The longest lag limit accepted: a replica in rotation must hold every link
/// minted before yesterday, the days a resolve does not retry on the primary.
pub const MAX_LAG_LIMIT: Duration = Duration::from_secs(3600);

/// How long one replica's position check may take before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Primary positions kept at most (one per readiness check).
const MAX_SAMPLES: usize = 4096;

/// Read replicas of `--database-url`, as `serve` and `export` take them.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// `mysql://user:pass@host:port/db` of each replica (secret: `Debug` shows host and port only).
    pub urls: Vec<String>,
    /// A replica further behind than this gets no reads.
    pub max_lag: Duration,
    /// Resolves retried on the primary at once after a replica missed; more wait.
    pub primary_retries_max: usize,
}

impl fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self.urls.iter().map(|u| host_port(u)).collect();
        f.debug_struct("ReplicaConfig")
            .field("urls", &hosts)
            .field("max_lag", &self.max_lag)
            .field("primary_retries_max", &self.primary_retries_max)
            .finish()
    }
}

/// `host:port` of a URL, without user or password.
fn host_port(url: &str) -> String {
    Opts::from_url(url).map_or_else(|_| "(bad url)".to_owned(), |o| format!("{}:{}", o.ip_or_hostname(), o.tcp_port()))
}

/// The replicas, their states and the routing counters.
pub(super) struct Replicas {
    list: Vec<Replica>,
    max_lag: Duration,
    dialect: Dialect,
    /// Round-robin start.
    next: AtomicUsize,
    retry_permits: Semaphore,
    /// (when, the primary's position then), oldest first. A std mutex: held
    /// to push, trim or copy, never across `.await`.
    samples: Mutex<VecDeque<(Instant, Position)>>,
    retries_found: AtomicU64,
    retries_missing: AtomicU64,
    fallbacks: AtomicU64,
    topups: AtomicU64,
}

impl fmt::Debug for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicas").field("replicas", &self.list.iter().map(|r| &r.name).collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

struct Replica {
    name: String,
    pool: Pool,
    /// A std mutex: held to read or replace the health, never across `.await`.
    health: Mutex<Health>,
    reads: AtomicU64,
}

#[derive(Debug, Clone)]
struct Health {
    state: ReplicaState,
    lag: Option<Duration>,
    reason: Option<String>,
}

impl Replicas {
    pub(super) fn new(cfg: &ReplicaConfig, store_cfg: &StoreConfig, dialect: Dialect) -> Result<Replicas> {
        let mut list = Vec::with_capacity(cfg.urls.len());
        for url in &cfg.urls {
            let admin =
                super::admin_opts(url, store_cfg).map_err(|e| Error::Config(format!("--read-database-url {}: {e}", host_port(url))))?;
            list.push(Replica {
                name: host_port(url),
                pool: Pool::new(super::pool_opts(&admin, dialect, store_cfg, true)?),
                health: Mutex::new(Health { state: ReplicaState::Unchecked, lag: None, reason: None }),
                reads: AtomicU64::new(0),
            });
        }
        Ok(Replicas {
            list,
            max_lag: cfg.max_lag.min(MAX_LAG_LIMIT),
            dialect,
            next: AtomicUsize::new(0),
            retry_permits: Semaphore::new(cfg.primary_retries_max.max(1)),
            samples: Mutex::new(VecDeque::new()),
            retries_found: AtomicU64::new(0),
            retries_missing: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            topups: AtomicU64::new(0),
        })
    }

    /// A serving replica, round-robin; `None` when none serves.
    fn pick(&self) -> Option<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|i| self.list[*i].health.lock().expect("replica health poisoned").state == ReplicaState::Serving)
    }

    fn mark_down(&self, i: usize, e: &Error) {
        let r = &self.list[i];
        crate::log_limited!(warn, replica = %r.name, error = %e, "a read on a replica failed; its reads go to the primary until it checks out again");
        *r.health.lock().expect("replica health poisoned") =
            Health { state: ReplicaState::Down, lag: None, reason: Some(format!("a read failed: {e}")) };
    }

    /// Sample the primary's position (through `primary`), then check every
    /// replica's, and set each one's state.
    async fn check(&self, primary: &mut Conn) -> Result<()> {
        let text: Option<String> = primary.query_first(self.dialect.position_sql(true)).await.map_err(db_err)?;
        let now = Instant::now();
        let samples: Vec<(Instant, Position)> = {
            let mut s = self.samples.lock().expect("replica samples poisoned");
            s.push_back((now, Position::parse(self.dialect, text.as_deref().unwrap_or(""))));
            let keep = self.max_lag * 2 + Duration::from_secs(10);
            while s.len() > MAX_SAMPLES || s.front().is_some_and(|(t, _)| now.duration_since(*t) > keep) {
                s.pop_front();
            }
            s.iter().cloned().collect()
        };
        let probes = self.list.iter().map(|r| async {
            let read = async {
                let mut conn = r.pool.get_conn().await.map_err(db_err)?;
                conn.query_first::<String, _>(self.dialect.position_sql(false)).await.map_err(db_err)
            };
            match tokio::time::timeout(PROBE_TIMEOUT, read).await {
                Ok(Ok(pos)) => Ok(Position::parse(self.dialect, pos.as_deref().unwrap_or(""))),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
            }
        });
        let results = futures_util::future::join_all(probes).await;
        for (r, result) in self.list.iter().zip(results) {
            let health = match result {
                Err(why) => Health { state: ReplicaState::Down, lag: None, reason: Some(why) },
                Ok(pos) => match lag(&samples, &pos, Instant::now()) {
                    Some(lag) if lag <= self.max_lag => Health { state: ReplicaState::Serving, lag: Some(lag), reason: None },
                    Some(lag) => Health {
                        state: ReplicaState::Lagging,
                        lag: Some(lag),
                        reason: Some(format!("up to {} s behind the primary (limit {} s)", lag.as_secs(), self.max_lag.as_secs())),
                    },
                    None => Health {
                        state: ReplicaState::Lagging,
                        lag: None,
                        reason: Some("has not applied any primary position seen in the kept history".into()),
                    },
                },
            };
            let mut held = r.health.lock().expect("replica health poisoned");
            if held.state != health.state {
                tracing::info!(replica = %r.name, from = held.state.label(), to = health.state.label(), reason = ?health.reason, "read replica state changed");
            }
            *held = health;
        }
        Ok(())
    }

    fn snapshot(&self) -> ReadRouting {
        let replicas = self
            .list
            .iter()
            .map(|r| {
                let h = r.health.lock().expect("replica health poisoned").clone();
                ReplicaStatus { name: r.name.clone(), state: h.state, lag: h.lag, reason: h.reason, reads: r.reads.load(Ordering::Relaxed) }
            })
            .collect();
        ReadRouting {
            replicas,
            primary_retries_found: self.retries_found.load(Ordering::Relaxed),
            primary_retries_missing: self.retries_missing.load(Ordering::Relaxed),
            primary_fallbacks: self.fallbacks.load(Ordering::Relaxed),
            export_topups: self.topups.load(Ordering::Relaxed),
        }
    }

    async fn close(self) {
        for r in self.list {
            let _ = r.pool.disconnect().await;
        }
    }
}

/// Upper bound of a replica's lag at `now`: `now` minus the time of the
/// newest sample its position contains. `None` when it contains none.
fn lag(samples: &[(Instant, Position)], replica: &Position, now: Instant) -> Option<Duration> {
    samples.iter().rev().find(|(_, p)| replica.contains(p)).map(|(t, _)| now.saturating_duration_since(*t))
}

/// Where a read ran.
pub(super) struct Routed<T> {
    pub(super) value: T,
    pub(super) on_replica: bool,
}

impl MysqlStore {
    /// Add read replicas: resolves, stats and exports may read there from
    /// now on. Each replica is checked once here; an unreachable one is
    /// reported (and gets no reads) but does not stop the start.
    pub async fn with_read_replicas(mut self, cfg: &ReplicaConfig, store_cfg: &StoreConfig) -> Result<MysqlStore> {
        if cfg.urls.is_empty() {
            return Ok(self);
        }
        if cfg.max_lag > MAX_LAG_LIMIT {
            return Err(Error::Config(format!(
                "the read replicas' lag limit is {} s; at most {} s is allowed, so a replica in rotation holds every link older than yesterday",
                cfg.max_lag.as_secs(),
                MAX_LAG_LIMIT.as_secs()
            )));
        }
        self.replicas = Some(Replicas::new(cfg, store_cfg, self.dialect)?);
        self.check_replicas().await?;
        for r in self.read_routing_snapshot().map(|r| r.replicas).unwrap_or_default() {
            tracing::info!(replica = %r.name, state = r.state.label(), reason = ?r.reason, "read replica");
        }
        Ok(self)
    }

    /// Check the replicas' positions against the primary's now (the
    /// readiness loop calls this every check). Fails only if the primary does.
    pub(super) async fn check_replicas(&self) -> Result<()> {
        let Some(replicas) = &self.replicas else { return Ok(()) };
        let mut conn = self.conn().await?;
        replicas.check(&mut conn).await
    }

    pub(super) fn read_routing_snapshot(&self) -> Option<ReadRouting> {
        self.replicas.as_ref().map(Replicas::snapshot)
    }

    pub(super) async fn close_replicas(replicas: Option<Replicas>) {
        if let Some(r) = replicas {
            r.close().await;
        }
    }

    /// A connection for a read: the replica of the current [`Self::on_replica`]
    /// scope, else the primary.
    pub(super) async fn read_conn(&self) -> Result<Conn> {
        let (Ok(i), Some(replicas)) = (READ_FROM.try_with(|i| *i), &self.replicas) else { return self.conn().await };
        let r = &replicas.list[i];
        let conn = tokio::time::timeout(self.acquire_timeout, r.pool.get_conn())
            .await
            .map_err(|_| Error::Unavailable(format!("timed out waiting for a connection to read replica {}", r.name)))?
            .map_err(db_err)?;
        r.reads.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// Run `read` on a serving replica; if none serves, or the read fails
    /// there (the replica is then marked down), run it on the primary.
    /// `read` takes its connection with [`Self::read_conn`].
    pub(super) async fn on_replica<T, F, Fut>(&self, read: F) -> Result<Routed<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(replicas) = &self.replicas else { return Ok(Routed { value: read().await?, on_replica: false }) };
        if let Some(i) = replicas.pick() {
            // Leave half the statement deadline for the primary if the replica hangs.
            let budget = self.acquire_timeout + self.statement_timeout / 2;
            let tried = match tokio::time::timeout(budget, READ_FROM.scope(i, read())).await {
                Ok(tried) => tried,
                Err(_) => Err(Error::Unavailable(format!("no answer within {} ms", budget.as_millis()))),
            };
            match tried {
                Ok(value) => return Ok(Routed { value, on_replica: true }),
                Err(e) => replicas.mark_down(i, &e),
            }
        }
        replicas.fallbacks.fetch_add(1, Ordering::Relaxed);
        Ok(Routed { value: read().await?, on_replica: false })
    }

    /// A resolve, on a replica when one serves. A miss there for a fresh
    /// token is asked again on the primary (see the module comment).
    pub(super) async fn resolve_routed(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        let routed = self.on_replica(|| self.resolve_here(day, version, random)).await?;
        if routed.value.is_some() || !routed.on_replica || !may_lag(day, Clock::System.today()) {
            return Ok(routed.value);
        }
        let Some(replicas) = &self.replicas else { return Ok(routed.value) };
        // Bounded: at most `primary_retries_max` at once; the caller's deadline bounds the wait.
        let _permit = replicas.retry_permits.acquire().await.map_err(|_| Error::Unavailable("primary retries closed".into()))?;
        let found = self.resolve_here(day, version, random).await?;
        let counter = if found.is_some() { &replicas.retries_found } else { &replicas.retries_missing };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// An export page, from a replica when one serves. A full page from a
    /// replica is the primary's page (its events are a prefix of the
    /// primary's in id order); a short one is completed from the primary.
    pub(super) async fn export_routed(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        let Routed { value: mut page, on_replica } = self.on_replica(|| self.read_events_inner(q)).await?;
        if !on_replica || page.len() >= q.limit {
            return Ok(page);
        }
        let after = page.last().map_or(q.after, |r| r.cursor);
        let rest = EventQuery { after, limit: q.limit - page.len(), mailing_id: q.mailing_id.clone() };
        page.extend(self.read_events_inner(&rest).await?);
        if let Some(r) = &self.replicas {
            r.topups.fetch_add(1, Ordering::Relaxed);
        }
        Ok(page)
    }
}

/// Whether a link of `day` may be minted recently enough that a replica
/// within the lag limit lacks it: today, yesterday, or a later day (a
/// minting host's clock ahead of ours).
fn may_lag(day: Day, today: Day) -> bool {
    day >= today.minus(1)
}

impl Dialect {
    /// The replication position: the primary's (`primary`) or a replica's applied one.
    /// MariaDB-specific on MariaDB (`gtid_binlog_pos`, `gtid_slave_pos`); MySQL uses `gtid_executed` on both.
    fn position_sql(self, primary: bool) -> &'static str {
        match (self, primary) {
            (Dialect::MariaDb, true) => "SELECT @@GLOBAL.gtid_binlog_pos",
            (Dialect::MariaDb, false) => "SELECT @@GLOBAL.gtid_slave_pos",
            (Dialect::MySql, _) => "SELECT @@GLOBAL.gtid_executed",
        }
    }
}

/// A replication position: per stream (a MariaDB GTID domain; a MySQL source
/// UUID with its tag) the transaction numbers it holds, as inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Position(BTreeMap<String, Vec<(u64, u64)>>);

impl Position {
    /// Parse MariaDB's `domain-server-seq,...` (holding 0..=seq of each domain,
    /// the highest seq per domain) or MySQL's `uuid[:tag]:a-b:c,...`.
    fn parse(dialect: Dialect, text: &str) -> Position {
        let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match dialect {
                Dialect::MariaDb => {
                    let mut parts = item.splitn(3, '-');
                    let (Some(domain), Some(_server), Some(seq)) = (parts.next(), parts.next(), parts.next()) else { continue };
                    let Ok(seq) = seq.parse::<u64>() else { continue };
                    let ranges = out.entry(domain.to_owned()).or_default();
                    let high = ranges.first().map_or(0, |r| r.1).max(seq);
                    *ranges = vec![(0, high)];
                }
                Dialect::MySql => {
                    let mut key = String::new();
                    for (k, part) in item.split(':').map(str::trim).enumerate() {
                        let range = match part.split_once('-') {
                            Some((a, b)) => a.parse::<u64>().ok().zip(b.parse::<u64>().ok()),
                            None => part.parse::<u64>().ok().map(|n| (n, n)),
                        };
                        match range {
                            Some(range) if k > 0 => out.entry(key.clone()).or_default().push(range),
                            // The UUID, then any tag: both name the stream.
                            _ if k == 0 => key = part.to_ascii_lowercase(),
                            _ => key = format!("{key}:{part}"),
                        }
                    }
                }
            }
        }
        Position(out)
    }

    /// Whether every transaction of `other` is in `self`. MySQL normalises
    /// GTID sets to disjoint, non-adjacent ranges, so a range of `other` is
    /// held if one range of `self` covers it.
    fn contains(&self, other: &Position) -> bool {
        other.0.iter().all(|(stream, ranges)| {
            let mine = self.0.get(stream).map_or(&[][..], Vec::as_slice);
            ranges.iter().all(|(a, b)| mine.iter().any(|(c, d)| c <= a && b <= d))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions_compare_per_domain() {
        let primary = Position::parse(Dialect::MariaDb, "0-1-57,1-2-8");
        assert!(Position::parse(Dialect::MariaDb, "0-1-57,1-2-9").contains(&primary));
        assert!(!Position::parse(Dialect::MariaDb, "0-1-56,1-2-9").contains(&primary));
        assert!(!Position::parse(Dialect::MariaDb, "0-1-60").contains(&primary), "domain 1 missing");
        assert!(Position::parse(Dialect::MariaDb, "").contains(&Position::parse(Dialect::MariaDb, "")));
        // Several servers in one domain (after a failover): the highest seq counts.
        assert!(Position::parse(Dialect::MariaDb, "0-2-100").contains(&Position::parse(Dialect::MariaDb, "0-1-90,0-2-100")));
    }

    #[test]
    fn mysql_gtid_sets_compare_by_ranges() {
        let a = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7-9,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3";
        let primary = Position::parse(Dialect::MySql, a);
        assert!(
            Position::parse(Dialect::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-4")
                .contains(&primary)
        );
        assert!(
            !Position::parse(Dialect::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-8,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-4")
                .contains(&primary)
        );
        // Tagged GTIDs (MySQL 8.3+) are their own stream.
        let tagged = Position::parse(Dialect::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:lt:1-2");
        assert!(!Position::parse(Dialect::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5").contains(&tagged));
        assert!(Position::parse(Dialect::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:lt:1-3").contains(&tagged));
    }

    #[test]
    fn lag_is_the_age_of_the_newest_sample_applied() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let samples: Vec<(Instant, Position)> =
            [(0, "0-1-10"), (2, "0-1-20"), (4, "0-1-30")].iter().map(|(s, p)| (at(*s), Position::parse(Dialect::MariaDb, p))).collect();
        let replica = |p| Position::parse(Dialect::MariaDb, p);
        assert_eq!(lag(&samples, &replica("0-1-30"), at(5)), Some(Duration::from_secs(1)));
        assert_eq!(lag(&samples, &replica("0-1-25"), at(5)), Some(Duration::from_secs(3)));
        assert_eq!(lag(&samples, &replica("0-1-9"), at(5)), None, "applied nothing seen: unknown, so too far behind");
    }

    #[test]
    fn fresh_days_are_retried_on_the_primary() {
        let today = Day(2000);
        assert!(may_lag(today, today) && may_lag(today.minus(1), today) && may_lag(today.plus(1), today));
        assert!(!may_lag(today.minus(2), today));
    }

    #[test]
    fn config_debug_shows_hosts_only() {
        let cfg = ReplicaConfig {
            urls: vec!["mysql://app:hunter2@10.0.0.2:3307/linktrack".into()],
            max_lag: Duration::from_secs(30),
            primary_retries_max: 16,
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("10.0.0.2:3307") && !shown.contains("hunter2"), "{shown}");
    }
}

//! Load-test tool, not part of the service: how linktrack behaves as its
//! tables grow, beside the seed's design, on one private MariaDB.
//!
//! Everything goes through linktrack's own `MysqlStore` (mint, resolve,
//! `write_events`, `read_events`, `maintain`) with a manual choice of day, so
//! past days are filled without any production flag that moves the clock.
//! Phases (`--phases`, in this order):
//!
//! - `links`: for each layout (`--layouts`, days of partitions: 30 and 365)
//!   a database `growth_<days>` whose partitions cover the last `days` days.
//!   It is filled to each size of `--sizes` (1 M, 10 M, 50 M links) in
//!   1000-link batches, day by day, with the buffer pool at `--fill-pool-mib`;
//!   every fill step prints its insert rate. At each size, for each pool of
//!   `--pools-mib` (resized online with `SET GLOBAL innodb_buffer_pool_size`):
//!   mint rate into today (1000-link batches, then 10-link letters with a
//!   pixel), cold resolves (`--resolves` through `Store::resolve`, uniform over
//!   every day, then 80 % from the last 3 days) with p50/p99 and
//!   `Innodb_buffer_pool_reads` / `Handler_read_*` per resolve, and bytes per
//!   link from `information_schema`. After the last size (and the events
//!   phase, for the layout it writes into), a maintenance pass (create
//!   tomorrow, drop the oldest day) runs while batches are minted.
//! - `events`: `--events` rows over the last `--event-days` days, written day
//!   by day through `Store::write_events` in batches of 5000 (the writer's
//!   default), one writer, hits on links of that layout with twelve real user
//!   agents. At each of `--event-points`, for each pool: a write window and
//!   export pages (`Store::read_events`, 1000 rows) from cursors in the
//!   oldest and the newest day. Stops writing after `--event-max-secs`.
//! - `seed`: the seed's original shape, one table with a random `VARCHAR(32)`
//!   UUID primary key, a JSON message and a date, filled by the same client
//!   (`mysql_async`, `--concurrency` tasks, 1000-row INSERTs) at the fill pool
//!   to `--seed-rows` or `--seed-max-secs`, whichever comes first, with point
//!   lookups by primary key at each size of `--sizes` reached.
//!
//! Output: a human line per measurement on stdout and, with `--out`, the
//! same as JSON lines for `loadtests/plot_growth.py`. `--smoke` shrinks every
//! size (100 k links over 2 and 5 days, 60 k events, 30 k seed rows) so the
//! tool runs in `scripts/test` and cannot rot; it fails (exit 1) when a
//! resolve misses, an export page comes back short or a count is off.
//!
//! ```sh
//! cargo build --release --example growth
//! target/release/examples/growth --mysql mysql://root@127.0.0.1:3600/ --out /tmp/growth.jsonl
//! target/release/examples/growth --mysql mysql://root@127.0.0.1:3600/ --smoke
//! ```
//!
//! `loadtests/growth.sh` starts the private MariaDB and runs it.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mysql_async::prelude::Queryable;
use rand::RngExt;
use serde_json::{Value, json};

use linktrack::day::{Clock, Day};
use linktrack::events::{Cursor, EventBatch, EventQuery, Hit, IpBytes, Method, Reason};
use linktrack::ids::IdAllocator;
use linktrack::link::{Letter, LinkIds, LinkKind, MintBatch, MintOutcome, NewLink};
use linktrack::store::mysql::MysqlStore;
use linktrack::store::{MaintenancePolicy, Store, StoreConfig};
use linktrack::token::{self, KeyRing, Random, Version};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Mailings the batches cycle through, each with 10 URLs.
const MAILINGS: u64 = 100;
/// Events per `write_events` call: the writer's default `--event-batch-max`.
const EVENT_BATCH: usize = 5000;
/// Rows per export page.
const PAGE: usize = 1000;
/// One link in this many is kept as a resolve and event target.
const SAMPLE_EVERY: usize = 50;

/// Twelve user agents of real browsers, mail clients and scanners.
const USER_AGENTS: [&str; 12] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; Microsoft Outlook 16.0.17928; ms-office; MSOffice 16)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

#[derive(Debug, Parser)]
#[command(about = "linktrack's tables as they grow, beside the seed's design, on one MariaDB")]
struct Args {
    /// Server URL with a user that may create databases and set globals, e.g. `mysql://root@127.0.0.1:3600/`.
    #[arg(long)]
    mysql: String,
    /// Small sizes everywhere, for `scripts/test`.
    #[arg(long)]
    smoke: bool,
    /// Phases to run, of `links`, `events`, `seed`.
    #[arg(long, value_delimiter = ',', default_value = "links,events,seed")]
    phases: Vec<String>,
    /// Total links at which each layout is measured.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 50_000_000])]
    sizes: Vec<u64>,
    /// Day partitions the links are spread over, one database each.
    #[arg(long, value_delimiter = ',', default_values_t = [30u16, 365])]
    layouts: Vec<u16>,
    /// Buffer pool sizes (MiB) every point is measured at.
    #[arg(long, value_delimiter = ',', default_values_t = [128u64, 1024])]
    pools_mib: Vec<u64>,
    /// Buffer pool (MiB) while filling.
    #[arg(long, default_value_t = 128)]
    fill_pool_mib: u64,
    /// Event rows to write.
    #[arg(long, default_value_t = 100_000_000)]
    events: u64,
    /// Days the events are spread over (written into the layout of that many days, or the first layout).
    #[arg(long, default_value_t = 30)]
    event_days: u16,
    /// Event rows at which the event figures are taken.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 100_000_000])]
    event_points: Vec<u64>,
    /// Stop writing events after this many seconds.
    #[arg(long, default_value_t = 2700.0)]
    event_max_secs: f64,
    /// Rows of the seed's table at most.
    #[arg(long, default_value_t = 10_000_000)]
    seed_rows: u64,
    /// Stop filling the seed's table after this many seconds.
    #[arg(long, default_value_t = 1800.0)]
    seed_max_secs: f64,
    /// Seconds of each mint window at a checkpoint.
    #[arg(long, default_value_t = 8.0)]
    window_secs: f64,
    /// Seconds of each mint window in the A/B rounds (short, so the small databases stay small).
    #[arg(long, default_value_t = 3.0)]
    ab_window_secs: f64,
    /// Resolves per cold-resolve measurement.
    #[arg(long, default_value_t = 20_000)]
    resolves: usize,
    /// Concurrent resolves.
    #[arg(long, default_value_t = 16)]
    resolve_concurrency: usize,
    /// Concurrent minting (and seed-inserting) tasks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// JSON lines of every measurement.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Token keys, as `--token-keys` of the service.
    #[arg(long, default_value = "1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030")]
    token_keys: String,
}

impl Args {
    fn apply_smoke(&mut self) {
        if !self.smoke {
            return;
        }
        self.sizes = vec![20_000, 100_000];
        self.layouts = vec![2, 5];
        self.pools_mib = vec![128, 160];
        self.events = 60_000;
        self.event_days = 2;
        self.event_points = vec![20_000, 60_000];
        self.seed_rows = 30_000;
        self.seed_max_secs = 120.0;
        self.window_secs = 0.5;
        self.ab_window_secs = 0.5;
        self.resolves = 400;
    }
}

/// Measurements: printed, and appended as JSON lines to `--out`.
#[derive(Debug)]
struct Report {
    out: Option<File>,
    started: Instant,
    /// The A/B round the measurements belong to, if any.
    round: Option<u32>,
}

impl Report {
    fn emit(&mut self, v: Value) -> BoxResult<()> {
        let mut v = v;
        v["t"] = json!((self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
        if let Some(r) = self.round {
            v["ab_round"] = json!(r);
        }
        println!("{v}");
        if let Some(f) = self.out.as_mut() {
            writeln!(f, "{v}")?;
            f.flush()?;
        }
        Ok(())
    }
}

/// `a / b` as a float.
#[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
fn per(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The `q` quantile of sorted milliseconds.
#[allow(clippy::cast_precision_loss, clippy::cast_sign_loss, reason = "indexes of small vectors")]
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    (sorted[i] * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A connection of the tool's own, for status counters and settings.
#[derive(Debug)]
struct Probe {
    conn: mysql_async::Conn,
}

const COUNTERS: [&str; 5] =
    ["Innodb_buffer_pool_reads", "Handler_read_key", "Handler_read_next", "Handler_read_rnd_next", "Com_stmt_execute"];

impl Probe {
    async fn status(&mut self) -> BoxResult<HashMap<String, u64>> {
        let names = COUNTERS.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",");
        let rows: Vec<(String, String)> = self.conn.query(format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")).await?;
        Ok(rows.into_iter().filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect())
    }

    /// Per-`n` deltas of the counters since `before`.
    async fn deltas(&mut self, before: &HashMap<String, u64>, n: u64) -> BoxResult<Value> {
        let after = self.status().await?;
        let mut v = json!({});
        for name in COUNTERS {
            let d = after.get(name).copied().unwrap_or(0).saturating_sub(before.get(name).copied().unwrap_or(0));
            v[name.to_lowercase()] = json!((per(d, n) * 10_000.0).round() / 10_000.0);
        }
        Ok(v)
    }

    /// Resize the buffer pool online and wait until InnoDB says it is done.
    async fn set_pool(&mut self, mib: u64) -> BoxResult<()> {
        let bytes = mib * 1024 * 1024;
        let now: u64 = self.conn.query_first("SELECT @@innodb_buffer_pool_size").await?.ok_or("no pool size")?;
        if now == bytes {
            return Ok(());
        }
        self.conn.query_drop(format!("SET GLOBAL innodb_buffer_pool_size = {bytes}")).await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let size: u64 = self.conn.query_first("SELECT @@innodb_buffer_pool_size").await?.ok_or("no pool size")?;
            let st: Option<(String, String)> = self.conn.query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'").await?;
            let st = st.map(|s| s.1).unwrap_or_default();
            let busy = ["resiz", "withdraw", "allocat"].iter().any(|w| st.to_lowercase().contains(w)) && !st.contains("Completed");
            if size == bytes && !busy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("buffer pool resize to {mib} MiB did not finish: {st}").into());
            }
        }
    }
}

/// Links kept as resolve and event targets, by day.
#[derive(Debug, Default)]
struct Samples {
    /// Each kept link's identity and the letter and URL ids its mint returned.
    by_day: Mutex<HashMap<Day, Vec<(Random, LinkIds)>>>,
}

/// A kept link: its day, identity and ids.
type Sample = (Day, Random, LinkIds);

impl Samples {
    fn add(&self, day: Day, rs: impl Iterator<Item = (Random, LinkIds)>) {
        self.by_day.lock().expect("samples").entry(day).or_default().extend(rs);
    }

    /// `n` targets: uniform over every day, or `recent` of them from the last 3 days.
    fn pick(&self, n: usize, recent: Option<f64>) -> Vec<Sample> {
        let map = self.by_day.lock().expect("samples");
        let mut days: Vec<Day> = map.keys().copied().collect();
        days.sort_unstable();
        let all: Vec<Sample> = days.iter().flat_map(|d| map[d].iter().map(move |(r, i)| (*d, *r, *i))).collect();
        let last3: Vec<Sample> = days.iter().rev().take(3).flat_map(|d| map[d].iter().map(move |(r, i)| (*d, *r, *i))).collect();
        let mut rng = rand::rng();
        (0..n)
            .map(|_| {
                let pool = match recent {
                    Some(p) if rng.random_bool(p) && !last3.is_empty() => &last3,
                    _ => &all,
                };
                pool[rng.random_range(0..pool.len())]
            })
            .collect()
    }
}

/// The two request shapes of a mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 1000 click links in one letter (a bulk caller).
    Batch,
    /// 10 click links and the open pixel, one recipient (a letter as sent).
    Letter,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Batch => "batch1000",
            Shape::Letter => "letter10",
        }
    }
}

/// One layout's store and what every minting task shares.
#[derive(Debug)]
struct Links {
    store: Arc<MysqlStore>,
    ids: IdAllocator<MysqlStore>,
    keys: KeyRing,
    samples: Samples,
    /// Links stored so far.
    count: AtomicU64,
    seq: AtomicU64,
    days: Vec<Day>,
    db: String,
}

impl Links {
    fn today(&self) -> Day {
        *self.days.last().expect("days")
    }

    /// Mint one request of `shape` into `day`; returns the links stored.
    async fn mint(&self, day: Day, shape: Shape) -> BoxResult<u64> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let (clicks, pixel) = match shape {
            Shape::Batch => (1000usize, false),
            Shape::Letter => (10, true),
        };
        let total = clicks + usize::from(pixel);
        let mut minted = Vec::with_capacity(total);
        token::generate_v2(&self.keys, day, self.ids.take(total as u64).await?, total, &mut minted);
        let mailing = n % MAILINGS;
        let urls: Vec<Arc<str>> = (0..10u64)
            .map(|u| Arc::from(format!("https://shop.example/item/{}?utm_source=mail&utm_campaign=m-{mailing}&pos={u}", u * 7 + 3)))
            .collect();
        let kept: Vec<Random> = minted.iter().step_by(SAMPLE_EVERY).map(|(_, r)| *r).collect();
        let links = minted
            .into_iter()
            .enumerate()
            .map(|(i, (token, random))| {
                if i < clicks {
                    NewLink {
                        kind: LinkKind::Click,
                        random,
                        token,
                        url: Some(urls[i % urls.len()].clone()),
                        position: linktrack::link::stored_position(i),
                    }
                } else {
                    NewLink { kind: LinkKind::Open, random, token, url: None, position: linktrack::link::NO_POSITION }
                }
            })
            .collect();
        let batch = MintBatch {
            day,
            version: Version::V2,
            letter: Letter {
                tenant: linktrack::tenant::TenantId::DEFAULT,
                mailing_id: format!("m-{mailing}"),
                recipient: format!("user{n}@example.com"),
                meta: None,
                minted_at: day.start_unix() + 3600,
                click_links: u32::try_from(clicks)?,
            },
            links,
            idempotency: None,
        };
        let MintOutcome::Stored(ids) = self.store.mint(&batch).await? else {
            return Err("a mint without an idempotency key was replayed".into());
        };
        self.samples.add(day, kept.into_iter().zip(ids.into_iter().step_by(SAMPLE_EVERY)));
        self.count.fetch_add(total as u64, Ordering::Relaxed);
        Ok(total as u64)
    }
}

/// Run `tasks` concurrent loops of `f` until `stop` says so; returns each call's latency.
async fn load<F, Fut>(tasks: usize, stop: Arc<dyn Fn(u64) -> bool + Send + Sync>, f: F) -> BoxResult<(u64, Vec<f64>)>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = BoxResult<u64>> + Send + 'static,
{
    let claimed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks.max(1))
        .map(|_| {
            let (f, stop, claimed) = (f.clone(), stop.clone(), claimed.clone());
            tokio::spawn(async move {
                let mut units = 0;
                let mut lat = Vec::new();
                loop {
                    let i = claimed.fetch_add(1, Ordering::Relaxed);
                    if stop(i) {
                        return Ok::<_, Box<dyn Error + Send + Sync>>((units, lat));
                    }
                    let t = Instant::now();
                    units += f(i).await?;
                    lat.push(ms(t.elapsed()));
                }
            })
        })
        .collect();
    let (mut units, mut lat) = (0, Vec::new());
    for h in handles {
        let (u, l) = h.await??;
        units += u;
        lat.extend(l);
    }
    lat.sort_by(f64::total_cmp);
    Ok((units, lat))
}

fn count(n: u64) -> Arc<dyn Fn(u64) -> bool + Send + Sync> {
    Arc::new(move |i| i >= n)
}

#[derive(Debug)]
struct Tool {
    args: Args,
    report: Report,
    probe: Probe,
    base: mysql_async::Opts,
    cfg: StoreConfig,
}

impl Tool {
    fn url(&self, db: &str) -> String {
        let o = &self.base;
        let user = o.user().unwrap_or("root");
        let pass = o.pass().map(|p| format!(":{p}")).unwrap_or_default();
        format!("mysql://{user}{pass}@{}:{}/{db}", o.ip_or_hostname(), o.tcp_port())
    }

    async fn fresh_db(&mut self, db: &str) -> BoxResult<()> {
        self.probe.conn.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await?;
        self.probe.conn.query_drop(format!("CREATE DATABASE {db}")).await?;
        Ok(())
    }

    /// A store for the last `days` days, partitions from the first of them through tomorrow.
    async fn layout(&mut self, days: u16, db: String) -> BoxResult<Arc<Links>> {
        self.fresh_db(&db).await?;
        let store = Arc::new(MysqlStore::connect(&self.url(&db), &self.cfg).await?);
        store.migrate().await?;
        let today = Clock::System.today();
        let first = today.minus(days - 1);
        store.maintain(MaintenancePolicy { today: first, ahead: days, retention: 2 * days, dry_run: false }).await?;
        Ok(Arc::new(Links {
            ids: IdAllocator::new(store.clone(), 10_000),
            store,
            keys: KeyRing::parse(&self.args.token_keys)?,
            samples: Samples::default(),
            count: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            days: (first.0..=today.0).map(Day).collect(),
            db,
        }))
    }

    /// Fill `links` to `to` links, day by day, reporting the insert rate every step.
    async fn fill(&mut self, links: &Arc<Links>, to: u64) -> BoxResult<()> {
        let from = links.count.load(Ordering::Relaxed);
        let batches = (to.saturating_sub(from)).div_ceil(1000);
        let ndays = links.days.len() as u64;
        let step = (to / 20).max(100_000);
        let (mut mark, mut since, mut reads) = (from, Instant::now(), self.probe.status().await?);
        let mut left = batches;
        for (nth, day) in links.days.clone().into_iter().enumerate() {
            // This day's share of the batches, spread evenly.
            let nth = nth as u64;
            let n = batches * (nth + 1) / ndays - batches * nth / ndays;
            if n == 0 {
                continue;
            }
            left -= n;
            let l = links.clone();
            load(self.args.concurrency, count(n), move |_| {
                let l = l.clone();
                async move { l.mint(day, Shape::Batch).await }
            })
            .await?;
            let now = links.count.load(Ordering::Relaxed);
            if now - mark >= step || left == 0 {
                let secs = since.elapsed().as_secs_f64();
                let d = self.probe.deltas(&reads, now - mark).await?;
                self.report.emit(json!({"kind": "fill", "db": links.db, "links": now, "rate": per(now - mark, 1) / secs,
                    "pool_mib": self.args.fill_pool_mib, "per_link": d}))?;
                (mark, since, reads) = (now, Instant::now(), self.probe.status().await?);
            }
        }
        Ok(())
    }

    /// Mint into today for `secs` seconds or until `size / 20` links (batches)
    /// or `size / 100` (letters), whichever comes first, so the windows add
    /// little to the size they measure.
    async fn mint_window(&mut self, links: &Arc<Links>, shape: Shape, pool: u64, size: u64, secs: f64) -> BoxResult<()> {
        let before = self.probe.status().await?;
        let t = Instant::now();
        let l = links.clone();
        let today = links.today();
        let requests = match shape {
            Shape::Batch => (size / 20).max(50_000) / 1000,
            Shape::Letter => (size / 100).max(20_000) / 11,
        };
        let deadline = t + Duration::from_secs_f64(secs);
        let stop: Arc<dyn Fn(u64) -> bool + Send + Sync> = Arc::new(move |i| i >= requests || Instant::now() >= deadline);
        let (units, lat) = load(self.args.concurrency, stop, move |_| {
            let l = l.clone();
            async move { l.mint(today, shape).await }
        })
        .await?;
        let secs = t.elapsed().as_secs_f64();
        let d = self.probe.deltas(&before, units).await?;
        self.report.emit(json!({"kind": "mint", "db": links.db, "links": links.count.load(Ordering::Relaxed), "pool_mib": pool,
            "shape": shape.name(), "links_per_s": per(units, 1) / secs, "requests_per_s": per(lat.len() as u64, 1) / secs,
            "p50_ms": quantile(&lat, 0.5), "p99_ms": quantile(&lat, 0.99), "per_link": d}))
    }

    /// Cold resolves through the store (no cache), uniform or skewed to the last 3 days.
    async fn resolve_window(&mut self, links: &Arc<Links>, recent: Option<f64>, pool: u64) -> BoxResult<()> {
        let targets = Arc::new(links.samples.pick(self.args.resolves, recent));
        let missing = Arc::new(AtomicU64::new(0));
        let before = self.probe.status().await?;
        let t = Instant::now();
        let (l, tg, miss) = (links.clone(), targets.clone(), missing.clone());
        let (n, lat) = load(self.args.resolve_concurrency, count(targets.len() as u64), move |i| {
            let (l, tg, miss) = (l.clone(), tg.clone(), miss.clone());
            async move {
                let (day, random, _) = tg[usize::try_from(i)?];
                if l.store.resolve(day, Version::V2, &random).await?.is_none() {
                    miss.fetch_add(1, Ordering::Relaxed);
                }
                Ok(1)
            }
        })
        .await?;
        let secs = t.elapsed().as_secs_f64();
        let d = self.probe.deltas(&before, n).await?;
        let missing = missing.load(Ordering::Relaxed);
        self.report.emit(json!({"kind": "resolve", "db": links.db, "links": links.count.load(Ordering::Relaxed), "pool_mib": pool,
            "partitions": links.days.len(), "targets": if recent.is_some() { "last3" } else { "uniform" },
            "resolves": n, "missing": missing, "per_s": per(n, 1) / secs,
            "p50_ms": quantile(&lat, 0.5), "p99_ms": quantile(&lat, 0.99), "max_ms": quantile(&lat, 1.0), "per_resolve": d}))?;
        if missing > 0 {
            return Err(format!("{missing} of {n} resolves found no link").into());
        }
        Ok(())
    }

    /// Bytes per link of `links_v2`, `letters` and `urls` (after `ANALYZE TABLE`).
    async fn bytes(&mut self, links: &Arc<Links>) -> BoxResult<()> {
        let n = links.count.load(Ordering::Relaxed);
        let db = &links.db;
        self.probe.conn.query_drop(format!("ANALYZE TABLE {db}.links_v2, {db}.letters, {db}.urls")).await?;
        let rows: Vec<(String, u64, u64)> = self
            .probe
            .conn
            .query(format!(
                "SELECT TABLE_NAME, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME IN ('links_v2', 'letters', 'urls')"
            ))
            .await?;
        let mut v = json!({"kind": "bytes", "db": db, "links": n});
        let mut total = 0;
        for (t, data, index) in rows {
            v[format!("{t}_per_link")] = json!((per(data + index, n) * 10.0).round() / 10.0);
            total += data + index;
        }
        v["per_link"] = json!((per(total, n) * 10.0).round() / 10.0);
        self.report.emit(v)
    }

    /// A maintenance pass (create tomorrow's partitions, drop the oldest day) while batches are minted.
    async fn maintain_under_load(&mut self, links: &Arc<Links>) -> BoxResult<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (links.clone(), stop.clone());
        let today = links.today();
        let started = Instant::now();
        let load_task = tokio::spawn(load(self.args.concurrency, Arc::new(move |_: u64| st.load(Ordering::Relaxed)), move |_| {
            let l = l.clone();
            async move { l.mint(today, Shape::Batch).await }
        }));
        tokio::time::sleep(Duration::from_secs_f64(self.args.window_secs / 2.0)).await;
        let policy = MaintenancePolicy { today: today.plus(1), ahead: 1, retention: links.days.len() as u16 - 1, dry_run: false };
        let t = Instant::now();
        let rep = links.store.maintain(policy).await?;
        let took = ms(t.elapsed());
        tokio::time::sleep(Duration::from_secs_f64(self.args.window_secs / 2.0)).await;
        stop.store(true, Ordering::Relaxed);
        let (units, lat) = load_task.await??;
        let secs = started.elapsed().as_secs_f64();
        self.report.emit(json!({"kind": "maintain", "db": links.db, "links": links.count.load(Ordering::Relaxed),
            "ms": took, "created": rep.created.len(), "dropped": rep.dropped.len(), "acquired": rep.acquired,
            "mint_links_per_s_meanwhile": per(units, 1) / secs, "mint_p99_ms": quantile(&lat, 0.99), "mint_max_ms": quantile(&lat, 1.0)}))?;
        if !rep.acquired || rep.created.is_empty() || rep.dropped.len() != 1 {
            return Err(format!("maintenance did not create tomorrow and drop one day: {rep:?}").into());
        }
        Ok(())
    }

    async fn phase_links(&mut self, layouts: &mut HashMap<u16, Arc<Links>>) -> BoxResult<()> {
        for days in self.args.layouts.clone() {
            let links = self.layout(days, format!("growth_{days}")).await?;
            layouts.insert(days, links.clone());
            for size in self.args.sizes.clone() {
                self.probe.set_pool(self.args.fill_pool_mib).await?;
                self.fill(&links, size).await?;
                for pool in self.args.pools_mib.clone() {
                    self.probe.set_pool(pool).await?;
                    self.measure(&links, pool, size, self.args.window_secs).await?;
                }
                self.bytes(&links).await?;
            }
        }
        self.alternate(layouts).await?;
        for days in self.args.layouts.clone() {
            if days != self.event_layout() || !self.args.phases.iter().any(|p| p == "events") {
                self.maintain_under_load(&layouts[&days]).await?;
            }
        }
        Ok(())
    }

    /// Mint windows of both shapes and both kinds of cold resolves.
    async fn measure(&mut self, links: &Arc<Links>, pool: u64, size: u64, window_secs: f64) -> BoxResult<()> {
        self.mint_window(links, Shape::Batch, pool, size, window_secs).await?;
        self.mint_window(links, Shape::Letter, pool, size, window_secs).await?;
        self.resolve_window(links, None, pool).await?;
        self.resolve_window(links, Some(0.8), pool).await
    }

    /// Like with like on a noisy machine: beside each full layout a fresh one
    /// of the first size (`growth_<days>_small`), then, at each pool, two
    /// rounds measuring every database in turn (full 30, small 30, full 365,
    /// small 365) with the same window sizes. The growth and partition ratios
    /// come from these rounds.
    async fn alternate(&mut self, layouts: &HashMap<u16, Arc<Links>>) -> BoxResult<()> {
        let small_size = *self.args.sizes.first().ok_or("--sizes is empty")?;
        if self.args.sizes.len() < 2 {
            return Ok(());
        }
        let mut order = Vec::new();
        for days in self.args.layouts.clone() {
            self.probe.set_pool(self.args.fill_pool_mib).await?;
            let small = self.layout(days, format!("growth_{days}_small")).await?;
            self.fill(&small, small_size).await?;
            order.push(layouts[&days].clone());
            order.push(small);
        }
        let big_size = *self.args.sizes.last().ok_or("--sizes is empty")?;
        for pool in self.args.pools_mib.clone() {
            self.probe.set_pool(pool).await?;
            for round in 1..=2 {
                self.report.round = Some(round);
                for links in &order {
                    self.measure(links, pool, big_size, self.args.ab_window_secs).await?;
                }
            }
            self.report.round = None;
        }
        Ok(())
    }

    fn event_layout(&self) -> u16 {
        if self.args.layouts.contains(&self.args.event_days) { self.args.event_days } else { self.args.layouts[0] }
    }

    /// Write `n` event rows (at most until `deadline`) for `day`; returns the rows written.
    async fn write_events(&self, links: &Arc<Links>, day: Day, n: u64, deadline: Instant) -> BoxResult<u64> {
        let targets: Vec<Sample> = links.samples.pick(4096, None);
        let mut rng = rand::rng();
        let mut written = 0;
        while written < n && Instant::now() < deadline {
            let size = usize::try_from((n - written).min(EVENT_BATCH as u64))?;
            let hits = (0..size)
                .map(|_| {
                    // Events carry the ids their redirect resolved, as the service's do.
                    let (link_day, random, ids) = targets[rng.random_range(0..targets.len())];
                    let ua = USER_AGENTS[rng.random_range(0..USER_AGENTS.len())];
                    let ip: [u8; 4] = [10, rng.random(), rng.random(), 0];
                    Hit {
                        at_ms: day.start_unix() * 1000 + rng.random_range(0..86_400_000),
                        kind: LinkKind::Click,
                        method: Method::Get,
                        link_day,
                        version: Version::V2,
                        random,
                        link_ids: Some(ids),
                        ip: IpBytes::new(ip.into()),
                        user_agent: ua.as_bytes().to_vec(),
                        reason: Reason::None,
                    }
                })
                .collect();
            let batch = EventBatch { id: rng.random(), formed: day, hits };
            links.store.write_events(&batch, day).await?;
            written += size as u64;
        }
        Ok(written)
    }

    /// Export pages from cursors in the oldest and the newest event day, alternated.
    async fn export_pages(&mut self, links: &Arc<Links>, days: &[Day], at: u64, pool: u64) -> BoxResult<()> {
        let mut lat: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut ranges = Vec::new();
        for (name, day) in [("oldest", days[0]), ("newest", *days.last().expect("days"))] {
            let r: Option<(Option<u64>, Option<u64>)> =
                self.probe.conn.query_first(format!("SELECT MIN(id), MAX(id) FROM {}.events WHERE day = {}", links.db, day.0)).await?;
            match r {
                Some((Some(lo), Some(hi))) if hi > lo + 2 * PAGE as u64 => ranges.push((name, day, lo, hi - 2 * PAGE as u64)),
                _ => return Err(format!("the {name} event day {day} holds too few rows for a page").into()),
            }
        }
        let mut rng = rand::rng();
        let pages = if self.args.smoke { 6 } else { 40 };
        for _ in 0..pages {
            for &(name, day, lo, hi) in &ranges {
                let q = EventQuery { after: Cursor { day, id: rng.random_range(lo..hi) }, limit: PAGE, mailing_id: None };
                let t = Instant::now();
                let page = links.store.read_events(&q).await?;
                lat.entry(name).or_default().push(ms(t.elapsed()));
                if page.len() != PAGE || page.iter().any(|r| r.link.is_none()) {
                    return Err(format!("export page from the {name} day: {} rows, some without their link", page.len()).into());
                }
            }
        }
        for (name, mut l) in lat {
            l.sort_by(f64::total_cmp);
            self.report.emit(json!({"kind": "export", "db": links.db, "events": at, "pool_mib": pool, "cursor": name,
                "pages": l.len(), "p50_ms": quantile(&l, 0.5), "p99_ms": quantile(&l, 0.99)}))?;
        }
        Ok(())
    }

    async fn phase_events(&mut self, layouts: &HashMap<u16, Arc<Links>>) -> BoxResult<()> {
        let links = layouts.get(&self.event_layout()).ok_or("the events phase needs the links phase first")?.clone();
        let days: Vec<Day> = links.days.iter().rev().take(usize::from(self.args.event_days)).rev().copied().collect();
        let total = self.args.events;
        let per_day = total.div_ceil(days.len() as u64);
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.event_max_secs);
        let step = (total / 50).max(10_000);
        let mut points: Vec<u64> = self.args.event_points.clone();
        points.sort_unstable();
        let (mut written, mut mark, mut t, mut extra) = (0u64, 0u64, Instant::now(), 0u64);
        let mut reads = self.probe.status().await?;
        'days: for (i, day) in days.iter().enumerate() {
            let day_end = (per_day * (i as u64 + 1)).min(total);
            while written < day_end {
                // Next stop: a step boundary, a point or the day's end.
                let next_point = points.iter().copied().find(|p| *p > written).unwrap_or(u64::MAX);
                let target = day_end.min(next_point).min(mark + step);
                written += self.write_events(&links, *day, target - written, deadline).await?;
                if written - mark >= step || written == next_point || Instant::now() >= deadline {
                    let d = self.probe.deltas(&reads, written - mark).await?;
                    self.report.emit(json!({"kind": "event_fill", "db": links.db, "events": written,
                        "rate": per(written - mark, 1) / t.elapsed().as_secs_f64(), "pool_mib": self.args.fill_pool_mib, "per_event": d}))?;
                    (mark, t) = (written, Instant::now());
                    reads = self.probe.status().await?;
                }
                if written == next_point {
                    extra += self.event_point(&links, &days[..=i], *day, written).await?;
                    (mark, t) = (written, Instant::now());
                    reads = self.probe.status().await?;
                }
                if Instant::now() >= deadline {
                    self.report.emit(json!({"kind": "event_stop", "events": written, "reason": "event-max-secs"}))?;
                    extra += self.event_point(&links, &days[..=i], *day, written).await?;
                    break 'days;
                }
            }
        }
        let stored: u64 = self.probe.conn.query_first(format!("SELECT COUNT(*) FROM {}.events", links.db)).await?.ok_or("count")?;
        self.report.emit(json!({"kind": "event_total", "written": written + extra, "stored": stored}))?;
        if stored != written + extra {
            return Err(format!("{} events written but {stored} stored", written + extra).into());
        }
        self.maintain_under_load(&links).await
    }

    /// At an event point: a write window and export pages at each pool size;
    /// returns the rows the windows wrote.
    async fn event_point(&mut self, links: &Arc<Links>, days: &[Day], day: Day, at: u64) -> BoxResult<u64> {
        let mut rows = 0;
        let window = if self.args.smoke { 10_000 } else { 500_000 };
        for pool in self.args.pools_mib.clone() {
            self.probe.set_pool(pool).await?;
            let t = Instant::now();
            let n = self.write_events(links, day, window, Instant::now() + Duration::from_secs(600)).await?;
            rows += n;
            self.report.emit(json!({"kind": "event_window", "db": links.db, "events": at, "pool_mib": pool,
                "rows": n, "rate": per(n, 1) / t.elapsed().as_secs_f64()}))?;
            self.export_pages(links, days, at, pool).await?;
        }
        self.probe.set_pool(self.args.fill_pool_mib).await?;
        Ok(rows)
    }

    async fn phase_seed(&mut self) -> BoxResult<()> {
        self.probe.set_pool(self.args.fill_pool_mib).await?;
        self.fresh_db("growth_seed").await?;
        self.probe
            .conn
            .query_drop(
                "CREATE TABLE growth_seed.seed (UUID varchar(32) NOT NULL, Message json NOT NULL, Inserted DATE NOT NULL, \
                 PRIMARY KEY (UUID)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
            )
            .await?;
        let pool = mysql_async::Pool::new(mysql_async::Opts::from_url(&self.url("growth_seed"))?);
        let rows = Arc::new(AtomicU64::new(0));
        let kept: Arc<Mutex<Vec<String>>> = Arc::default();
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.seed_max_secs);
        let mut sizes: Vec<u64> = self.args.sizes.iter().copied().filter(|s| *s <= self.args.seed_rows).collect();
        sizes.push(self.args.seed_rows);
        sizes.dedup();
        let step = (self.args.seed_rows / 40).max(10_000);
        let (mut mark, mut t) = (0u64, Instant::now());
        let mut reads = self.probe.status().await?;
        'fill: for size in sizes {
            while rows.load(Ordering::Relaxed) < size {
                let target = size.min(mark + step);
                let batches = (target - rows.load(Ordering::Relaxed)).div_ceil(1000);
                let (pl, rw, kp) = (pool.clone(), rows.clone(), kept.clone());
                load(self.args.concurrency, count(batches), move |_| {
                    let (pool, rows, kept) = (pl.clone(), rw.clone(), kp.clone());
                    async move {
                        let mut sql = String::with_capacity(160_000);
                        sql.push_str("INSERT INTO seed (UUID, Message, Inserted) VALUES ");
                        let mut keep = None;
                        for i in 0..1000 {
                            let uuid = uuid_hex();
                            let n = rand::rng().random_range(0..1_000_000u32);
                            if i > 0 {
                                sql.push(',');
                            }
                            write!(
                                sql,
                                "('{uuid}','{{\"url\":\"https://shop.example/item/{n}?utm_source=mail\",\"email\":\"user{n}@example.com\",\"mailing\":\"m-{}\"}}',CURRENT_DATE)",
                                n % 100
                            )?;
                            if i == 500 {
                                keep = Some(uuid);
                            }
                        }
                        pool.get_conn().await?.query_drop(sql).await?;
                        kept.lock().expect("kept").extend(keep);
                        rows.fetch_add(1000, Ordering::Relaxed);
                        Ok(1000)
                    }
                })
                .await?;
                let now = rows.load(Ordering::Relaxed);
                let d = self.probe.deltas(&reads, now - mark).await?;
                self.report.emit(json!({"kind": "seed_fill", "rows": now, "rate": per(now - mark, 1) / t.elapsed().as_secs_f64(),
                    "pool_mib": self.args.fill_pool_mib, "per_row": d}))?;
                (mark, t) = (now, Instant::now());
                reads = self.probe.status().await?;
                if Instant::now() >= deadline {
                    self.report.emit(json!({"kind": "seed_stop", "rows": now, "reason": "seed-max-secs"}))?;
                    self.seed_lookups(&pool, &kept, now).await?;
                    break 'fill;
                }
            }
            self.seed_lookups(&pool, &kept, size).await?;
        }
        pool.disconnect().await?;
        Ok(())
    }

    /// Point lookups by primary key on the seed's table, at each pool size.
    async fn seed_lookups(&mut self, pool: &mysql_async::Pool, kept: &Arc<Mutex<Vec<String>>>, rows: u64) -> BoxResult<()> {
        for mib in self.args.pools_mib.clone() {
            self.probe.set_pool(mib).await?;
            let targets: Arc<Vec<String>> = {
                let k = kept.lock().expect("kept");
                let mut rng = rand::rng();
                Arc::new((0..self.args.resolves).map(|_| k[rng.random_range(0..k.len())].clone()).collect())
            };
            let missing = Arc::new(AtomicU64::new(0));
            let before = self.probe.status().await?;
            let t = Instant::now();
            let (p, tg, miss) = (pool.clone(), targets.clone(), missing.clone());
            let (n, lat) = load(self.args.resolve_concurrency, count(targets.len() as u64), move |i| {
                let (p, tg, miss) = (p.clone(), tg.clone(), miss.clone());
                async move {
                    let mut c = p.get_conn().await?;
                    let m: Option<String> = c.exec_first("SELECT Message FROM seed WHERE UUID = ?", (&tg[usize::try_from(i)?],)).await?;
                    if m.is_none() {
                        miss.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(1)
                }
            })
            .await?;
            let secs = t.elapsed().as_secs_f64();
            let d = self.probe.deltas(&before, n).await?;
            self.report.emit(json!({"kind": "seed_lookup", "rows": rows, "pool_mib": mib, "lookups": n,
                "missing": missing.load(Ordering::Relaxed), "per_s": per(n, 1) / secs,
                "p50_ms": quantile(&lat, 0.5), "p99_ms": quantile(&lat, 0.99), "per_lookup": d}))?;
            if missing.load(Ordering::Relaxed) > 0 {
                return Err("a seed lookup found no row".into());
            }
        }
        self.probe.set_pool(self.args.fill_pool_mib).await
    }
}

/// A random UUID as 32 hex digits, as the seed's system stored it.
fn uuid_hex() -> String {
    let b: [u8; 16] = rand::rng().random();
    hex::encode(b)
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let mut args = Args::parse();
    args.apply_smoke();
    let base = mysql_async::Opts::from_url(&args.mysql)?;
    let cfg = StoreConfig {
        pool_max: args.concurrency.max(args.resolve_concurrency) + 4,
        acquire_timeout: Duration::from_secs(60),
        statement_timeout: Duration::from_secs(600),
        lock_wait_timeout_secs: 600,
        connect_wait: Duration::from_secs(30),
    };
    let out = args.out.as_ref().map(File::create).transpose()?;
    let probe = Probe { conn: mysql_async::Conn::new(base.clone()).await? };
    let mut tool = Tool { report: Report { out, started: Instant::now(), round: None }, probe, base, cfg, args };
    let version: Option<String> = tool.probe.conn.query_first("SELECT VERSION()").await?;
    tool.report.emit(json!({"kind": "start", "server": version, "smoke": tool.args.smoke, "sizes": tool.args.sizes,
        "layouts": tool.args.layouts, "pools_mib": tool.args.pools_mib, "events": tool.args.events,
        "seed_rows": tool.args.seed_rows}))?;
    let mut layouts = HashMap::new();
    let phases = tool.args.phases.clone();
    for phase in &phases {
        match phase.as_str() {
            "links" => tool.phase_links(&mut layouts).await?,
            "events" => tool.phase_events(&layouts).await?,
            "seed" => tool.phase_seed().await?,
            other => return Err(format!("unknown phase {other}: links, events or seed").into()),
        }
    }
    tool.probe.set_pool(tool.args.fill_pool_mib).await?;
    tool.report.emit(json!({"kind": "done"}))?;
    Ok(())
}

//! Load-test tool, not part of the service: the mint rate of ONE day's
//! partition as it grows. It mints straight through the `Store` (no HTTP)
//! into a single day, from `--from` links already there to `--to`, and prints
//! one line per `--step` links: links/s over that step and, on MySQL, the
//! delta of `Innodb_buffer_pool_reads` per minted link (read with
//! `SHOW GLOBAL STATUS` on a connection of its own). That shows where a day's
//! index stops fitting the buffer pool: v1 links carry `UNIQUE (rnd, day)` on
//! 16 random bytes, so each insert lands on a random leaf; v2 links have only
//! the primary key on reserved ids, so inserts append.
//!
//! Load shape: `--concurrency` tasks (default 8), each minting batches of
//! `--batch` links (default 1000, all click links, no pixel) as one letter
//! per batch. A batch's links point at `--distinct-urls` URLs (default 10,
//! link i gets URL i mod 10) of one of 100 mailings, so URLs recur across
//! batches as in a real send and the `urls` dedup stays small. v2 ids are
//! reserved in blocks of `--id-block` (default 10 000) through the service's
//! own `IdAllocator`.
//!
//! ```sh
//! cargo build --release --example knee
//! target/release/examples/knee --version 2 --mysql mysql://root@127.0.0.1:3395/lt --to 3000000
//! target/release/examples/knee --version 1 --sqlite /tmp/knee/v1.db --from 1000000 --to 2000000
//! ```
//!
//! Each step prints `step version=.. from=.. to=.. links=.. secs=.. rate=.. bp_reads_per_link=..`
//! (`bp_reads_per_link=-` on SQLite); the last line is `reached=N`.
//! `--max-secs` stops claiming new batches after that long and reports the
//! partial step, so a caller can bound a slow run. The tool runs `migrate`
//! and a maintenance pass for the day first (both idempotent).

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mysql_async::prelude::Queryable;

use linktrack::day::{Clock, Day};
use linktrack::ids::IdAllocator;
use linktrack::link::{Letter, LinkKind, MintBatch, NewLink};
use linktrack::store::mysql::MysqlStore;
use linktrack::store::sqlite::SqliteStore;
use linktrack::store::{MaintenancePolicy, Store, StoreConfig};
use linktrack::token::{self, KeyRing, Version};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Mailings the batches cycle through; each has its own `--distinct-urls` URLs.
const MAILINGS: u64 = 100;

#[derive(Debug, Parser)]
#[command(about = "Mint rate of one day's partition as it grows (v1 or v2 links, MySQL or SQLite)")]
struct Args {
    /// Token version to mint: 1 (random index) or 2 (reserved ids).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    version: u8,
    /// MySQL URL, e.g. `mysql://root@127.0.0.1:3395/lt` (the database must exist).
    #[arg(long, required_unless_present = "sqlite", conflicts_with = "sqlite")]
    mysql: Option<String>,
    /// Main file of an embedded store; the day file goes beside it.
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// Links already in the day (only labels the output).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop once the day holds this many links.
    #[arg(long)]
    to: u64,
    /// Links per reported step.
    #[arg(long, default_value_t = 1_000_000)]
    step: u64,
    /// Concurrent minting tasks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Links per batch (one letter each).
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Distinct URLs per batch.
    #[arg(long, default_value_t = 10)]
    distinct_urls: u64,
    /// v2 ids reserved per sequence round trip.
    #[arg(long, default_value_t = 10_000)]
    id_block: u64,
    /// The day to mint into, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    day: Option<String>,
    /// Stop claiming new batches after this many seconds.
    #[arg(long)]
    max_secs: Option<f64>,
    /// Token keys, as `--token-keys` of the service.
    #[arg(long, default_value = "1:6c696e6b747261636b2d6c6f6164746573742d6b65792d303030303030303030")]
    token_keys: String,
}

/// What every minting task shares.
#[derive(Debug)]
struct Job<S> {
    store: Arc<S>,
    ids: IdAllocator<S>,
    keys: KeyRing,
    day: Day,
    version: Version,
    batch: u64,
    distinct_urls: u64,
}

impl<S: Store> Job<S> {
    /// Batch number `n` of the day: `batch` click links to 10 URLs of mailing `n % 100`.
    async fn batch(&self, n: u64) -> BoxResult<MintBatch> {
        let count = usize::try_from(self.batch)?;
        let mut minted = Vec::with_capacity(count);
        match self.version {
            Version::V1 => token::generate(&self.keys, self.day, count, &mut minted),
            Version::V2 => token::generate_v2(&self.keys, self.day, self.ids.take(self.batch).await?, count, &mut minted),
        }
        let mailing = n % MAILINGS;
        let urls: Vec<Arc<str>> = (0..self.distinct_urls)
            .map(|u| Arc::from(format!("https://shop.example/item/{}?utm_source=mail&utm_campaign=m-{mailing}&pos={u}", u * 7 + 3)))
            .collect();
        let links = minted
            .into_iter()
            .zip(urls.iter().cycle())
            .enumerate()
            .map(|(i, ((token, random), url))| NewLink {
                kind: LinkKind::Click,
                random,
                token,
                url: Some(url.clone()),
                position: linktrack::link::stored_position(i),
            })
            .collect();
        Ok(MintBatch {
            day: self.day,
            version: self.version,
            letter: Letter {
                tenant: linktrack::tenant::TenantId::DEFAULT,
                mailing_id: format!("m-{mailing}"),
                recipient: format!("user{n}@example.com"),
                meta: None,
                minted_at: Clock::System.now_unix(),
                click_links: u32::try_from(self.batch)?,
            },
            links,
            idempotency: None,
        })
    }
}

/// `a / b` as a float, for printing.
#[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
fn per(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

/// `Innodb_buffer_pool_reads`: pages InnoDB had to read from disk.
async fn pool_reads(conn: &mut mysql_async::Conn) -> BoxResult<u64> {
    let row: Option<(String, String)> = conn.query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_reads'").await?;
    Ok(row.ok_or("no Innodb_buffer_pool_reads")?.1.parse()?)
}

async fn run<S: Store>(args: &Args, store: Arc<S>, mut probe: Option<mysql_async::Conn>) -> BoxResult<()> {
    let day = match &args.day {
        Some(s) => Day::parse_iso(s).ok_or("--day must be YYYY-MM-DD")?,
        None => Clock::System.today(),
    };
    store.migrate().await?;
    store.maintain(MaintenancePolicy { today: day, ahead: 1, retention: 30, dry_run: false }).await?;
    let version = if args.version == 1 { Version::V1 } else { Version::V2 };
    let job = Arc::new(Job {
        ids: IdAllocator::new(store.clone(), args.id_block),
        store,
        keys: KeyRing::parse(&args.token_keys)?,
        day,
        version,
        batch: args.batch.max(1),
        distinct_urls: args.distinct_urls.max(1),
    });
    let started = Instant::now();
    let deadline = args.max_secs.map(|s| started + Duration::from_secs_f64(s));
    let mut at = args.from;
    while at < args.to {
        let step_end = (at + args.step).min(args.to);
        let batches = (step_end - at).div_ceil(job.batch);
        let first = at / job.batch;
        let claimed = Arc::new(AtomicU64::new(0));
        let reads0 = match probe.as_mut() {
            Some(c) => Some(pool_reads(c).await?),
            None => None,
        };
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| {
                let (job, claimed) = (job.clone(), claimed.clone());
                tokio::spawn(async move {
                    let mut links = 0u64;
                    loop {
                        let i = claimed.fetch_add(1, Ordering::Relaxed);
                        if i >= batches || deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok::<u64, Box<dyn Error + Send + Sync>>(links);
                        }
                        let batch = job.batch(first + i).await?;
                        job.store.mint(&batch).await?;
                        links += job.batch;
                    }
                })
            })
            .collect();
        let mut links = 0;
        for t in tasks {
            links += t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        let reads = match (probe.as_mut(), reads0) {
            (Some(c), Some(r0)) => format!("{:.4}", per(pool_reads(c).await? - r0, links.max(1))),
            _ => "-".to_owned(),
        };
        println!(
            "step version={} from={at} to={} links={links} secs={secs:.2} rate={:.0} bp_reads_per_link={reads}",
            args.version,
            at + links,
            per(links, 1) / secs
        );
        at += links;
        if at < step_end {
            break; // --max-secs ran out mid-step
        }
    }
    println!("reached={at}");
    Ok(())
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = Args::parse();
    let cfg = StoreConfig {
        pool_max: args.concurrency + 2,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(60),
        lock_wait_timeout_secs: 60,
        connect_wait: Duration::from_secs(30),
    };
    if let Some(url) = &args.mysql {
        let store = Arc::new(MysqlStore::connect(url, &cfg).await?);
        let probe = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
        run(&args, store, Some(probe)).await
    } else {
        let path = args.sqlite.clone().ok_or("--mysql or --sqlite")?;
        run(&args, Arc::new(SqliteStore::open(&path, &cfg)?), None).await
    }
}

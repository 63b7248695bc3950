//! How long a stats or series read takes for a big mailing: 1 M recipients,
//! 10 links, 30 days of traffic, among many other mailings.
//!
//! ```text
//! cargo run --release --example insights -- --database-url sqlite:///tmp/ins/linktrack.db
//! cargo run --release --example insights -- --database-url mysql://root@127.0.0.1:3392/insights
//! ```
//!
//! The reads touch only the rollup's rows: one totals row per (mailing,
//! link) and one series row per (mailing, kind, quarter hour). Recipients
//! add to the counts in those rows, never rows, so the state is built the
//! way the rollup builds it, by applying passes (`Store::apply_rollup`)
//! whose deltas are what 1 M recipients produce: every letter's open and
//! clicks spread over 30 days of quarter hours, for the measured mailing
//! and `--other-mailings` more. One real letter per mailing is minted first
//! (which registers the mailing and its links). Then `stats_document` and
//! `series_document` (what the HTTP handlers run, JSON included) are timed,
//! `--reads` times each, and the percentiles printed as JSON.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use serde_json::json;

use linktrack::config::{Cli, Command, DatabaseUrl};
use linktrack::day::Clock;
use linktrack::events::{Counts, RollupApply, SLOT_SECS, SeriesKey, StatKey};
use linktrack::http::stats::{parse_series_query, series_document, stats_document};
use linktrack::link::{Letter, LinkKind, MintBatch, NewLink, stored_position};
use linktrack::store::mysql::MysqlStore;
use linktrack::store::sqlite::SqliteStore;
use linktrack::store::{MaintenancePolicy, Store};
use linktrack::tenant::TenantId;
use linktrack::token::{self, KeyRing};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite://PATH` or `mysql://...` (an empty database).
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    recipients: i64,
    #[arg(long, default_value_t = 10)]
    links: usize,
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Other mailings with the same shape of data, so the tables are not just this one.
    #[arg(long, default_value_t = 200)]
    other_mailings: usize,
    /// Timed reads of each kind.
    #[arg(long, default_value_t = 300)]
    reads: usize,
}

fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |percent: usize| ms[(ms.len() - 1) * percent / 100];
    json!({"p50_ms": at(50), "p99_ms": at(99), "max_ms": at(100), "n": ms.len()})
}

async fn run<S: Store>(store: Arc<S>, args: &Args) -> BoxResult<serde_json::Value> {
    store.migrate().await?;
    let clock = Clock::System;
    let today = clock.today();
    store.maintain(MaintenancePolicy { today, ahead: 2, retention: 90, dry_run: false }).await.map_err(|e| format!("maintain: {e}"))?;
    let keys = KeyRing::parse("0:000102030405060708090a0b0c0d0e0f")?;
    let urls: Vec<String> = (0..args.links).map(|i| format!("https://shop.example/p/{i}?utm_source=news")).collect();
    let end_slot = u32::try_from(clock.now_ms() / 1000 / SLOT_SECS)?;
    let slots = u32::try_from(args.days * 86_400 / SLOT_SECS)?;
    let started = Instant::now();
    for m in 0..=args.other_mailings {
        let mailing = if m == 0 { "big".to_owned() } else { format!("other-{m}") };
        // One real letter: registers the mailing and every (URL, position).
        let mut minted = Vec::new();
        token::generate_v2(&keys, today, 1 + (m * (args.links + 1)) as u64, args.links + 1, &mut minted);
        let links = minted
            .into_iter()
            .enumerate()
            .map(|(i, (token, random))| NewLink {
                kind: if i < args.links { LinkKind::Click } else { LinkKind::Open },
                random,
                token,
                url: urls.get(i).map(|u| Arc::from(u.as_str())),
                position: if i < args.links { stored_position(i) } else { linktrack::link::NO_POSITION },
            })
            .collect();
        let letter = Letter {
            tenant: TenantId::DEFAULT,
            mailing_id: mailing.clone(),
            recipient: "r@example.com".into(),
            meta: None,
            minted_at: clock.now_unix(),
            click_links: args.links as u32,
        };
        store.mint(&MintBatch { day: today, version: token::Version::V2, letter, links, idempotency: None }).await?;
        // What the recipients did: opens by 60 %, clicks by 8 % per link, a quarter of it automated.
        let n = args.recipients;
        let mut deltas: Vec<(StatKey, Counts)> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let key = StatKey {
                    tenant: TenantId::DEFAULT,
                    mailing_id: mailing.clone(),
                    url: Some(url.clone()),
                    position: Some(stored_position(i)),
                    kind: LinkKind::Click,
                };
                (key, Counts { human: n * 6 / 100, bot: n / 100, suspect: n / 100, unique: n * 7 / 100, unique_human: n * 5 / 100 })
            })
            .collect();
        let open = StatKey { tenant: TenantId::DEFAULT, mailing_id: mailing.clone(), url: None, position: None, kind: LinkKind::Open };
        deltas.push((open, Counts { human: n * 45 / 100, bot: 0, suspect: n * 15 / 100, unique: n * 6 / 10, unique_human: n * 45 / 100 }));
        let mut series = Vec::with_capacity(slots as usize * 2);
        for s in 0..slots {
            for kind in [LinkKind::Click, LinkKind::Open] {
                let key = SeriesKey { tenant: TenantId::DEFAULT, mailing_id: mailing.clone(), kind, slot: end_slot - slots + s };
                series.push((key, Counts { human: 1 + i64::from(s % 7), bot: i64::from(s % 3), suspect: 1, ..Counts::default() }));
            }
        }
        let state = store.rollup_state().await?;
        let apply =
            RollupApply { from: state.watermark, to: state.watermark, as_of_ms: clock.now_ms(), deltas, series, ..RollupApply::default() };
        assert!(store.apply_rollup(&apply).await?, "no other rollup runs here");
    }
    let fill_s = started.elapsed().as_secs_f64();

    let now = clock.now_ms();
    let hourly = parse_series_query(Some("bucket=hour")).map_err(|e| e.message)?;
    let daily = parse_series_query(Some("bucket=day&tz=%2B02:00")).map_err(|e| e.message)?;
    let mut timings = serde_json::Map::new();
    let (mut stats_ms, mut hour_ms, mut day_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut buckets = 0;
    for _ in 0..args.reads {
        let t = Instant::now();
        let s = stats_document(&*store, TenantId::DEFAULT, "big").await.map_err(|e| e.message)?;
        stats_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(s["links"].as_array().map(Vec::len), Some(args.links));
        let t = Instant::now();
        let h = series_document(&*store, TenantId::DEFAULT, "big", &hourly, now).await.map_err(|e| e.message)?;
        hour_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        buckets = h["buckets"].as_array().map_or(0, Vec::len);
        let t = Instant::now();
        series_document(&*store, TenantId::DEFAULT, "big", &daily, now).await.map_err(|e| e.message)?;
        day_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    timings.insert("stats".into(), percentiles(stats_ms));
    timings.insert("series_hourly".into(), percentiles(hour_ms));
    timings.insert("series_daily_tz".into(), percentiles(day_ms));
    Ok(json!({
        "recipients": args.recipients,
        "links": args.links,
        "days": args.days,
        "mailings": args.other_mailings + 1,
        "series_rows_per_mailing": slots * 2,
        "hourly_buckets": buckets,
        "fill_seconds": fill_s,
        "reads": timings,
    }))
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = Args::parse();
    let cli = Cli::try_parse_from(["linktrack", "migrate", "--database-url", &args.database_url])?;
    let Command::Migrate(db) = cli.command else { unreachable!() };
    let cfg = db.store_config();
    let out = match &db.database_url {
        DatabaseUrl::Sqlite(path) => {
            std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
            run(Arc::new(SqliteStore::open(path, &cfg)?), &args).await?
        }
        DatabaseUrl::Mysql(url) => run(Arc::new(MysqlStore::connect(url.expose(), &cfg).await?), &args).await?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

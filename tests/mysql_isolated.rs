//! MySQL tests that read server-wide state (the general log, global status
//! counters), so they run in their own test process, on their own private
//! MariaDB, one at a time: EXPLAIN proves a resolve reads exactly one
//! partition, and server counters prove forged tokens cost zero queries and
//! statements sized by the data are not prepared once per size.

mod common;

use common::conformance::Fixture;
use common::mysql::MysqlFixture;
use common::server::{API_KEY, START_UNIX, TestServer, serve_args, start_day};
use linktrack::day::Clock;
use linktrack::store::mysql::partition_name;
use linktrack::store::{MaintenancePolicy, Store};
use mysql_async::prelude::Queryable;
use serde_json::json;

/// Global server state is shared: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Mint one 5-link letter per day for `days` days ending at the start day;
/// returns one tracking path per day.
async fn mint_across_days(f: &MysqlFixture, days: u16) -> Vec<(linktrack::day::Day, String)> {
    let first = start_day().minus(days - 1);
    f.store.migrate().await.unwrap();
    f.store.maintain(MaintenancePolicy { today: first, ahead: days + 7, retention: 90, dry_run: false }).await.unwrap();
    let clock = Clock::manual(first.start_unix() + 3600);
    let srv = TestServer::start(f.store(), clock.clone(), serve_args(QUIET)).await;
    let mut c = srv.client();
    let mut out = Vec::new();
    for k in 0..days {
        let links: Vec<_> = (0..5).map(|i| json!({"url": format!("https://d{k}.example/{i}")})).collect();
        let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": links}), None).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        out.push((clock.today(), common::client::path_of(r.json()["links"][2]["tracking_url"].as_str().unwrap())));
        clock.advance_days(1);
    }
    srv.stop().await;
    out
}

/// Every `"partitions": [...]` array in an EXPLAIN FORMAT=JSON document.
fn partition_lists(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                if k == "partitions" {
                    out.push(val.as_array().expect("partitions array").iter().map(|p| p.as_str().unwrap().to_owned()).collect());
                } else {
                    partition_lists(val, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| partition_lists(x, out)),
        _ => {}
    }
}

/// These tests count server-wide statements: the background loops that
/// query the store on their own timers (rollup, readiness, webhook delivery,
/// API-key and token-key reloads) are slowed to once an hour.
const QUIET: &[&str] = &[
    "--rollup-interval-ms",
    "3600000",
    "--ready-check-ms",
    "3600000",
    "--webhook-interval-ms",
    "3600000",
    "--api-keys-refresh-secs",
    "3600",
    "--token-key-reload-ms",
    "3600000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_reads_exactly_one_partition() {
    let _serial = SERIAL.lock().await;
    let f = MysqlFixture::open("explain").await;
    let minted = mint_across_days(&f, 32).await;
    let mut admin = f.conn().await;
    let filled: Vec<(String, u64)> = admin
        .query(
            "SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'links_v2'",
        )
        .await
        .unwrap();
    let non_empty = admin.query_first::<u64, _>("SELECT COUNT(DISTINCT day) FROM links_v2").await.unwrap().unwrap();
    assert!(non_empty >= 30, "want 30+ day partitions holding rows, have {non_empty}");
    assert!(filled.len() > 30, "{filled:?}");

    // Capture the statement the server really prepares for a cold resolve.
    admin.query_drop("SET GLOBAL log_output = 'TABLE'").await.unwrap();
    admin.query_drop("TRUNCATE mysql.general_log").await.unwrap();
    admin.query_drop("SET GLOBAL general_log = 1").await.unwrap();
    let srv = TestServer::start(f.store(), Clock::manual(START_UNIX), serve_args(QUIET)).await;
    let (day, path) = &minted[10];
    let resp = srv.client().get(path).await;
    assert_eq!(resp.status, 302);
    admin.query_drop("SET GLOBAL general_log = 0").await.unwrap();
    srv.stop().await;
    let prepared: Vec<String> = admin
        .query("SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log WHERE command_type = 'Prepare' AND argument LIKE '%FROM links_v2 l%'")
        .await
        .unwrap();
    assert_eq!(prepared.len(), 1, "exactly one resolve statement prepared: {prepared:?}");
    let sql = &prepared[0];
    assert_eq!(sql, linktrack::store::mysql::RESOLVE_V2_SQL);

    // EXPLAIN that statement with the token's own day and random part.
    let keys = linktrack::token::KeyRing::parse(common::server::TOKEN_KEYS).unwrap();
    let parsed = linktrack::token::parse(path.trim_start_matches("/c/").as_bytes(), &keys, start_day()).unwrap();
    assert_eq!(parsed.day, *day);
    assert_eq!(parsed.version, linktrack::token::VERSION_2, "the service mints v2");
    let params = (day.0, linktrack::token::Sealed::from_block(&parsed.random).id, day.0);
    let plan: String = admin.exec_first(format!("EXPLAIN FORMAT=JSON {sql}"), params).await.unwrap().unwrap();
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    // The link by primary key: a single-row `const` read, no random index anywhere.
    let links = plan_table(&plan, "l").unwrap_or_else(|| panic!("no links_v2 table in {plan:#}"));
    assert_eq!((links["access_type"].as_str(), links["key"].as_str()), (Some("const"), Some("PRIMARY")), "{plan:#}");
    let mut lists = Vec::new();
    partition_lists(&plan, &mut lists);
    assert_eq!(lists.len(), 2, "both tables report partitions: {plan:#}");
    for l in &lists {
        assert_eq!(l, &vec![partition_name(*day)], "one partition per table: {plan:#}");
    }
    // MariaDB's tabular form says the same (MySQL 8 shows a partitions column in plain EXPLAIN).
    let rows: Vec<mysql_async::Row> = admin.exec(format!("EXPLAIN PARTITIONS {sql}"), params).await.unwrap();
    for row in rows {
        let parts: Option<String> = row.get("partitions").unwrap();
        assert_eq!(parts.as_deref(), Some(partition_name(*day).as_str()));
    }
}

/// The plan node of the table with this alias.
fn plan_table<'a>(v: &'a serde_json::Value, alias: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("table_name").and_then(|t| t.as_str()) == Some(alias) {
                return Some(v);
            }
            m.values().find_map(|c| plan_table(c, alias))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|c| plan_table(c, alias)),
        _ => None,
    }
}

async fn counter(conn: &mut mysql_async::Conn, name: &str) -> u64 {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'")).await.unwrap();
    row.unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_cost_zero_queries() {
    let _serial = SERIAL.lock().await;
    let f = MysqlFixture::open("zeroq").await;
    let srv = TestServer::start(f.store(), Clock::manual(START_UNIX), serve_args(QUIET)).await;
    let mut c = srv.client();
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}]}), None).await;
    let valid = r.json()["links"][0]["token"].as_str().unwrap().to_owned();
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let forged: Vec<String> = (0..10_000)
        .map(|i| match i % 4 {
            // one character of a valid token changed: bad MAC
            0 | 1 => {
                let mut t = valid.clone().into_bytes();
                let pos = rand::RngExt::random_range(&mut rng, 0..t.len());
                if t[pos] == b'-' {
                    // Change the first character instead (a swap of the first two is no change when they are equal).
                    t[0] = if t[0] == b'0' { b'1' } else { b'0' };
                } else {
                    let mut ch = alphabet[rand::RngExt::random_range(&mut rng, 0..62)];
                    if ch == t[pos] {
                        ch = if ch == b'0' { b'1' } else { b'0' };
                    }
                    t[pos] = ch;
                }
                String::from_utf8(t).unwrap()
            }
            // random strings of the right length
            2 => (0..valid.len()).map(|_| char::from(alphabet[rand::RngExt::random_range(&mut rng, 0..62)])).collect(),
            // garbage of any length
            _ => format!("x{i}-{}", "A".repeat(i % 50)),
        })
        .filter(|t| *t != valid)
        .collect();
    let mut admin = f.conn().await;
    let before = (counter(&mut admin, "Com_select").await, counter(&mut admin, "Com_stmt_execute").await);
    let idle = (counter(&mut admin, "Com_select").await, counter(&mut admin, "Com_stmt_execute").await);
    assert_eq!(before, idle, "reading the counters must not move them");
    for t in &forged {
        assert_eq!(c.get(&format!("/c/{t}")).await.status, 404, "{t}");
    }
    let after = (counter(&mut admin, "Com_select").await, counter(&mut admin, "Com_stmt_execute").await);
    assert_eq!(after, before, "{} forged tokens caused database work", forged.len());
    assert!(forged.len() >= 9_900);

    // The check can fail: one cold lookup of a real, uncached token does move the counter.
    let mut minted = Vec::new();
    let keys = linktrack::token::KeyRing::parse(common::server::TOKEN_KEYS).unwrap();
    linktrack::token::generate(&keys, start_day(), 1, &mut minted);
    assert_eq!(c.get(&format!("/c/{}", minted[0].0)).await.status, 404);
    let moved = counter(&mut admin, "Com_select").await;
    assert!(moved > after.0, "an unknown well-formed token should reach the database once");
    // ...and only once: the negative cache answers the repeat.
    assert_eq!(c.get(&format!("/c/{}", minted[0].0)).await.status, 404);
    assert_eq!(counter(&mut admin, "Com_select").await, moved);
    srv.stop().await;
}

/// Statements whose length follows the data (the mint's links and interned
/// URLs, the rollup's re-labels, first hits and totals) are sent as text, so
/// letters and rollup passes of 30 different sizes prepare no statement per
/// size. A prepared form per size stays in `mysql_async`'s per-connection
/// statement cache, with a column definition per `?`, and on the server:
/// the 2026-12-01 MariaDB soak grew to 512 MiB that way (`docs/security.md`, "Soak").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_sized_by_the_data_are_not_prepared_per_size() {
    use linktrack::events::{Counts, Cursor, FirstHit, LetterHit, Reason, Relabel, RollupApply, SeriesKey, StatKey, Verdict};
    use linktrack::link::LinkKind;
    use linktrack::tenant::TenantId;
    use linktrack::token::Random;

    let _serial = SERIAL.lock().await;
    let f = MysqlFixture::open("stmtsize").await;
    let clock = Clock::manual(START_UNIX);
    let srv = TestServer::start(f.store(), clock.clone(), serve_args(QUIET)).await;
    let mut c = srv.client();
    let today = clock.today();
    let mut watermark = f.store.rollup_state().await.unwrap().watermark;
    let mut round = |n: usize| {
        let links: Vec<_> = (0..n).map(|i| json!({"url": format!("https://n{n}.example/{i}")})).collect();
        let apply = RollupApply {
            from: watermark,
            to: Cursor { day: today, id: watermark.id + 1 },
            as_of_ms: START_UNIX * 1000,
            relabels: (0..n as u64)
                .map(|id| Relabel { event: Cursor { day: today, id: id + 1 }, verdict: Verdict::Bot, reason: Reason::HeadRequest })
                .collect(),
            deltas: Vec::new(),
            first_hits: (0..n)
                .map(|i| FirstHit {
                    link_day: today,
                    random: Random([u8::try_from(n).unwrap(), u8::try_from(i).unwrap(), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
                    key: StatKey {
                        tenant: TenantId::DEFAULT,
                        mailing_id: format!("m{n}-{i}"),
                        url: Some(format!("https://n{n}.example/{i}")),
                        position: Some(u16::try_from(i).unwrap()),
                        kind: LinkKind::Click,
                    },
                    human: i % 2 == 0,
                })
                .collect(),
            series: (0..n)
                .map(|i| {
                    let key = SeriesKey {
                        tenant: TenantId::DEFAULT,
                        mailing_id: format!("m{n}"),
                        kind: LinkKind::Click,
                        slot: 1000 + u32::try_from(i).unwrap(),
                    };
                    (key, Counts { human: 1, ..Counts::default() })
                })
                .collect(),
            letters_human: (0..n)
                .map(|i| LetterHit {
                    link_day: today,
                    letter_id: 1_000_000 + i as u64,
                    tenant: TenantId::DEFAULT,
                    mailing_id: format!("m{n}"),
                })
                .collect(),
        };
        watermark = apply.to;
        (json!({"mailing_id": format!("m{n}"), "recipient": "r", "links": links}), apply)
    };
    // Once with one row each: every fixed-shape statement is prepared (and cached) here.
    let (mint, apply) = round(1);
    assert_eq!(c.mint(Some(API_KEY), &mint, None).await.status, 201);
    assert!(f.store.apply_rollup(&apply).await.unwrap());
    let mut admin = f.conn().await;
    let before = counter(&mut admin, "Com_stmt_prepare").await;
    let sizes = 2..=31;
    for n in sizes.clone() {
        let (mint, apply) = round(n);
        assert_eq!(c.mint(Some(API_KEY), &mint, None).await.status, 201);
        assert!(f.store.apply_rollup(&apply).await.unwrap(), "rollup of {n} rows applied");
    }
    let prepared = counter(&mut admin, "Com_stmt_prepare").await - before;
    // One per size and statement would be 7 * 30; a new pooled connection
    // prepares the fixed statements again, hence not zero.
    assert!(prepared < sizes.count() as u64, "{prepared} statements prepared for letters and rollups of 30 sizes");
    let totals: u64 = admin.query_first("SELECT CAST(SUM(uniq) AS UNSIGNED) FROM stats_totals").await.unwrap().unwrap();
    assert_eq!(totals, (1..=31).sum::<u64>(), "every first hit counted once, through the text statements");
    srv.stop().await;
}

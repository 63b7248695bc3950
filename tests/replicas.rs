//! Three `linktrack serve` replicas on one private MariaDB, under a bounded
//! redirect load (issue 17, step 1): mints through replica A, redirects
//! through all three, the export through C; every replica runs its rollup and
//! its partition maintenance (every second) at the same time. It checks what
//! running together must not break: every link resolves everywhere, no event
//! is lost or stored twice, the stats equal a recount of the exported
//! events, an export read during the load and resumed afterwards equals the
//! full export, one `Idempotency-Key` sent to two replicas at once stores one
//! letter, and each partition is created once and each expired day dropped
//! once, counted from the server's own general query log (not from the
//! replicas' reports).
//!
//! All load is on loopback, bounded in connections and time; every child is
//! stopped by its own handle.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{Client, path_of};
use common::events_suite::brute_force;
use common::load::Load;
use common::mariadb::fresh_database;
use common::process::{Service, count_events};
use common::server::API_KEY;
use http::Method;
use linktrack::day::Day;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Days kept and days created ahead by every replica.
const RETENTION: u16 = 30;
const AHEAD: u16 = 3;
/// Load connections per replica, and the safety limit of every load.
const CONNECTIONS: usize = 4;
const LOAD_LIMIT: Duration = Duration::from_secs(60);
/// How long the load runs after the second batch of mints.
const LOAD_TAIL: Duration = Duration::from_secs(3);
/// How long anything may take to catch up (events stored, the rollup, maintenance).
const CATCH_UP: Duration = Duration::from_secs(40);
const MAILING: &str = "replicas";

/// Fast event flushes, rollup passes and partition checks, every replica the same.
fn flags() -> Vec<String> {
    [
        "--retention-days",
        &RETENTION.to_string(),
        "--partitions-ahead",
        &AHEAD.to_string(),
        "--partition-check-secs",
        "1",
        "--event-flush-ms",
        "250",
        "--event-retry-ms",
        "200",
        "--rollup-interval-ms",
        "200",
        "--burst-window-secs",
        "1",
        "--near-mint-secs",
        "1",
        "--db-lock-wait-timeout-secs",
        "10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn today() -> Day {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    Day::from_unix(i64::try_from(now).expect("time")).expect("today in range")
}

/// The partition that holds `day` last: `pYYYYMMDD`.
fn pname(day: Day) -> String {
    format!("p{}", day.to_string().replace('-', ""))
}

/// One letter of 4 click links and a pixel.
fn letter(i: usize) -> Value {
    let links: Vec<Value> = (0..4).map(|j| json!({"url": format!("https://shop.example/{i}/{j}")})).collect();
    json!({"mailing_id": MAILING, "recipient": format!("r{i}@example.com"), "links": links, "pixel": true})
}

/// Mint `range` letters through `svc`; each tracking path with the answer it must get
/// (the `Location` for a click, `None` for a pixel).
async fn mint(svc: &Service, range: std::ops::Range<usize>) -> Vec<(String, Option<String>)> {
    let mut c = Client::new(svc.addr);
    let mut out = Vec::new();
    for i in range {
        let r = c.mint(Some(API_KEY), &letter(i), None).await;
        assert_eq!(r.status, 201, "mint {i}: {:?}", r.body);
        let v = r.json();
        for l in v["links"].as_array().expect("links") {
            let url = l["url"].as_str().expect("url").to_owned();
            out.push((path_of(l["tracking_url"].as_str().expect("tracking_url")), Some(url)));
        }
        out.push((path_of(v["pixel"]["tracking_url"].as_str().expect("pixel")), None));
    }
    out
}

async fn authed_get(c: &mut Client, path: &str) -> common::client::Reply {
    let auth = format!("Bearer {API_KEY}");
    c.send(Method::GET, path, &[("authorization", &auth)], Bytes::new()).await
}

/// One export page after `after` (None: from the start).
async fn export_page(c: &mut Client, after: Option<&str>, limit: usize) -> Vec<Value> {
    let q = after.map_or_else(|| format!("limit={limit}"), |a| format!("after={a}&limit={limit}"));
    let r = authed_get(c, &format!("/v1/events?{q}")).await;
    assert_eq!(r.status, 200, "export: {:?}", r.body);
    std::str::from_utf8(&r.body).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("ndjson row")).collect()
}

/// Read pages after `cursor` until an empty one; the rows, in order.
async fn export_rest(c: &mut Client, mut cursor: Option<String>) -> Vec<Value> {
    let mut rows = Vec::new();
    loop {
        let page = export_page(c, cursor.as_deref(), 5000).await;
        let Some(last) = page.last() else { return rows };
        cursor = Some(last["cursor"].as_str().expect("cursor").to_owned());
        rows.extend(page);
    }
}

/// Statements the replicas sent that add or drop a partition, from
/// `mysql.general_log`: (table, partition) -> (adds, drops). Only the
/// connections that logged in to `db`, except the test's own `own` thread.
async fn partition_changes(conn: &mut mysql_async::Conn, db: &str, own: u64) -> BTreeMap<(String, String), (u32, u32)> {
    let rows: Vec<(u64, String, Vec<u8>)> = conn
        .query(
            "SELECT thread_id, command_type, argument FROM mysql.general_log \
             WHERE command_type IN ('Connect', 'Init DB') OR argument LIKE 'ALTER TABLE %' ORDER BY event_time",
        )
        .await
        .expect("read the general log");
    let rows: Vec<(u64, String, String)> = rows.into_iter().map(|(t, k, a)| (t, k, String::from_utf8_lossy(&a).into_owned())).collect();
    let ours: HashSet<u64> = rows
        .iter()
        .filter(|(_, kind, arg)| (kind == "Connect" || kind == "Init DB") && arg.contains(db))
        .map(|(t, _, _)| *t)
        .filter(|t| *t != own)
        .collect();
    let mut out: BTreeMap<(String, String), (u32, u32)> = BTreeMap::new();
    for (_, _, sql) in rows.iter().filter(|(t, kind, _)| ours.contains(t) && kind == "Query") {
        let Some(rest) = sql.strip_prefix("ALTER TABLE ") else { continue };
        let (table, rest) = rest.split_once(' ').expect("ALTER TABLE <table> ...");
        if let Some(defs) = rest.strip_prefix("ADD PARTITION ") {
            for p in partition_names(defs) {
                out.entry((table.to_owned(), p)).or_default().0 += 1;
            }
        } else if let Some(names) = rest.strip_prefix("DROP PARTITION ") {
            for p in names.split(',').map(str::trim) {
                out.entry((table.to_owned(), p.to_owned())).or_default().1 += 1;
            }
        }
    }
    out
}

/// The partition names in `(PARTITION pX VALUES LESS THAN (n), ...)`.
fn partition_names(defs: &str) -> Vec<String> {
    defs.split("PARTITION ").skip(1).map(|d| d.split_whitespace().next().expect("name").to_owned()).collect()
}

/// The partitions of each day table (those created with `p_start`), by name.
async fn partitions(conn: &mut mysql_async::Conn) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_NAME, PARTITION_NAME FROM information_schema.PARTITIONS \
             WHERE TABLE_SCHEMA = DATABASE() AND PARTITION_NAME IS NOT NULL ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION",
        )
        .await
        .expect("list partitions");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, p) in rows {
        out.entry(t).or_default().push(p);
    }
    out.retain(|_, ps| ps.first().map(String::as_str) == Some("p_start"));
    out
}

fn migrate(db: &str) {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_linktrack")).args(["migrate", "--database-url", db]).output().expect("run migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Start the three replicas at the same moment (their start-up maintenance passes race).
fn spawn_three(db: &str, dirs: &[TempDir; 3]) -> [Service; 3] {
    let flags = flags();
    let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    let started: Vec<Service> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs.iter().map(|d| s.spawn(|| Service::spawn(db, d.path(), &extra))).collect();
        handles.into_iter().map(|h| h.join().expect("spawn thread")).collect()
    });
    started.try_into().expect("three replicas")
}

/// The test's own connection to the database, with its thread id (excluded
/// from the general log's count) and the day tables.
struct Admin {
    conn: mysql_async::Conn,
    own: u64,
    tables: Vec<String>,
}

/// Migrate, add three expired days to every day table (as a cluster that was
/// down a while would have them), then log every statement the server
/// receives to `mysql.general_log`.
async fn prepare(db: &str, today: Day) -> (Admin, Vec<Day>) {
    migrate(db);
    let mut conn = mysql_async::Conn::from_url(db).await.expect("connect");
    let own: u64 = conn.query_first("SELECT CONNECTION_ID()").await.expect("id").expect("row");
    conn.query_drop("SET SESSION lock_wait_timeout = 30").await.expect("session");
    let tables: Vec<String> = partitions(&mut conn).await.into_keys().collect();
    assert!(tables.len() >= 9, "day tables: {tables:?}");
    let expired: Vec<Day> = (1..=3).rev().map(|k| today.minus(RETENTION + k)).collect();
    for t in &tables {
        let defs: Vec<String> = expired.iter().map(|d| format!("PARTITION {} VALUES LESS THAN ({})", pname(*d), d.0 + 1)).collect();
        conn.query_drop(format!("ALTER TABLE {t} ADD PARTITION ({})", defs.join(", "))).await.expect("add expired days");
    }
    conn.query_drop("SET GLOBAL log_output = 'TABLE'").await.expect("log to table");
    conn.query_drop("TRUNCATE mysql.general_log").await.expect("empty the general log");
    conn.query_drop("SET GLOBAL general_log = 'ON'").await.expect("general log on");
    (Admin { conn, own, tables }, expired)
}

/// The export through `addr`, read while the load runs, page by page from its
/// last cursor, until `stop`: the rows and the last cursor.
fn export_reader(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(Vec<Value>, Option<String>)> {
    tokio::spawn(async move {
        let mut client = Client::new(addr);
        let (mut rows, mut cursor): (Vec<Value>, Option<String>) = (Vec::new(), None);
        while !stop.load(Ordering::SeqCst) {
            let page = export_page(&mut client, cursor.as_deref(), 700).await;
            if let Some(last) = page.last() {
                cursor = Some(last["cursor"].as_str().expect("cursor").to_owned());
            }
            rows.extend(page);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        (rows, cursor)
    })
}

/// One mint with the same `Idempotency-Key` sent to `first` and `second` at once.
async fn idempotent_pair(first: &Service, second: &Service, admin: &mut Admin) {
    let body = letter(1000);
    let (mut ca, mut cb) = (Client::new(first.addr), Client::new(second.addr));
    let (ra, rb) = tokio::join!(
        ca.mint(Some(API_KEY), &body, Some("same-key-on-two-replicas")),
        cb.mint(Some(API_KEY), &body, Some("same-key-on-two-replicas"))
    );
    assert!(ra.status.is_success() && rb.status.is_success(), "idempotent pair: {} {:?} / {} {:?}", ra.status, ra.body, rb.status, rb.body);
    let tokens = |v: Value| -> Vec<Value> {
        v["links"].as_array().expect("links").iter().map(|l| l["token"].clone()).chain([v["pixel"]["token"].clone()]).collect()
    };
    assert_eq!(tokens(ra.json()), tokens(rb.json()), "both replicas answer the same tokens");
    let letters: u64 = admin
        .conn
        .exec_first("SELECT COUNT(*) FROM letters WHERE recipient = ?", ("r1000@example.com",))
        .await
        .expect("count")
        .expect("row");
    assert_eq!(letters, 1, "the idempotent pair stored one letter");
}

/// The replicas' maintenance lock (`store::mysql::lock_name("partitions")`).
const MAINTENANCE_LOCK: &str = "CONCAT('linktrack.partitions.', LEFT(SHA1(DATABASE()), 24))";

/// Maintenance under the load: an expired day appears (today's partition
/// split in two) and the newest day goes missing; wait until a replica's
/// pass has fixed both. Returns the expired day. The test changes the
/// partitions under the replicas' own maintenance lock, as an operator
/// must: a pass that read `information_schema` during someone else's
/// `ALTER` could plan from a half-changed table.
async fn disturb_partitions(admin: &mut Admin, today: Day, log_of: &Service) -> Day {
    let newest = today.plus(AHEAD);
    let stale = today.minus(RETENTION + 10);
    let locked: Option<i64> = admin.conn.query_first(format!("SELECT GET_LOCK({MAINTENANCE_LOCK}, 30)")).await.expect("get lock");
    assert_eq!(locked, Some(1), "the maintenance lock within 30 s");
    for t in &admin.tables {
        admin
            .conn
            .query_drop(format!(
                "ALTER TABLE {t} REORGANIZE PARTITION {p} INTO (PARTITION {s} VALUES LESS THAN ({sb}), PARTITION {p} VALUES LESS THAN ({pb}))",
                p = pname(today),
                s = pname(stale),
                sb = stale.0 + 1,
                pb = today.0 + 1
            ))
            .await
            .expect("split today's partition");
        admin.conn.query_drop(format!("ALTER TABLE {t} DROP PARTITION {}", pname(newest))).await.expect("drop the newest partition");
    }
    admin.conn.query_drop(format!("DO RELEASE_LOCK({MAINTENANCE_LOCK})")).await.expect("release lock");
    let want: Vec<String> = std::iter::once("p_start".to_owned()).chain((0..=AHEAD).map(|k| pname(today.plus(k)))).collect();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let now = partitions(&mut admin.conn).await;
        if now.values().all(|ps| *ps == want) {
            return stale;
        }
        assert!(Instant::now() < deadline, "maintenance did not restore {want:?} within {CATCH_UP:?}: {now:?}\n{}", log_of.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every minted link resolves on every replica, to the URL it was minted
/// for; the number of hits answered.
async fn resolve_everywhere(replicas: &[&Service], links: &[(String, Option<String>)]) -> u64 {
    let mut hits = 0;
    for svc in replicas {
        let mut client = Client::new(svc.addr);
        for (path, url) in links {
            let r = client.get(path).await;
            match url {
                Some(url) => assert_eq!((r.status.as_u16(), r.header("location")), (302, url.as_str()), "{path} on {}", svc.addr),
                None => assert_eq!(r.status.as_u16(), 200, "{path} on {}", svc.addr),
            }
            hits += 1;
        }
    }
    hits
}

/// Wait until the store holds exactly `hits` event rows.
async fn wait_stored(db: &str, hits: u64) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let n = count_events(db).await;
        assert!(n <= hits, "{n} event rows for {hits} answered hits: stored twice");
        if n == hits {
            return;
        }
        assert!(Instant::now() < deadline, "{n} of {hits} events stored after {CATCH_UP:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows without their verdict and reason: the rollup may re-label a row
/// after a reader saw it (a letter burst, a near-mint hit), which is not a
/// change of rows.
fn identity(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().expect("row object");
            o.remove("verdict");
            o.remove("reason");
            r
        })
        .collect()
}

/// The stats once the rollup has counted every hit up to `last_hit_ms`.
async fn settled_stats(addr: std::net::SocketAddr, last_hit_ms: i64) -> Value {
    let mut client = Client::new(addr);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let r = authed_get(&mut client, &format!("/v1/mailings/{MAILING}/stats")).await;
        assert_eq!(r.status, 200, "stats: {:?}", r.body);
        let stats = r.json();
        let as_of = time::OffsetDateTime::parse(stats["as_of"].as_str().expect("as_of"), &time::format_description::well_known::Rfc3339)
            .expect("rfc3339");
        if i64::try_from(as_of.unix_timestamp_nanos() / 1_000_000).expect("ms") >= last_hit_ms {
            return stats;
        }
        assert!(Instant::now() < deadline, "the rollup did not reach the last hit within {CATCH_UP:?}: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each partition created once (the newest twice: at start and after the
/// test dropped it), each expired day dropped once, by the replicas, from
/// the general log; and no other partition change.
async fn assert_partition_changes(admin: &mut Admin, db_name: &str, today: Day, dropped: &[Day]) {
    admin.conn.query_drop("SET GLOBAL general_log = 'OFF'").await.expect("general log off");
    let changes = partition_changes(&mut admin.conn, db_name, admin.own).await;
    for t in &admin.tables {
        for k in 0..=AHEAD {
            let p = pname(today.plus(k));
            let adds = if k == AHEAD { 2 } else { 1 };
            assert_eq!(
                changes.get(&(t.clone(), p.clone())).map(|c| c.0),
                Some(adds),
                "{t}.{p} added (the newest twice: at start, after the test dropped it)"
            );
        }
        for d in dropped {
            let p = pname(*d);
            assert_eq!(changes.get(&(t.clone(), p.clone())).map(|c| c.1), Some(1), "{t}.{p} dropped once");
        }
    }
    let (adds, drops): (u32, u32) = changes.values().fold((0, 0), |(a, d), c| (a + c.0, d + c.1));
    let per_table = u32::try_from(admin.tables.len()).expect("tables");
    let dropped = u32::try_from(dropped.len()).expect("days");
    assert_eq!((adds, drops), (per_table * (u32::from(AHEAD) + 2), per_table * dropped), "no other partition changes: {changes:?}");
    admin.conn.query_drop("TRUNCATE mysql.general_log").await.expect("empty the general log");
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()).expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database() {
    let db = fresh_database("replicas").await;
    let db_name = url::Url::parse(&db).expect("db url").path().trim_start_matches('/').to_owned();
    let today = today();
    let (mut admin, expired) = prepare(&db, today).await;

    // Started at the same moment: their start-up maintenance passes race.
    let dirs: [TempDir; 3] = std::array::from_fn(|_| TempDir::new().expect("data dir"));
    let [minter, middle, exporter] = spawn_three(&db, &dirs);
    let replicas = [&minter, &middle, &exporter];

    // Mints through the first; redirects through all three; the export through the third.
    let first = mint(&minter, 0..30).await;
    let paths: Arc<Vec<String>> = Arc::new(first.iter().map(|(p, _)| p.clone()).collect());
    let loads: Vec<Load> = replicas.iter().map(|s| Load::start(s.addr, &paths, CONNECTIONS, LOAD_LIMIT)).collect();
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = export_reader(exporter.addr, stop_reader.clone());

    // Under the load: more mints, the idempotent pair, maintenance work.
    let second = mint(&minter, 30..60).await;
    idempotent_pair(&minter, &middle, &mut admin).await;
    let stale = disturb_partitions(&mut admin, today, &minter).await;
    tokio::time::sleep(LOAD_TAIL).await;

    let mut hits = 0;
    for (load, name) in loads.into_iter().zip(["minter", "middle", "exporter"]) {
        let r = load.stop().await;
        assert!(r.served > 0 && r.unexpected.is_empty() && r.failed == 0, "load on {name}: {r:?}");
        hits += r.served;
    }
    // The reader stops with the load: the hits below come after its last page.
    stop_reader.store(true, Ordering::SeqCst);
    let (during, cursor) = reader.await.expect("reader task");
    let links: Vec<(String, Option<String>)> = first.into_iter().chain(second).collect();
    hits += resolve_everywhere(&replicas, &links).await;
    let last_hit_ms = now_ms();
    wait_stored(&db, hits).await;

    // The export read during the load, resumed from its cursor, is the full export.
    let mut exports = Client::new(exporter.addr);
    let resumed = export_rest(&mut exports, cursor).await;
    let full = export_rest(&mut exports, None).await;
    assert_eq!(full.len() as u64, hits, "the full export holds every hit");
    assert!(!during.is_empty() && !resumed.is_empty(), "the export was cut during the load ({} then {})", during.len(), resumed.len());
    let cut = during.len();
    let (union, whole) = (identity(&during.into_iter().chain(resumed).collect::<Vec<_>>()), identity(&full));
    if let Some(i) = (0..union.len().min(whole.len())).find(|i| union[*i] != whole[*i]) {
        panic!("read during the load ({cut} rows) then resumed differs from the full export at row {i}: {} vs {}", union[i], whole[i]);
    }
    assert_eq!(union.len(), whole.len(), "read during the load ({cut} rows) then resumed, against the full export");

    // The stats (rolled up by whichever replica got there) equal a recount of
    // the export as it is then (verdicts are final once rolled up).
    let stats = settled_stats(middle.addr, last_hit_ms).await;
    // Every minted link is listed; the recount knows the clicked ones, so compare those.
    let mut want = brute_force(&export_rest(&mut exports, None).await, MAILING, &[]);
    want["as_of"] = stats["as_of"].clone();
    let mut stats = stats;
    let listed = stats["links"].as_array().map_or(0, Vec::len);
    stats["links"] = Value::Array(stats["links"].as_array().unwrap().iter().filter(|l| l["clicks"]["total"] != 0).cloned().collect());
    assert!(listed >= stats["links"].as_array().unwrap().len());
    assert_eq!(stats, want, "stats equal a brute-force recount of the exported events");

    let dropped: Vec<Day> = expired.into_iter().chain([stale]).collect();
    assert_partition_changes(&mut admin, &db_name, today, &dropped).await;
    let _ = admin.conn.disconnect().await;
    for svc in [minter, middle, exporter] {
        let (exit, log) = svc.terminate().await;
        assert!(exit.success(), "replica exit {exit}:\n{log}");
    }
}

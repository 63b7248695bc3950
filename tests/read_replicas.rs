//! Read replicas (issue 17, step 2) on a real MariaDB primary and replica
//! with GTID replication on loopback (`common::replication`): a replica that
//! stops applying never breaks a fresh link (the misses are retried on the
//! primary and counted), a killed replica's reads fail over to the primary
//! while `/readyz` reports it and stays ready, and an export read through a
//! lagging replica is the primary's export, row for row.
//!
//! Each test owns its pair (two private `mariadbd`) and two `linktrack
//! serve` processes: a minter on the primary alone (mints put links in the
//! minter's cache, so its redirects would never reach a store) and a reader
//! with `--read-database-url`. The tests take turns (one pair at a time) to
//! spare the machine. Every child is stopped by its own handle; all traffic
//! is on loopback and bounded in time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{Client, path_of};
use common::load::Load;
use common::process::{Service, count_events, metric};
use common::replication::Pair;
use common::server::{API_KEY, TOKEN_KEYS};
use http::Method;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use tempfile::TempDir;

const MAILING: &str = "read-replicas";
/// How long anything may take to settle (events stored, a replica state change).
const CATCH_UP: Duration = Duration::from_secs(40);

/// One pair at a time: six servers at once would starve a small machine.
static ONE_PAIR_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn pair() -> Pair {
    tokio::task::spawn_blocking(Pair::start).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn migrate(db: &str) {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_linktrack")).args(["migrate", "--database-url", db]).output().expect("run migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn events_flags() -> Vec<String> {
    ["--event-flush-ms", "100", "--ready-check-ms", "200", "--rollup-interval-ms", "200"].iter().map(|s| (*s).to_owned()).collect()
}

/// The minter: the primary alone.
fn minter(db: &str, dir: &TempDir) -> Service {
    let flags = events_flags();
    Service::spawn(db, dir.path(), &flags.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The reader: resolves, stats and exports on the replica, with a lag limit.
fn reader(db: &str, replica: &str, max_lag_secs: u64, dir: &TempDir) -> Service {
    let mut flags = events_flags();
    flags.extend(["--read-database-url".to_owned(), replica.to_owned(), "--read-max-lag-secs".to_owned(), max_lag_secs.to_string()]);
    Service::spawn(db, dir.path(), &flags.iter().map(String::as_str).collect::<Vec<_>>())
}

/// One letter of 4 click links and a pixel.
fn letter(i: usize) -> Value {
    let links: Vec<Value> = (0..4).map(|j| json!({"url": format!("https://shop.example/{i}/{j}")})).collect();
    json!({"mailing_id": MAILING, "recipient": format!("r{i}@example.com"), "links": links, "pixel": true})
}

/// Mint `range` letters through `svc`: each tracking path with its `Location` (`None` for a pixel).
async fn mint(svc: &Service, range: std::ops::Range<usize>) -> Vec<(String, Option<String>)> {
    let mut c = Client::new(svc.addr);
    let mut out = Vec::new();
    for i in range {
        let r = c.mint(Some(API_KEY), &letter(i), None).await;
        assert_eq!(r.status, 201, "mint {i}: {:?}", r.body);
        let v = r.json();
        for l in v["links"].as_array().expect("links") {
            out.push((path_of(l["tracking_url"].as_str().expect("tracking_url")), Some(l["url"].as_str().expect("url").to_owned())));
        }
        out.push((path_of(v["pixel"]["tracking_url"].as_str().expect("pixel")), None));
    }
    out
}

/// Every path answers what it was minted for, through `svc`.
async fn assert_resolve(svc: &Service, links: &[(String, Option<String>)]) {
    let mut client = Client::new(svc.addr);
    for (path, url) in links {
        let r = client.get(path).await;
        match url {
            Some(url) => assert_eq!((r.status.as_u16(), r.header("location")), (302, url.as_str()), "{path}:\n{}", svc.log()),
            None => assert_eq!(r.status.as_u16(), 200, "{path}:\n{}", svc.log()),
        }
    }
}

async fn get(svc: &Service, path: &str) -> common::client::Reply {
    let auth = format!("Bearer {API_KEY}");
    Client::new(svc.addr).send(Method::GET, path, &[("authorization", &auth)], Bytes::new()).await
}

async fn metrics(svc: &Service) -> String {
    let r = get(svc, "/metrics").await;
    assert_eq!(r.status, 200);
    String::from_utf8(r.body.to_vec()).expect("utf-8")
}

/// Poll `/readyz` until it answers ready with the replica in `state`, or fail with the last answer.
async fn wait_replica_state(svc: &Service, state: &str) -> Value {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let r = get(svc, "/readyz").await;
        let v: Value = serde_json::from_slice(&r.body).expect("readyz json");
        // A replica's state never makes the server unready: wait for both.
        if v["read_replicas"][0]["state"] == state && r.status == 200 {
            return v;
        }
        assert!(Instant::now() < deadline, "not ready with the replica {state} within {CATCH_UP:?}: {} {v}\n{}", r.status, svc.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows of the whole export after `after` (None: from the start) through `svc`, `page` rows per request.
async fn export_all(svc: &Service, page: usize) -> Vec<Value> {
    let mut c = Client::new(svc.addr);
    let auth = format!("Bearer {API_KEY}");
    let (mut rows, mut cursor): (Vec<Value>, Option<String>) = (Vec::new(), None);
    loop {
        let q = cursor.as_deref().map_or_else(|| format!("limit={page}"), |a| format!("after={a}&limit={page}"));
        let r = c.send(Method::GET, &format!("/v1/events?{q}"), &[("authorization", &auth)], Bytes::new()).await;
        assert_eq!(r.status, 200, "export: {:?}", r.body);
        let got: Vec<Value> =
            std::str::from_utf8(&r.body).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("ndjson row")).collect();
        let Some(last) = got.last() else { return rows };
        cursor = Some(last["cursor"].as_str().expect("cursor").to_owned());
        rows.extend(got);
    }
}

/// Rows without their verdict and reason: the rollup re-labels rows on the
/// primary, and a lagging replica shows the earlier label of a row it has.
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

/// Every path answered at least once, no failure, nothing unexpected (the first few shown).
fn assert_clean(report: &common::load::LoadReport, paths: usize) {
    let first: Vec<_> = report.unexpected.iter().take(3).collect();
    assert!(
        report.served >= paths as u64 && report.failed == 0 && report.unexpected.is_empty(),
        "load on the reader: {} served, {} failed, {} unexpected, first {first:?}",
        report.served,
        report.failed,
        report.unexpected.len()
    );
}

async fn count(url: &str, sql: &str) -> u64 {
    let mut c = mysql_async::Conn::from_url(url).await.expect("connect");
    let n: Option<u64> = c.query_first(sql).await.expect("count");
    let _ = c.disconnect().await;
    n.unwrap_or(0)
}

async fn wait_events(db: &str, n: u64) {
    let deadline = Instant::now() + CATCH_UP;
    while count_events(db).await < n {
        assert!(Instant::now() < deadline, "fewer than {n} events stored within {CATCH_UP:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_never_breaks_a_fresh_link() {
    let _turn = ONE_PAIR_AT_A_TIME.lock().await;
    let pair = pair().await;
    let (db, replica_db) = pair.fresh_database("rr_lag").await;
    migrate(&db);
    pair.wait_caught_up().await;
    let dirs: [TempDir; 2] = std::array::from_fn(|_| TempDir::new().expect("data dir"));
    let minter = minter(&db, &dirs[0]);
    // A lag limit far above the test's length: the stopped replica stays in rotation.
    let reader = reader(&db, &replica_db, 600, &dirs[1]);
    wait_replica_state(&reader, "serving").await;

    pair.stop_applying().await;
    let links = mint(&minter, 0..20).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM letters").await, 20);
    assert_eq!(count(&replica_db, "SELECT COUNT(*) FROM letters").await, 0, "the replica has not applied the mints");

    // Every fresh link redirects through the replica-routed reader, under a load, with no failure.
    let paths: Arc<Vec<String>> = Arc::new(links.iter().map(|(p, _)| p.clone()).collect());
    let load = Load::start(reader.addr, &paths, 4, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    assert_clean(&report, paths.len());
    assert_resolve(&reader, &links).await;

    // A token of today that was never minted: a real 404, after the primary also missed.
    let ring = linktrack::token::KeyRing::parse(TOKEN_KEYS).expect("keys");
    let mut forged = Vec::new();
    linktrack::token::generate_v2(&ring, linktrack::day::Clock::System.today(), 1 << 40, 1, &mut forged);
    let unknown = format!("/c/{}", forged[0].0.as_str());
    assert_eq!(Client::new(reader.addr).get(&unknown).await.status, 404);
    assert_eq!(Client::new(reader.addr).get(&unknown).await.status, 404, "again, from the negative cache");

    let m = metrics(&reader).await;
    // Each link was resolved once (then cached): every one missed on the replica and was found on the primary.
    // (Two load connections may resolve one link at the same moment, so at least once each.)
    let found = metric(&m, "linktrack_read_primary_retries_total{found=\"true\"}");
    assert!(found >= links.len() as u64, "{found} primary retries for {} fresh links: {m}", links.len());
    assert_eq!(metric(&m, "linktrack_read_primary_retries_total{found=\"false\"}"), 1, "the unknown token, once: {m}");
    let label = format!("{{replica=\"127.0.0.1:{}\"}}", pair.replica().port());
    assert_eq!(metric(&m, &format!("linktrack_read_replica_up{label}")), 1, "the lagging replica stayed in rotation: {m}");
    assert!(metric(&m, &format!("linktrack_read_replica_reads_total{label}")) > found, "every resolve asked the replica first: {m}");
    assert_eq!(metric(&m, "linktrack_read_primary_fallbacks_total"), 0, "{m}");
    pair.resume_applying().await;
    for svc in [minter, reader] {
        let (exit, log) = svc.terminate().await;
        assert!(exit.success(), "exit {exit}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_fails_over_to_the_primary() {
    let _turn = ONE_PAIR_AT_A_TIME.lock().await;
    let mut pair = pair().await;
    let (db, replica_db) = pair.fresh_database("rr_kill").await;
    migrate(&db);
    pair.wait_caught_up().await;
    let dirs: [TempDir; 2] = std::array::from_fn(|_| TempDir::new().expect("data dir"));
    let minter = minter(&db, &dirs[0]);
    let reader = reader(&db, &replica_db, 30, &dirs[1]);
    wait_replica_state(&reader, "serving").await;
    let label = format!("{{replica=\"127.0.0.1:{}\"}}", pair.replica().port());

    // Before: reads on the replica.
    let before = mint(&minter, 0..10).await;
    pair.wait_caught_up().await;
    assert_resolve(&reader, &before).await;
    let stats = get(&reader, &format!("/v1/mailings/{MAILING}/stats")).await;
    assert_eq!(stats.status, 200, "{:?}", stats.body);
    let m = metrics(&reader).await;
    let on_replica = metric(&m, &format!("linktrack_read_replica_reads_total{label}"));
    assert!(on_replica >= before.len() as u64, "resolves and stats read on the replica: {m}");

    // Kill the replica: new links still redirect (its pooled connections fail, the reads go to the primary).
    pair.kill_replica();
    let after = mint(&minter, 10..20).await;
    let paths: Arc<Vec<String>> = Arc::new(after.iter().map(|(p, _)| p.clone()).collect());
    let load = Load::start(reader.addr, &paths, 4, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    assert_clean(&report, paths.len());
    assert_resolve(&reader, &after).await;
    let stats = get(&reader, &format!("/v1/mailings/{MAILING}/stats")).await;
    assert_eq!(stats.status, 200, "stats fail over too: {:?}", stats.body);

    // Readiness says so, and stays ready: the primary serves.
    let ready = wait_replica_state(&reader, "down").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let notes = ready["notes"].as_array().expect("notes while a replica is down");
    assert!(notes.len() == 1 && notes[0].as_str().expect("note").contains("its reads go to the primary"), "{ready}");
    let m = metrics(&reader).await;
    assert_eq!(metric(&m, &format!("linktrack_read_replica_up{label}")), 0, "{m}");
    assert!(metric(&m, "linktrack_read_primary_fallbacks_total") >= after.len() as u64, "{m}");
    assert_eq!(metric(&m, &format!("linktrack_read_replica_reads_total{label}")), on_replica, "no read reached the dead replica: {m}");
    for svc in [minter, reader] {
        let (exit, log) = svc.terminate().await;
        assert!(exit.success(), "exit {exit}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_through_a_lagging_replica_is_complete() {
    let _turn = ONE_PAIR_AT_A_TIME.lock().await;
    let pair = pair().await;
    let (db, replica_db) = pair.fresh_database("rr_export").await;
    migrate(&db);
    pair.wait_caught_up().await;
    let dirs: [TempDir; 2] = std::array::from_fn(|_| TempDir::new().expect("data dir"));
    let minter = minter(&db, &dirs[0]);
    let reader = reader(&db, &replica_db, 600, &dirs[1]);
    wait_replica_state(&reader, "serving").await;

    // Events the replica has: clicks through the minter, stored, replicated.
    let links = mint(&minter, 0..12).await;
    assert_resolve(&minter, &links[..30]).await;
    wait_events(&db, 30).await;
    pair.wait_caught_up().await;
    // Events it lacks: the replica stops applying, then more clicks commit on the primary.
    pair.stop_applying().await;
    assert_resolve(&minter, &links[30..]).await;
    assert_resolve(&minter, &links[..10]).await;
    let total = (links.len() + 10) as u64;
    wait_events(&db, total).await;
    assert_eq!(count(&replica_db, "SELECT COUNT(*) FROM events").await, 30, "the replica lacks the later events");

    // Pages of 7: several come back full from the replica, then the short one is completed from the primary.
    let through_replica = export_all(&reader, 7).await;
    let from_primary = export_all(&minter, 7).await;
    assert_eq!(from_primary.len() as u64, total, "the primary's export holds every event");
    assert_eq!(through_replica.len(), from_primary.len(), "rows through the lagging replica against the primary's");
    let (a, b) = (identity(&through_replica), identity(&from_primary));
    if let Some(i) = (0..a.len()).find(|i| a[*i] != b[*i]) {
        panic!("the export through the lagging replica differs from the primary's at row {i}: {} vs {}", a[i], b[i]);
    }
    let m = metrics(&reader).await;
    let label = format!("{{replica=\"127.0.0.1:{}\"}}", pair.replica().port());
    assert!(metric(&m, &format!("linktrack_read_replica_reads_total{label}")) >= 5, "full pages were read on the replica: {m}");
    assert!(metric(&m, "linktrack_read_export_topups_total") >= 1, "the tail came from the primary: {m}");
    pair.resume_applying().await;
    for svc in [minter, reader] {
        let (exit, log) = svc.terminate().await;
        assert!(exit.success(), "exit {exit}:\n{log}");
    }
}

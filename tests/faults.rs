//! Fault tests on the real `linktrack` binary under redirect load: a MariaDB
//! outage (cut by a TCP proxy), SIGTERM, kill -9, and a torn spool tail.
//! Each counts the redirects the load was answered and the event rows the
//! store holds afterwards, read straight from the database (or the SQLite
//! day files), not through the service.
//!
//! All load is on loopback, bounded in connections and time, and every
//! child process is stopped by its own handle.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{Client, path_of};
use common::load::{Load, LoadReport};
use common::mariadb::fresh_database;
use common::process::{Service, count_events, metric};
use common::proxy::{Proxy, upstream_of};
use common::server::API_KEY;
use serde_json::json;
use tempfile::TempDir;

/// Load connections; also the most answers that can be in flight at a kill.
const CONNECTIONS: usize = 8;
/// Safety limit for every load, whatever the test does.
const LOAD_LIMIT: Duration = Duration::from_secs(60);
/// How long to wait for the store to catch up with what the load was answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags that make the event path react within a test's time frame (plus
/// `--event-flush-ms`, which [`with`] adds).
const FAST_EVENTS: &[&str] =
    &["--event-retry-ms", "200", "--db-statement-timeout-ms", "1000", "--db-acquire-timeout-ms", "500", "--rollup-interval-ms", "200"];

/// The flush interval of every test but the SIGTERM one.
const FLUSH_MS: &str = "250";

/// [`FAST_EVENTS`] with this flush interval.
fn with(flush_ms: &'static str) -> Vec<&'static str> {
    FAST_EVENTS.iter().copied().chain(["--event-flush-ms", flush_ms]).collect()
}

/// Mint `letters` letters of 4 links plus a pixel; return every tracking path.
async fn mint_paths(svc: &Service, letters: usize) -> Arc<Vec<String>> {
    let mut c = Client::new(svc.addr);
    let mut paths = Vec::new();
    for i in 0..letters {
        let links: Vec<_> = (0..4).map(|j| json!({"url": format!("https://shop.example/{i}/{j}")})).collect();
        let body = json!({"mailing_id": "faults", "recipient": format!("r{i}@example.com"), "links": links, "pixel": true});
        let r = c.mint(Some(API_KEY), &body, None).await;
        assert_eq!(r.status, 201, "mint: {:?}", r.body);
        let v = r.json();
        for l in v["links"].as_array().expect("links") {
            paths.push(path_of(l["tracking_url"].as_str().expect("tracking_url")));
        }
        paths.push(path_of(v["pixel"]["tracking_url"].as_str().expect("pixel")));
    }
    Arc::new(paths)
}

async fn metrics(svc: &Service) -> String {
    let r = Client::new(svc.addr).get("/metrics").await;
    assert_eq!(r.status, 200);
    String::from_utf8(r.body.to_vec()).expect("utf-8 metrics")
}

/// Wait until the store holds `want` event rows (and no more), or fail.
async fn wait_for_rows(db_url: &str, want: u64, svc: Option<&Service>) -> u64 {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let n = count_events(db_url).await;
        assert!(n <= want, "{n} event rows for {want} answered hits: events were stored twice");
        if n == want {
            return n;
        }
        if Instant::now() > deadline {
            let log = svc.map(Service::log).unwrap_or_default();
            panic!("after {DRAIN_TIMEOUT:?} the store holds {n} event rows, want {want}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_clean(report: &LoadReport, what: &str) {
    assert!(report.served > 0, "{what}: the load was never answered");
    assert!(report.unexpected.is_empty(), "{what}: {} unexpected answers, first: {:?}", report.unexpected.len(), report.unexpected.first());
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("db").join("linktrack.db").display())
}

fn spool_dir(data: &TempDir) -> std::path::PathBuf {
    data.path().join("spool")
}

/// The newest spool segment file.
fn newest_segment(spool: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(spool)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap_or_else(|| panic!("no spool segment in {}", spool.display()))
}

/// A fresh database behind a proxy that can cut it, and a data dir for the service.
struct Proxied {
    db: String,
    proxy: Proxy,
    data: TempDir,
}

impl Proxied {
    async fn new(hint: &str) -> Proxied {
        let db = fresh_database(hint).await;
        let proxy = Proxy::start(upstream_of(&db)).await;
        Proxied { db, proxy, data: TempDir::new().expect("data dir") }
    }

    /// `linktrack serve` reaching the database through the proxy.
    fn spawn(&self) -> Service {
        Service::spawn(&self.proxy.url_through(&self.db), self.data.path(), &with(FLUSH_MS))
    }

    /// Serve `letters` letters under redirect load, cut the database after
    /// `before`, and keep the load going `during` the cut.
    async fn load_through_a_cut(&self, letters: usize, before: Duration, during: Duration) -> (Service, Load) {
        let svc = self.spawn();
        let paths = mint_paths(&svc, letters).await;
        let load = Load::start(svc.addr, &paths, CONNECTIONS, LOAD_LIMIT);
        tokio::time::sleep(before).await;
        self.proxy.cut();
        tokio::time::sleep(during).await;
        (svc, load)
    }
}

// ---- MariaDB outage ----------------------------------------------------------

/// Cut the database for 3 s in the middle of a redirect load: every cached
/// redirect is still answered, events go to the spool, and once the database
/// is back the store holds exactly one row per answered hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_keeps_redirecting_and_loses_no_event() {
    let p = Proxied::new("outage").await;
    let (db, proxy) = (&p.db, &p.proxy);
    let (svc, load) = p.load_through_a_cut(40, Duration::from_millis(1500), Duration::from_secs(3)).await;
    let during = metrics(&svc).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;

    assert_clean(&report, "outage");
    assert_eq!(report.failed, 0, "requests without an answer during the outage");
    assert!(metric(&during, "linktrack_events_spooled_total") > 0, "the outage never reached the event writer:\n{during}");
    assert!(proxy.refused() > 0, "the service never tried the database while it was cut");
    let rows = wait_for_rows(db, report.served, Some(&svc)).await;
    let after = metrics(&svc).await;
    assert_eq!(metric(&after, "linktrack_events_dropped_total"), 0);
    assert_eq!(metric(&after, "linktrack_spool_bytes"), 0, "spool not drained:\n{after}");
    // Not equal: a batch whose COMMIT succeeded but whose reply the cut lost
    // is spooled, then found already stored on replay and not counted again.
    assert!(metric(&after, "linktrack_events_stored_total") <= rows);
    eprintln!(
        "outage: {} redirects answered ({} during the cut's metrics snapshot spooled), {rows} event rows, {} connections refused while cut",
        report.served,
        metric(&during, "linktrack_events_spooled_total"),
        proxy.refused()
    );
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
    assert_eq!(count_events(db).await, report.served);
}

// ---- SIGTERM -------------------------------------------------------------------

/// SIGTERM in the middle of a redirect load: the process drains, flushes its
/// queue and exits 0, and the store holds exactly one row per answered hit.
async fn sigterm_under_load_loses_nothing(db: &str, data: &TempDir) {
    let svc = Service::spawn(db, data.path(), &with("5000"));
    let paths = mint_paths(&svc, 20).await;
    let load = Load::start(svc.addr, &paths, CONNECTIONS, LOAD_LIMIT);
    // A 5 s flush interval: everything answered in the last seconds is still queued at the signal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, log) = svc.terminate().await;
    let report = load.stop().await;
    assert!(status.success(), "exit {status}:\n{log}");
    assert_clean(&report, "sigterm");
    assert!(log.contains("event writer stopped"), "no writer flush in the log:\n{log}");
    let rows = count_events(db).await;
    eprintln!("sigterm: {} redirects answered, {rows} event rows after exit", report.served);
    assert_eq!(rows, report.served, "events lost or doubled across SIGTERM:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_mysql() {
    let db = fresh_database("sigterm").await;
    sigterm_under_load_loses_nothing(&db, &TempDir::new().expect("data dir")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_sqlite() {
    let data = TempDir::new().expect("data dir");
    sigterm_under_load_loses_nothing(&sqlite_url(&data), &data).await;
}

/// A SIGTERM during start-up (after migrations and partitions, before the
/// server's first poll of its shutdown future) still shuts it down cleanly:
/// the handlers are installed before anything else. Before that fix the
/// process died of the signal here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_exits_cleanly() {
    let data = TempDir::new().expect("data dir");
    let db = sqlite_url(&data);
    for (attempt, at) in ["partitions ready", "serving", "partitions ready"].into_iter().enumerate() {
        let (status, log) = Service::terminate_during_start(&db, data.path(), &with(FLUSH_MS), at).await;
        assert!(status.success(), "attempt {attempt} (SIGTERM at {at:?}): exit {status}:\n{log}");
        assert!(log.contains("\"stopped\""), "attempt {attempt}: no clean stop in the log:\n{log}");
    }
}

// ---- kill -9 -------------------------------------------------------------------

/// The answers of the last `window` before `at` bound what a kill may lose.
fn loss_bound(report: &LoadReport, at: Instant, window: Duration) -> u64 {
    report.served_between(at.checked_sub(window).expect("window"), at)
}

/// `FLUSH_MS` as a duration.
const FLUSH: Duration = Duration::from_millis(250);
/// One flush interval plus slack for the batch whose write is in flight when
/// the kill lands (its hits were gathered in the interval before).
const LOSS_WINDOW: Duration = Duration::from_secs(1);

/// kill -9 under load while the database is cut, so batches sit in the spool;
/// restart with the database back: the spool replays, and the store ends up
/// with every answered hit except at most those of the last flush window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_an_outage_replays_the_spool_and_loses_one_window_at_most() {
    let p = Proxied::new("kill9").await;
    let (db, proxy) = (&p.db, &p.proxy);
    let (svc, load) = p.load_through_a_cut(20, Duration::from_secs(1), Duration::from_secs(2)).await;
    let spooled = metric(&metrics(&svc).await, "linktrack_events_spooled_total");
    let killed_at = tokio::task::spawn_blocking(move || svc.kill9()).await.expect("kill");
    let report = load.stop().await;
    assert_clean(&report, "kill -9");
    assert!(spooled > 0, "nothing was spooled before the kill");

    proxy.restore();
    let svc = p.spawn();
    // Let the replay finish, then let the count settle.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while metric(&metrics(&svc).await, "linktrack_spool_bytes") > 0 {
        assert!(Instant::now() < deadline, "spool not replayed:\n{}", svc.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metrics(&svc).await;
    let replayed = metric(&m, "linktrack_events_replayed_total");
    let rows = count_events(db).await;
    let bound = loss_bound(&report, killed_at, LOSS_WINDOW);
    let lost = report.served.saturating_sub(rows);
    eprintln!(
        "kill -9: {} answered, {spooled} spooled before the kill, {replayed} replayed after restart, {rows} rows, lost {lost}, \
         answers in the last {LOSS_WINDOW:?}: {bound}, in the last flush interval: {}",
        report.served,
        loss_bound(&report, killed_at, FLUSH)
    );
    assert!(replayed > 0, "the restarted service replayed nothing");
    // The kill may land inside a spool append and tear that one record.
    assert!(metric(&m, "linktrack_spool_corrupt_records_total") <= 1);
    // Answers still in flight at the kill may have been recorded without reaching the client.
    assert!(rows <= report.served + CONNECTIONS as u64, "{rows} rows for {} answers: stored twice", report.served);
    assert!(lost <= bound, "lost {lost} events, more than the {bound} answered in the last flush window");
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
}

/// kill -9 under load on the embedded store: the loss is bounded by one flush window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_on_the_embedded_store_loses_one_window_at_most() {
    let data = TempDir::new().expect("data dir");
    let db = sqlite_url(&data);
    let svc = Service::spawn(&db, data.path(), &with(FLUSH_MS));
    let paths = mint_paths(&svc, 20).await;
    let load = Load::start(svc.addr, &paths, CONNECTIONS, LOAD_LIMIT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = tokio::task::spawn_blocking(move || svc.kill9()).await.expect("kill");
    let report = load.stop().await;
    assert_clean(&report, "kill -9");
    let rows = count_events(&db).await;
    let bound = loss_bound(&report, killed_at, LOSS_WINDOW);
    let lost = report.served.saturating_sub(rows);
    eprintln!(
        "kill -9 (embedded): {} answered, {rows} rows, lost {lost}, answers in the last {LOSS_WINDOW:?}: {bound}, in the last flush interval: {}",
        report.served,
        loss_bound(&report, killed_at, FLUSH)
    );
    assert!(rows <= report.served + CONNECTIONS as u64, "{rows} rows for {} answers: stored twice", report.served);
    assert!(lost <= bound, "lost {lost} events, more than the {bound} answered in the last flush window");
    // The store is intact after the kill: it starts and serves again.
    let svc = Service::spawn(&db, data.path(), &with(FLUSH_MS));
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
}

// ---- torn spool tail -------------------------------------------------------------

/// Events spooled during an outage, then the newest spool record is torn (as
/// by a crash mid-append). The service starts anyway, skips and counts the
/// torn record, and replays every other batch exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_spool_tail_is_skipped_counted_and_the_rest_replays() {
    let p = Proxied::new("spool").await;
    let (db, proxy, data) = (&p.db, &p.proxy, &p.data);
    let svc = p.spawn();
    let paths = mint_paths(&svc, 10).await;

    proxy.cut();
    let load = Load::start(svc.addr, &paths, 4, LOAD_LIMIT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    assert_clean(&report, "outage load");
    wait_spooled(&svc, report.served).await;
    // Three more hits, well inside one flush window: one batch, the newest record.
    let mut c = Client::new(svc.addr);
    for p in paths.iter().take(3) {
        assert_eq!(c.get(p).await.status, 302);
    }
    wait_spooled(&svc, report.served + 3).await;
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");

    let seg = newest_segment(&spool_dir(data));
    let len = std::fs::metadata(&seg).expect("segment").len();
    std::fs::OpenOptions::new().write(true).open(&seg).expect("open segment").set_len(len - 7).expect("tear the tail");

    proxy.restore();
    let svc = p.spawn();
    let rows = wait_for_rows(db, report.served, Some(&svc)).await;
    // The counter moves just after the commit that made the rows visible: poll it briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut m = metrics(&svc).await;
    while metric(&m, "linktrack_events_replayed_total") < rows && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = metrics(&svc).await;
    }
    assert_eq!(metric(&m, "linktrack_spool_corrupt_records_total"), 1, "{m}");
    assert_eq!(metric(&m, "linktrack_events_replayed_total"), rows);
    assert!(svc.log().contains("truncating the torn tail of the spool"), "{}", svc.log());
    assert_eq!(Client::new(svc.addr).get(&paths[0]).await.status, 302, "the restarted service serves");
    eprintln!("torn spool: {} spooled, last batch of 3 torn, {rows} replayed exactly once", report.served + 3);
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
}

/// Wait until the service reports `want` events spooled in all.
async fn wait_spooled(svc: &Service, want: u64) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let m = metrics(svc).await;
        if metric(&m, "linktrack_events_spooled_total") == want {
            return;
        }
        assert!(Instant::now() < deadline, "spooled never reached {want}:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /readyz` until its status is `want` (or fail after 30 s); the last body.
async fn wait_ready(c: &mut Client, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.get("/readyz").await;
        if r.status.as_u16() == want {
            assert_eq!(r.header("cache-control"), "no-store");
            return r.json();
        }
        assert!(Instant::now() < deadline, "/readyz stayed {} ({:?}), wanted {want}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `linktrack health --url` against a running server: its exit status and output.
fn health(addr: std::net::SocketAddr) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["health", "--url", &format!("http://{addr}")])
        .output()
        .expect("run linktrack health");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Liveness and readiness part during a MariaDB outage: `/healthz` stays 200
/// (cached redirects still work), `/readyz` turns 503 and says why once the
/// outage outlasts the grace period, `linktrack health` exits 1, and both
/// come back when the database does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_database_outage() {
    let p = Proxied::new("readyz").await;
    let mut args = with(FLUSH_MS);
    args.extend(["--ready-check-ms", "200", "--ready-db-grace-ms", "600"]);
    let svc = Service::spawn(&p.proxy.url_through(&p.db), p.data.path(), &args);
    let mut c = Client::new(svc.addr);
    assert_eq!(wait_ready(&mut c, 200).await["status"], "ready");
    let (ok, out) = health(svc.addr);
    assert!(ok, "health while ready: {out}");

    p.proxy.cut();
    let body = wait_ready(&mut c, 503).await;
    assert_eq!(body["status"], "not_ready");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("database unreachable"), "{body}");
    assert_eq!(c.get("/healthz").await.status, 200, "still live");
    let (ok, out) = health(svc.addr);
    assert!(!ok && out.contains("not ready") && out.contains("database unreachable"), "health during the outage: {out}");

    p.proxy.restore();
    assert_eq!(wait_ready(&mut c, 200).await["status"], "ready");
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
}

// ---- rate-limited log lines ------------------------------------------------------

/// Every JSON log line of `log` whose message is `message`: its `suppressed` field.
fn suppressed_counts(log: &str, message: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"]["suppressed"].as_u64().unwrap_or_else(|| panic!("no suppressed count in {v}")))
        .collect()
}

/// A MariaDB outage fails every stats request the same way. The log says so
/// once per `--log-repeat-ms` rather than once per request, and the lines
/// account for every failure: lines plus their `suppressed` counts equal the
/// failed requests exactly (a last request after the interval collects the
/// count still held back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_logs_its_fault_once_per_interval_with_the_suppressed_count() {
    const MESSAGE: &str = "store unavailable";
    const INTERVAL: Duration = Duration::from_secs(1);
    let p = Proxied::new("loglimit").await;
    let mut args = with(FLUSH_MS);
    args.extend(["--log-repeat-ms", "1000", "--api-rate-per-key", "0"]);
    let svc = Service::spawn(&p.proxy.url_through(&p.db), p.data.path(), &args);
    p.proxy.cut();
    let started = Instant::now();
    let stats_path = "/v1/mailings/faults/stats";
    let auth = format!("Bearer {API_KEY}");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, auth) = (svc.addr, auth.clone());
            tokio::spawn(async move {
                let mut c = Client::new(addr);
                let mut failed = 0u64;
                while started.elapsed() < Duration::from_millis(3500) {
                    let r = c.send(hyper::Method::GET, stats_path, &[("authorization", &auth)], "").await;
                    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (503, Some("unavailable")), "{:?}", r.body);
                    failed += 1;
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await.expect("worker");
    }
    let elapsed = started.elapsed();
    // One more failure after a quiet interval: its line carries what is still held back.
    tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
    let r = Client::new(svc.addr).send(hyper::Method::GET, stats_path, &[("authorization", &auth)], "").await;
    assert_eq!(r.status, 503);
    failed += 1;

    // The log is written by a background writer: give the last line a moment to arrive.
    let mut counts = suppressed_counts(&svc.log(), MESSAGE);
    for _ in 0..50 {
        if counts.len() as u64 + counts.iter().sum::<u64>() >= failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = suppressed_counts(&svc.log(), MESSAGE);
    }
    let lines = counts.len() as u64;
    let held_back: u64 = counts.iter().sum();
    eprintln!("log limit: {failed} failed requests in {elapsed:?} gave {lines} {MESSAGE:?} lines, suppressed counts {counts:?}");
    let intervals = elapsed.as_millis().div_ceil(INTERVAL.as_millis()) as u64;
    assert!(lines <= intervals + 2, "{lines} lines in {elapsed:?} at one per {INTERVAL:?}: {counts:?}");
    assert!(failed >= 10 * lines, "too few failures ({failed}) to show the limit: {lines} lines");
    assert!(counts.last().is_some_and(|&n| n > 0), "the last line carries no count: {counts:?}");
    assert_eq!(lines + held_back, failed, "lines plus suppressed counts must account for every failure: {counts:?}");
    p.proxy.restore();
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
}

//! No secret and no recipient data in the logs. The real binary runs with
//! JSON logs at `RUST_LOG=trace` (every line the service and its crates can
//! write) through a full session: mints, clicks, opens, a scanner, exports
//! in both formats, stats, bad requests, wrong API keys, and on MariaDB an
//! outage cut by the proxy (failed mints, stats and exports, pixels answered
//! without the store). Then the captured log must contain no recipient
//! address, no meta value, no API key (right or wrong), no token key and no
//! full token. Each session also proves the log is the verbose one and saw
//! the faults, so an empty or quiet log cannot pass.

mod common;

use std::time::{Duration, Instant};

use common::client::{Client, path_of};
use common::mariadb::fresh_database;
use common::process::Service;
use common::proxy::{Proxy, upstream_of};
use common::server::{API_KEY, TOKEN_KEYS};
use hyper::Method;
use serde_json::json;
use tempfile::TempDir;

/// A key that is not the service's: failed authentications must not log it either.
const WRONG_KEY: &str = "wrong-api-key-5f1e9c2d77";
/// Letters minted per session.
const LETTERS: usize = 6;

/// Everything the log must never contain.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }

    fn assert_absent_from(&self, log: &str) {
        for s in &self.0 {
            if let Some(line) = log.lines().find(|l| l.contains(s.as_str())) {
                panic!("the log holds {s:?}:\n{line}");
            }
        }
    }
}

fn recipient(i: usize) -> String {
    format!("pii.recipient.{i}.q7x@mail.example")
}

fn auth(key: &str) -> String {
    format!("Bearer {key}")
}

async fn get_with(c: &mut Client, path: &str, key: &str) -> common::client::Reply {
    c.send(Method::GET, path, &[("authorization", &auth(key))], "").await
}

/// Mint one letter; the tokens go into `secrets`. `None` when the mint is refused.
async fn mint_letter(c: &mut Client, i: usize, secrets: &mut Secrets) -> Option<Vec<String>> {
    let rcpt = recipient(i);
    let meta = format!("meta-value-{i}-zz81");
    secrets.add(&rcpt);
    secrets.add(&meta);
    let body = json!({
        "mailing_id": "pii-mailing",
        "recipient": rcpt,
        "meta": {"crm_id": meta},
        "links": [{"url": format!("https://shop.example/p/{i}")}, {"url": "https://shop.example/sale"}],
        "pixel": true,
    });
    let r = c.mint(Some(API_KEY), &body, None).await;
    if r.status != 201 {
        return None;
    }
    let v = r.json();
    let mut paths = Vec::new();
    for l in v["links"].as_array().expect("links") {
        secrets.add(l["token"].as_str().expect("token"));
        paths.push(path_of(l["tracking_url"].as_str().expect("tracking_url")));
    }
    secrets.add(v["pixel"]["token"].as_str().expect("pixel token"));
    paths.push(path_of(v["pixel"]["tracking_url"].as_str().expect("pixel url")));
    Some(paths)
}

/// Requests the API must refuse, each carrying recipient data or a key.
async fn bad_requests(c: &mut Client, secrets: &mut Secrets) {
    let rcpt = recipient(900);
    secrets.add(&rcpt);
    let bad_url = json!({"mailing_id": "pii-mailing", "recipient": rcpt, "links": [{"url": "https://user:pw@evil.example/"}]});
    assert_eq!(c.mint(Some(API_KEY), &bad_url, None).await.status, 422);
    let blank = json!({"mailing_id": " ", "recipient": rcpt, "pixel": true});
    assert_eq!(c.mint(Some(API_KEY), &blank, None).await.status, 422);
    let not_json = format!("{{\"recipient\": \"{rcpt}\", ");
    let r = c.send(Method::POST, "/v1/links", &[("authorization", &auth(API_KEY)), ("content-type", "application/json")], not_json).await;
    assert_eq!(r.status, 400);
    let good = json!({"mailing_id": "pii-mailing", "recipient": rcpt, "pixel": true});
    assert_eq!(c.mint(Some(WRONG_KEY), &good, None).await.status, 401);
    assert_eq!(get_with(c, "/v1/events", WRONG_KEY).await.status, 401);
    assert_eq!(get_with(c, "/v1/events?after=zz", API_KEY).await.status, 400);
    assert_eq!(get_with(c, "/v1/events?limit=1&limit=2", API_KEY).await.status, 400);
}

/// Clicks, opens, a scanner's HEAD and bot GET, and forged tokens.
async fn hits(c: &mut Client, paths: &[String]) {
    for p in paths {
        let want = if p.starts_with("/o/") { 200 } else { 302 };
        assert_eq!(c.get(p).await.status, want, "{p}");
        let r = c.send(Method::HEAD, p, &[("user-agent", "Barracuda Sentinel (EE)")], "").await;
        assert_eq!(r.status, want, "{p}");
        let r = c.send(Method::GET, p, &[("user-agent", "Googlebot/2.1"), ("accept", "text/html")], "").await;
        assert_eq!(r.status, want, "{p}");
    }
    let forged = format!("{}x", &paths[0][..paths[0].len() - 1]);
    assert_eq!(c.get(&forged).await.status, 404);
    assert_eq!(c.send(Method::GET, &forged, &[("accept", "text/html")], "").await.status, 404);
}

/// Export both formats and read the stats, until the rollup has counted something.
async fn reads(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ndjson = get_with(c, "/v1/events?format=ndjson", API_KEY).await;
        assert_eq!(ndjson.status, 200);
        let csv = get_with(c, "/v1/events?format=csv&mailing_id=pii-mailing", API_KEY).await;
        assert_eq!(csv.status, 200);
        let stats = get_with(c, "/v1/mailings/pii-mailing/stats", API_KEY).await;
        assert_eq!(stats.status, 200);
        // The export really carried the recipients: what the log must not.
        if String::from_utf8_lossy(&ndjson.body).contains(&recipient(0)) && stats.json().to_string().contains("human") {
            return;
        }
        assert!(Instant::now() < deadline, "events never reached the export: {:?}", ndjson.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The secrets of the service itself: the API key and each token key's secret.
fn service_secrets(secrets: &mut Secrets) {
    secrets.add(API_KEY);
    secrets.add(WRONG_KEY);
    for key in TOKEN_KEYS.split(',') {
        let (_, secret) = key.split_once(':').expect("id:secret");
        secrets.add(secret);
    }
}

/// Flags: events and the rollup quick; repeated faults logged every time, so nothing hides behind the limit.
const ARGS: &[&str] = &[
    "--event-flush-ms",
    "100",
    "--event-retry-ms",
    "200",
    "--rollup-interval-ms",
    "200",
    "--db-statement-timeout-ms",
    "1000",
    "--db-acquire-timeout-ms",
    "500",
    "--log-repeat-ms",
    "0",
];

/// The session on one service; `outage` cuts its database in the middle.
async fn session(svc: &Service, outage: Option<&Proxy>, secrets: &mut Secrets) {
    service_secrets(secrets);
    let mut c = Client::new(svc.addr);
    let mut paths = Vec::new();
    for i in 0..LETTERS {
        paths.extend(mint_letter(&mut c, i, secrets).await.expect("mint"));
    }
    bad_requests(&mut c, secrets).await;
    hits(&mut c, &paths).await;
    reads(&mut c).await;
    if let Some(proxy) = outage {
        proxy.cut();
        assert!(mint_letter(&mut c, 500, secrets).await.is_none(), "a mint succeeded through the cut");
        assert_eq!(get_with(&mut c, "/v1/mailings/pii-mailing/stats", API_KEY).await.status, 503);
        assert_eq!(get_with(&mut c, "/v1/events?after=0-0", API_KEY).await.status, 503);
        // Cached links still redirect; their events go to the spool.
        hits(&mut c, &paths).await;
        proxy.restore();
        reads(&mut c).await;
    }
}

/// The log is the verbose one and logged the session's faults.
fn assert_the_log_saw_it(log: &str, outage: bool) {
    let levels: Vec<&str> = ["\"TRACE\"", "\"DEBUG\""].into_iter().filter(|l| log.contains(l)).collect();
    assert!(!levels.is_empty(), "no trace or debug line: RUST_LOG=trace did not reach the service");
    assert!(log.contains("API request without a valid API key"), "the wrong keys were not logged as such");
    if outage {
        assert!(log.contains("store unavailable"), "the outage was not logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_recipient_key_or_token_mysql() {
    let db = fresh_database("pii").await;
    let proxy = Proxy::start(upstream_of(&db)).await;
    let data = TempDir::new().expect("data dir");
    let svc = Service::spawn_logging(&proxy.url_through(&db), data.path(), ARGS, "trace");
    let mut secrets = Secrets::default();
    session(&svc, Some(&proxy), &mut secrets).await;
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
    assert_the_log_saw_it(&log, true);
    secrets.assert_absent_from(&log);
    eprintln!("pii (mysql): {} log lines checked against {} secrets", log.lines().count(), secrets.0.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_recipient_key_or_token_sqlite() {
    let data = TempDir::new().expect("data dir");
    let db = format!("sqlite://{}", data.path().join("db").join("linktrack.db").display());
    let svc = Service::spawn_logging(&db, data.path(), ARGS, "trace");
    let mut secrets = Secrets::default();
    session(&svc, None, &mut secrets).await;
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "exit {status}:\n{log}");
    assert_the_log_saw_it(&log, false);
    secrets.assert_absent_from(&log);
    eprintln!("pii (sqlite): {} log lines checked against {} secrets", log.lines().count(), secrets.0.len());
}

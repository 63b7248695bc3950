//! Webhook delivery across replicas, with real processes on one private
//! MariaDB: the replica delivering an endpoint is killed with SIGKILL in
//! the middle of its deliveries, and the other replica takes the endpoint
//! over once the lease expires and re-sends from the stored cursor. Every
//! event arrives (at least once, never a gap), acknowledged batches stay in
//! cursor order, and the takeover happens within the lease time plus a pass.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::client::{Client, path_of};
use common::mariadb::fresh_database;
use common::process::Service;
use common::server::API_KEY;
use common::webhooks_suite::Receiver;
use http::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

const LEASE_SECS: u64 = 2;

fn flags() -> Vec<&'static str> {
    vec![
        "--webhook-allow-private",
        "--webhook-lease-secs",
        "2",
        "--webhook-interval-ms",
        "50",
        "--webhook-batch-max",
        "20",
        "--event-flush-ms",
        "50",
        "--rollup-interval-ms",
        "100",
        "--burst-window-secs",
        "1",
        "--near-mint-secs",
        "0",
        "--api-rate-per-ip",
        "0",
    ]
}

async fn api(c: &mut Client, method: Method, path: &str, body: Option<Value>) -> common::client::Reply {
    c.api(method, path, API_KEY, body.as_ref()).await
}

/// Cursors of the events of acknowledged deliveries, each in cursor order within its batch.
fn acknowledged_cursors(r: &Receiver) -> Vec<String> {
    let mut out = Vec::new();
    for d in r.deliveries().iter().filter(|d| d.status == 200) {
        let batch: Vec<Value> = serde_json::from_str(&d.body).unwrap();
        out.extend(batch.iter().map(|e| e["cursor"].as_str().unwrap().to_owned()));
    }
    out
}

fn key(cursor: &str) -> (u64, u64) {
    let (d, i) = cursor.split_once('-').unwrap();
    (d.parse().unwrap(), i.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_deliverer_is_taken_over_from_its_cursor() {
    let db = fresh_database("whfailover").await;
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let receiver = Receiver::start().await;
    // Slow enough that the deliveries take a few seconds: the kill lands mid-stream.
    receiver.delay_ms.store(40, std::sync::atomic::Ordering::SeqCst);
    let a = Service::spawn(&db, dir_a.path(), &flags());
    let mut ca = Client::new(a.addr);
    let created =
        api(&mut ca, Method::POST, "/v1/webhooks", Some(json!({"url": format!("http://{}/", receiver.addr), "start": "beginning"}))).await;
    assert_eq!(created.status, 201, "{:?}", created.body);

    // 1,000 events: 20 letters of 4 links and a pixel, each token hit 10 times.
    let mut tokens = Vec::new();
    for i in 0..20 {
        let links: Vec<Value> = (0..4).map(|j| json!({"url": format!("https://shop.example/{i}/{j}")})).collect();
        let letter = ca
            .mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": format!("r{i}@example.com"), "links": links, "pixel": true}), None)
            .await
            .json();
        tokens.extend(letter["links"].as_array().unwrap().iter().map(|l| path_of(l["tracking_url"].as_str().unwrap())));
        tokens.push(path_of(letter["pixel"]["tracking_url"].as_str().unwrap()));
    }
    for _ in 0..10 {
        for t in &tokens {
            let s = ca.get(t).await.status.as_u16();
            assert!(s == 302 || s == 200);
        }
    }

    // Wait until A is delivering, start B beside it, then kill A mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged_cursors(&receiver).len() < 100 {
        assert!(Instant::now() < deadline, "A delivered nothing within 60 s:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Service::spawn(&db, dir_b.path(), &flags());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kill = receiver.deliveries().len();
    let delivered_before = acknowledged_cursors(&receiver).len();
    assert!(delivered_before < 1000, "the kill must land mid-stream; A already delivered everything");
    let killed_at = a.kill9();

    // B takes over after the lease expires and delivers the rest.
    let mut cb = Client::new(b.addr);
    let export = api(&mut cb, Method::GET, "/v1/events?limit=10000", None).await;
    let want: Vec<String> = std::str::from_utf8(&export.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(want.len(), 1000, "every hit became an event");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: BTreeSet<String> = acknowledged_cursors(&receiver).into_iter().collect();
        if want.iter().all(|c| got.contains(c)) {
            break;
        }
        assert!(Instant::now() < deadline, "B did not deliver the rest within 90 s ({} of 1000):\n{}", got.len(), b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_after =
        receiver.deliveries()[before_kill..].iter().map(|d| d.at).find(|at| *at > killed_at).expect("a delivery after the kill");
    let takeover = first_after.duration_since(killed_at);
    assert!(takeover < Duration::from_secs(LEASE_SECS + 5), "takeover took {takeover:?}, lease {LEASE_SECS} s");

    // At least once, never a gap; every acknowledged batch in cursor order, and re-sends only of what A may not have finished.
    let cursors = acknowledged_cursors(&receiver);
    let distinct: BTreeSet<&String> = cursors.iter().collect();
    assert_eq!(distinct.len(), 1000, "no event missing, none unknown");
    for d in receiver.deliveries().iter().filter(|d| d.status == 200) {
        let batch: Vec<Value> = serde_json::from_str(&d.body).unwrap();
        let keys: Vec<(u64, u64)> = batch.iter().map(|e| key(e["cursor"].as_str().unwrap())).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "a batch is in cursor order");
    }
    let resent = cursors.len() - 1000;
    assert!(resent <= 20, "at most the batch in flight at the kill is sent twice; {resent} were");
    eprintln!("takeover after {takeover:?}; {delivered_before} delivered before the kill, {resent} re-sent after it");
    let _ = b.terminate().await;
}

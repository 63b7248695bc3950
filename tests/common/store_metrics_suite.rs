//! The store's side of `/metrics`, run against every backend (wired into
//! `conformance_suite!`): statements by kind and their errors move exactly
//! with the calls the traffic causes, the MySQL pool's gauges and acquire
//! histogram are exported exactly when the store has a pool, and the rollup
//! lag is now minus the rollup's `as_of`.

use std::sync::Arc;
use std::time::Duration;

use linktrack::day::Clock;
use linktrack::store::Store;
use serde_json::json;

use super::client::{Client, path_of};
use super::conformance::{Fixture, ready};
use super::integrity_suite::Blockable;
use super::server::{API_KEY, START_UNIX, TestServer, serve_args};

/// One sample of `/metrics` as a float (`name` with its labels); `None` when absent.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' '))).map(|v| v.trim().parse().expect("a number"))
}

fn statements(text: &str, kind: &str) -> f64 {
    sample(text, &format!("linktrack_db_statements_total{{kind=\"{kind}\"}}")).unwrap_or_else(|| panic!("no {kind} statements in:\n{text}"))
}

fn errors(text: &str, kind: &str) -> f64 {
    sample(text, &format!("linktrack_db_statement_errors_total{{kind=\"{kind}\"}}"))
        .unwrap_or_else(|| panic!("no {kind} errors in:\n{text}"))
}

async fn scrape(c: &mut Client) -> String {
    String::from_utf8(c.get("/metrics").await.body.to_vec()).expect("utf-8 metrics")
}

pub async fn metrics_count_statements_pool_and_rollup_lag<F: Fixture>() {
    let f = ready::<F>("store-metrics").await;
    let store = Arc::new(Blockable::new(f.store()));
    let clock = Clock::manual(START_UNIX);
    // No link cache: every click is a resolve. Burst window 10 s + flush 50 ms + 2 s: the settle delay is 12.05 s.
    let args = serve_args(&["--cache-bytes", "0", "--event-flush-ms", "50", "--rollup-interval-ms", "50", "--burst-window-secs", "10"]);
    let srv = TestServer::start(store.clone(), clock.clone(), args).await;
    let mut c = srv.client();
    let before = scrape(&mut c).await;
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "sm", "recipient": "r", "links": [{"url": "https://a.example/"}]}), None).await;
    assert_eq!(r.status, 201);
    let path = path_of(r.json()["links"][0]["tracking_url"].as_str().expect("url"));
    for _ in 0..2 {
        assert_eq!(c.get(&path).await.status, 302);
    }
    store.block_resolves(true);
    assert_eq!(c.get(&path).await.status, 503, "a failed resolve");
    store.block_resolves(false);
    let after = scrape(&mut c).await;
    let moved = |kind| statements(&after, kind) - statements(&before, kind);
    assert!((moved("mint") - 1.0).abs() < 0.5, "one mint statement");
    assert!((moved("resolve") - 3.0).abs() < 0.5, "three resolves");
    assert!((errors(&after, "resolve") - errors(&before, "resolve") - 1.0).abs() < 0.5, "one failed resolve");
    assert!(errors(&after, "mint") - errors(&before, "mint") < 0.5, "no failed mint");
    assert!(statements(&after, "migrate") >= 1.0 && statements(&after, "maintenance") >= 1.0, "startup statements are counted");

    // The pool's series exist exactly when the store has a pool (MySQL), and its acquires are timed.
    let has_pool = f.store().pool_metrics().is_some();
    let acquired = sample(&after, "linktrack_db_pool_acquire_seconds_count");
    assert_eq!(acquired.is_some(), has_pool, "pool acquire histogram exported iff the store has a pool");
    assert_eq!(sample(&after, "linktrack_db_pool_in_use").is_some(), has_pool);
    assert_eq!(sample(&after, "linktrack_db_pool_waiting").is_some(), has_pool);
    if has_pool {
        assert!(acquired.unwrap_or(0.0) >= 4.0, "the mint and the resolves took pooled connections: {acquired:?}");
        assert!(sample(&after, "linktrack_db_pool_waiting").unwrap_or(-1.0) >= 0.0);
    }

    // The rollup lag is the settle delay while the rollup keeps up (the clicks, not yet settled, hold nothing back:
    // they are younger than the cutoff).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let lag_of = |text: &str| sample(text, "linktrack_rollup_lag_seconds").expect("rollup lag exported");
    let mut text = scrape(&mut c).await;
    while lag_of(&text).is_nan() {
        assert!(tokio::time::Instant::now() < deadline, "no rollup pass in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(&mut c).await;
    }
    assert!((lag_of(&text) - 12.05).abs() < 0.001, "lag {} s, want the 12.05 s settle delay", lag_of(&text));
    // A minute later the clicks have settled: a pass counts them and moves as_of with the clock.
    clock.advance_ms(60_000);
    loop {
        let text = scrape(&mut c).await;
        let rolled = sample(&text, "linktrack_rollup_events_total").unwrap_or(0.0);
        if rolled >= 2.0 && (lag_of(&text) - 12.05).abs() < 0.001 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rollup did not catch up: lag {} s, {rolled} events", lag_of(&text));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = scrape(&mut c).await;
    assert!(statements(&text, "rollup_apply") >= 2.0 && statements(&text, "events_insert") >= 1.0, "rollup and writer statements counted");
    srv.stop().await;
}

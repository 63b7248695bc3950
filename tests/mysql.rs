//! MySQL backend tests against a real (private) MariaDB: the shared
//! conformance suite, plus partition rotation as MySQL sees it (no catch-all
//! partition, today's rows in today's partition). The EXPLAIN and
//! server-counter tests live in `mysql_isolated.rs`, alone on their server.

mod common;

use common::conformance::Fixture;
use common::mysql::MysqlFixture;
use common::server::{API_KEY, START_UNIX, TestServer, serve_args};
use linktrack::day::Clock;
use linktrack::store::mysql::partition_name;
use linktrack::store::{MaintenancePolicy, Store};
use mysql_async::prelude::Queryable;
use serde_json::json;

conformance_suite!(MysqlFixture);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_never_uses_a_catch_all() {
    let f = MysqlFixture::open("rotation").await;
    let clock = Clock::manual(START_UNIX);
    let srv = TestServer::start(f.store(), clock.clone(), serve_args(&["--retention-days", "10", "--partitions-ahead", "3"])).await;
    let mut admin = f.conn().await;
    let maxvalue: u64 = admin
        .query_first(
            "SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND PARTITION_DESCRIPTION = 'MAXVALUE'",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(maxvalue, 0, "no MAXVALUE partition may exist");
    let mut c = srv.client();
    for step in 0..15 {
        let today = clock.today();
        let r = c
            .mint(
                Some(API_KEY),
                &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}, {"url": "https://b.example/"}]}),
                None,
            )
            .await;
        assert_eq!(r.status, 201, "step {step}: {:?}", r.body);
        let in_today: u64 =
            admin.query_first(format!("SELECT COUNT(*) FROM links PARTITION ({})", partition_name(today))).await.unwrap().unwrap();
        assert_eq!(in_today, 2, "step {step}: today's rows are in today's own partition");
        clock.advance_days(1);
        let rep = f.store.maintain(MaintenancePolicy { today: clock.today(), ahead: 3, retention: 10, dry_run: false }).await.unwrap();
        assert!(rep.partitions.contains(&clock.today()) && rep.partitions.contains(&clock.today().plus(1)));
    }
    let names: Vec<String> = admin
        .query("SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'links' ORDER BY PARTITION_ORDINAL_POSITION")
        .await
        .unwrap();
    let today = clock.today();
    let mut want = vec!["p_start".to_owned()];
    want.extend((today.0 - 10..=today.0 + 3).map(|d| partition_name(linktrack::day::Day(d))));
    assert_eq!(names, want, "exactly retention + today + ahead day partitions remain");
    let rows: u64 = admin.query_first("SELECT COUNT(*) FROM links").await.unwrap().unwrap();
    // Minted on start..start+14; today is start+15 and retention keeps start+5 onwards.
    assert_eq!(rows, 2 * 10, "rows of dropped days are gone, the last 10 minted days remain");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_gives_fast_503() {
    let f = MysqlFixture::open_with("slow", &["--db-statement-timeout-ms", "300", "--db-acquire-timeout-ms", "200"]).await;
    let srv = TestServer::start(f.store(), Clock::manual(START_UNIX), serve_args(&["--cache-bytes", "0"])).await;
    let mut c = srv.client();
    let r = c
        .mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}], "pixel": true}), None)
        .await;
    assert_eq!(r.status, 201);
    let click = common::client::path_of(r.json()["links"][0]["tracking_url"].as_str().unwrap());
    let open = common::client::path_of(r.json()["pixel"]["tracking_url"].as_str().unwrap());
    // Another session holds a write lock: every resolve and mint now waits on it.
    let mut blocker = f.conn().await;
    blocker.query_drop("LOCK TABLES links WRITE, urls WRITE, letters WRITE").await.unwrap();
    let started = std::time::Instant::now();
    let resp = c.get(&click).await;
    assert_eq!(resp.status, 503, "{:?}", resp.body);
    assert_eq!(resp.header("retry-after"), "1");
    assert_eq!(resp.json()["error"], "unavailable");
    let waited = started.elapsed();
    // The pixel still renders: its MAC proves it is ours.
    let t = std::time::Instant::now();
    assert_eq!(c.get(&open).await.status, 200);
    println!("pixel answered after {:?}", t.elapsed());
    let r = c.mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://b.example/"}]}), None).await;
    assert_eq!(r.status, 503);
    blocker.query_drop("UNLOCK TABLES").await.unwrap();
    assert_eq!(c.get(&click).await.status, 302, "recovers once the lock is gone");
    println!("503 answered after {waited:?} with a 300 ms statement deadline");
    assert!(waited < std::time::Duration::from_secs(2), "the client deadline, not the 3 s lock wait, must answer: {waited:?}");
    srv.stop().await;
}

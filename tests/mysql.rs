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
use linktrack::tenant::TenantId;
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
            admin.query_first(format!("SELECT COUNT(*) FROM links_v2 PARTITION ({})", partition_name(today))).await.unwrap().unwrap();
        assert_eq!(in_today, 2, "step {step}: today's rows are in today's own partition");
        clock.advance_days(1);
        let rep = f.store.maintain(MaintenancePolicy { today: clock.today(), ahead: 3, retention: 10, dry_run: false }).await.unwrap();
        assert!(rep.partitions.contains(&clock.today()) && rep.partitions.contains(&clock.today().plus(1)));
    }
    let names: Vec<String> = admin
        .query("SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'links_v2' ORDER BY PARTITION_ORDINAL_POSITION")
        .await
        .unwrap();
    let today = clock.today();
    let mut want = vec!["p_start".to_owned()];
    want.extend((today.0 - 10..=today.0 + 3).map(|d| partition_name(linktrack::day::Day(d))));
    assert_eq!(names, want, "exactly retention + today + ahead day partitions remain");
    let rows: u64 = admin.query_first("SELECT COUNT(*) FROM links_v2").await.unwrap().unwrap();
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

/// The review's repro: a row with tomorrow's day inserted under the writer
/// lock between two of today's rows (as a replica with a skewed clock, or an
/// older version without the day rule, writes it). Every read, from the
/// start and resumed from every cursor, returns it and the row after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_with_a_later_day_between_todays_rows_is_read() {
    use linktrack::events::{Cursor, EventBatch, EventQuery, Hit, IpBytes, Method, Reason};
    let f = MysqlFixture::open("laterday").await;
    let s = f.store();
    s.migrate().await.unwrap();
    let day = common::server::start_day();
    s.maintain(MaintenancePolicy { today: day, ahead: 3, retention: 30, dry_run: false }).await.unwrap();
    // A v1 link, so the row inserted by hand (no link_id) names it as the service did then.
    let minted = common::conformance::batch_of(linktrack::token::Version::V1, day, &["https://a.example/"], false, None);
    s.mint(&minted).await.unwrap();
    let link = &minted.links[0];
    let hit = Hit {
        at_ms: START_UNIX * 1000,
        kind: link.kind,
        method: Method::Get,
        link_day: day,
        version: linktrack::token::Version::V1,
        random: link.random,
        link_ids: None,
        ip: IpBytes::new("198.51.100.7".parse().unwrap()),
        user_agent: b"ua".to_vec(),
        reason: Reason::None,
    };
    s.write_events(&EventBatch { id: [1; 16], formed: day, hits: vec![hit.clone()] }, day).await.unwrap();
    let mut admin = f.conn().await;
    admin.query_drop("BEGIN").await.unwrap();
    admin.query_drop("SELECT * FROM locks WHERE name = 'event_writer' FOR UPDATE").await.unwrap();
    admin
        .exec_drop(
            "INSERT INTO events (day, at_ms, link_day, rnd, kind, method, verdict, reason, ip, ua_id) VALUES (?, ?, ?, ?, 1, 1, 1, 0, ?, 0)",
            (day.plus(1).0, START_UNIX * 1000, day.0, &link.random.0[..], &[198u8, 51, 100, 7][..]),
        )
        .await
        .unwrap();
    admin.query_drop("COMMIT").await.unwrap();
    s.write_events(&EventBatch { id: [3; 16], formed: day, hits: vec![hit] }, day).await.unwrap();

    let read = |after: Cursor| {
        let s = s.clone();
        async move { s.read_events(&EventQuery { after, limit: 100, mailing_id: None }).await }
    };
    let all = read(Cursor::START).await.unwrap();
    let days: Vec<u16> = all.iter().map(|r| r.cursor.day.0 - day.0).collect();
    assert_eq!(days, [0, 1, 0], "today, tomorrow, today in id order: {all:#?}");
    for (i, row) in all.iter().enumerate() {
        assert_eq!(read(row.cursor).await.unwrap(), all[i + 1..].to_vec(), "resume after row {i}");
    }
    let mailing = s.read_events(&EventQuery { after: all[1].cursor, limit: 100, mailing_id: Some("m-1".into()) }).await.unwrap();
    assert_eq!(mailing, all[2..].to_vec(), "the mailing-filtered read resumes the same way");
}

/// Partition DDL behind a long transaction: `ALTER TABLE … ADD PARTITION`
/// waits for the metadata lock, and every statement on that table queues
/// behind the waiting ALTER. `--db-lock-wait-timeout-secs` bounds both: the
/// ALTER gives up (maintenance retries on its next pass) and the queued
/// mints go on. Prints the stall it measured; the next pass succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_ddl_behind_a_long_transaction_is_bounded() {
    let f = MysqlFixture::open_with("ddlstall", &["--db-lock-wait-timeout-secs", "2"]).await;
    let s = f.store();
    s.migrate().await.unwrap();
    let day = common::server::start_day();
    let policy = |ahead| MaintenancePolicy { today: day, ahead, retention: 30, dry_run: false };
    s.maintain(policy(2)).await.unwrap();
    // An analytics query left open in a transaction holds links' metadata lock.
    let mut reader = f.conn().await;
    reader.query_drop("BEGIN").await.unwrap();
    let _: Option<u64> = reader.query_first("SELECT COUNT(*) FROM links").await.unwrap();

    let minting = {
        let s = s.clone();
        tokio::spawn(async move {
            let (mut worst, mut ok, mut failed) = (std::time::Duration::ZERO, 0, 0);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
            while std::time::Instant::now() < until {
                let t = std::time::Instant::now();
                match s.mint(&common::conformance::batch(day, &["https://a.example/"], false, None)).await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
                worst = worst.max(t.elapsed());
            }
            (worst, ok, failed)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    let blocked = s.maintain(policy(5)).await;
    let ddl_wait = t.elapsed();
    let (worst, ok, failed) = minting.await.unwrap();
    println!("ALTER behind an open transaction gave up after {ddl_wait:?}; mints meanwhile: {ok} ok, {failed} failed, slowest {worst:?}");
    assert!(blocked.is_err(), "the ALTER cannot take the metadata lock while the transaction is open: {blocked:?}");
    assert!(ok > 0, "mints go on once the ALTER gives up");
    reader.query_drop("COMMIT").await.unwrap();
    let rep = s.maintain(policy(5)).await.unwrap();
    assert_eq!(rep.created.len(), 3, "the next pass creates the days: {rep:?}");
    assert_eq!(f.count_links().await, ok, "every mint that answered Ok is stored");
}

/// Migration 0006 registers the mailings of letters stored before it with a
/// digest computed in SQL; it must equal the service's `hash16`, or those
/// mailings would answer 404. Run the migration's own backfill statement
/// over letters whose registry rows are gone, non-ASCII and long ids included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_migration_backfills_mailings_with_the_service_digest() {
    let f = common::conformance::ready::<MysqlFixture>("backfill").await;
    let ids = ["m-1".to_owned(), "Büro – Frühling 🌷".to_owned(), "x".repeat(255)];
    for id in &ids {
        let mut b = common::conformance::batch(common::server::start_day(), &["https://a.example/"], true, None);
        b.letter.mailing_id.clone_from(id);
        f.store.mint(&b).await.unwrap();
    }
    let mut admin = f.conn().await;
    admin.query_drop("DELETE FROM mailings").await.unwrap();
    for id in &ids {
        assert_eq!(f.store.mailing_stats(TenantId::DEFAULT, id).await.unwrap(), None, "the registry row is gone");
    }
    let migration = include_str!("../schema/mysql/0006_tenants.sql");
    let backfill = &migration[migration.find("INSERT INTO mailings").expect("the backfill statement")..];
    admin.query_drop(backfill.trim().trim_end_matches(';')).await.unwrap();
    for id in &ids {
        let stats = f.store.mailing_stats(TenantId::DEFAULT, id).await.unwrap();
        let zeros = linktrack::events::Counts::default();
        // The mint registered its one link (with zeros); nothing was clicked.
        let found = stats.is_some_and(|s| s.links.len() == 1 && s.links[0].clicks == zeros);
        assert!(found, "{id:?}: found by the service's digest after the backfill");
        assert_eq!(f.store.mailing_stats(TenantId(2), id).await.unwrap(), None, "and only for the default tenant");
    }
}

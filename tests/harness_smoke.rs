//! Smoke test for the shared MariaDB test harness in `tests/common`. It checks
//! that `fresh_database` hands out distinct, empty, isolated databases on a
//! real MariaDB that supports `PARTITION BY RANGE`.

mod common;

use common::mariadb;
use mysql_async::prelude::Queryable;

async fn connect(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}\n{}", mariadb::server_error_log_tail()))
}

fn database_name(url: &str) -> String {
    url::Url::parse(url).expect("valid URL").path().trim_start_matches('/').to_owned()
}

#[tokio::test]
async fn fresh_databases_are_distinct_empty_and_partitionable() {
    let first = mariadb::fresh_database("smoke").await;
    let second = mariadb::fresh_database("smoke").await;
    assert_ne!(first, second, "fresh_database must return distinct databases");
    assert_ne!(database_name(&first), database_name(&second));

    for url in [&first, &second] {
        let mut conn = connect(url).await;

        let current: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
        assert_eq!(current.as_deref(), Some(database_name(url).as_str()));

        let tables: Vec<String> = conn.query("SHOW TABLES").await.unwrap();
        assert!(tables.is_empty(), "{url} should start empty, has {tables:?}");

        let version: String = conn.query_first("SELECT @@version").await.unwrap().unwrap();
        if mariadb::external_url().is_none() {
            assert!(version.contains("MariaDB"), "private server version: {version}");
            // Over TCP from 127.0.0.1, not switched to the unix socket.
            let host: Option<String> =
                conn.query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()").await.unwrap();
            assert!(host.as_deref().is_some_and(|h| h.starts_with("127.0.0.1:")), "connection host: {host:?}");
        }

        conn.query_drop(
            "CREATE TABLE links (
                day INT NOT NULL,
                id BIGINT NOT NULL,
                target VARCHAR(2048) NOT NULL,
                PRIMARY KEY (day, id)
            )
            PARTITION BY RANGE (day) (
                PARTITION p_old VALUES LESS THAN (20000),
                PARTITION p_new VALUES LESS THAN MAXVALUE
            )",
        )
        .await
        .unwrap();
        conn.exec_drop("INSERT INTO links (day, id, target) VALUES (?, ?, ?)", (20_500, 1_i64, "https://example.com/ü")).await.unwrap();

        let in_new: Vec<(i32, i64, String)> = conn.query("SELECT day, id, target FROM links PARTITION (p_new)").await.unwrap();
        assert_eq!(in_new, vec![(20_500, 1, "https://example.com/ü".to_owned())]);
        let in_old: Option<i64> = conn.query_first("SELECT COUNT(*) FROM links PARTITION (p_old)").await.unwrap();
        assert_eq!(in_old, Some(0));

        let partitions: Vec<String> = conn
            .query(
                "SELECT PARTITION_NAME FROM information_schema.PARTITIONS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'links' \
                 ORDER BY PARTITION_ORDINAL_POSITION",
            )
            .await
            .unwrap();
        assert_eq!(partitions, ["p_old", "p_new"]);

        conn.disconnect().await.unwrap();
    }

    // Each database saw exactly one insert: they are isolated from each other.
    for url in [&first, &second] {
        let mut conn = connect(url).await;
        let rows: Option<i64> = conn.query_first("SELECT COUNT(*) FROM links").await.unwrap();
        assert_eq!(rows, Some(1), "{url}");
        conn.disconnect().await.unwrap();
    }
}

#[test]
fn server_url_is_stable_within_a_process() {
    assert_eq!(mariadb::server_url(), mariadb::server_url());
    if mariadb::external_url().is_none() {
        assert!(
            mariadb::server_error_log_tail().contains("ready for connections"),
            "error log tail:\n{}",
            mariadb::server_error_log_tail()
        );
    }
}

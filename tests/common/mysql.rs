//! The MySQL backend's conformance [`Fixture`]: a fresh database on the
//! private MariaDB per test, plus a direct connection for assertions.

use std::sync::Arc;

use clap::Parser;
use linktrack::config::{Cli, Command, DbArgs};
use linktrack::store::mysql::MysqlStore;
use mysql_async::prelude::Queryable;

use super::conformance::Fixture;

pub struct MysqlFixture {
    pub url: String,
    pub store: Arc<MysqlStore>,
}

/// Database arguments as `linktrack migrate --database-url URL EXTRA...` would parse them.
pub fn db_args(url: &str, extra: &[&str]) -> DbArgs {
    let argv = ["linktrack", "migrate", "--database-url", url].into_iter().chain(extra.iter().copied());
    match Cli::try_parse_from(argv).expect("args").command {
        Command::Migrate(db) => db,
        _ => unreachable!(),
    }
}

impl MysqlFixture {
    /// A fresh database with non-default store settings (`--db-*` flags).
    pub async fn open_with(hint: &str, extra: &[&str]) -> MysqlFixture {
        let url = super::mariadb::fresh_database(hint).await;
        let store = MysqlStore::connect(&url, &db_args(&url, extra).store_config()).await.expect("connect");
        MysqlFixture { url, store: Arc::new(store) }
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.expect("test connection")
    }
}

impl Fixture for MysqlFixture {
    type S = MysqlStore;

    async fn open(hint: &str) -> Self {
        MysqlFixture::open_with(hint, &[]).await
    }

    fn store(&self) -> Arc<MysqlStore> {
        self.store.clone()
    }

    async fn count_links(&self) -> u64 {
        let n: Option<u64> =
            self.conn().await.query_first("SELECT (SELECT COUNT(*) FROM links) + (SELECT COUNT(*) FROM links_v2)").await.unwrap();
        n.unwrap()
    }

    async fn replica(&self) -> Arc<MysqlStore> {
        Arc::new(MysqlStore::connect(&self.url, &db_args(&self.url, &[]).store_config()).await.expect("connect a replica"))
    }

    async fn count_events(&self) -> u64 {
        super::process::count_events(&self.url).await
    }
}

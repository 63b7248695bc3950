//! The MySQL backend's conformance [`Fixture`]: a fresh database on the
//! private MariaDB per test, plus a direct connection for assertions.

use std::sync::Arc;

use clap::Parser;
use linktrack::config::{Cli, Command, DbArgs, Secret};
use linktrack::store::mysql::MysqlStore;
use mysql_async::prelude::Queryable;

use super::conformance::Fixture;

pub struct MysqlFixture {
    pub url: String,
    pub store: Arc<MysqlStore>,
}

pub fn db_args(url: &str) -> DbArgs {
    match Cli::try_parse_from(["linktrack", "migrate", "--database-url", url]).expect("args").command {
        Command::Migrate(db) => db,
        _ => unreachable!(),
    }
}

impl MysqlFixture {
    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.expect("test connection")
    }
}

impl Fixture for MysqlFixture {
    type S = MysqlStore;

    async fn open(hint: &str) -> Self {
        let url = super::mariadb::fresh_database(hint).await;
        let store = MysqlStore::connect(&Secret::new(url.clone()), &db_args(&url)).await.expect("connect");
        MysqlFixture { url, store: Arc::new(store) }
    }

    fn store(&self) -> Arc<MysqlStore> {
        self.store.clone()
    }

    async fn count_links(&self) -> u64 {
        let n: Option<u64> = self.conn().await.query_first("SELECT COUNT(*) FROM links").await.unwrap();
        n.unwrap()
    }
}


//! A private MariaDB primary and replica, with GTID replication over
//! loopback, for the read-replica tests. Both are private servers in their
//! own temporary directories, on their own ports and sockets, run as the
//! `mysql` user when the tests run as root (see [`super::mariadb`]). The pair
//! is owned by the test: dropping it stops both servers and deletes their
//! files.
//!
//! `LINKTRACK_TEST_MYSQL_URL` names one server, and one server cannot make a
//! pair, so these tests start their own pair even when it is set (and say so
//! on stderr). Like every test here they never skip: if MariaDB is missing,
//! starting the pair panics and says how to install it.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::mariadb::{PrivateServer, external_url, fresh_database_at, start_server, url_with_database};

/// How long replication may take to start, or to catch up.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// A primary and its replica.
#[derive(Debug)]
pub struct Pair {
    pub primary: PrivateServer,
    /// `None` once [`Pair::kill_replica`] has killed it.
    pub replica: Option<PrivateServer>,
}

impl Pair {
    /// Start both servers and replication from the primary's first
    /// transaction (`MASTER_USE_GTID = slave_pos`), and wait until both
    /// replication threads run. Blocks the calling thread.
    pub fn start() -> Pair {
        if external_url().is_some() {
            eprintln!(
                "linktrack tests: LINKTRACK_TEST_MYSQL_URL is set, but a read-replica test needs a primary and a replica; starting a private pair"
            );
        }
        let primary = start_server(&["--log-bin=primary-bin".into(), "--server-id=1".into(), "--binlog-format=ROW".into()])
            .unwrap_or_else(|e| panic!("starting the primary: {e}"));
        let replica = start_server(&[
            "--skip-log-bin".into(),
            "--server-id=2".into(),
            "--relay-log=replica-relay-bin".into(),
            "--skip-slave-start".into(),
        ])
        .unwrap_or_else(|e| panic!("starting the replica: {e}"));
        let pair = Pair { primary, replica: Some(replica) };
        let port = pair.primary.port();
        block_on(async {
            let mut r = pair.replica_conn().await;
            r.query_drop(format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, MASTER_USER = 'root', MASTER_PASSWORD = '', \
                 MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
            ))
            .await
            .expect("CHANGE MASTER TO");
            r.query_drop("START SLAVE").await.expect("START SLAVE");
            let deadline = Instant::now() + REPLICATION_TIMEOUT;
            loop {
                let (io, sql, error) = slave_status(&mut r).await;
                if io == "Yes" && sql == "Yes" {
                    break;
                }
                assert!(Instant::now() < deadline, "replication did not start: IO {io}, SQL {sql}, {error}\n{}", pair.logs());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = r.disconnect().await;
        });
        eprintln!("linktrack tests: MariaDB pair, primary {} and replica {}", pair.primary.url(), pair.replica().url());
        pair
    }

    pub fn replica(&self) -> &PrivateServer {
        self.replica.as_ref().expect("the replica was killed")
    }

    /// A fresh database on the primary (replicated to the replica): its URL on each.
    pub async fn fresh_database(&self, hint: &str) -> (String, String) {
        let on_primary = fresh_database_at(self.primary.url(), hint).await;
        let name = url::Url::parse(&on_primary).expect("url").path().trim_start_matches('/').to_owned();
        let on_replica = url_with_database(self.replica().url(), &name);
        self.wait_caught_up().await;
        (on_primary, on_replica)
    }

    pub async fn primary_conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.primary.url()).await.expect("connect to the primary")
    }

    pub async fn replica_conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.replica().url()).await.expect("connect to the replica")
    }

    /// Wait until the replica has applied everything the primary has written so far.
    pub async fn wait_caught_up(&self) {
        let mut p = self.primary_conn().await;
        let pos: String = p.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await.expect("primary position").expect("row");
        let _ = p.disconnect().await;
        let mut r = self.replica_conn().await;
        let waited: Option<i64> =
            r.exec_first("SELECT MASTER_GTID_WAIT(?, ?)", (pos.as_str(), REPLICATION_TIMEOUT.as_secs())).await.expect("MASTER_GTID_WAIT");
        let (io, sql, error) = slave_status(&mut r).await;
        let _ = r.disconnect().await;
        assert_eq!(waited, Some(0), "the replica did not reach {pos} within {REPLICATION_TIMEOUT:?} (IO {io}, SQL {sql}, {error})");
    }

    /// Stop applying (the IO thread keeps fetching): the replica falls behind from now on.
    pub async fn stop_applying(&self) {
        let mut r = self.replica_conn().await;
        r.query_drop("STOP SLAVE SQL_THREAD").await.expect("STOP SLAVE SQL_THREAD");
        let _ = r.disconnect().await;
    }

    pub async fn resume_applying(&self) {
        let mut r = self.replica_conn().await;
        r.query_drop("START SLAVE SQL_THREAD").await.expect("START SLAVE SQL_THREAD");
        let _ = r.disconnect().await;
    }

    /// SIGKILL the replica's `mariadbd` (by the pid its watchdog recorded); its files go with the value.
    pub fn kill_replica(&mut self) {
        let replica = self.replica.take().expect("the replica runs");
        let pid = Pid::from_raw(i32::try_from(replica.pid()).expect("pid"));
        kill(pid, Signal::SIGKILL).expect("SIGKILL the replica");
        // Wait until the port refuses connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", replica.port())).is_ok() {
            assert!(Instant::now() < deadline, "the killed replica still accepts connections");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(replica);
    }

    /// Both servers' error logs, for a failure message.
    pub fn logs(&self) -> String {
        let replica = self.replica.as_ref().map_or_else(|| "(killed)".to_owned(), PrivateServer::log_tail);
        format!("--- primary error log ---\n{}\n--- replica error log ---\n{replica}", self.primary.log_tail())
    }
}

/// `Slave_IO_Running`, `Slave_SQL_Running` and the last errors.
async fn slave_status(r: &mut mysql_async::Conn) -> (String, String, String) {
    let row: mysql_async::Row = r.query_first("SHOW SLAVE STATUS").await.expect("SHOW SLAVE STATUS").expect("a replica has a status row");
    let text = |name: &str| -> String { row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten().unwrap_or_default() };
    (
        text("Slave_IO_Running"),
        text("Slave_SQL_Running"),
        format!("IO error: {:?}, SQL error: {:?}", text("Last_IO_Error"), text("Last_SQL_Error")),
    )
}

/// Run a future to completion on a private runtime (the pair starts from a plain thread).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

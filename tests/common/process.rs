//! The real `linktrack` binary as a child process, for the tests that need a
//! signal (SIGTERM, SIGKILL) to reach a real process. It listens on
//! `127.0.0.1:0`; the address comes from its JSON "serving" log line. Its
//! stderr is collected so a failing test can show it. Also: counting event
//! rows straight from either store, independent of the service's own code.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::server::{API_KEY, TOKEN_KEYS};

/// How long a child may take to start listening, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `linktrack serve`.
#[derive(Debug)]
pub struct Service {
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// `linktrack serve --database-url DB --data-dir DATA` plus `extra`, with
    /// the test API and token keys, JSON logs, on an ephemeral port.
    pub fn spawn(db_url: &str, data_dir: &Path, extra: &[&str]) -> Service {
        Service::spawn_logging(db_url, data_dir, extra, "info")
    }

    /// [`Service::spawn`] with `RUST_LOG` set to `filter` (`trace` logs everything the binary and its crates can).
    pub fn spawn_logging(db_url: &str, data_dir: &Path, extra: &[&str], filter: &str) -> Service {
        let (child, log, rx) = start(db_url, data_dir, extra, filter);
        let mut svc = Service { addr: SocketAddr::from(([127, 0, 0, 1], 0)), child, log };
        svc.addr = svc.wait_for(&rx, "serving").expect("serving line has the address");
        svc
    }

    /// Start like [`Service::spawn`], send SIGTERM as soon as the log line
    /// `message` (one of start-up's, before "serving") appears, and wait for the exit.
    pub async fn terminate_during_start(db_url: &str, data_dir: &Path, extra: &[&str], message: &str) -> (ExitStatus, String) {
        let (child, log, rx) = start(db_url, data_dir, extra, "info");
        let mut svc = Service { addr: SocketAddr::from(([127, 0, 0, 1], 0)), child, log };
        svc.wait_for(&rx, message);
        svc.terminate().await
    }

    /// Wait for the log line whose message is `message`; its `listen` field, if any.
    fn wait_for(&mut self, rx: &mpsc::Receiver<(String, Option<SocketAddr>)>, message: &str) -> Option<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok((m, addr)) = rx.recv_timeout(Duration::from_millis(100)) {
                if m == message {
                    return addr;
                }
                continue;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("linktrack exited during start-up with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "linktrack did not log {message:?} in {START_TIMEOUT:?}:\n{}", self.log());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Send SIGTERM and wait (off the async workers) for the exit.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("send SIGTERM");
        tokio::task::spawn_blocking(move || {
            let status = self.wait_exit();
            (status, self.log())
        })
        .await
        .expect("wait for exit")
    }

    /// SIGKILL: no shutdown code runs. Returns when the signal was sent.
    pub fn kill9(mut self) -> Instant {
        let at = Instant::now();
        self.child.kill().expect("send SIGKILL");
        self.child.wait().expect("reap");
        at
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("linktrack did not exit within {EXIT_TIMEOUT:?} of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A test that panicked midway must not leave its child behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type Started = (Child, Arc<Mutex<Vec<String>>>, mpsc::Receiver<(String, Option<SocketAddr>)>);

/// Spawn `linktrack serve` and a thread that keeps its stderr and reports
/// each JSON log line's message (and `listen` field).
fn start(db_url: &str, data_dir: &Path, extra: &[&str], rust_log: &str) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--database-url", db_url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--api-keys", API_KEY, "--token-keys", TOKEN_KEYS])
        .args(extra)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn linktrack");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
            if let Some(m) = message_of(&line) {
                let _ = tx.send(m);
            }
            keep.lock().expect("log lock").push(line);
        }
    });
    (child, log, rx)
}

/// The message of a JSON log line, and its `listen` field if it has one.
fn message_of(line: &str) -> Option<(String, Option<SocketAddr>)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    let message = fields.get("message")?.as_str()?.to_owned();
    Some((message, fields.get("listen").and_then(|l| l.as_str()?.parse().ok())))
}

/// A prometheus counter or gauge from `/metrics`.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Event rows in the store behind `db_url`, read directly (`mysql://` with
/// one connection, `sqlite://` by opening every day file read-only).
pub async fn count_events(db_url: &str) -> u64 {
    if let Some(path) = db_url.strip_prefix("sqlite://") {
        let days = PathBuf::from(format!("{path}.days"));
        return tokio::task::spawn_blocking(move || count_sqlite_events(&days)).await.expect("count task");
    }
    let mut conn = mysql_async::Conn::from_url(db_url).await.expect("connect to count events");
    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM events").await.expect("count events");
    let _ = conn.disconnect().await;
    n.unwrap_or(0)
}

pub fn count_sqlite_events(days: &Path) -> u64 {
    use rusqlite::{Connection, OpenFlags};
    let mut total = 0;
    for entry in std::fs::read_dir(days).expect("read day dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("db") {
            continue;
        }
        let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open day file");
        let has_events: bool =
            c.query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'events'", [], |r| r.get(0)).expect("schema");
        if has_events {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).expect("count events");
            total += u64::try_from(n).expect("count");
        }
    }
    total
}

//! Start the real service in-process on `127.0.0.1:0`, with a manual clock,
//! against whatever store a test hands it; stop it through its injected
//! shutdown future. The server's own log lines (those of its `run` future)
//! are kept in a short ring, so a server that never becomes healthy fails the
//! test with its last words.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use linktrack::config::{Cli, Command, ServeArgs};
use linktrack::day::{Clock, Day};
use linktrack::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::fmt::MakeWriter;

use super::client::Client;

pub const API_KEY: &str = "test-api-key-0123456789";
/// Key 1 mints; the store never sees it.
pub const TOKEN_KEYS: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const FALLBACK: &str = "https://fallback.example/expired";

/// 2026-11-22 12:00:00 UTC: tests start "today" here and move the clock themselves.
pub const START_UNIX: i64 = 1_795_348_800;

pub fn start_day() -> Day {
    Day::from_unix(START_UNIX).expect("in range")
}

/// `linktrack serve` arguments as a test wants them, plus `extra` flags.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let data_dir = std::env::temp_dir().join(format!("linktrack-test-{}-{}", std::process::id(), rand::random::<u64>()));
    let mut argv = vec![
        "linktrack".to_owned(),
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--api-keys".to_owned(),
        API_KEY.to_owned(),
        "--token-keys".to_owned(),
        TOKEN_KEYS.to_owned(),
        "--fallback-url".to_owned(),
        FALLBACK.to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--partition-check-secs".to_owned(),
        "3600".to_owned(),
    ];
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    match Cli::try_parse_from(argv).expect("test args parse").command {
        Command::Serve(a) => *a,
        _ => unreachable!(),
    }
}

/// Log lines kept for a failure message.
const LOG_TAIL_LINES: usize = 60;

/// The last [`LOG_TAIL_LINES`] lines a server logged. A std mutex: held only
/// to push or read lines, never across `.await`.
#[derive(Clone, Default)]
pub struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    pub fn text(&self) -> String {
        let lines = self.0.lock().expect("log tail poisoned");
        if lines.is_empty() { "(the server logged nothing)".to_owned() } else { lines.iter().map(String::as_str).collect() }
    }
}

impl Write for LogTail {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.0.lock().expect("log tail poisoned");
        if lines.len() == LOG_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogTail {
    type Writer = LogTail;
    fn make_writer(&'a self) -> LogTail {
        self.clone()
    }
}

/// How long a server may take to answer its first health check.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// One `GET /healthz` on a fresh connection: true on a 200. Never panics, so
/// a failed start is reported with the server's logs, not a client error.
async fn healthy(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), probe).await.ok().flatten().unwrap_or(false)
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<linktrack::Result<()>>>,
}

impl TestServer {
    pub async fn start<S: Store>(store: Arc<S>, clock: Clock, args: ServeArgs) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let run_clock = clock.clone();
        let logs = LogTail::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,linktrack=debug"))
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        let handle = tokio::spawn(
            async move {
                linktrack::app::run(&args, store, run_clock, listener, async {
                    let _ = rx.await;
                })
                .await
            }
            .with_subscriber(subscriber),
        );
        // Startup (migrations, partitions) happens before the first accept; wait for healthz.
        let deadline = tokio::time::Instant::now() + STARTUP_LIMIT;
        while tokio::time::Instant::now() < deadline && !handle.is_finished() {
            if healthy(addr).await {
                return TestServer { addr, clock, shutdown: Some(tx), handle: Some(handle) };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let outcome = if handle.is_finished() {
            match handle.await {
                Ok(Ok(())) => "it stopped without an error".to_owned(),
                Ok(Err(e)) => format!("it failed: {e}"),
                Err(e) => format!("its task failed: {e}"),
            }
        } else {
            handle.abort();
            format!("it was still starting after {STARTUP_LIMIT:?}")
        };
        panic!("the server on {addr} never answered /healthz with 200 ({outcome}); its log tail:\n{}", logs.text());
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// Shut down and surface the server's result.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task panicked").expect("server returned an error");
        }
    }
}

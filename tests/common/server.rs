//! Start the real service in-process on `127.0.0.1:0`, with a manual clock,
//! against whatever store a test hands it; stop it through its injected
//! shutdown future.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use linktrack::config::{Cli, Command, ServeArgs};
use linktrack::day::{Clock, Day};
use linktrack::store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
        let handle = tokio::spawn(async move {
            linktrack::app::run(&args, store, run_clock, listener, async {
                let _ = rx.await;
            })
            .await
        });
        // Startup (migrations, partitions) happens before the first accept; wait for healthz.
        let mut client = Client::new(addr);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() && client.get("/healthz").await.status == 200 {
                break;
            }
            assert!(!handle.is_finished(), "server exited during startup");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        TestServer { addr, clock, shutdown: Some(tx), handle: Some(handle) }
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

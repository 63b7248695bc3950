//! A loopback TCP proxy that can cut the line, for database-outage tests.
//!
//! The service is pointed at the proxy instead of MariaDB. [`Proxy::cut`]
//! closes every open connection and answers new ones by closing them at once,
//! which is what a crashed or unreachable database looks like to a client;
//! [`Proxy::restore`] lets new connections through again. The listener stays
//! bound throughout, so the port never changes hands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped by every cut; connection tasks end when it changes.
    epoch: watch::Sender<u64>,
    refused: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listen on `127.0.0.1:0` and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU64::new(0));
        let (epoch, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(listener, upstream, up.clone(), epoch.clone(), refused.clone()));
        Proxy { addr, up, epoch, refused, accept }
    }

    /// `mysql://…@host:port/db?…` with host and port replaced by the proxy's.
    pub fn url_through(&self, db_url: &str) -> String {
        let mut url = url::Url::parse(db_url).expect("database url");
        url.set_host(Some("127.0.0.1")).expect("set host");
        url.set_port(Some(self.addr.port())).expect("set port");
        url.into()
    }

    /// Drop every open connection and refuse new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Connections closed on arrival while cut: proof the service tried.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The upstream address of a `mysql://` URL.
pub fn upstream_of(db_url: &str) -> SocketAddr {
    let url = url::Url::parse(db_url).expect("database url");
    let host = url.host_str().expect("database url host");
    let port = url.port().unwrap_or(3306);
    format!("{host}:{port}").parse().unwrap_or_else(|e| panic!("database host {host}:{port} is not an IP address: {e}"))
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, up: Arc<AtomicBool>, epoch: watch::Sender<u64>, refused: Arc<AtomicU64>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        // Subscribe before looking at `up`: a cut between the two is then
        // seen by one or the other, never missed.
        let mut cut = epoch.subscribe();
        if !up.load(Ordering::SeqCst) {
            refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}

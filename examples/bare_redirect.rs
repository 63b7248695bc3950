//! Load-test baseline only: a bare hyper 1.x HTTP/1.1 server that answers
//! every request with the same redirect. It exists solely so that
//! `loadtests/run.sh` (phase `bare`) can measure the spec's target
//! "warm redirect ≥ 0.6× a bare hyper server" on the same machine, with the
//! same wrk command and request paths. It is not part of the service.
//!
//! Every request, whatever its method or path, gets `302 Found` with
//! `Location: https://example.com/`, `Cache-Control: no-store` and an empty
//! body. Like `linktrack serve` it runs on tokio's multi-threaded runtime,
//! sets `TCP_NODELAY` on every accepted connection and keeps connections
//! alive; unlike it, there is no routing, no timer (no header-read timeout),
//! no graceful shutdown and no logging, so this is the floor of what a hyper
//! server costs per request.
//!
//! ```sh
//! cargo build --release --example bare_redirect
//! target/release/examples/bare_redirect 127.0.0.1:18181   # or BARE_ADDR=127.0.0.1:18181
//! ```
//!
//! It runs until killed (SIGTERM/SIGINT end the process).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const DEFAULT_ADDR: &str = "127.0.0.1:18181";

fn redirect() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(LOCATION, HeaderValue::from_static("https://example.com/"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr =
        std::env::args().nth(1).or_else(|| std::env::var("BARE_ADDR").ok()).unwrap_or_else(|| DEFAULT_ADDR.to_owned()).parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("bare_redirect listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, as the real server does.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req: Request<Incoming>| async { Ok::<_, Infallible>(redirect()) });
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

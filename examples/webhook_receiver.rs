//! Load-test helper only: a webhook receiver for `loadtests/webhooks.sh`.
//! It acknowledges every delivery (`POST` any path other than `/mode/*`)
//! with `200` and counts the batches and the events in them, or, after
//! `POST /mode/hang`, holds each delivery for 60 s without answering (a
//! receiver that hangs), until `POST /mode/ok`. `GET /count` answers
//! `<batches> <events>`. It does not verify signatures (the integration
//! tests do, with the `standardwebhooks` package); it is not part of the service.
//!
//! ```sh
//! cargo build --release --example webhook_receiver
//! target/release/examples/webhook_receiver 127.0.0.1:18390
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    hang: AtomicBool,
    batches: AtomicU64,
    events: AtomicU64,
}

async fn answer(st: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/count") => {
            Response::new(Full::new(Bytes::from(format!("{} {}\n", st.batches.load(Ordering::SeqCst), st.events.load(Ordering::SeqCst)))))
        }
        (Method::POST, "/mode/hang") => {
            st.hang.store(true, Ordering::SeqCst);
            Response::new(Full::new(Bytes::from_static(b"hang\n")))
        }
        (Method::POST, "/mode/ok") => {
            st.hang.store(false, Ordering::SeqCst);
            Response::new(Full::new(Bytes::from_static(b"ok\n")))
        }
        (Method::POST, _) => {
            if st.hang.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
            let body = req.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
            let n = serde_json::from_slice::<Vec<serde_json::Value>>(&body).map_or(0, |v| v.len() as u64);
            st.batches.fetch_add(1, Ordering::SeqCst);
            st.events.fetch_add(n, Ordering::SeqCst);
            Response::new(Full::new(Bytes::new()))
        }
        _ => Response::new(Full::new(Bytes::new())),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18390".to_owned()).parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("webhook_receiver listening on {}", listener.local_addr()?);
    let st = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let st = st.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(answer(st, req).await) }
            });
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

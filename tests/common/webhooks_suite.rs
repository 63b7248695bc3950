//! Webhooks over HTTP against every backend (wired into
//! `conformance_suite!`): a real receiver (a hyper server in the test)
//! collects the deliveries of two endpoints with different filters; every
//! event arrives, in cursor order, equal to the export row; a receiver that
//! fails for a while gets the same batches again under the same
//! `webhook-id`; the secret is rotated mid-delivery; and every signature is
//! verified by an independent implementation (the `standardwebhooks`
//! package from the Python Package Index, through `scripts/verify-webhooks`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::client::{Client, Reply, path_of};
use super::conformance::{Fixture, serve};
use super::server::API_KEY;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// A local webhook receiver answering `status` (changeable while it runs).
pub struct Receiver {
    pub addr: SocketAddr,
    /// What it answers.
    pub status: Arc<AtomicU16>,
    /// How long it takes to answer, in milliseconds.
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (status, got) = (Arc::new(AtomicU16::new(200)), Arc::new(Mutex::new(Vec::new())));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (st, g, delay) = (status.clone(), got.clone(), delay_ms.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (st, g, delay) = (st.clone(), g.clone(), delay.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (st, g, delay) = (st.clone(), g.clone(), delay.clone());
                        async move {
                            tokio::time::sleep(Duration::from_millis(delay.load(Ordering::SeqCst))).await;
                            let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                            let (id, timestamp, signature) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
                            let body = req.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
                            let status = st.load(Ordering::SeqCst);
                            let body = String::from_utf8(body.to_vec()).unwrap();
                            g.lock().unwrap().push(Delivery { id, timestamp, signature, body, status, at: std::time::Instant::now() });
                            let mut resp = http::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Receiver { addr, status, delay_ms, got }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

async fn call(c: &mut Client, method: Method, path: &str, body: Option<Value>) -> Reply {
    c.api(method, path, API_KEY, body.as_ref()).await
}

/// The events of the acknowledged deliveries, in order, after checking that
/// every retry repeats a failed batch exactly, under the same `webhook-id`.
pub fn acknowledged(deliveries: &[Delivery]) -> Vec<Value> {
    let mut bodies: BTreeMap<&str, &str> = BTreeMap::new();
    let mut events = Vec::new();
    for d in deliveries {
        if let Some(earlier) = bodies.insert(&d.id, &d.body) {
            assert_eq!(earlier, d.body, "a retried batch keeps its webhook-id and its body");
        }
        if d.status == 200 {
            events.extend(serde_json::from_str::<Vec<Value>>(&d.body).unwrap());
        }
    }
    events
}

pub async fn http_webhooks_deliver_settled_events_in_order_signed<F: Fixture>() {
    let f = F::open("webhooks").await;
    let flags = [
        "--event-flush-ms",
        "20",
        "--rollup-interval-ms",
        "50",
        "--rollup-page",
        "5000",
        "--burst-window-secs",
        "1",
        "--near-mint-secs",
        "0",
        "--webhook-allow-private",
        "--webhook-interval-ms",
        "50",
        "--webhook-batch-max",
        "200",
        "--webhook-backoff-max-ms",
        "1000",
        "--api-rate-per-ip",
        "0",
    ];
    let srv = serve(&f, &flags).await;
    let mut c = srv.client();
    let (all, clicks) = (Receiver::start().await, Receiver::start().await);

    let (all_id, first_secret, clicks_secret) = create_endpoints(&mut c, &all, &clicks).await;

    // 10,000 events: 100 letters of 4 links and a pixel, each token hit 20 times.
    let mut tokens = Vec::new();
    for i in 0..100 {
        let urls: Vec<Value> = (0..4).map(|j| json!({"url": format!("https://shop.example/{i}/{j}")})).collect();
        let body = json!({"mailing_id": format!("m{}", 1 + i % 2), "recipient": format!("r{i}@example.com"), "links": urls, "pixel": true});
        let letter = c.mint(Some(API_KEY), &body, None).await.json();
        for l in letter["links"].as_array().unwrap() {
            tokens.push(path_of(l["tracking_url"].as_str().unwrap()));
        }
        tokens.push(path_of(letter["pixel"]["tracking_url"].as_str().unwrap()));
    }
    let half = tokens.len() * 10;
    let mut sent = 0;
    for round in 0..20 {
        for t in &tokens {
            let s = c.get(t).await.status.as_u16();
            assert!(s == 302 || s == 200, "{t}: {s}");
            sent += 1;
        }
        srv.clock.advance_ms(5_000);
        if sent == half {
            // The receiver of every event fails for a while: batches are retried, nothing is skipped.
            all.status.store(500, Ordering::SeqCst);
        }
        if round == 14 {
            all.status.store(200, Ordering::SeqCst);
        }
    }
    assert_eq!(sent, 10_000);

    // Rotate the first endpoint's secret while it delivers; both sign during the overlap.
    let rotated = call(&mut c, Method::POST, &format!("/v1/webhooks/{all_id}/rotate"), Some(json!({"overlap_secs": 3600}))).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let second_secret = rotated.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(second_secret, first_secret);

    // Everything settles: the rollup gives final verdicts, then delivery catches up.
    srv.clock.advance_ms(60_000);
    let expected_clicks = 100 / 2 * 4 * 20;
    let mut got_all = Vec::new();
    let mut got_clicks = Vec::new();
    for _ in 0..600 {
        got_all = acknowledged(&all.deliveries());
        got_clicks = acknowledged(&clicks.deliveries());
        if got_all.len() >= 10_000 && got_clicks.len() >= expected_clicks {
            break;
        }
        srv.clock.advance_ms(1_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got_all.len(), 10_000, "every event arrives exactly once among acknowledged batches");
    assert_eq!(got_clicks.len(), expected_clicks, "the filtered endpoint gets m2's clicks only");
    assert!(all.deliveries().iter().any(|d| d.status == 500), "the receiver did fail for a while");

    // In cursor order, and equal to the export.
    let export = call(&mut c, Method::GET, "/v1/events?limit=100000", None).await;
    let export: Vec<Value> = std::str::from_utf8(&export.body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got_all, export, "the deliveries are the export rows, in cursor order");
    let want_clicks: Vec<&Value> = export.iter().filter(|r| r["kind"] == "click" && r["mailing_id"] == "m2").collect();
    assert_eq!(got_clicks.iter().collect::<Vec<_>>(), want_clicks);

    // State: caught up, last success recorded.
    let state = call(&mut c, Method::GET, &format!("/v1/webhooks/{all_id}"), None).await.json();
    assert_eq!((state["paused"].as_bool(), state["lag_events"].as_u64()), (Some(false), Some(0)), "{state}");
    assert_eq!(state["cursor"], export.last().unwrap()["cursor"]);
    assert!(state["last_success"].is_string());

    verify_signatures(&all.deliveries(), &clicks.deliveries(), [&first_secret, &second_secret, &clicks_secret]);

    // Pause, resume and delete.
    let paused = call(&mut c, Method::POST, &format!("/v1/webhooks/{all_id}/pause"), None).await.json();
    assert_eq!(paused["paused"], true);
    assert_eq!(call(&mut c, Method::POST, &format!("/v1/webhooks/{all_id}/resume"), None).await.json()["paused"], false);
    assert_eq!(call(&mut c, Method::DELETE, &format!("/v1/webhooks/{all_id}"), None).await.status, 200);
    assert_eq!(call(&mut c, Method::GET, &format!("/v1/webhooks/{all_id}"), None).await.status, 404);
}

/// Every signature, checked by `standardwebhooks` (Python Package Index) through
/// `scripts/verify-webhooks`: secret 0 signs `all` until the rotation, after
/// which both 0 and 1 must verify; secret 2 signs `clicks`.
fn verify_signatures(all: &[Delivery], clicks: &[Delivery], secrets: [&str; 3]) {
    let rotated_at = all.iter().position(|d| d.signature.contains(' ')).expect("deliveries after the rotation carry two signatures");
    let mut deliveries = Vec::new();
    for (i, d) in all.iter().enumerate() {
        let which = if i >= rotated_at { vec![0, 1] } else { vec![0] };
        deliveries.push(json!({"id": d.id, "timestamp": d.timestamp, "signature": d.signature, "body": d.body, "secrets": which}));
    }
    for d in clicks {
        deliveries.push(json!({"id": d.id, "timestamp": d.timestamp, "signature": d.signature, "body": d.body, "secrets": [2]}));
    }
    let file = std::env::temp_dir().join(format!("linktrack-webhooks-{}-{}.json", std::process::id(), rand::random::<u32>()));
    std::fs::write(&file, json!({"secrets": secrets, "deliveries": deliveries}).to_string()).unwrap();
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-webhooks"))
        .arg(&file)
        .output()
        .expect("run scripts/verify-webhooks");
    let _ = std::fs::remove_file(&file);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "standardwebhooks refused a signature: {said}");
    assert!(said.contains("verified"), "{said}");
}

/// Two endpoints from the beginning: every event to `all`, m2's clicks to
/// `clicks`; (the first's id, its secret, the second's secret).
async fn create_endpoints(c: &mut Client, all: &Receiver, clicks: &Receiver) -> (u64, String, String) {
    // Refused: a private address without the flag is tested in the unit tests; here, bad filters and scopes.
    let r =
        call(c, Method::POST, "/v1/webhooks", Some(json!({"url": format!("http://{}/", all.addr), "filters": {"kinds": ["clik"]}}))).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let created =
        call(c, Method::POST, "/v1/webhooks", Some(json!({"url": format!("http://{}/all", all.addr), "start": "beginning"}))).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let created = created.json();
    let (all_id, first_secret) = (created["id"].as_u64().unwrap(), created["secret"].as_str().unwrap().to_owned());
    assert!(first_secret.starts_with("whsec_"));
    let body =
        json!({"url": format!("http://{}/m2", clicks.addr), "filters": {"kinds": ["click"], "mailings": ["m2"]}, "start": "beginning"});
    let created2 = call(c, Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(created2.status, 201, "{:?}", created2.body);
    let clicks_secret = created2.json()["secret"].as_str().unwrap().to_owned();
    let listed = call(c, Method::GET, "/v1/webhooks", None).await.json();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("whsec_"), "secrets are shown only when created or rotated");

    (all_id, first_secret, clicks_secret)
}

/// The delivery lease at the store: one owner at a time; renewing keeps it;
/// another owner gets it only once it has expired (a replica that died);
/// progress is written only by the holder.
pub async fn webhook_lease_is_exclusive_and_expires<F: Fixture>() {
    use linktrack::events::Cursor;
    use linktrack::store::Store;
    use linktrack::tenant::TenantId;
    use linktrack::webhooks::{Filters, Progress, Webhook, WebhookSecret};
    let f = super::conformance::ready::<F>("lease").await;
    let store = f.store();
    let w = Webhook::new(TenantId::DEFAULT, "http://127.0.0.1:9/".into(), WebhookSecret::generate(), Filters::default(), Cursor::START, 0);
    let id = store.create_webhook(&w).await.unwrap();
    let (first, second) = ([1u8; 16], [2u8; 16]);
    assert!(store.lease_webhook(id, first, 1_000, 31_000).await.unwrap(), "a free endpoint is leased");
    assert!(!store.lease_webhook(id, second, 2_000, 32_000).await.unwrap(), "held by another replica");
    assert!(store.lease_webhook(id, first, 20_000, 50_000).await.unwrap(), "the holder renews");
    assert!(!store.lease_webhook(id, second, 49_999, 79_999).await.unwrap(), "not before it expires");
    let progress = Progress {
        cursor: Cursor { day: linktrack::day::Day(7), id: 9 },
        paused: false,
        failing_since_ms: None,
        last_success_ms: Some(5),
        last_error: None,
        lag_events: 0,
        lag_ms: 0,
    };
    assert!(!store.webhook_progress(id, second, &progress).await.unwrap(), "only the holder records progress");
    assert!(store.webhook_progress(id, first, &progress).await.unwrap());
    assert!(store.lease_webhook(id, second, 50_001, 80_001).await.unwrap(), "an expired lease is taken over");
    assert!(!store.webhook_progress(id, first, &progress).await.unwrap(), "the old holder can no longer write");
    let stored = store.webhooks(Some(TenantId::DEFAULT)).await.unwrap();
    assert_eq!((stored.len(), stored[0].cursor, stored[0].last_success_ms), (1, progress.cursor, Some(5)));
    assert!(store.webhooks(Some(TenantId(2))).await.unwrap().is_empty(), "another tenant sees none");
    assert!(!store.delete_webhook(TenantId(2), id).await.unwrap(), "nor deletes it");
    assert!(!store.lease_webhook(id + 1000, first, 0, 1).await.unwrap(), "no such endpoint");
}

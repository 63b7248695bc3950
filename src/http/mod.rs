//! The HTTP surface (hyper 1.x): routing, request limits, and the accept loop.
//!
//! Architecture invariant: only this module knows about HTTP. Handlers get
//! domain values out of requests, call the store through [`AppState`], and
//! turn errors into responses in one place (`error`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::cache::{LinkCache, NegativeCache};
use crate::day::Clock;
use crate::events::classify::Classifier;
use crate::events::queue::{EventCounters, EventQueue};
use crate::events::{IpAnonymisation, Method as HitMethod};
use crate::ids::IdAllocator;
use crate::link::LinkKind;
use crate::ready::Readiness;
use crate::store::Store;
use crate::tenant::Scope;
use crate::token_keys::LiveKeys;

pub mod auth;
pub mod client_ip;
pub mod error;
pub mod export;
pub mod limits;
pub mod metrics;
pub mod mint;
pub mod openapi;
pub mod pages;
pub mod recipients;
pub mod redirect;
pub mod report;
pub mod rewrite;
pub mod stats;
pub mod webhooks;

use auth::{ApiKeys, Caller};
use error::{ApiError, Body, full};
use redirect::HitRequest;

/// How hits become events on the redirect path.
#[derive(Debug)]
pub struct EventCapture {
    pub queue: EventQueue,
    pub classifier: Classifier,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub anonymisation: IpAnonymisation,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    pub max_links: usize,
    pub max_body_bytes: usize,
    /// Largest letter `POST /v1/rewrite` takes, in bytes of HTML.
    pub max_html_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

/// Everything a handler needs, shared by all connections.
#[derive(Debug)]
pub struct AppState<S> {
    pub store: Arc<S>,
    /// What the readiness task found last (`/readyz`).
    pub ready: Arc<Readiness>,
    /// What a browser sees when a click cannot be followed.
    pub pages: pages::ErrorPages,
    /// Latency histograms, response and cache counters (`/metrics`).
    pub metrics: metrics::HttpMetrics,
    /// Token buckets of the API (`/v1/*`).
    pub api_limits: limits::ApiLimits,
    /// Link ids for v2 tokens, reserved from the store in blocks.
    pub ids: IdAllocator<S>,
    /// The token keys, swapped whole when the store's ring changes (`token_keys`).
    pub keys: Arc<LiveKeys>,
    pub api_keys: ApiKeys,
    pub cache: LinkCache,
    pub negative: NegativeCache,
    pub clock: Clock,
    /// Base of tracking URLs, without a trailing slash.
    pub public_url: String,
    pub fallback: Option<HeaderValue>,
    pub retention_days: u16,
    pub limits: Limits,
    pub events: EventCapture,
    /// Largest `limit` of one `GET /v1/events`.
    pub export_max_limit: usize,
    /// Webhook endpoints may be private, loopback or link-local addresses.
    pub webhook_allow_private: bool,
    /// Delivery counters and per-endpoint lag (`/metrics`).
    pub webhook_metrics: Arc<crate::webhooks::deliver::WebhookMetrics>,
}

/// Serve HTTP on `listener` until `shutdown` resolves, then stop accepting,
/// let in-flight requests finish (up to `drain`), and return.
pub async fn serve<S: Store>(listener: TcpListener, state: Arc<AppState<S>>, shutdown: impl Future<Output = ()>, drain: Duration) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(state.limits.header_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    let tracker = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(state.limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the kernel's backlog.
        let slot = if let Ok(slot) = slots.clone().try_acquire_owned() {
            slot
        } else {
            state.metrics.connection_waited();
            tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            }
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    crate::log_limited!(warn, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, Infallible>(route(&st, req, peer).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tracker.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracker.close();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    tracker.wait().await;
}

/// The route a path belongs to, as metrics label it.
fn route_name(path: &str) -> &'static str {
    if path.starts_with("/c/") {
        "redirect"
    } else if path.starts_with("/o/") {
        "pixel"
    } else if path.starts_with("/v1/mailings/") {
        "stats"
    } else if path.starts_with("/report/") || path.starts_with("/assets/") {
        "report"
    } else {
        match path {
            "/v1/links" => "mint",
            "/v1/rewrite" => "rewrite",
            "/v1/events" => "export",
            "/v1/recipients" => "erase",
            p if p.starts_with("/v1/webhooks") => "webhooks",
            "/healthz" | "/readyz" => "probe",
            "/metrics" => "metrics",
            "/openapi.json" => "openapi",
            _ => "other",
        }
    }
}

/// Answer one request and record its latency and status.
async fn route<S: Store>(st: &Arc<AppState<S>>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = std::time::Instant::now();
    let name = route_name(req.uri().path());
    let resp = dispatch(st, req, peer).await;
    // A streamed export is timed to its first byte; its body follows.
    st.metrics.observe(name, resp.status().as_u16(), started.elapsed());
    resp
}

async fn dispatch<S: Store>(st: &Arc<AppState<S>>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    // The API key is checked once per API request: the limits and the handlers share the result.
    let mut caller = None;
    if req.uri().path().starts_with("/v1/") {
        caller = st.api_keys.verify(req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes));
        let ip = client_ip::client_ip(peer.ip(), req.headers(), &st.events.trusted_proxies);
        if let Err(limited) = st.api_limits.check(ip, caller.as_ref().map(|c| &c.digest)) {
            let secs = limited.retry_after.as_secs() + 1;
            crate::log_limited!(warn, limit = limited.what, "API rate limit hit");
            let mut resp =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many {}; retry in {secs} s", limited.what))
                    .into_response();
            resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
    }
    // Only plain `chunked` framing is accepted: `gzip, chunked` and the like
    // would hand us a body we do not decode.
    for te in req.headers().get_all(http::header::TRANSFER_ENCODING) {
        if !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported_transfer_encoding",
                "only Transfer-Encoding: chunked is supported",
            )
            .into_response();
        }
    }
    let path = req.uri().path();
    let method = match *req.method() {
        Method::GET => Some(HitMethod::Get),
        Method::HEAD => Some(HitMethod::Head),
        _ => None,
    };
    for (prefix, kind) in [("/c/", LinkKind::Click), ("/o/", LinkKind::Open)] {
        if let Some(tok) = path.strip_prefix(prefix) {
            let Some(method) = method else { return method_not_allowed("GET, HEAD") };
            let hit = HitRequest { method, headers: req.headers(), peer: peer.ip() };
            return redirect::follow(st, kind, tok, hit).await;
        }
    }
    if let Some(rest) = path.strip_prefix("/v1/mailings/")
        && let Some((id, what)) = rest.rsplit_once('/').filter(|(id, what)| !id.contains('/') && matches!(*what, "stats" | "series"))
    {
        if method != Some(HitMethod::Get) {
            return method_not_allowed("GET");
        }
        let caller = match allowed(caller, Scope::Read) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let answer = if what == "stats" {
            stats::mailing_stats(st, caller.tenant, id).await
        } else {
            stats::mailing_series(st, caller.tenant, id, req.uri().query()).await
        };
        return answer.map_or_else(ApiError::into_response, |(status, body)| json(status, body));
    }
    if let Some(resp) = report::route(path, method.is_some()) {
        return resp;
    }
    if let Some(rest) = path.strip_prefix("/v1/webhooks").filter(|r| r.is_empty() || r.starts_with('/')) {
        let Some(caller) = caller else { return ApiError::unauthorized().into_response() };
        let rest = rest.to_owned();
        let method = req.method().clone();
        let body = if matches!(method, Method::POST) {
            match read_body(req.into_body(), st.limits.max_body_bytes, st.limits.body_timeout).await {
                Ok(b) => Some(b),
                Err(e) => return e.into_response(),
            }
        } else {
            None
        };
        return webhooks::handle(st, &caller, &method, &rest, body)
            .await
            .map_or_else(ApiError::into_response, |(status, body)| json(status, body));
    }
    match path {
        "/v1/links" if req.method() == Method::POST => handle_mint(st, req, caller).await.unwrap_or_else(ApiError::into_response),
        "/v1/rewrite" if req.method() == Method::POST => handle_rewrite(st, req, caller).await.unwrap_or_else(ApiError::into_response),
        "/v1/links" | "/v1/rewrite" => method_not_allowed("POST"),
        "/v1/events" if method == Some(HitMethod::Get) => match allowed(caller, Scope::Read) {
            Ok(c) => export::events(st, c.tenant, req.uri().query()).await.unwrap_or_else(ApiError::into_response),
            Err(e) => e.into_response(),
        },
        "/v1/events" => method_not_allowed("GET"),
        "/v1/recipients" if req.method() == Method::DELETE => {
            handle_erase(st, req, caller).await.map_or_else(ApiError::into_response, |(status, body)| json(status, body))
        }
        "/v1/recipients" => method_not_allowed("DELETE"),
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" if method.is_none() => method_not_allowed("GET, HEAD"),
        "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        "/readyz" => readyz(st),
        "/metrics" => metrics(st),
        "/openapi.json" => match openapi::json() {
            Ok(doc) => json(StatusCode::OK, doc.to_owned()),
            Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e).into_response(),
        },
        _ => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response(),
    }
}

/// Prometheus text exposition of the event pipeline's counters, readiness,
/// partitions ahead, and the HTTP metrics.
fn metrics<S: Store>(st: &AppState<S>) -> Response<Body> {
    use std::fmt::Write;
    let c: &EventCounters = &st.events.queue.counters;
    let get = EventCounters::get;
    let mut out = String::new();
    for (name, help, kind, value) in [
        ("linktrack_events_captured_total", "Hits queued as events.", "counter", get(&c.captured)),
        ("linktrack_events_dropped_total", "Events dropped because queue and spool were full.", "counter", get(&c.dropped)),
        ("linktrack_events_stored_total", "Event rows written to the store.", "counter", get(&c.stored)),
        ("linktrack_events_spooled_total", "Events written to the local spool.", "counter", get(&c.spooled)),
        ("linktrack_events_replayed_total", "Spooled events replayed into the store.", "counter", get(&c.replayed)),
        ("linktrack_spool_corrupt_records_total", "Torn or corrupt spool records skipped.", "counter", get(&c.spool_corrupt)),
        ("linktrack_spool_duplicate_batches_total", "Replayed batches found already stored.", "counter", get(&c.duplicate_batches)),
        ("linktrack_spool_bytes", "Bytes in the event spool.", "gauge", get(&c.spool_bytes)),
        ("linktrack_rollup_events_total", "Events counted into the stats by this process's rollup.", "counter", get(&c.rolled_up)),
        ("linktrack_event_queue_depth", "Events waiting in the in-memory queue.", "gauge", st.events.queue.depth() as u64),
        ("linktrack_ready", "1 while /readyz answers 200, else 0.", "gauge", u64::from(st.ready.reasons().is_empty())),
        ("linktrack_ready_transitions_total", "Flips of /readyz between ready and not ready.", "counter", st.ready.transitions()),
    ] {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    // NaN until a maintenance pass of this process has run (another replica may hold the lock).
    let ahead = crate::partitions::days_ahead(st.clock.today()).map_or_else(|| "NaN".to_owned(), |d| d.to_string());
    let name = "linktrack_partitions_ahead_days";
    let help = "Days from today to the newest link partition the last maintenance pass of this process saw.";
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {ahead}\n");
    // NaN until this process's rollup has read the watermark once.
    let as_of = get(&c.rollup_as_of_ms);
    #[allow(clippy::cast_precision_loss, reason = "milliseconds since 1970 fit an f64 exactly until the year 287,000")]
    let lag = if as_of == 0 { "NaN".to_owned() } else { format!("{:.3}", (st.clock.now_ms() as f64 - as_of as f64) / 1000.0) };
    let name = "linktrack_rollup_lag_seconds";
    let help = "Now minus the rollup's as_of: every stored event hit before as_of is counted in the stats (includes the settle delay).";
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {lag}\n");
    st.metrics.set_pool(st.store.pool_metrics());
    st.metrics.encode(&mut out);
    st.webhook_metrics.encode(&mut out);
    if let Some(routing) = st.store.read_routing() {
        metrics::encode_read_routing(&routing, &mut out);
    }
    let mut resp = Response::new(full(out));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// The caller, if it may do what needs `scope`: `401` without a valid key,
/// `403` with a key that lacks the scope. Minting (`POST /v1/links` and
/// `POST /v1/rewrite`) needs `mint`.
pub fn allowed(caller: Option<Caller>, scope: Scope) -> Result<Caller, ApiError> {
    let caller = caller.ok_or_else(ApiError::unauthorized)?;
    if caller.may(scope) { Ok(caller) } else { Err(ApiError::forbidden(scope)) }
}

/// `caller`: who the request's valid API key names, if it has one.
async fn handle_mint<S: Store>(st: &AppState<S>, req: Request<Incoming>, caller: Option<Caller>) -> Result<Response<Body>, ApiError> {
    let caller = allowed(caller, Scope::Mint)?;
    let (parts, body) = req.into_parts();
    let body = read_body(body, st.limits.max_body_bytes, st.limits.body_timeout).await?;
    let (status, text) = mint::mint(st, &parts.headers, &caller, &body).await?;
    Ok(json(status, text))
}

async fn handle_rewrite<S: Store>(st: &AppState<S>, req: Request<Incoming>, caller: Option<Caller>) -> Result<Response<Body>, ApiError> {
    let caller = allowed(caller, Scope::Mint)?;
    let (parts, body) = req.into_parts();
    // The HTML travels as a JSON string: room for its escapes, and the html limit is checked on the decoded text.
    let max = st.limits.max_body_bytes.max(st.limits.max_html_bytes.saturating_mul(2).saturating_add(64 << 10));
    let body = read_body(body, max, st.limits.body_timeout).await?;
    let (status, text) = rewrite::rewrite(st, &parts.headers, &caller, &body).await?;
    Ok(json(status, text))
}

/// `DELETE /v1/recipients`: needs the `admin` scope.
async fn handle_erase<S: Store>(
    st: &AppState<S>,
    req: Request<Incoming>,
    caller: Option<Caller>,
) -> Result<(StatusCode, String), ApiError> {
    let caller = allowed(caller, Scope::Admin)?;
    let body = read_body(req.into_body(), st.limits.max_body_bytes, st.limits.body_timeout).await?;
    recipients::erase(st, &caller, &body).await
}

/// Read a whole body within the size and time limits.
async fn read_body(body: Incoming, max: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before any of it is read.
    if hyper::body::Body::size_hint(&body).lower() > max as u64 {
        return Err(too_large(max));
    }
    let collect = Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "request body not received in time")),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large(max)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("could not read body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// `200 {"status":"ready"}`, or `503 {"status":"not_ready","reasons":[...]}`
/// saying why. With read replicas, both also carry `read_replicas` (each
/// replica's state) and, while any gets no reads, `notes`: a replica down or
/// behind does not make this replica unready, since the primary serves its reads.
fn readyz<S: Store>(st: &AppState<S>) -> Response<Body> {
    let reasons = st.ready.reasons();
    let routing = st.store.read_routing();
    let (status, mut body) = if reasons.is_empty() {
        (StatusCode::OK, serde_json::json!({"status": "ready"}))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "not_ready", "reasons": reasons}))
    };
    if let Some(routing) = routing {
        let replicas: Vec<serde_json::Value> = routing
            .replicas
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "state": r.state.label(),
                    "lag_seconds": r.lag.map(|l| l.as_secs_f64()),
                    "reason": r.reason,
                })
            })
            .collect();
        body["read_replicas"] = serde_json::Value::Array(replicas);
        let notes = routing.notes();
        if !notes.is_empty() {
            body["notes"] = serde_json::json!(notes);
        }
    }
    json(status, body.to_string())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("request body exceeds {max} bytes"))
}

/// An API response: JSON, never stored by caches (stats and mints are per caller).
fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    ApiError::method_not_allowed(allow).into_response()
}

//! The webhook delivery service: one more cursor consumer of the event log,
//! beside the rollup and the export.
//!
//! Every replica runs a [`Deliverer`]. Each pass it lists the endpoints and,
//! for each one not paused and not backing off, takes (or renews) the
//! endpoint's lease in the store; only the lease holder delivers, so one
//! replica delivers a given endpoint at a time, and a dead replica's lease
//! expires for another to take over. The holder reads events after the
//! endpoint's cursor up to the rollup watermark (settled: their verdict is
//! final), keeps those of the endpoint's tenant that pass its filters, and
//! POSTs them as a JSON array signed per Standard Webhooks. A `2xx` moves the
//! cursor past the batch (written only while the lease is still held);
//! anything else is retried with exponential backoff and jitter, the same
//! batch with the same `webhook-id`, so delivery is at least once and in
//! cursor order. After `pause_after` of continuous failure the endpoint is
//! paused until an operator resumes it; its cursor stays, so nothing is
//! lost while retention keeps the events.
//!
//! The service runs on the background runtime with bounded request
//! timeouts: a slow receiver delays only its own endpoint's next batch,
//! never redirects, event capture or the rollup.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Progress, Webhook};
use crate::day::Clock;
use crate::events::export::row_json;
use crate::events::{Cursor, EventQuery};
use crate::store::Store;
use crate::token_keys::LiveKeys;
use crate::{Error, Result};

/// How delivery runs.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// Pause between passes when there was nothing to send.
    pub every: Duration,
    /// Events per delivery at most.
    pub batch_max: usize,
    /// Deadline of one delivery request (connect included).
    pub timeout: Duration,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Continuous failure after which an endpoint is paused.
    pub pause_after: Duration,
    /// First retry delay; it doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Deliver to private, loopback and link-local addresses too.
    pub allow_private: bool,
}

/// Delivery counters and the last view of every endpoint this process delivered, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    pub delivered_batches: std::sync::atomic::AtomicU64,
    pub delivered_events: std::sync::atomic::AtomicU64,
    pub failed_batches: std::sync::atomic::AtomicU64,
    /// Sum and count of successful delivery latencies, in microseconds.
    pub latency_us_sum: std::sync::atomic::AtomicU64,
    /// endpoint id -> (lag events, lag seconds, paused), as last seen by this process.
    pub endpoints: Mutex<BTreeMap<u32, (u64, f64, bool)>>,
}

impl WebhookMetrics {
    /// Prometheus text of the delivery series.
    pub fn encode(&self, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let ok = self.delivered_batches.load(Relaxed);
        let _ = write!(
            out,
            "# HELP linktrack_webhook_deliveries_total Webhook delivery attempts by outcome.\n# TYPE linktrack_webhook_deliveries_total counter\n\
             linktrack_webhook_deliveries_total{{outcome=\"success\"}} {ok}\nlinktrack_webhook_deliveries_total{{outcome=\"failure\"}} {}\n\
             # HELP linktrack_webhook_events_delivered_total Events acknowledged by webhook receivers.\n# TYPE linktrack_webhook_events_delivered_total counter\n\
             linktrack_webhook_events_delivered_total {}\n\
             # HELP linktrack_webhook_delivery_seconds Time of successful webhook deliveries.\n# TYPE linktrack_webhook_delivery_seconds summary\n\
             linktrack_webhook_delivery_seconds_sum {}\nlinktrack_webhook_delivery_seconds_count {ok}\n",
            self.failed_batches.load(Relaxed),
            self.delivered_events.load(Relaxed),
            Duration::from_micros(self.latency_us_sum.load(Relaxed)).as_secs_f64(),
        );
        let endpoints = self.endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let paused = endpoints.values().filter(|e| e.2).count();
        let _ = write!(
            out,
            "# HELP linktrack_webhook_paused_endpoints Endpoints this process found paused.\n# TYPE linktrack_webhook_paused_endpoints gauge\n\
             linktrack_webhook_paused_endpoints {paused}\n\
             # HELP linktrack_webhook_lag_events Settled matching events not yet delivered, per endpoint this process delivers.\n\
             # TYPE linktrack_webhook_lag_events gauge\n"
        );
        for (id, (events, _, _)) in &endpoints {
            let _ = writeln!(out, "linktrack_webhook_lag_events{{endpoint=\"{id}\"}} {events}");
        }
        let _ = write!(
            out,
            "# HELP linktrack_webhook_lag_seconds Age of the oldest undelivered matching event, per endpoint this process delivers.\n\
             # TYPE linktrack_webhook_lag_seconds gauge\n"
        );
        for (id, (_, secs, _)) in &endpoints {
            let _ = writeln!(out, "linktrack_webhook_lag_seconds{{endpoint=\"{id}\"}} {secs}");
        }
    }
}

/// Milliseconds as seconds, for display and gauges.
pub fn secs(ms: i64) -> f64 {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).as_secs_f64()
}

/// A batch formed and not yet acknowledged: retried as is.
#[derive(Debug, Clone)]
struct Pending {
    msg_id: String,
    body: Vec<u8>,
    last: Cursor,
    events: u64,
    /// When the oldest event of the batch was hit (service clock, ms): the endpoint's lag while it is undelivered.
    oldest_at_ms: i64,
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next: Option<Instant>,
    pending: Option<Pending>,
}

/// Is `ip` somewhere a webhook must not go without `--webhook-allow-private`?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Check an endpoint URL: `https`, or `http` to a loopback address when
/// private addresses are allowed; its host must not resolve to a private,
/// loopback or link-local address unless they are allowed.
pub async fn check_url(url: &str, allow_private: bool) -> std::result::Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("url is not absolute: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not contain a user name or password".into());
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("url has no host")?.to_owned();
    let port = parsed.port_or_known_default().ok_or("url has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<IpAddr> = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| format!("{host}: name lookup timed out"))?
        .map_err(|e| format!("{host}: {e}"))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private && addrs.iter().all(IpAddr::is_loopback) => {}
        "http" => return Err("url must be https (plain http only to loopback, with --webhook-allow-private)".into()),
        other => return Err(format!("url scheme {other:?} is not https")),
    }
    if !allow_private && let Some(a) = addrs.iter().find(|a| is_private(**a)) {
        return Err(format!(
            "{host} resolves to {a}, a private, loopback or link-local address (allowed only with --webhook-allow-private)"
        ));
    }
    Ok(parsed)
}

/// One replica's webhook delivery task.
#[derive(Debug)]
pub struct Deliverer<S> {
    store: Arc<S>,
    clock: Clock,
    cfg: DeliveryConfig,
    client: reqwest::Client,
    /// This process's lease identity.
    owner: [u8; 16],
    metrics: Arc<WebhookMetrics>,
    backoff: HashMap<u32, Backoff>,
    /// The token ring, to name each event's token in a delivery.
    keys: Option<Arc<LiveKeys>>,
}

impl<S: Store> Deliverer<S> {
    pub fn new(store: Arc<S>, clock: Clock, cfg: DeliveryConfig, metrics: Arc<WebhookMetrics>) -> Result<Deliverer<S>> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("linktrack-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("webhook HTTP client: {e}")))?;
        Ok(Deliverer { store, clock, cfg, client, owner: rand::random(), metrics, backoff: HashMap::new(), keys: None })
    }

    /// Name each delivered event's token from this ring (as the export does).
    #[must_use]
    pub fn with_keys(self, keys: Arc<LiveKeys>) -> Deliverer<S> {
        Deliverer { keys: Some(keys), ..self }
    }

    /// Deliver until cancelled; a batch in flight finishes (within its timeout) first.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let busy = match self.pass().await {
                Ok(busy) => busy,
                Err(e) => {
                    crate::log_limited!(warn, error = %e, "webhook delivery pass failed");
                    false
                }
            };
            let pause = if busy { Duration::ZERO } else { self.cfg.every };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass over every endpoint; true if anything was delivered.
    pub async fn pass(&mut self) -> Result<bool> {
        let endpoints = self.store.webhooks(None).await?;
        let watermark = self.store.rollup_state().await?.watermark;
        let known: Vec<u32> = endpoints.iter().map(|w| w.id).collect();
        self.backoff.retain(|id, _| known.contains(id));
        self.metrics.endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|id, _| known.contains(id));
        let mut busy = false;
        for w in endpoints {
            if w.paused {
                self.note(&w, w.lag_events, w.lag_ms, true);
                continue;
            }
            if let Some(b) = self.backoff.get(&w.id).filter(|b| b.next.is_some_and(|t| Instant::now() < t)) {
                // Backing off: the batch waits, and its age is the endpoint's lag.
                if let Some(p) = &b.pending {
                    self.note(&w, p.events, self.clock.now_ms() - p.oldest_at_ms, false);
                }
                continue;
            }
            let now_ms = self.clock.now_ms();
            let until = now_ms + i64::try_from(self.cfg.lease.as_millis()).unwrap_or(i64::MAX / 4);
            if !self.store.lease_webhook(w.id, self.owner, now_ms, until).await? {
                continue; // another replica delivers it
            }
            busy |= self.deliver_one(&w, watermark).await?;
        }
        Ok(busy)
    }

    fn note(&self, w: &Webhook, lag_events: u64, lag_ms: i64, paused: bool) {
        self.metrics.endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(w.id, (lag_events, secs(lag_ms), paused));
    }

    /// The next batch of `w` after its cursor, up to `watermark`: its
    /// message, or only a cursor to skip to when nothing after it matches.
    async fn form(&self, w: &Webhook, watermark: Cursor) -> Result<(Option<Pending>, Cursor, u64, i64)> {
        let mut after = w.cursor;
        let mut rows = Vec::new();
        let mut scanned_to = w.cursor;
        let mut oldest_ms = None;
        // Read pages until a batch is full or the settled events run out.
        'pages: loop {
            let page = self.store.read_events(&EventQuery { after, limit: 1000, mailing_id: None }).await?;
            let full = page.len() == 1000;
            for r in page {
                if r.cursor > watermark {
                    break 'pages;
                }
                after = r.cursor;
                if rows.len() >= self.cfg.batch_max {
                    break 'pages;
                }
                scanned_to = r.cursor;
                if r.link.as_ref().is_some_and(|l| l.tenant == w.tenant) && w.filters.pass(&r) {
                    oldest_ms.get_or_insert(r.at_ms);
                    rows.push(r);
                }
            }
            if !full {
                break;
            }
        }
        let Some(first) = rows.first() else { return Ok((None, scanned_to, 0, 0)) };
        let oldest_at_ms = oldest_ms.unwrap_or(first.at_ms);
        let lag_ms = (self.clock.now_ms() - oldest_at_ms).max(0);
        let last = rows.last().map_or(first.cursor, |r| r.cursor);
        let ring = self.keys.as_ref().map(|k| k.load());
        let body = serde_json::to_vec(&rows.iter().map(|r| row_json(r, ring.as_deref().map(|r| &**r))).collect::<Vec<_>>())?;
        let msg_id = format!("msg_{}_{}_{}", w.id, first.cursor.encode(), last.encode());
        let n = rows.len() as u64;
        Ok((Some(Pending { msg_id, body, last: scanned_to, events: n, oldest_at_ms }), scanned_to, n, lag_ms))
    }

    async fn deliver_one(&mut self, w: &Webhook, watermark: Cursor) -> Result<bool> {
        let pending = self.backoff.get(&w.id).and_then(|b| b.pending.clone());
        let (batch, lag_events, lag_ms) = if let Some(p) = pending {
            let (events, lag_ms) = (p.events, (self.clock.now_ms() - p.oldest_at_ms).max(0));
            (p, events, lag_ms)
        } else {
            let (batch, skip_to, n, lag_ms) = self.form(w, watermark).await?;
            let Some(batch) = batch else {
                self.note(w, 0, 0, false);
                if skip_to > w.cursor {
                    // Only other tenants' or filtered-out events: move past them.
                    self.progress(w, skip_to, None, w.failing_since_ms, w.last_success_ms, w.last_error.clone(), 0, 0).await?;
                }
                return Ok(false);
            };
            (batch, n, lag_ms)
        };
        self.note(w, lag_events, lag_ms, false);
        let now_ms = self.clock.now_ms();
        // Receivers compare it with their own clock (replay protection): wall time, not the service clock.
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let started = Instant::now();
        let outcome = self.send(w, &batch, timestamp, now_ms).await;
        match outcome {
            Ok(()) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.metrics.delivered_batches.fetch_add(1, Relaxed);
                self.metrics.delivered_events.fetch_add(batch.events, Relaxed);
                self.metrics.latency_us_sum.fetch_add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), Relaxed);
                self.backoff.remove(&w.id);
                self.progress(w, batch.last, Some(false), None, Some(now_ms), None, 0, 0).await?;
                Ok(true)
            }
            Err((why, retry_after)) => {
                self.metrics.failed_batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let failing_since = w.failing_since_ms.unwrap_or(now_ms);
                let pause_ms = i64::try_from(self.cfg.pause_after.as_millis()).unwrap_or(i64::MAX / 4);
                let pause = now_ms - failing_since >= pause_ms;
                let b = self.backoff.entry(w.id).or_default();
                b.failures = b.failures.saturating_add(1);
                let exp = self.cfg.backoff_min.saturating_mul(1u32 << b.failures.min(16).saturating_sub(1)).min(self.cfg.backoff_max);
                // Full jitter over the upper half: retries of many endpoints spread out.
                let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                b.next = Some(Instant::now() + retry_after.unwrap_or(jittered).min(self.cfg.backoff_max.max(Duration::from_secs(1)) * 4));
                b.pending = Some(batch);
                if pause {
                    tracing::warn!(endpoint = w.id, error = %why, "webhook endpoint paused after continuous failure");
                } else {
                    crate::log_limited!(info, endpoint = w.id, error = %why, "webhook delivery failed; retrying with backoff");
                }
                self.note(w, lag_events, lag_ms, pause);
                self.progress(w, w.cursor, Some(pause), Some(failing_since), w.last_success_ms, Some(why), lag_events, lag_ms).await?;
                Ok(false)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn progress(
        &self,
        w: &Webhook,
        cursor: Cursor,
        paused: Option<bool>,
        failing_since_ms: Option<i64>,
        last_success_ms: Option<i64>,
        last_error: Option<String>,
        lag_events: u64,
        lag_ms: i64,
    ) -> Result<()> {
        let p = Progress { cursor, paused: paused.unwrap_or(w.paused), failing_since_ms, last_success_ms, last_error, lag_events, lag_ms };
        if !self.store.webhook_progress(w.id, self.owner, &p).await? {
            tracing::info!(endpoint = w.id, "webhook lease lost; another replica delivers this endpoint now");
        }
        Ok(())
    }

    /// POST one batch; `Err((why, Retry-After))` on anything but a 2xx.
    async fn send(&self, w: &Webhook, batch: &Pending, timestamp: i64, now_ms: i64) -> std::result::Result<(), (String, Option<Duration>)> {
        // The address is checked again at every delivery: a name may have been re-pointed since creation.
        check_url(&w.url, self.cfg.allow_private).await.map_err(|e| (format!("refused: {e}"), None))?;
        let signature = w
            .signatures(&batch.msg_id, timestamp, &batch.body, now_ms)
            .ok_or_else(|| ("the endpoint's secret is not base64".to_owned(), None))?;
        let resp = self
            .client
            .post(&w.url)
            .header("content-type", "application/json")
            .header("webhook-id", &batch.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(batch.body.clone())
            .send()
            .await
            .map_err(|e| (if e.is_timeout() { "timed out".to_owned() } else { format!("request failed: {e}") }, None))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = (status.as_u16() == 429)
            .then(|| resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()))
            .flatten()
            .map(Duration::from_secs);
        Err((format!("receiver answered {status}"), retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_and_address() {
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", false).await.unwrap_err().contains("https"));
        assert!(check_url("https://127.0.0.1:9/hook", false).await.unwrap_err().contains("private"));
        assert!(check_url("https://u:p@127.0.0.1/", true).await.is_err());
        assert!(check_url("ftp://127.0.0.1/", true).await.is_err());
        assert!(check_url("https://[::1]:9/", false).await.unwrap_err().contains("private"));
    }
}

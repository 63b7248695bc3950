//! Wiring for `linktrack serve`: migrate, make sure today's partitions exist,
//! load keys, open the event spool, build the shared state, run HTTP, the
//! event writer, the stats rollup and the maintenance task, and shut them
//! down in order: HTTP drains first, then the writer flushes every queued
//! event (to the store, or to the spool if the store is down).
//!
//! Generic over the [`Store`], so `main` picks the backend once and tests run
//! the very same code against each backend on port 0 with a manual clock.
//!
//! The event writer and the stats rollup run on the background runtime
//! ([`crate::runtime`]), not on the threads that answer requests; they are
//! still tracked by the same [`TaskTracker`], cancelled by the same tokens
//! and flushed before [`run`] returns.

use std::future::Future;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rand::RngExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::instrument::WithSubscriber;

use crate::cache::{LinkCache, NegativeCache};
use crate::config::{EventArgs, ServeArgs};
use crate::day::Clock;
use crate::events::burst::BurstRule;
use crate::events::classify::Classifier;
use crate::events::queue::{EventCounters, EventQueue};
use crate::events::rollup::{Rollup, RollupConfig};
use crate::events::spool::Spool;
use crate::events::writer::{EventWriter, WriterConfig};
use crate::http::auth::ApiKeys;
use crate::http::limits::{ApiLimits, LimitConfig};
use crate::http::metrics::HttpMetrics;
use crate::http::pages::ErrorPages;
use crate::http::{self as web, AppState, EventCapture, Limits};
use crate::ids::IdAllocator;
use crate::link::normalize_url;
use crate::ready::{self, Readiness, ReadyConfig};
use crate::store::{Metered, StatementCounts, Store};
use crate::tenant::{Scopes, check_tenant_name, generate_key};
use crate::token::KeyRing;
use crate::token_keys::{self, LiveKeys};
use crate::webhooks::deliver::{Deliverer, DeliveryConfig, WebhookMetrics};
use crate::{Error, Result, partitions};

/// Name of the generated API key file in the data dir.
const API_KEY_FILE: &str = "api-key";

/// Run the service until `shutdown` resolves.
pub async fn run<S: Store>(
    args: &ServeArgs,
    store: Arc<S>,
    clock: Clock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // An impossible clock is refused here, once; after this `Clock::today` cannot fail.
    clock.checked_today()?;
    let ev = &args.events;
    // Open the spool first: a corrupt tail is reported (and skipped) before anything is served.
    let spool_dir = ev.spool_dir.clone().unwrap_or_else(|| args.data_dir.join("spool"));
    let spool =
        Spool::open(&spool_dir, ev.spool_max_bytes).map_err(|e| Error::Config(format!("event spool {}: {e}", spool_dir.display())))?;
    if spool.stats().records > 0 {
        tracing::info!(records = spool.stats().records, bytes = spool.stats().bytes, "event spool holds batches; replaying them");
    }
    let counters = Arc::new(EventCounters::default());
    let (queue, hits) = EventQueue::new(ev.event_queue_capacity, counters.clone());
    // Every store call below is counted by kind (`/metrics`).
    let statements = StatementCounts::default();
    let metrics = HttpMetrics::with_store(&statements, store.pool_metrics());
    let store = Arc::new(Metered::new(store, statements));
    let state = Arc::new(prepare(args, store.clone(), clock.clone(), &listener, queue, metrics).await?);
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    if args.token_keys.is_none() {
        // Keys kept in the store: pick up `linktrack token-keys add` and `retire` without a restart.
        let every = Duration::from_millis(args.token_key_reload_ms.max(1));
        tasks.spawn(token_keys::reload_loop(store.clone(), state.keys.clone(), clock.clone(), every, cancel.clone()));
    }
    {
        let (store, clock, cancel) = (store.clone(), clock.clone(), cancel.clone());
        let (retention, every) = (args.retention.retention(), Duration::from_secs(args.partition_check_secs.max(1)));
        tasks.spawn(async move { partitions::run_loop(&*store, &clock, retention, every, cancel).await });
    }
    let writer_cfg = WriterConfig {
        batch_max: ev.event_batch_max.max(1),
        flush_interval: Duration::from_millis(ev.event_flush_ms.max(1)),
        retry_interval: Duration::from_millis(ev.event_retry_ms.max(1)),
    };
    let writer = EventWriter::new(store.clone(), clock.clone(), spool, counters.clone(), writer_cfg);
    // The writer stops only after HTTP has drained, so every answered hit is flushed.
    let writer_cancel = CancellationToken::new();
    let background = crate::runtime::background()?;
    tasks.spawn_on(writer.run(hits, writer_cancel.clone()).with_current_subscriber(), &background);
    {
        let (state, cancel) = (state.clone(), cancel.clone());
        let every = Duration::from_secs(args.api_keys_refresh_secs.max(1));
        tasks.spawn(async move { refresh_api_keys(&state, every, cancel).await });
    }
    let deliverer =
        Deliverer::new(store.clone(), clock.clone(), webhook_config(args), state.webhook_metrics.clone())?.with_keys(state.keys.clone());
    tasks.spawn_on(deliverer.run(cancel.clone()).with_current_subscriber(), &background);
    let rollup = Rollup::new(store.clone(), clock.clone(), rollup_config(ev), counters.clone());
    tasks.spawn_on(rollup.run(cancel.clone()).with_current_subscriber(), &background);
    let ready_cfg = ReadyConfig {
        every: Duration::from_millis(args.ready_check_ms.max(1)),
        db_grace: Duration::from_millis(args.ready_db_grace_ms),
        spool_high_water: ev.spool_max_bytes / 100 * args.ready_spool_percent,
    };
    tasks.spawn(ready::run_loop(store.clone(), clock.clone(), counters, ready_cfg, state.ready.clone(), cancel.clone()));
    tracing::info!(listen = %listener.local_addr()?, public_url = %state.public_url, "serving");
    web::serve(listener, state, shutdown, Duration::from_secs(args.drain_timeout_secs)).await;
    cancel.cancel();
    writer_cancel.cancel();
    tasks.close();
    tasks.wait().await;
    crate::runtime::log_poll_times();
    tracing::info!("stopped");
    Ok(())
}

/// Webhook delivery settings from the flags.
pub fn webhook_config(args: &ServeArgs) -> DeliveryConfig {
    DeliveryConfig {
        every: Duration::from_millis(args.webhook_interval_ms.max(10)),
        batch_max: args.webhook_batch_max.clamp(1, 10_000),
        timeout: Duration::from_millis(args.webhook_timeout_ms.max(100)),
        lease: Duration::from_secs(args.webhook_lease_secs.max(1)),
        pause_after: Duration::from_secs(args.webhook_pause_after_secs),
        backoff_min: Duration::from_millis(500),
        backoff_max: Duration::from_millis(args.webhook_backoff_max_ms.max(500)),
        allow_private: args.webhook_allow_private,
    }
}

/// Reload the stored API keys every `every`, so keys created or revoked with
/// `linktrack keys` (on any host) take effect without a restart. A failed
/// reload keeps the keys loaded last: an outage does not lock callers out.
async fn refresh_api_keys<S: Store>(state: &AppState<S>, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match state.store.api_keys().await {
            Ok(keys) => state.api_keys.set_stored(&keys),
            Err(e) => crate::log_limited!(warn, error = %e, "could not reload API keys; keeping the ones loaded before"),
        }
    }
}

/// `linktrack keys create`: a new key for `tenant` (created if new), stored
/// as its digest; returns the key, to be shown once, and its id.
pub async fn create_api_key<S: Store>(store: &S, tenant: &str, scopes: &str, label: &str) -> Result<(String, u32)> {
    check_tenant_name(tenant).map_err(|m| Error::Config(format!("--tenant: {m}")))?;
    let scopes: Scopes = scopes.parse().map_err(|m| Error::Config(format!("--scopes: {m}")))?;
    let tenant = store.tenant(tenant, true).await?.ok_or_else(|| Error::Database(format!("tenant {tenant} vanished")))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (key, stored) = generate_key(tenant, scopes, label, now);
    let id = store.insert_api_key(&stored).await?;
    Ok((key, id))
}

/// `linktrack rewrite` without `--server`: rewrite one letter (`body`, a
/// `POST /v1/rewrite` request) straight on the store, through the same
/// handler and mint path the server uses, with the `serve` settings. The
/// tracking URLs must name a server, so `--public-url` is required. No
/// request is served: the API key and the listener `prepare` wants are
/// throwaways. Returns the status and JSON body the server would answer.
pub async fn rewrite_once<S: Store>(
    mut args: ServeArgs,
    store: Arc<S>,
    clock: Clock,
    body: bytes::Bytes,
    idempotency_key: Option<&str>,
) -> Result<(u16, String)> {
    if args.public_url.is_none() {
        return Err(Error::Config(
            "without --server, pass --public-url (LINKTRACK_PUBLIC_URL): the base of the server that will answer the tracking URLs".into(),
        ));
    }
    if args.api_keys.is_empty() {
        // Not a key anyone can use: nothing is served.
        args.api_keys = vec![crate::config::Secret::new(hex::encode(rand::rng().random::<[u8; 32]>()))];
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let (queue, _hits) = EventQueue::new(1, Arc::new(EventCounters::default()));
    // No request is served, so nothing reads these metrics.
    let state = prepare(&args, store, clock, &listener, queue, HttpMetrics::new()).await?;
    drop(listener);
    let mut headers = http::HeaderMap::new();
    if let Some(k) = idempotency_key {
        let v = http::HeaderValue::from_str(k).map_err(|_| Error::Config("--idempotency-key must be visible ASCII".into()))?;
        headers.insert("idempotency-key", v);
    }
    // Idempotency keys of direct rewrites are scoped to this constant instead of an API key; the letter is the default tenant's.
    let caller =
        crate::http::auth::Caller { digest: [0u8; 32], tenant: crate::tenant::TenantId::DEFAULT, scopes: crate::tenant::Scopes::ALL };
    match web::rewrite::rewrite(&state, &headers, &caller, &body).await {
        Ok((status, text)) => Ok((status.as_u16(), text)),
        Err(e) => Ok((e.status.as_u16(), serde_json::json!({"error": e.code, "message": e.message}).to_string())),
    }
}

/// Rollup settings from the event flags: events settle once a whole burst
/// window and one flush interval have passed, plus a margin.
pub fn rollup_config(ev: &EventArgs) -> RollupConfig {
    let window_ms = i64::try_from(ev.burst_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
    let flush_ms = i64::try_from(ev.event_flush_ms).unwrap_or(i64::MAX / 4);
    RollupConfig {
        every: Duration::from_millis(ev.rollup_interval_ms.max(1)),
        settle_ms: window_ms + flush_ms + 2000,
        page: ev.rollup_page.max(1),
        burst: BurstRule { window_ms, min_links: ev.burst_min_links, min_fraction: ev.burst_min_fraction },
        near_mint_ms: i64::try_from(ev.near_mint_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4),
    }
}

/// Everything before the first request: schema, partitions, keys, state.
pub async fn prepare<S: Store>(
    args: &ServeArgs,
    store: Arc<S>,
    clock: Clock,
    listener: &TcpListener,
    queue: EventQueue,
    metrics: HttpMetrics,
) -> Result<AppState<S>> {
    // Configuration first, so a typo is reported before any store work.
    let Checked { explicit_keys, public_url, fallback } = check_config(args)?;
    let public_url = match public_url {
        Some(u) => u,
        None => format!("http://{}", listener.local_addr()?),
    };
    store.migrate().await?;
    ensure_partitions(&*store, &clock, args).await?;
    let keys = match explicit_keys {
        Some(keys) => keys,
        None => stored_token_keys(&*store, &clock).await?,
    };
    let api_keys = api_keys(args, listener)?;
    api_keys.set_stored(&store.api_keys().await?);
    Ok(AppState {
        pages: ErrorPages::load(args.error_pages_dir.as_deref())?,
        metrics,
        api_limits: ApiLimits::new(LimitConfig {
            per_ip_per_sec: NonZeroU32::new(args.api_rate_per_ip),
            per_key_per_sec: NonZeroU32::new(args.api_rate_per_key),
            auth_failures_per_ip_per_min: NonZeroU32::new(args.auth_failures_per_min),
        }),
        ready: Arc::new(Readiness::new()),
        ids: IdAllocator::new(store.clone(), args.id_block),
        store,
        keys: Arc::new(LiveKeys::new(keys)),
        api_keys,
        cache: LinkCache::new(args.cache_bytes),
        negative: NegativeCache::new(args.negative_cache_entries, Duration::from_secs(args.negative_cache_ttl_secs)),
        clock,
        public_url,
        fallback,
        retention_days: args.retention.retention_days,
        limits: Limits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_links: args.max_links_per_request,
            max_body_bytes: args.max_body_bytes,
            max_html_bytes: args.max_html_bytes,
            header_timeout: Duration::from_millis(args.header_timeout_ms),
            body_timeout: Duration::from_millis(args.body_timeout_ms),
        },
        events: EventCapture {
            queue,
            classifier: Classifier::new(),
            trusted_proxies: args.events.trusted_proxies.clone(),
            anonymisation: args.events.ip_anonymisation,
        },
        export_max_limit: args.events.export_max_limit.max(1),
        webhook_allow_private: args.webhook_allow_private,
        webhook_metrics: Arc::new(WebhookMetrics::default()),
    })
}

/// Refuse to serve unless today and tomorrow have partitions. Another
/// replica may hold the maintenance lock; wait for it a little.
async fn ensure_partitions<S: Store>(store: &S, clock: &Clock, args: &ServeArgs) -> Result<()> {
    for _ in 0..30 {
        let today = clock.today();
        let report = store.maintain(args.retention.retention().policy(today, false)).await?;
        partitions::note_partitions(&report);
        if report.acquired {
            let covered = |d| report.partitions.iter().any(|p| *p >= d);
            if covered(today) && covered(today.plus(1)) {
                tracing::info!(
                    partitions = report.partitions.len(),
                    created = report.created.len(),
                    dropped = report.dropped.len(),
                    "partitions ready"
                );
                return Ok(());
            }
            return Err(Error::Schema(format!("partitions for {today} and the next day are missing after maintenance")));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::Unavailable("another replica held the partition maintenance lock for 30 s".into()))
}

/// The settings `serve` derives from its arguments without touching anything.
#[derive(Debug)]
pub struct Checked {
    pub explicit_keys: Option<KeyRing>,
    pub public_url: Option<String>,
    pub fallback: Option<HeaderValue>,
}

/// Check every `serve` setting that can be checked without the store or the
/// network, with one-line errors that say what to do. `main` runs it before
/// it opens the store; [`run`] again, for callers that skip `main`.
pub fn check_config(args: &ServeArgs) -> Result<Checked> {
    let explicit_keys = match &args.token_keys {
        Some(spec) => Some(KeyRing::parse(spec.expose()).map_err(|e| Error::Config(format!("--token-keys (LINKTRACK_TOKEN_KEYS): {e}")))?),
        None => None,
    };
    check_api_keys(args)?;
    let public_url = args.public_url.as_deref().map(public_url).transpose()?;
    let fallback = match &args.fallback_url {
        Some(u) => {
            let u = normalize_url(u).map_err(|m| Error::Config(format!("--fallback-url: {m}")))?;
            Some(HeaderValue::from_str(&u).map_err(|e| Error::Config(format!("--fallback-url: {e}")))?)
        }
        None => None,
    };
    Ok(Checked { explicit_keys, public_url, fallback })
}

/// Shortest API key accepted: 16 characters leave no room for guessing.
pub const MIN_API_KEY_LEN: usize = 16;

fn check_api_keys(args: &ServeArgs) -> Result<()> {
    for (i, key) in args.api_keys.iter().enumerate() {
        let len = key.expose().trim().chars().count();
        // An empty item (`a,b,`) is no key at all, and matches nothing.
        if len > 0 && len < MIN_API_KEY_LEN {
            return Err(Error::Config(format!(
                "--api-keys (LINKTRACK_API_KEYS): key {} is {len} characters; at least {MIN_API_KEY_LEN} are required so it cannot be guessed \
                 (for example: openssl rand -hex 24)",
                i + 1
            )));
        }
    }
    Ok(())
}

/// `--public-url` as tracking URLs are built from it: an absolute http(s)
/// URL with a host and no query or fragment, without its trailing slash.
fn public_url(u: &str) -> Result<String> {
    let bad = |why: &str| Error::Config(format!("--public-url {u:?}: {why}; for example https://t.example.com"));
    let parsed = url::Url::parse(u).map_err(|_| bad("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("must be an http:// or https:// URL with a host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(bad("must not carry a query, fragment or user name"));
    }
    Ok(u.trim_end_matches('/').to_owned())
}

async fn stored_token_keys<S: Store>(store: &S, clock: &Clock) -> Result<KeyRing> {
    let ring = token_keys::load_or_create(store, clock.now_ms()).await?;
    let ids = token_keys::ids(&ring);
    tracing::info!(
        minting = ids[0],
        keys = ids.len(),
        "no LINKTRACK_TOKEN_KEYS configured: using the token keys stored in the database (rotate with `linktrack token-keys`)"
    );
    Ok(ring)
}

fn api_keys(args: &ServeArgs, listener: &TcpListener) -> Result<ApiKeys> {
    if !args.api_keys.is_empty() {
        return Ok(ApiKeys::new(args.api_keys.iter().map(crate::config::Secret::expose)));
    }
    let path = args.data_dir.join(API_KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => k.trim().to_owned(),
        Ok(_) => return Err(Error::Config(format!("{} is empty; delete it or set LINKTRACK_API_KEYS", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_api_key(&path)?;
            let addr = listener.local_addr()?;
            println!("generated an API key and saved it to {} (mode 0600); it is shown only this once:", path.display());
            println!("  {key}");
            println!(
                "try: curl -sS -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
                 -d '{{\"mailing_id\":\"m1\",\"recipient\":\"r1\",\"links\":[{{\"url\":\"https://example.com/\"}}],\"pixel\":true}}' http://{addr}/v1/links"
            );
            key
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ApiKeys::new([key.as_str()]))
}

fn generate_api_key(path: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::private_fs::create_dir_all(dir)?;
    }
    let bytes: [u8; 24] = rand::rng().random();
    let key = format!("lt_{}", hex::encode(bytes));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(key.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(key)
}

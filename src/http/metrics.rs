//! The HTTP side of `/metrics`, with `prometheus-client`: request latency
//! histograms and response counts by route and status class, link-cache and
//! negative-cache lookups by outcome, `build_info`, and the store's side:
//! statements by kind and their errors (`store::Metered`), and for MySQL the
//! pool's gauges and acquire times. The event pipeline's counters and gauges
//! are written beside them by `http::metrics_page`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{PoolMetrics, ReadRouting, ReplicaState, StatementCounts};

/// A request's route and the class of its status (`2xx` ... `5xx`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub status: &'static str,
}

/// Which cache answered a redirect's lookup, and how.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s, doubling: redirects live at the bottom, mints and exports higher up.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The registry and the handles the request path records into.
#[derive(Debug)]
pub struct HttpMetrics {
    registry: Registry,
    latency: LatencyFamily,
    responses: Family<RouteLabels, Counter>,
    waited: Counter,
    /// The series every warm redirect and pixel records, resolved once: the
    /// hot path skips the family's map (a lock and a hash) for them.
    hot: [HotRoute; 2],
    /// Cache lookups: `[link, negative]` × `[miss, hit]`.
    cache: [[Counter; 2]; 2],
    /// Pool connections in use and callers waiting, set at each scrape (MySQL only).
    pool: Option<[Gauge; 2]>,
}

/// The pre-resolved series of one (route, status class).
#[derive(Debug)]
struct HotRoute {
    route: &'static str,
    status: &'static str,
    latency: Histogram,
    responses: Counter,
}

impl Default for HttpMetrics {
    fn default() -> HttpMetrics {
        HttpMetrics::new()
    }
}

impl HttpMetrics {
    /// The HTTP metrics only (no store series), as benches build them.
    pub fn new() -> HttpMetrics {
        HttpMetrics::with_store(&StatementCounts::default(), None)
    }

    /// The HTTP metrics plus the store's: the statement counters the
    /// `Metered` store adds to, and the pool the store has, if any.
    pub fn with_store(statements: &StatementCounts, pool: Option<PoolMetrics>) -> HttpMetrics {
        let mut registry = Registry::with_prefix("linktrack");
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let responses = Family::<RouteLabels, Counter>::default();
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register("http_request_duration_seconds", "Time to answer a request, by route and status class", latency.clone());
        registry.register("http_responses", "Responses by route and status class", responses.clone());
        registry.register("cache_lookups", "Redirect lookups by cache (link, negative) and outcome (hit, miss)", cache.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        let commit = option_env!("LINKTRACK_COMMIT").unwrap_or("unknown");
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION"), commit }).set(1);
        registry.register("build_info", "The running build: always 1, with its version and commit as labels", build);
        let waited = Counter::default();
        registry.register("connections_waited", "Times a new connection had to wait because --max-connections were open", waited.clone());
        registry.register(
            "db_statements",
            "Store calls by kind: one statement, or the one transaction the call runs",
            statements.calls.clone(),
        );
        registry.register("db_statement_errors", "Store calls by kind that failed", statements.errors.clone());
        let pool = pool.map(|p| {
            let (in_use, waiting) = (Gauge::default(), Gauge::default());
            registry.register("db_pool_in_use", "Pooled database connections lent out now", in_use.clone());
            registry.register("db_pool_waiting", "Callers waiting for a pooled database connection now", waiting.clone());
            registry.register("db_pool_acquire_seconds", "Time a call waited for a pooled database connection", p.acquire);
            [in_use, waiting]
        });
        let hot = [("redirect", "3xx"), ("pixel", "2xx")].map(|(route, status)| {
            let labels = RouteLabels { route, status };
            HotRoute { route, status, latency: latency.get_or_create(&labels).clone(), responses: responses.get_or_create(&labels).clone() }
        });
        let cache = ["link", "negative"]
            .map(|name| ["miss", "hit"].map(|outcome| cache.get_or_create(&CacheLabels { cache: name, outcome }).clone()));
        HttpMetrics { registry, latency, responses, waited, hot, cache, pool }
    }

    /// Copy the pool's current gauges (called at each scrape).
    pub fn set_pool(&self, now: Option<PoolMetrics>) {
        if let (Some([in_use, waiting]), Some(now)) = (&self.pool, now) {
            in_use.set(i64::try_from(now.in_use).unwrap_or(i64::MAX));
            waiting.set(i64::try_from(now.waiting).unwrap_or(i64::MAX));
        }
    }

    /// Record one answered request.
    pub fn observe(&self, route: &'static str, status: u16, took: Duration) {
        let status = status_class(status);
        if let Some(h) = self.hot.iter().find(|h| h.route == route && h.status == status) {
            h.latency.observe(took.as_secs_f64());
            h.responses.inc();
            return;
        }
        let labels = RouteLabels { route, status };
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
        self.responses.get_or_create(&labels).inc();
    }

    /// The connection cap was reached: the next connection waits.
    pub fn connection_waited(&self) {
        self.waited.inc();
    }

    /// Record one cache lookup of the redirect path (`cache`: `"link"` or `"negative"`).
    pub fn cache(&self, cache: &'static str, hit: bool) {
        self.cache[usize::from(cache != "link")][usize::from(hit)].inc();
    }

    /// The registry in Prometheus' classic text format (what `/metrics`
    /// serves as `text/plain; version=0.0.4`). The crate writes the `OpenMetrics` format,
    /// which names a counter family without `_total` in `# TYPE` and `# HELP`;
    /// the classic format names it as its samples are named, with `_total`.
    pub fn encode(&self, out: &mut String) {
        let mut open = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut open, &self.registry);
        let counters: Vec<&str> =
            open.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).filter(|n| !n.ends_with("_total")).collect();
        for line in open.lines() {
            let renamed = counters.iter().find_map(|name| {
                for head in ["# TYPE ", "# HELP "] {
                    if let Some(rest) = line.strip_prefix(head).and_then(|r| r.strip_prefix(name)).filter(|r| r.starts_with(' ')) {
                        return Some(format!("{head}{name}_total{rest}"));
                    }
                }
                None
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
    }
}

/// The read replicas' gauges and the routing counters (only for a store with
/// replicas), in Prometheus' classic text format.
pub fn encode_read_routing(r: &ReadRouting, out: &mut String) {
    use std::fmt::Write;
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let retries = [
        ("{found=\"true\"}".to_owned(), r.primary_retries_found.to_string()),
        ("{found=\"false\"}".to_owned(), r.primary_retries_missing.to_string()),
    ];
    family(
        "linktrack_read_primary_retries_total",
        "counter",
        "Resolves of a fresh token (today or yesterday) that missed on a read replica and were asked again on the primary, by whether the primary found the link.",
        &retries,
    );
    family(
        "linktrack_read_primary_fallbacks_total",
        "counter",
        "Replica-routed reads answered by the primary because no replica was serving or the chosen one failed.",
        &[(String::new(), r.primary_fallbacks.to_string())],
    );
    family(
        "linktrack_read_export_topups_total",
        "counter",
        "Export pages that came back short from a read replica and were completed from the primary.",
        &[(String::new(), r.export_topups.to_string())],
    );
    let label = |name: &str| format!("{{replica=\"{}\"}}", name.replace('\\', "\\\\").replace('"', "\\\""));
    let up: Vec<(String, String)> =
        r.replicas.iter().map(|x| (label(&x.name), u8::from(x.state == ReplicaState::Serving).to_string())).collect();
    family("linktrack_read_replica_up", "gauge", "1 while a read replica gets reads (reachable and within the lag limit), else 0.", &up);
    let lag: Vec<(String, String)> = r
        .replicas
        .iter()
        .map(|x| (label(&x.name), x.lag.map_or_else(|| "NaN".to_owned(), |l| format!("{:.3}", l.as_secs_f64()))))
        .collect();
    family(
        "linktrack_read_replica_lag_seconds",
        "gauge",
        "Upper bound of a read replica's lag behind the primary at the last check; NaN when unknown.",
        &lag,
    );
    let reads: Vec<(String, String)> = r.replicas.iter().map(|x| (label(&x.name), x.reads.to_string())).collect();
    family("linktrack_read_replica_reads_total", "counter", "Reads a read replica answered.", &reads);
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

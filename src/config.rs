//! Command-line and environment configuration, defined once with clap.
//!
//! Every value is a clap field with a `LINKTRACK_*` environment fallback.
//! Secrets (API keys, token MAC keys, the database password) are wrapped so
//! their `Debug` output is redacted; a unit test checks it.
//!
//! Only this module, `app`, `main` and `telemetry` see these types. The
//! layers below take plain settings ([`StoreConfig`], [`Retention`], the
//! writer and rollup configs), built from these arguments, and their enums
//! are parsed here through their own `FromStr` ([`one_of`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::events::IpAnonymisation;
use crate::events::export::ExportFormat;
use crate::store::mysql::ReplicaConfig;
use crate::store::{Retention, StoreConfig};

/// A clap parser for an enum of a lower layer: `names` are the possible
/// values (listed in `--help`, checked by clap), mapped through the type's
/// own `FromStr`, so the enum is defined once, below, with no clap in it.
fn one_of<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// linktrack: link-tracking redirects with one-partition lookups.
#[derive(Debug, Parser)]
#[command(name = "linktrack", version, about)]
pub struct Cli {
    /// Log output format.
    #[arg(long, env = "LINKTRACK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// A repeating fault (a store outage failing every request, say) is logged at most once per this many
    /// milliseconds per call site, with the count of the lines held back; 0 logs every line.
    #[arg(long, env = "LINKTRACK_LOG_REPEAT_MS", default_value_t = crate::log_limit::DEFAULT_INTERVAL_MS, global = true)]
    pub log_repeat_ms: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(Box<ServeArgs>),
    /// Apply schema migrations (idempotent).
    Migrate(DbArgs),
    /// Create days ahead and drop days past retention, once.
    Partitions(PartitionsArgs),
    /// Verify a token with the token keys and say what it carries.
    Inspect(InspectArgs),
    /// Rotate the token MAC keys: add a key that mints from now on, retire an old one, list them.
    #[command(subcommand)]
    TokenKeys(TokenKeysCommand),
    /// Export events after a cursor as NDJSON or CSV, straight from the store.
    Export(ExportArgs),
    /// Ask a running server whether it is ready (`GET /readyz`); exit 0 if it is, 1 if not.
    Health(HealthArgs),
    /// Manage tenants' scoped API keys, stored in the database as digests.
    Keys(KeysArgs),
    /// Rewrite a letter's links to tracking URLs: HTML on standard input, the tracked HTML on standard output.
    Rewrite(Box<RewriteArgs>),
    /// Print a mailing's stats (every link, opens) and optionally its time series, as tables.
    Stats(StatsArgs),
}

/// `linktrack stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// The mailing id.
    pub mailing: String,
    /// Also print the time series in buckets of an hour or a day.
    #[arg(long, env = "LINKTRACK_STATS_SERIES", value_parser = ["hour", "day"])]
    pub series: Option<String>,
    /// Display offset of the series (`Z`, `+02:00`, `-05:30`; a multiple of 15 minutes).
    #[arg(long, env = "LINKTRACK_STATS_TZ", default_value = "Z")]
    pub tz: String,
    /// Series start: an RFC 3339 time or a date; default the mailing's first hit.
    #[arg(long, env = "LINKTRACK_STATS_FROM")]
    pub from: Option<String>,
    /// Series end (exclusive): an RFC 3339 time or a date; default now.
    #[arg(long, env = "LINKTRACK_STATS_TO")]
    pub to: Option<String>,
    /// Print the API's JSON documents instead of tables.
    #[arg(long, env = "LINKTRACK_STATS_JSON")]
    pub json: bool,
    /// Base URL of a running server (`http://` only); without it the store is read directly.
    #[arg(long, env = "LINKTRACK_SERVER")]
    pub server: Option<String>,
    /// API key (with the `read` scope) for `--server`.
    #[arg(long, env = "LINKTRACK_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Without `--server`: the tenant whose mailing it is (by name).
    #[arg(long, env = "LINKTRACK_STATS_TENANT", default_value = "default")]
    pub tenant: String,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `linktrack keys`.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

/// What `linktrack keys` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key for a tenant (created if new) and print it once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// Tenant name: letters, digits, `.`, `_`, `-`.
        #[arg(long, env = "LINKTRACK_KEYS_TENANT")]
        tenant: String,
        /// Comma-separated scopes: `mint` (mint, rewrite), `read` (stats, export), `admin` (erasure); or `all`.
        #[arg(long, env = "LINKTRACK_KEYS_SCOPES")]
        scopes: String,
        /// A note to recognise the key by in `keys list`.
        #[arg(long, env = "LINKTRACK_KEYS_LABEL", default_value = "")]
        label: String,
    },
    /// List stored keys (never the keys themselves: their first characters).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key by its id; servers drop it within `--api-keys-refresh-secs`.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The id `keys list` shows.
        id: u32,
    },
}

/// `linktrack rewrite --mailing M --recipient R [--server URL --api-key K] < letter.html > tracked.html`.
/// With `--server`, it calls `POST /v1/rewrite` there; without, it mints
/// straight on the store named by the `serve` settings (which then need
/// `--public-url`, the server that will answer the tracking URLs).
#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// The letter's mailing id.
    #[arg(long, env = "LINKTRACK_REWRITE_MAILING", display_order = 0)]
    pub mailing: String,
    /// The letter's recipient.
    #[arg(long, env = "LINKTRACK_REWRITE_RECIPIENT", display_order = 0)]
    pub recipient: String,
    /// Base URL of a running server (`http://` only); without it the store is used directly.
    #[arg(long, env = "LINKTRACK_SERVER", display_order = 0)]
    pub server: Option<String>,
    /// API key for `--server`.
    #[arg(long, env = "LINKTRACK_API_KEY", hide_env_values = true, display_order = 0)]
    pub api_key: Option<Secret>,
    /// Add the open pixel at the end of `<body>`.
    #[arg(long, env = "LINKTRACK_REWRITE_PIXEL", display_order = 0)]
    pub pixel: bool,
    /// Comma-separated hosts whose links (and their subdomains') stay untracked.
    #[arg(long, env = "LINKTRACK_REWRITE_EXCLUDE_DOMAINS", value_delimiter = ',', display_order = 0)]
    pub exclude_domains: Vec<String>,
    /// Track unsubscribe links too (by default they are left untouched).
    #[arg(long, env = "LINKTRACK_REWRITE_TRACK_UNSUBSCRIBE", display_order = 0)]
    pub track_unsubscribe: bool,
    /// Idempotency key: the same key and letter give the same tokens again.
    #[arg(long, env = "LINKTRACK_REWRITE_IDEMPOTENCY_KEY", display_order = 0)]
    pub idempotency_key: Option<String>,
    /// Write the response's `links` (`url`, `token`, `tracking_url`, `position`) as JSON to this file.
    #[arg(long, env = "LINKTRACK_REWRITE_LINKS_OUTPUT", display_order = 0)]
    pub links_output: Option<PathBuf>,
    /// Without `--server`: the store and token settings, as `serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `linktrack health`: for container health checks, without curl.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Base URL of the server to ask (plain http; the check runs beside it).
    #[arg(long, env = "LINKTRACK_HEALTH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Give up after this many milliseconds.
    #[arg(long, env = "LINKTRACK_HEALTH_TIMEOUT_MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// `mysql://user:pass@host:port/db` or `sqlite://path`. Default: the embedded store under `./data/`
    /// (for `serve`, under `--data-dir`).
    #[arg(long, env = "LINKTRACK_DATABASE_URL", hide_env_values = true, default_value = "sqlite://./data/linktrack.db", display_order = 0)]
    pub database_url: DatabaseUrl,
    /// Upper bound on pooled MySQL connections.
    #[arg(long, env = "LINKTRACK_DB_POOL_MAX", default_value_t = 32)]
    pub db_pool_max: usize,
    /// How long a request waits for a pooled connection before answering 503.
    #[arg(long, env = "LINKTRACK_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 500)]
    pub db_acquire_timeout_ms: u64,
    /// Deadline for one database call (client side, and `max_statement_time` on the server).
    #[arg(long, env = "LINKTRACK_DB_STATEMENT_TIMEOUT_MS", default_value_t = 2000)]
    pub db_statement_timeout_ms: u64,
    /// `lock_wait_timeout` / `innodb_lock_wait_timeout` in seconds, so DDL and row locks fail fast.
    #[arg(long, env = "LINKTRACK_DB_LOCK_WAIT_TIMEOUT_SECS", default_value_t = 3)]
    pub db_lock_wait_timeout_secs: u32,
    /// How long to keep retrying the first MySQL connection (a pod may start before its database), in seconds.
    #[arg(long, env = "LINKTRACK_DB_CONNECT_WAIT_SECS", default_value_t = 30)]
    pub db_connect_wait_secs: u64,
    /// A replica of `--database-url` (`mysql://user:pass@host:port/db`, GTID replication) that serves resolves,
    /// stats and exports; repeat the flag, or comma-separate in the environment variable. Mints, events, the
    /// rollup, webhooks and maintenance stay on the primary.
    #[arg(long = "read-database-url", env = "LINKTRACK_READ_DATABASE_URL", hide_env_values = true, value_delimiter = ',')]
    pub read_database_url: Vec<DatabaseUrl>,
    /// A read replica further behind the primary than this many seconds gets no reads until it catches up
    /// (at most 3600, so a replica in rotation holds every link older than yesterday).
    #[arg(long, env = "LINKTRACK_READ_MAX_LAG_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub read_max_lag_secs: u64,
    /// At most this many resolves at once that missed on a replica for a fresh token (today's or yesterday's)
    /// are asked again on the primary; more wait, within the call's deadline.
    #[arg(long, env = "LINKTRACK_READ_PRIMARY_RETRIES_MAX", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub read_primary_retries_max: u64,
}

impl DbArgs {
    /// The read replicas, for the MySQL store; `None` without any. A replica
    /// URL must be `mysql://`, and so must `--database-url`.
    pub fn replica_config(&self) -> Result<Option<ReplicaConfig>, String> {
        if self.read_database_url.is_empty() {
            return Ok(None);
        }
        if matches!(self.database_url, DatabaseUrl::Sqlite(_)) {
            return Err("--read-database-url needs a mysql:// --database-url: the embedded store has no replicas".into());
        }
        let urls = self
            .read_database_url
            .iter()
            .map(|u| match u {
                DatabaseUrl::Mysql(s) => Ok(s.expose().to_owned()),
                DatabaseUrl::Sqlite(_) => Err(format!("--read-database-url {}: a read replica must be mysql://", u.redacted())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ReplicaConfig {
            urls,
            max_lag: Duration::from_secs(self.read_max_lag_secs),
            primary_retries_max: usize::try_from(self.read_primary_retries_max).unwrap_or(usize::MAX),
        }))
    }

    /// The settings a store backend takes.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            pool_max: self.db_pool_max,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
            lock_wait_timeout_secs: self.db_lock_wait_timeout_secs,
            connect_wait: Duration::from_secs(self.db_connect_wait_secs),
        }
    }
}

/// How many days exist around today.
#[derive(Debug, Clone, Copy, Args)]
pub struct RetentionArgs {
    /// Days kept before today; older days are dropped whole and their tokens go to the fallback.
    #[arg(long, env = "LINKTRACK_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=20_000))]
    pub retention_days: u16,
    /// Days created ahead of today (at least 1, so tomorrow always exists).
    #[arg(long, env = "LINKTRACK_PARTITIONS_AHEAD", default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub partitions_ahead: u16,
}

impl RetentionArgs {
    /// The settings every maintenance pass uses.
    pub fn retention(&self) -> Retention {
        Retention { days: self.retention_days, ahead: self.partitions_ahead }
    }
}

#[derive(Debug, Args)]
pub struct PartitionsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Print what would be created and dropped, change nothing.
    #[arg(long, env = "LINKTRACK_PARTITIONS_DRY_RUN")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token to decode.
    pub token: String,
    /// Token MAC keys (`ID:HEX,...`) to verify with. Default: the keys stored in the database.
    #[arg(long, env = "LINKTRACK_TOKEN_KEYS", hide_env_values = true)]
    pub token_keys: Option<Secret>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `linktrack token-keys`: key rotation. With keys in the store (the
/// default) running servers pick the change up within
/// `--token-key-reload-ms`; with `LINKTRACK_TOKEN_KEYS` the command prints
/// the new value to set, and servers take it at their restart.
#[derive(Debug, Subcommand)]
pub enum TokenKeysCommand {
    /// Generate a key; servers verify with it at once and mint with it after a delay. The others keep verifying.
    Add {
        /// Seconds before the new key mints (from the store; keep it at least the servers'
        /// --token-key-reload-ms, so every replica knows the key before any mints with it).
        #[arg(long, env = "LINKTRACK_TOKEN_KEY_ACTIVATE_AFTER_SECS", default_value_t = 60)]
        activate_after_secs: u64,
        #[command(flatten)]
        keys: TokenKeysArgs,
    },
    /// Stop accepting tokens signed with key ID (they get 404, with no lookup) and delete its secret.
    Retire {
        /// The key id (`token-keys list` shows them).
        id: u8,
        #[command(flatten)]
        keys: TokenKeysArgs,
    },
    /// List the key ids, the minting key first. Secrets are never shown.
    List(TokenKeysArgs),
}

/// Where the keys are: the database, or the environment.
#[derive(Debug, Args)]
pub struct TokenKeysArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The keys servers are given in the environment (`ID:HEX,...`). When set, the store is not
    /// touched: the command prints the new `LINKTRACK_TOKEN_KEYS` value to deploy instead.
    #[arg(long, env = "LINKTRACK_TOKEN_KEYS", hide_env_values = true)]
    pub token_keys: Option<Secret>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Resume after this cursor (a row's `cursor`); default: from the start.
    #[arg(long, env = "LINKTRACK_EXPORT_AFTER")]
    pub after: Option<String>,
    /// Output format.
    #[arg(long, env = "LINKTRACK_EXPORT_FORMAT", default_value = "ndjson", value_parser = one_of::<ExportFormat>(&ExportFormat::NAMES))]
    pub format: ExportFormat,
    /// Output file; default: standard output.
    #[arg(short = 'o', long, env = "LINKTRACK_EXPORT_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Only events of this mailing.
    #[arg(long, env = "LINKTRACK_EXPORT_MAILING_ID")]
    pub mailing_id: Option<String>,
    /// Only events of this tenant's letters (by name); default: every tenant.
    #[arg(long, env = "LINKTRACK_EXPORT_TENANT")]
    pub tenant: Option<String>,
    /// Stop after this many rows; default: everything there is.
    #[arg(long, env = "LINKTRACK_EXPORT_LIMIT")]
    pub limit: Option<u64>,
}

/// Event capture, classification, writing and rollup.
#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// Comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` is trusted for the client IP.
    #[arg(long, env = "LINKTRACK_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// What to zero in client IPs before they are stored: `truncate` zeroes the last IPv4 octet and the last 80 bits of IPv6.
    #[arg(long, env = "LINKTRACK_IP_ANONYMISATION", default_value = "truncate", value_parser = one_of::<IpAnonymisation>(&IpAnonymisation::NAMES))]
    pub ip_anonymisation: IpAnonymisation,
    /// Hits the in-memory event queue holds; beyond it (store and spool both stuck) hits are dropped and counted.
    #[arg(long, env = "LINKTRACK_EVENT_QUEUE_CAPACITY", default_value_t = 200_000)]
    pub event_queue_capacity: usize,
    /// Most events in one batch (one multi-row INSERT transaction).
    #[arg(long, env = "LINKTRACK_EVENT_BATCH_MAX", default_value_t = 5000)]
    pub event_batch_max: usize,
    /// A batch is written at most this many milliseconds after its first event; also the kill -9 loss window.
    #[arg(long, env = "LINKTRACK_EVENT_FLUSH_MS", default_value_t = 1000)]
    pub event_flush_ms: u64,
    /// After the store fails, wait this many milliseconds before trying it again (batches spool meanwhile).
    #[arg(long, env = "LINKTRACK_EVENT_RETRY_MS", default_value_t = 1000)]
    pub event_retry_ms: u64,
    /// Directory of the event spool. Default: `<data dir>/spool`.
    #[arg(long, env = "LINKTRACK_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Largest the event spool may grow, in bytes.
    #[arg(long, env = "LINKTRACK_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// A hit this many seconds or less after its letter was minted is `near_mint` (suspect).
    #[arg(long, env = "LINKTRACK_NEAR_MINT_SECS", default_value_t = 10)]
    pub near_mint_secs: u64,
    /// Letter-burst window: one IP hitting most links of one letter within this many seconds is a scanner.
    #[arg(long, env = "LINKTRACK_BURST_WINDOW_SECS", default_value_t = 10)]
    pub burst_window_secs: u64,
    /// A letter burst needs at least this many distinct links.
    #[arg(long, env = "LINKTRACK_BURST_MIN_LINKS", default_value_t = 3)]
    pub burst_min_links: u32,
    /// A letter burst needs at least this fraction of the letter's click links.
    #[arg(long, env = "LINKTRACK_BURST_MIN_FRACTION", default_value_t = 0.6)]
    pub burst_min_fraction: f64,
    /// Milliseconds between rollup passes that fold settled events into the stats.
    #[arg(long, env = "LINKTRACK_ROLLUP_INTERVAL_MS", default_value_t = 1000)]
    pub rollup_interval_ms: u64,
    /// Events one rollup pass reads.
    #[arg(long, env = "LINKTRACK_ROLLUP_PAGE", default_value_t = 5000)]
    pub rollup_page: usize,
    /// Largest `limit` a `GET /v1/events` request may ask for.
    #[arg(long, env = "LINKTRACK_EXPORT_MAX_LIMIT", default_value_t = 100_000)]
    pub export_max_limit: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub events: EventArgs,
    /// Address to listen on.
    #[arg(long, env = "LINKTRACK_LISTEN", default_value = "127.0.0.1:8080", display_order = 0)]
    pub listen: SocketAddr,
    /// Base URL for tracking links. Default: `http://<listen>`.
    #[arg(long, env = "LINKTRACK_PUBLIC_URL", display_order = 0)]
    pub public_url: Option<String>,
    /// Comma-separated API keys accepted as `Authorization: Bearer <key>`.
    /// Without any, a key is generated once and kept in the data dir (mode 0600).
    #[arg(long, env = "LINKTRACK_API_KEYS", hide_env_values = true, value_delimiter = ',', display_order = 0)]
    pub api_keys: Vec<Secret>,
    /// Allow webhook endpoints on private, loopback and link-local addresses (and plain http to loopback).
    #[arg(long, env = "LINKTRACK_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Events per webhook delivery at most.
    #[arg(long, env = "LINKTRACK_WEBHOOK_BATCH_MAX", default_value_t = 100)]
    pub webhook_batch_max: usize,
    /// Pause between webhook delivery passes when there is nothing to send, in milliseconds.
    #[arg(long, env = "LINKTRACK_WEBHOOK_INTERVAL_MS", default_value_t = 500)]
    pub webhook_interval_ms: u64,
    /// Deadline of one webhook request, connect included, in milliseconds.
    #[arg(long, env = "LINKTRACK_WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
    /// How long a replica's delivery lease on an endpoint lasts without renewal, in seconds.
    #[arg(long, env = "LINKTRACK_WEBHOOK_LEASE_SECS", default_value_t = 30)]
    pub webhook_lease_secs: u64,
    /// Continuous delivery failure after which an endpoint is paused, in seconds.
    #[arg(long, env = "LINKTRACK_WEBHOOK_PAUSE_AFTER_SECS", default_value_t = 86_400)]
    pub webhook_pause_after_secs: u64,
    /// Longest wait between retries of a failing endpoint, in milliseconds (backoff doubles from 500 ms up to it).
    #[arg(long, env = "LINKTRACK_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub webhook_backoff_max_ms: u64,
    /// How often the keys stored by `linktrack keys` are reloaded, in seconds: a new or revoked key takes effect within it.
    #[arg(long, env = "LINKTRACK_API_KEYS_REFRESH_SECS", default_value_t = 10)]
    pub api_keys_refresh_secs: u64,
    /// Token MAC keys, `ID:HEXSECRET[,ID:HEXSECRET...]`; the first one mints, all verify.
    /// Without any, one is generated and persisted in the store so replicas share it
    /// (rotate those with `linktrack token-keys`).
    #[arg(long, env = "LINKTRACK_TOKEN_KEYS", hide_env_values = true)]
    pub token_keys: Option<Secret>,
    /// With the keys in the store: milliseconds between re-reads of the stored ring, so a key
    /// added or retired with `linktrack token-keys` takes effect without a restart.
    #[arg(long, env = "LINKTRACK_TOKEN_KEY_RELOAD_MS", default_value_t = 30_000)]
    pub token_key_reload_ms: u64,
    /// Directory for local state (generated API key, embedded database).
    #[arg(long, env = "LINKTRACK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where tokens older than retention are redirected; without it they get 404.
    #[arg(long, env = "LINKTRACK_FALLBACK_URL")]
    pub fallback_url: Option<String>,
    /// Directory with `not_found.html`, `expired.html` and `unavailable.html` to show browsers instead of the built-in pages.
    #[arg(long, env = "LINKTRACK_ERROR_PAGES_DIR")]
    pub error_pages_dir: Option<PathBuf>,
    /// Memory budget of the resolved-link cache, in bytes.
    #[arg(long, env = "LINKTRACK_CACHE_BYTES", default_value_t = 256 << 20)]
    pub cache_bytes: usize,
    /// Entries in the negative (known-unknown token) cache.
    #[arg(long, env = "LINKTRACK_NEGATIVE_CACHE_ENTRIES", default_value_t = 100_000)]
    pub negative_cache_entries: usize,
    /// How long a negative cache entry is trusted, in seconds.
    #[arg(long, env = "LINKTRACK_NEGATIVE_CACHE_TTL_SECS", default_value_t = 60)]
    pub negative_cache_ttl_secs: u64,
    /// API requests (`/v1/*`) per second from one client address; 0 (the default) disables the limit.
    /// Behind a load balancer every client shares its address unless `--trusted-proxies` names it.
    #[arg(long, env = "LINKTRACK_API_RATE_PER_IP", default_value_t = 0)]
    pub api_rate_per_ip: u32,
    /// API requests per second with one API key; 0 disables the limit.
    #[arg(long, env = "LINKTRACK_API_RATE_PER_KEY", default_value_t = 5000)]
    pub api_rate_per_key: u32,
    /// Failed API authentications per minute from one client address; 0 disables the limit.
    #[arg(long, env = "LINKTRACK_AUTH_FAILURES_PER_MIN", default_value_t = 30)]
    pub auth_failures_per_min: u32,
    /// Most connections served at once; further ones wait to be accepted (counted in /metrics).
    #[arg(long, env = "LINKTRACK_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most links one mint request may carry.
    #[arg(long, env = "LINKTRACK_MAX_LINKS_PER_REQUEST", default_value_t = 1000)]
    pub max_links_per_request: usize,
    /// Link ids (token v2) this process reserves from the store's sequence at a time.
    /// Larger blocks mean fewer sequence updates and larger gaps after a restart.
    #[arg(long, env = "LINKTRACK_ID_BLOCK", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub id_block: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "LINKTRACK_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Largest letter `POST /v1/rewrite` takes, in bytes of HTML (UTF-8); larger ones get 413.
    #[arg(long, env = "LINKTRACK_MAX_HTML_BYTES", default_value_t = 2 << 20)]
    pub max_html_bytes: usize,
    /// A client must send its request headers within this many milliseconds.
    #[arg(long, env = "LINKTRACK_HEADER_TIMEOUT_MS", default_value_t = 5000)]
    pub header_timeout_ms: u64,
    /// A client must send its request body within this many milliseconds.
    #[arg(long, env = "LINKTRACK_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// On shutdown, how long in-flight requests may take to finish, in seconds.
    #[arg(long, env = "LINKTRACK_DRAIN_TIMEOUT_SECS", default_value_t = 10)]
    pub drain_timeout_secs: u64,
    /// Seconds between partition maintenance runs.
    #[arg(long, env = "LINKTRACK_PARTITION_CHECK_SECS", default_value_t = 600)]
    pub partition_check_secs: u64,
    /// Milliseconds between readiness checks (`/readyz`).
    #[arg(long, env = "LINKTRACK_READY_CHECK_MS", default_value_t = 2000)]
    pub ready_check_ms: u64,
    /// `/readyz` turns 503 once the database has failed its checks for this many milliseconds.
    #[arg(long, env = "LINKTRACK_READY_DB_GRACE_MS", default_value_t = 5000)]
    pub ready_db_grace_ms: u64,
    /// `/readyz` turns 503 while the event spool holds more than this share of `--spool-max-bytes`, in percent.
    #[arg(long, env = "LINKTRACK_READY_SPOOL_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub ready_spool_percent: u64,
}

/// A secret string: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself. Call sites are the few places that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty secret".into());
        }
        Ok(Secret(s.to_owned()))
    }
}

/// A database URL. Its `Debug` and `Display` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Mysql(Secret),
    Sqlite(PathBuf),
}

/// The embedded database of the default `--database-url`; `serve` keeps it
/// under `--data-dir` instead when that is set.
pub const DEFAULT_SQLITE_PATH: &str = "./data/linktrack.db";

impl DatabaseUrl {
    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Mysql(s) => match url::Url::parse(s.expose()) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.to_string()
                }
                Err(_) => "mysql://***".to_owned(),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a path, e.g. sqlite://./data/linktrack.db".into());
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("mysql://") {
            let u = url::Url::parse(s).map_err(|e| format!("bad mysql url: {e}"))?;
            if u.path().trim_start_matches('/').is_empty() {
                return Err("mysql url needs a database name, e.g. mysql://user:pass@host:3306/linktrack".into());
            }
            return Ok(DatabaseUrl::Mysql(Secret(s.to_owned())));
        }
        Err("database url must start with mysql:// or sqlite://".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_replicas_split_on_commas_and_need_mysql() {
        let parse = |args: &[&str]| {
            let Command::Migrate(db) = Cli::try_parse_from(args).unwrap().command else { panic!("migrate expected") };
            db.replica_config()
        };
        let two = [
            "linktrack",
            "migrate",
            "--database-url",
            "mysql://u:pw@p:3306/lt",
            "--read-database-url",
            "mysql://u:pw@r1:3306/lt,mysql://u:pw@r2:3306/lt",
        ];
        let cfg = parse(&two).unwrap().expect("replicas");
        assert_eq!(cfg.urls, vec!["mysql://u:pw@r1:3306/lt".to_owned(), "mysql://u:pw@r2:3306/lt".to_owned()]);
        assert_eq!(cfg.max_lag, Duration::from_secs(30));
        assert!(parse(&["linktrack", "migrate", "--database-url", "mysql://u:pw@p:3306/lt"]).unwrap().is_none());
        let embedded = ["linktrack", "migrate", "--database-url", "sqlite://./x.db", "--read-database-url", "mysql://u:pw@r1:3306/lt"];
        assert!(parse(&embedded).unwrap_err().contains("needs a mysql://"));
        let bad = ["linktrack", "migrate", "--database-url", "mysql://u:pw@p:3306/lt", "--read-database-url", "sqlite://./r.db"];
        assert!(parse(&bad).unwrap_err().contains("must be mysql://"));
        assert!(Cli::try_parse_from(["linktrack", "migrate", "--read-max-lag-secs", "3601"]).is_err(), "at most an hour");
    }

    /// Every flag of every subcommand can also be set from the environment.
    #[test]
    fn every_flag_has_an_env_var() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_positional() && !builtin && arg.get_env().is_none() {
                    missing.push(format!("{} --{}", sub.get_name(), arg.get_long().unwrap_or_default()));
                }
            }
        }
        assert!(missing.is_empty(), "flags without LINKTRACK_* env vars: {missing:?}");
    }

    #[test]
    fn database_url_debug_masks_password() {
        let u: DatabaseUrl = "mysql://app:hunter2@db:3306/linktrack".parse().unwrap();
        let shown = format!("{u:?} {u}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:***@db:3306/linktrack"), "{shown}");
    }

    #[test]
    fn secrets_are_redacted() {
        let s: Secret = "sk_live_123".parse().unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn database_url_rejects_unknown_schemes() {
        assert!("postgres://x/y".parse::<DatabaseUrl>().is_err());
        assert!("mysql://h:1/".parse::<DatabaseUrl>().is_err());
        assert!(matches!("sqlite://./d.db".parse::<DatabaseUrl>(), Ok(DatabaseUrl::Sqlite(_))));
    }

    #[test]
    fn cli_parses_defaults() {
        let cli = Cli::try_parse_from(["linktrack", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve expected") };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.retention.partitions_ahead, 7);
        assert!(Cli::try_parse_from(["linktrack", "serve", "--partitions-ahead", "0"]).is_err());
    }

    #[test]
    fn lower_layer_enums_parse_through_their_names() {
        let Command::Serve(args) = Cli::try_parse_from(["linktrack", "serve"]).unwrap().command else { panic!("serve expected") };
        assert_eq!(args.events.ip_anonymisation, IpAnonymisation::Truncate);
        let cli = Cli::try_parse_from(["linktrack", "serve", "--ip-anonymisation", "none"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve expected") };
        assert_eq!(args.events.ip_anonymisation, IpAnonymisation::None);
        assert!(Cli::try_parse_from(["linktrack", "serve", "--ip-anonymisation", "half"]).is_err());
        let cli = Cli::try_parse_from(["linktrack", "export", "--format", "csv"]).unwrap();
        let Command::Export(args) = cli.command else { panic!("export expected") };
        assert_eq!(args.format, ExportFormat::Csv);
        let Command::Export(args) = Cli::try_parse_from(["linktrack", "export"]).unwrap().command else { panic!("export expected") };
        assert_eq!(args.format, ExportFormat::Ndjson);
        assert!(Cli::try_parse_from(["linktrack", "export", "--format", "xml"]).is_err());
    }
}

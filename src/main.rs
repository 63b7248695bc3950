//! The `linktrack` binary: parse configuration, set up logging, pick the
//! store from the database URL's scheme, and run a subcommand. All logic
//! lives in the library; this file only wires it and reports errors.

use std::sync::Arc;

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, bail};
use clap::Parser;
use linktrack::config::{
    Cli, Command, DEFAULT_SQLITE_PATH, DatabaseUrl, DbArgs, ExportArgs, HealthArgs, InspectArgs, KeysAction, KeysArgs, RewriteArgs,
    ServeArgs, StatsArgs, TokenKeysArgs, TokenKeysCommand,
};
use linktrack::day::Clock;
use linktrack::events::Cursor;
use linktrack::events::export::{ExportFormat, Pager, csv_header, write_rows};
use linktrack::store::Store;
use linktrack::store::mysql::MysqlStore;
use linktrack::store::sqlite::{ServingLock, SqliteStore};
use linktrack::token::{self, KeyRing, TokenKey};
use linktrack::token_keys;

/// Open the store named by `$db` (a `&DbArgs`) as `$store`, an `Arc` of
/// either backend, and evaluate `$body` with it: the backend is chosen here,
/// once, from the URL's scheme, and everything after is generic over it.
/// The backend gets plain settings, never the clap arguments.
macro_rules! with_store {
    ($db:expr, |$store:ident| $body:expr) => {{
        let db: &DbArgs = $db;
        let cfg = db.store_config();
        match &db.database_url {
            DatabaseUrl::Mysql(url) => {
                // The error names the host:port and the cause itself: no context line on top.
                let mut store = MysqlStore::connect(url.expose(), &cfg).await?;
                if let Some(replicas) = db.replica_config().map_err(anyhow::Error::msg)? {
                    store = store.with_read_replicas(&replicas, &cfg).await?;
                }
                let $store = Arc::new(store);
                $body
            }
            DatabaseUrl::Sqlite(path) => {
                db.replica_config().map_err(anyhow::Error::msg)?;
                let $store =
                    Arc::new(SqliteStore::open(path, &cfg).with_context(|| format!("opening the embedded store at {}", path.display()))?);
                $body
            }
        }
    }};
}

fn main() -> anyhow::Result<()> {
    let runtime = linktrack::runtime::request_runtime().context("starting the tokio runtime")?;
    runtime.block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    linktrack::telemetry::init(cli.log_format, std::time::Duration::from_millis(cli.log_repeat_ms));
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(db) => {
            let applied = with_store!(&db, |s| s.migrate().await?);
            if applied.is_empty() {
                println!("schema is current");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Partitions(args) => {
            // On the embedded store a running server holds day-file handles of its own: refuse rather than drop under it.
            let _alone = match &args.db.database_url {
                DatabaseUrl::Sqlite(path) if !args.dry_run => Some(ServingLock::exclusive(path)?.with_context(|| {
                    format!(
                        "a `linktrack serve` is running on {}; it maintains its day files itself every \
                         --partition-check-secs. Stop it first, or use --dry-run to see the plan",
                        path.display()
                    )
                })?),
                _ => None,
            };
            let policy = args.retention.retention().policy(Clock::System.checked_today()?, args.dry_run);
            let report = with_store!(&args.db, |s| s.maintain(policy).await?);
            if !report.acquired {
                bail!("another process holds the partition maintenance lock; try again shortly");
            }
            let verb = if args.dry_run { "would " } else { "" };
            for d in &report.created {
                println!("{verb}create {d}");
            }
            for d in &report.dropped {
                println!("{verb}drop {d}");
            }
            println!(
                "{} day partitions{}",
                report.partitions.len(),
                match (report.partitions.first(), report.partitions.last()) {
                    (Some(a), Some(b)) => format!(", {a} .. {b}"),
                    _ => String::new(),
                }
            );
            Ok(())
        }
        Command::Inspect(args) => inspect(args).await,
        Command::TokenKeys(cmd) => token_keys_command(cmd).await,
        Command::Export(args) => export(args).await,
        Command::Health(args) => health(&args).await,
        Command::Keys(args) => keys(args).await,
        Command::Rewrite(args) => rewrite(*args).await,
        Command::Stats(args) => stats(args).await,
    }
}

/// `linktrack stats`: a mailing's stats (and series) as tables, from a
/// running server's API or straight from the store; `--json` prints the
/// API's documents as they are.
async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    use linktrack::http::stats::{SeriesQuery, parse_series_query, series_document, stats_document};
    let mut query = format!("tz={}", percent_encoding::utf8_percent_encode(&args.tz, percent_encoding::NON_ALPHANUMERIC));
    for (name, value) in [("bucket", &args.series), ("from", &args.from), ("to", &args.to)] {
        if let Some(v) = value {
            let _ = write!(query, "&{name}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC));
        }
    }
    let q: SeriesQuery = parse_series_query(Some(&query)).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let (stats, series) = if let Some(server) = &args.server {
        let key = args.api_key.as_ref().context("--server needs --api-key (LINKTRACK_API_KEY)")?;
        let auth = format!("Bearer {}", key.expose());
        let id = percent_encoding::utf8_percent_encode(&args.mailing, percent_encoding::NON_ALPHANUMERIC).to_string();
        let get = async |path: String| -> anyhow::Result<serde_json::Value> {
            let (status, text) = http_request(server, "GET", &path, &[("authorization", &auth)], b"", 30_000)
                .await
                .with_context(|| format!("--server {server}"))?;
            let reply: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("answer {status} is not JSON: {text}"))?;
            if status != 200 {
                bail!("{path}: {status} {}", reply["message"].as_str().unwrap_or(&text));
            }
            Ok(reply)
        };
        let stats = get(format!("/v1/mailings/{id}/stats")).await?;
        let series = match &args.series {
            Some(_) => Some(get(format!("/v1/mailings/{id}/series?{query}")).await?),
            None => None,
        };
        (stats, series)
    } else {
        with_store!(&args.db, |s| {
            let tenant = s.tenant(&args.tenant, false).await?.with_context(|| format!("--tenant {:?}: no such tenant", args.tenant))?;
            let doc = |e: linktrack::http::error::ApiError| anyhow::anyhow!("mailing {:?}: {}", args.mailing, e.message);
            let stats = stats_document(&*s, tenant, &args.mailing).await.map_err(doc)?;
            let series = match &args.series {
                Some(_) => Some(series_document(&*s, tenant, &args.mailing, &q, Clock::System.now_ms()).await.map_err(doc)?),
                None => None,
            };
            (stats, series)
        })
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{stats}")?;
        if let Some(series) = series {
            writeln!(out, "{series}")?;
        }
        return Ok(());
    }
    write!(out, "{}", linktrack::http::stats::render_tables(&stats, series.as_ref()))?;
    Ok(())
}

/// One HTTP/1.1 request to `base` + `path` over a plain TCP connection (no
/// client library, no curl in the image): the status and the body.
async fn http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> anyhow::Result<(u16, String)> {
    use std::fmt::Write as _;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(base).with_context(|| format!("{base}: not an absolute URL"))?;
    if url.scheme() != "http" {
        bail!("{base}: only http:// is supported");
    }
    let host = url.host_str().context("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let path = format!("{}{path}", url.path().trim_end_matches('/'));
    let ask = async {
        let mut stream =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.with_context(|| format!("connecting to {host}:{port}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            let _ = write!(request, "{k}: {v}\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        anyhow::Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    let reply = tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), ask)
        .await
        .with_context(|| format!("no answer from {host}:{port} within {timeout_ms} ms"))??;
    let status = reply.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// `linktrack health`: `GET <url>/readyz`; exit 0 when ready, 1 with the reasons when not.
async fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let (status, body) =
        http_request(&args.url, "GET", "/readyz", &[], b"", args.timeout_ms).await.with_context(|| format!("--url {}", args.url))?;
    if status == 200 {
        println!("{}", body.trim());
        return Ok(());
    }
    bail!("not ready ({} answered {status}): {}", args.url, body.trim());
}

/// `linktrack rewrite`: the letter on stdin, tracked on stdout, through a
/// server's `POST /v1/rewrite` or straight on the store.
async fn rewrite(args: RewriteArgs) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut html = String::new();
    std::io::stdin()
        .read_to_string(&mut html)
        .context("reading the letter from standard input (it must be UTF-8: decode quoted-printable or base64 first)")?;
    let body = serde_json::json!({
        "mailing_id": args.mailing, "recipient": args.recipient, "html": html, "pixel": args.pixel,
        "exclude_domains": args.exclude_domains, "track_unsubscribe": args.track_unsubscribe,
    })
    .to_string();
    let idem = args.idempotency_key.as_deref();
    let (status, text) = if let Some(server) = &args.server {
        let key = args.api_key.as_ref().context("--server needs --api-key (LINKTRACK_API_KEY)")?;
        let auth = format!("Bearer {}", key.expose());
        let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
        if let Some(k) = idem {
            headers.push(("idempotency-key", k));
        }
        http_request(server, "POST", "/v1/rewrite", &headers, body.as_bytes(), 60_000)
            .await
            .with_context(|| format!("--server {server}"))?
    } else {
        let mut serve = args.serve;
        linktrack::app::check_config(&serve)?;
        default_db_in_data_dir(&mut serve)?;
        let body = bytes::Bytes::from(body);
        // A server on the same embedded store would be minting beside us: ask it instead.
        let _alone = match &serve.db.database_url {
            DatabaseUrl::Sqlite(path) => Some(ServingLock::exclusive(path)?.with_context(|| {
                format!("a `linktrack serve` is running on {}; pass --server and --api-key to rewrite through it", path.display())
            })?),
            DatabaseUrl::Mysql(_) => None,
        };
        Clock::System.checked_today()?;
        let db = serve.db.clone();
        with_store!(&db, |s| linktrack::app::rewrite_once(serve, s, Clock::System, body, idem).await?)
    };
    let reply: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("answer {status} is not JSON: {text}"))?;
    if status != 200 {
        bail!("rewrite refused ({status} {}): {}", reply["error"].as_str().unwrap_or("?"), reply["message"].as_str().unwrap_or(&text));
    }
    let out = reply["html"].as_str().context("the answer has no html")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    if let Some(path) = &args.links_output {
        std::fs::write(path, reply["links"].to_string()).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("{} links tracked", reply["links"].as_array().map_or(0, Vec::len));
    Ok(())
}

/// `linktrack export`: page through the store and write rows to a file or stdout,
/// with a progress bar on stderr when it is a terminal.
async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    // The pager reads "today" per page; an impossible clock is refused once, here.
    Clock::System.checked_today()?;
    let after = match &args.after {
        Some(c) => Cursor::decode(c).with_context(|| format!("--after {c:?} is not an export cursor"))?,
        None => Cursor::START,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} events {per_sec} {msg}").context("progress template")?);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let limit = args.limit.unwrap_or(u64::MAX);
    let (rows, last) = with_store!(&args.db, |s| {
        let tenant = match &args.tenant {
            Some(name) => Some(s.tenant(name, false).await?.with_context(|| format!("--tenant {name:?}: no such tenant"))?),
            None => None,
        };
        // The stored token ring names each event's token; without one (keys given by flag to `serve`), tokens are empty.
        let keys = linktrack::token_keys::load(&*s, Clock::System.now_ms()).await?;
        let mut pager = Pager::new(s, tenant, after, limit, args.mailing_id.clone());
        if args.format == ExportFormat::Csv {
            out.write_all(&csv_header())?;
        }
        let (mut rows, mut last) = (0u64, None);
        let mut buf = Vec::new();
        while let Some(page) = pager.next().await? {
            buf.clear();
            write_rows(args.format, &page, keys.as_ref(), &mut buf)?;
            out.write_all(&buf)?;
            rows += page.len() as u64;
            last = page.last().map(|r| r.cursor);
            bar.set_position(rows);
        }
        (rows, last)
    });
    out.flush()?;
    bar.finish_and_clear();
    match last {
        Some(c) => eprintln!("exported {rows} events; resume with --after {}", c.encode()),
        None => eprintln!("no events after {}", after.encode()),
    }
    Ok(())
}

/// `linktrack keys`: create, list or revoke stored API keys. Applies pending
/// migrations first, as `serve` does, so it works on a fresh database.
async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let db = match &args.action {
        KeysAction::Create { db, .. } | KeysAction::List { db } | KeysAction::Revoke { db, .. } => db,
    };
    with_store!(db, |s| {
        s.migrate().await?;
        match &args.action {
            KeysAction::Create { tenant, scopes, label, .. } => {
                let (key, id) = linktrack::app::create_api_key(&*s, tenant, scopes, label).await?;
                eprintln!("created key {id} for tenant {tenant} with scopes {scopes}; it is shown only this once:");
                println!("{key}");
            }
            KeysAction::List { .. } => {
                let keys = s.api_keys().await?;
                println!("{:>5}  {:<20} {:<16} {:<12} {:<10} {:<20} LABEL", "ID", "TENANT", "SCOPES", "PREFIX", "STATE", "CREATED");
                for k in keys {
                    let created = time::OffsetDateTime::from_unix_timestamp(k.created_at)
                        .ok()
                        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                        .unwrap_or_default();
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    let prefix = format!("{}…", k.prefix);
                    println!(
                        "{:>5}  {:<20} {:<16} {:<12} {:<10} {:<20} {}",
                        k.id,
                        k.tenant_name,
                        k.scopes.to_string(),
                        prefix,
                        state,
                        created,
                        k.label
                    );
                }
            }
            KeysAction::Revoke { id, .. } => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if !s.revoke_api_key(*id, now).await? {
                    bail!("no active key with id {id}; `linktrack keys list` shows the ids");
                }
                println!("revoked key {id}; servers stop accepting it within their --api-keys-refresh-secs");
            }
        }
    });
    Ok(())
}

/// The default embedded database lives in the data dir, wherever that is.
fn default_db_in_data_dir(args: &mut ServeArgs) -> anyhow::Result<()> {
    if matches!(&args.db.database_url, DatabaseUrl::Sqlite(p) if p.as_path() == std::path::Path::new(DEFAULT_SQLITE_PATH)) {
        let moved = args.data_dir.join("linktrack.db");
        let old = std::path::Path::new(DEFAULT_SQLITE_PATH);
        // Before this version the default database stayed in ./data whatever --data-dir said: never
        // start on a new, empty store next to a full one.
        if moved.as_path() != old && old.exists() && !moved.exists() {
            bail!(
                "{} holds an embedded database, but with --data-dir {} the default database is now {}; \
                 move it there, or pass --database-url sqlite://{}",
                old.display(),
                args.data_dir.display(),
                moved.display(),
                old.display()
            );
        }
        args.db.database_url = DatabaseUrl::Sqlite(moved);
    }
    Ok(())
}

async fn serve(mut args: ServeArgs) -> anyhow::Result<()> {
    linktrack::app::check_config(&args)?;
    default_db_in_data_dir(&mut args)?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process listens there; stop it or choose another address with --listen (LINKTRACK_LISTEN)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges; choose a port above 1024 with --listen (LINKTRACK_LISTEN)"
            }
            _ => "check --listen (LINKTRACK_LISTEN)",
        };
        anyhow::anyhow!("cannot listen on {}: {e}; {hint}", args.listen)
    })?;
    let _serving = match &args.db.database_url {
        DatabaseUrl::Sqlite(path) => Some(ServingLock::serve(path)?),
        DatabaseUrl::Mysql(_) => None,
    };
    with_store!(&args.db, |store| linktrack::app::run(&args, store, Clock::System, listener, shutdown).await?);
    Ok(())
}

/// `linktrack inspect`: verify a token with `--token-keys`, or else with the
/// keys stored in the database, and print what it carries. Reading the stored
/// keys never creates one.
async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let today = Clock::System.checked_today()?;
    let keys = if let Some(spec) = &args.token_keys {
        KeyRing::parse(spec.expose()).map_err(|e| anyhow::anyhow!("--token-keys (LINKTRACK_TOKEN_KEYS): {e}"))?
    } else {
        stored_keys(&args.db).await?
    };
    let parsed = token::parse(args.token.as_bytes(), &keys, today).map_err(|e| anyhow::anyhow!("invalid token: {e}"))?;
    println!("version  {}", char::from(parsed.version));
    println!("key id   {}", parsed.key_id);
    println!("day      {} ({})", parsed.day, parsed.day.0);
    println!("random   {}", hex::encode(parsed.random.0));
    Ok(())
}

/// The ring stored in the database, read without creating anything; a clear
/// one-line error when there is no database or no key in it.
async fn stored_keys(db_args: &DbArgs) -> anyhow::Result<KeyRing> {
    let db = &db_args.database_url;
    if let DatabaseUrl::Sqlite(path) = db
        && !path.exists()
    {
        bail!(
            "no embedded database at {}: pass the server's --database-url (LINKTRACK_DATABASE_URL), or its keys with --token-keys",
            path.display()
        );
    }
    let ring = with_store!(db_args, |s| token_keys::load(&*s, Clock::System.now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("reading the token keys from {db}: {e}"))?);
    ring.with_context(|| {
        format!(
            "{db} holds no token key yet (`linktrack serve` creates one at its first start); pass --token-keys to verify with other keys"
        )
    })
}

/// `linktrack token-keys add|retire|list`: on the keys in the store, or, with
/// `--token-keys` (`LINKTRACK_TOKEN_KEYS`), on that spec, printing the value to deploy.
async fn token_keys_command(cmd: TokenKeysCommand) -> anyhow::Result<()> {
    let (args, retire): (&TokenKeysArgs, Option<u8>) = match &cmd {
        TokenKeysCommand::Add { keys: a, .. } | TokenKeysCommand::List(a) => (a, None),
        TokenKeysCommand::Retire { id, keys } => (keys, Some(*id)),
    };
    if let Some(spec) = &args.token_keys {
        let ring = KeyRing::parse(spec.expose()).map_err(|e| anyhow::anyhow!("--token-keys (LINKTRACK_TOKEN_KEYS): {e}"))?;
        return env_token_keys(&cmd, &ring, retire);
    }
    let db = &args.db.database_url;
    let reload = "running servers pick it up within --token-key-reload-ms (LINKTRACK_TOKEN_KEY_RELOAD_MS, default 30 s)";
    let now = Clock::System.now_ms();
    let entries = match &cmd {
        TokenKeysCommand::Add { activate_after_secs, .. } => {
            let delay_ms = i64::try_from(activate_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            with_store!(&args.db, |s| {
                let id = token_keys::add(&*s, now, delay_ms).await.map_err(|e| anyhow::anyhow!("adding a token key in {db}: {e}"))?;
                if delay_ms > 0 {
                    println!("added token key {id}: it verifies once servers reload ({reload}) and mints from {}", at(now + delay_ms));
                } else {
                    println!("added token key {id}: it mints new tokens from now on; {reload}");
                }
                token_keys::entries(&*s).await?
            })
        }
        TokenKeysCommand::Retire { id, .. } => with_store!(&args.db, |s| {
            token_keys::retire(&*s, *id, now).await.map_err(|e| anyhow::anyhow!("retiring token key {id} in {db}: {e}"))?;
            println!("retired token key {id}: its tokens get 404 and its secret is deleted; {reload}");
            token_keys::entries(&*s).await?
        }),
        TokenKeysCommand::List(_) => with_store!(&args.db, |s| token_keys::entries(&*s).await?),
    };
    if entries.is_empty() {
        bail!("{db} holds no token key yet (`linktrack serve` creates one at its first start)");
    }
    let pending = |id: u8| entries.iter().find(|e| e.id == id).and_then(|e| e.mints_from_ms).filter(|&t| t > now);
    for (i, id) in token_keys::order(&entries, now).into_iter().enumerate() {
        match pending(id) {
            Some(t) => println!("{id}\tverifying, mints from {}", at(t)),
            None => println!("{id}\t{}", if i == 0 { "minting" } else { "verifying" }),
        }
    }
    Ok(())
}

/// A unix time in milliseconds as RFC 3339 (UTC).
fn at(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The keys come from the environment: nothing is stored; say what to deploy.
fn env_token_keys(cmd: &TokenKeysCommand, ring: &KeyRing, retire: Option<u8>) -> anyhow::Result<()> {
    let ids = token_keys::ids(ring);
    let deploy = |ring: &KeyRing| {
        println!("set this on every server and restart them (servers read LINKTRACK_TOKEN_KEYS at start only):");
        println!("LINKTRACK_TOKEN_KEYS={}", ring.to_spec());
    };
    match cmd {
        TokenKeysCommand::List(_) => print_ring(ring),
        TokenKeysCommand::Add { .. } => {
            use rand::RngExt;
            let id = token_keys::next_id(&ids).context("all 62 token key ids are in use; retire one first")?;
            let secret: [u8; token_keys::GENERATED_SECRET_LEN] = rand::rng().random();
            let mut keys = vec![TokenKey::new(id, &secret)?];
            keys.extend(ids.iter().filter_map(|&k| ring.get(k).cloned()));
            println!("generated token key {id}; it mints once servers run with it, the others keep verifying");
            deploy(&KeyRing::new(keys)?);
        }
        TokenKeysCommand::Retire { .. } => {
            let id = retire.context("retire needs a key id")?;
            if !ids.contains(&id) {
                bail!("token key {id} is not in LINKTRACK_TOKEN_KEYS (keys: {})", join(&ids));
            }
            if ids[0] == id {
                bail!("token key {id} mints new tokens; add its successor first (`linktrack token-keys add`), deploy, then retire {id}");
            }
            let keys = ids.iter().filter(|&&k| k != id).filter_map(|&k| ring.get(k).cloned()).collect();
            println!("without token key {id}; its tokens get 404 once servers run without it");
            deploy(&KeyRing::new(keys)?);
        }
    }
    Ok(())
}

fn print_ring(ring: &KeyRing) {
    for (i, id) in token_keys::ids(ring).into_iter().enumerate() {
        println!("{id}\t{}", if i == 0 { "minting" } else { "verifying" });
    }
}

fn join(ids: &[u8]) -> String {
    ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed here, before
/// the listener is bound, not when the future is first polled: a SIGTERM
/// that arrives while the service is starting must still shut it down
/// cleanly rather than kill it.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("interrupt: shutting down"),
        }
    })
}

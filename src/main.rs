//! The `linktrack` binary: parse configuration, set up logging, pick the
//! store from the database URL's scheme, and run a subcommand. All logic
//! lives in the library; this file only wires it and reports errors.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use linktrack::config::{Cli, Command, DatabaseUrl, DbArgs, ServeArgs};
use linktrack::day::Clock;
use linktrack::store::mysql::MysqlStore;
use linktrack::store::sqlite::SqliteStore;
use linktrack::store::{MaintenancePolicy, Store};
use linktrack::token::{self, KeyRing};

/// Open the store named by `$db` (a `&DbArgs`) as `$store`, an `Arc` of
/// either backend, and evaluate `$body` with it: the backend is chosen here,
/// once, from the URL's scheme, and everything after is generic over it.
macro_rules! with_store {
    ($db:expr, |$store:ident| $body:expr) => {{
        let db: &DbArgs = $db;
        match &db.database_url {
            DatabaseUrl::Mysql(url) => {
                let $store = Arc::new(MysqlStore::connect(url, db).await.context("connecting to mysql")?);
                $body
            }
            DatabaseUrl::Sqlite(path) => {
                let $store =
                    Arc::new(SqliteStore::open(path, db).with_context(|| format!("opening the embedded store at {}", path.display()))?);
                $body
            }
        }
    }};
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    linktrack::telemetry::init(cli.log_format);
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
            let policy = MaintenancePolicy {
                today: Clock::System.today(),
                ahead: args.retention.partitions_ahead,
                retention: args.retention.retention_days,
                dry_run: args.dry_run,
            };
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
        Command::Inspect(args) => inspect(&args.token, args.token_keys.as_ref().map(linktrack::config::Secret::expose)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let shutdown = shutdown_signal();
    with_store!(&args.db, |store| linktrack::app::run(&args, store, Clock::System, listener, shutdown).await?);
    Ok(())
}

fn inspect(raw: &str, keys: Option<&str>) -> anyhow::Result<()> {
    let today = Clock::System.today();
    let Some(spec) = keys else {
        bail!("pass --token-keys (or LINKTRACK_TOKEN_KEYS) to verify the token's MAC");
    };
    let keys = KeyRing::parse(spec).context("parsing token keys")?;
    let parsed = token::parse(raw.as_bytes(), &keys, today).map_err(|e| anyhow::anyhow!("invalid token: {e}"))?;
    println!("version  {}", char::from(parsed.version));
    println!("key id   {}", parsed.key_id);
    println!("day      {} ({})", parsed.day, parsed.day.0);
    println!("random   {}", hex::encode(parsed.random.0));
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
}

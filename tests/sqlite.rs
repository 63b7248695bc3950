//! Embedded-store tests: the shared conformance suite against `SqliteStore`
//! in a fresh temp dir per test, plus what only the embedded store has to
//! show: dropping a day deletes its file and frees the space, resolves don't
//! wait for the writer, a held write lock gives a fast `Unavailable`, and the
//! maintenance lock keeps two stores on one data dir apart. Also checks that
//! the test harness reports a server that never gets healthy.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::conformance::Fixture;
use common::server::{START_UNIX, TOKEN_KEYS, TestServer, serve_args, start_day};
use linktrack::config::{Cli, Command, DbArgs};
use linktrack::day::{Clock, Day};
use linktrack::link::{Idempotency, Letter, LinkKind, MintBatch, MintOutcome, NewLink};
use linktrack::store::sqlite::SqliteStore;
use linktrack::store::{MaintenancePolicy, Store};
use linktrack::token::{self, KeyRing, Version};
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

#[derive(Debug)]
pub struct SqliteFixture {
    dir: TempDir,
    pub store: Arc<SqliteStore>,
}

/// Store arguments as `linktrack migrate --database-url sqlite://PATH EXTRA...` would parse them.
fn db_args(path: &Path, extra: &[&str]) -> DbArgs {
    let url = format!("sqlite://{}", path.display());
    let argv = ["linktrack", "migrate", "--database-url", &url].into_iter().chain(extra.iter().copied());
    match Cli::try_parse_from(argv).expect("args").command {
        Command::Migrate(db) => db,
        _ => unreachable!(),
    }
}

impl SqliteFixture {
    /// A fresh data dir with non-default store settings (`--db-*` flags).
    fn open_with(extra: &[&str]) -> SqliteFixture {
        let dir = tempfile::Builder::new().prefix("linktrack-sqlite-").tempdir().expect("temp dir");
        let main = dir.path().join("linktrack.db");
        let store = SqliteStore::open(&main, &db_args(&main, extra).store_config()).expect("open");
        SqliteFixture { dir, store: Arc::new(store) }
    }

    fn main_path(&self) -> PathBuf {
        self.dir.path().join("linktrack.db")
    }

    /// Another store on the same files, as a second process would have.
    fn second_store(&self) -> SqliteStore {
        SqliteStore::open(&self.main_path(), &db_args(&self.main_path(), &[]).store_config()).expect("open second store")
    }
}

impl Fixture for SqliteFixture {
    type S = SqliteStore;

    async fn open(_hint: &str) -> Self {
        SqliteFixture::open_with(&[])
    }

    fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    /// Reads every day file directly.
    async fn count_links(&self) -> u64 {
        let mut total = 0;
        for path in day_files(self.store.days_dir()) {
            let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open day file");
            let sql = "SELECT (SELECT COUNT(*) FROM links) + (SELECT COUNT(*) FROM links_v2)";
            total += u64::from(c.query_row(sql, [], |r| r.get::<_, u32>(0)).expect("count"));
        }
        total
    }

    async fn replica(&self) -> Arc<SqliteStore> {
        Arc::new(self.second_store())
    }

    async fn count_events(&self) -> u64 {
        common::process::count_sqlite_events(self.store.days_dir())
    }
}

conformance_suite!(SqliteFixture);

/// The day files (`YYYY-MM-DD.db`, no sidecars) in `dir`.
fn day_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".db")).is_some_and(|stem| Day::parse_iso(stem).is_some())
        })
        .collect();
    files.sort();
    files
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() { dir_size(&e.path()) } else { meta.len() }
        })
        .sum()
}

fn policy(today: Day, ahead: u16, retention: u16) -> MaintenancePolicy {
    MaintenancePolicy { today, ahead, retention, dry_run: false }
}

/// Link ids of the store-level mints below.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A mint of `n` click links (distinct URLs, tagged with `tag`) on `day`.
fn clicks(day: Day, n: usize, tag: &str, idempotency: Option<Idempotency>) -> MintBatch {
    let keys = KeyRing::parse(TOKEN_KEYS).expect("test keys");
    let mut minted = Vec::new();
    token::generate_v2(&keys, day, NEXT_ID.fetch_add(n as u64, Ordering::Relaxed), n, &mut minted);
    let links = minted
        .into_iter()
        .enumerate()
        .map(|(i, (token, random))| NewLink {
            kind: LinkKind::Click,
            random,
            token,
            url: Some(Arc::from(format!("https://{tag}.example/item/{i}"))),
            position: linktrack::link::stored_position(i),
        })
        .collect();
    let letter = Letter {
        tenant: linktrack::tenant::TenantId::DEFAULT,
        mailing_id: "m".into(),
        recipient: "r@example.com".into(),
        meta: None,
        minted_at: START_UNIX,
        click_links: 1,
    };
    MintBatch { day, version: Version::V2, letter, links, idempotency }
}

async fn ready(extra: &[&str]) -> SqliteFixture {
    let f = SqliteFixture::open_with(extra);
    f.store.migrate().await.expect("migrate");
    assert!(f.store.maintain(policy(start_day(), 1, 3)).await.expect("maintain").acquired);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_day_deletes_its_file_and_frees_the_space() {
    let f = ready(&[]).await;
    let d = start_day();
    for i in 0..20 {
        assert!(matches!(f.store.mint(&clicks(d, 1000, &format!("shop{i}"), None)).await.unwrap(), MintOutcome::Stored(_)));
    }
    let kept = clicks(d.plus(1), 10, "kept", None);
    f.store.mint(&kept).await.unwrap();
    assert_eq!(f.count_links().await, 20_010);
    let before = dir_size(f.dir.path());
    let day_file = f.store.day_path(d);
    let day_bytes = std::fs::metadata(&day_file).unwrap().len();
    // Three days later with retention 2: day `d` is past retention, `d + 1` is kept.
    let rep = f.store.maintain(policy(d.plus(3), 1, 2)).await.unwrap();
    assert_eq!(rep.dropped, vec![d]);
    let after = dir_size(f.dir.path());
    println!("data dir before dropping {d} (20,000 links): {before} bytes (day file {day_bytes} bytes); after: {after} bytes");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", day_file.display()));
        assert!(!p.exists(), "{} must be deleted", p.display());
    }
    assert!(after + day_bytes / 2 < before, "dropping the day must free its space: {before} -> {after}");
    assert_eq!(f.count_links().await, 10);
    assert_eq!(f.store.resolve(d.plus(1), Version::V2, &kept.links[0].random).await.unwrap().map(|r| r.kind), Some(LinkKind::Click));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_does_not_wait_for_a_long_write() {
    let f = ready(&["--db-statement-timeout-ms", "60000"]).await;
    let d = start_day();
    let small = clicks(d, 1, "small", None);
    f.store.mint(&small).await.unwrap();
    // One huge request keeps the writer inside one transaction on the same day file.
    let big = clicks(d, 50_000, "big", None);
    let store = f.store.clone();
    let started = Instant::now();
    let mint = tokio::spawn(async move { store.mint(&big).await });
    let mut during = 0u32;
    let mut slowest = Duration::ZERO;
    while !mint.is_finished() {
        let t = Instant::now();
        let r = f.store.resolve(d, Version::V2, &small.links[0].random).await.unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.and_then(|r| r.url).as_deref(), Some("https://small.example/item/0"));
        during += 1;
    }
    let took = started.elapsed();
    assert!(matches!(mint.await.unwrap().unwrap(), MintOutcome::Stored(_)));
    println!("50k-link mint took {took:?}; {during} resolves completed meanwhile, slowest {slowest:?}");
    // Readers queued behind the writer would get at most a couple through before the commit.
    assert!(during >= 50, "only {during} resolves completed during a {took:?} write");
    assert_eq!(f.count_links().await, 50_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_gives_a_fast_unavailable_and_reads_go_on() {
    let f = ready(&["--db-statement-timeout-ms", "300", "--db-acquire-timeout-ms", "100"]).await;
    let d = start_day();
    let first = clicks(d, 1, "first", None);
    f.store.mint(&first).await.unwrap();
    // Someone else holds the day file's write lock.
    let other = Connection::open(f.store.day_path(d)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; INSERT INTO letters (minted_at, mailing_id, recipient) VALUES (0, 'x', 'y');").unwrap();
    let t = Instant::now();
    let blocked = f.store.mint(&clicks(d, 1, "blocked", None)).await;
    assert!(matches!(blocked, Err(linktrack::Error::Unavailable(_))), "{blocked:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "the deadline bounds the wait: {:?}", t.elapsed());
    assert!(f.store.resolve(d, Version::V2, &first.links[0].random).await.unwrap().is_some(), "reads go on under a held write lock");
    other.execute_batch("ROLLBACK").unwrap();
    assert!(matches!(f.store.mint(&clicks(d, 1, "after", None)).await.unwrap(), MintOutcome::Stored(_)));
    assert_eq!(f.count_links().await, 2, "the blocked mint stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_lock_is_held_by_one_store_at_a_time() {
    // `a`'s long pass below waits on a lock this test holds: give it time to.
    let f = SqliteFixture::open_with(&["--db-statement-timeout-ms", "60000"]);
    let (a, b) = (f.store.clone(), Arc::new(f.second_store()));
    a.migrate().await.unwrap();
    let d = start_day();
    // Another process holding `<main>.lock` keeps both stores out.
    let holder = Connection::open(PathBuf::from(format!("{}.lock", f.main_path().display()))).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert!(!a.maintain(policy(d, 1, 3)).await.unwrap().acquired);
    assert!(!b.maintain(policy(d, 1, 3)).await.unwrap().acquired);
    holder.execute_batch("ROLLBACK").unwrap();
    // A long pass on `a` (a thousand day files): `b` is refused while it runs.
    // The pass cannot end while the test holds the main file's write lock: its
    // last step drops the `seen_<day>` tables of expired days there, and one
    // is waiting for it. So the two passes overlap whatever the timing.
    let main = Connection::open(f.main_path()).unwrap();
    main.execute_batch("CREATE TABLE seen_0 (x INTEGER); BEGIN IMMEDIATE;").unwrap();
    let long = tokio::spawn({
        let a = a.clone();
        async move { a.maintain(policy(d, 1000, 3)).await }
    });
    while day_files(a.days_dir()).is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused = b.maintain(policy(d, 7, 3)).await.unwrap();
    assert!(!long.is_finished(), "the long pass must still be waiting for the main file's lock");
    assert!(!refused.acquired, "{refused:?}");
    assert!(refused.created.is_empty());
    // A second pass on the same store while one runs is refused too.
    assert!(!a.maintain(policy(d, 7, 3)).await.unwrap().acquired);
    main.execute_batch("ROLLBACK").unwrap();
    let done = long.await.unwrap().unwrap();
    assert!(done.acquired);
    assert_eq!(done.created.len(), 1001);
    let after = b.maintain(policy(d, 7, 3)).await.unwrap();
    assert!(after.acquired && after.created.is_empty(), "{after:?}");
    assert_eq!(day_files(a.days_dir()).len(), 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_never_creates_a_day_file() {
    let f = ready(&[]).await;
    let missing = start_day().plus(5);
    let r = f.store.mint(&clicks(missing, 3, "x", None)).await;
    assert!(matches!(r, Err(linktrack::Error::NoPartition(day)) if day == missing), "{r:?}");
    assert!(!f.store.day_path(missing).exists());
    assert_eq!(day_files(f.store.days_dir()).len(), 2, "only the maintained days exist");
    assert_eq!(f.store.resolve(missing, Version::V2, &token::Random([1; 16])).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mint_does_not_fail_its_group() {
    let f = ready(&[]).await;
    let d = start_day();
    let idem = Idempotency { key_hash: [9; 16], body_hash: [1; 16] };
    f.store.mint(&clicks(d, 2, "keyed", Some(idem))).await.unwrap();
    // Many mints at once are group-committed; one of them reuses the key with another body.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = f.store.clone();
        let bad = i == 20;
        let batch = clicks(d, 5, &format!("g{i}"), bad.then_some(Idempotency { body_hash: [2; 16], ..idem }));
        tasks.push(tokio::spawn(async move { (bad, store.mint(&batch).await) }));
    }
    for t in tasks {
        match t.await.unwrap() {
            (true, r) => assert!(matches!(r, Err(linktrack::Error::IdempotencyMismatch)), "{r:?}"),
            (false, r) => assert!(matches!(r.unwrap(), MintOutcome::Stored(_))),
        }
    }
    assert_eq!(f.count_links().await, 2 + 39 * 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_links_survive_reopening_the_store() {
    let f = ready(&[]).await;
    let b = clicks(start_day(), 3, "durable", None);
    f.store.mint(&b).await.unwrap();
    let SqliteFixture { dir, store } = f;
    // The last handle: dropping it flushes the writer and joins its thread.
    drop(Arc::into_inner(store).expect("no other handle"));
    let main = dir.path().join("linktrack.db");
    let reopened = SqliteStore::open(&main, &db_args(&main, &[]).store_config()).unwrap();
    assert!(reopened.migrate().await.unwrap().is_empty());
    for link in &b.links {
        let r = reopened.resolve(start_day(), Version::V2, &link.random).await.unwrap().expect("found after reopening");
        assert_eq!(r.url, link.url);
    }
}

/// The harness itself: a server that never becomes healthy fails the test
/// with its error and its log tail (here startup finds an empty API key
/// file, after it has logged that the partitions are ready).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_gets_healthy_fails_with_its_log_tail() {
    let f = SqliteFixture::open_with(&[]);
    let mut args = serve_args(&[]);
    args.api_keys.clear();
    std::fs::create_dir_all(&args.data_dir).unwrap();
    std::fs::write(args.data_dir.join("api-key"), "").unwrap();
    let start = tokio::spawn(TestServer::start(f.store.clone(), Clock::manual(START_UNIX), args));
    let Err(failed) = start.await else { panic!("the server started with an empty API key file") };
    let panic = failed.into_panic();
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("api-key is empty; delete it or set LINKTRACK_API_KEYS"), "{message}");
    assert!(message.contains("partitions ready"), "no log tail in: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_follows_a_rewritten_letter() {
    common::rewrite_suite::browser_follows_a_rewritten_letter::<SqliteFixture>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_renders_the_report() {
    common::report_suite::browser_renders_the_report::<SqliteFixture>().await;
}

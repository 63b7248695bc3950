//! The `linktrack` subcommands other than `serve`, run as the real binary on
//! the embedded store: `migrate` is idempotent, `export` writes every event
//! once and resumes from the cursor it prints, `inspect` decodes a token,
//! `partitions` refuses to run beside a server on the same files, `rewrite`
//! tracks a letter through a server or straight on the store.

mod common;

use std::collections::HashSet;
use std::process::{Command, Output};

use common::client::{Client, path_of};
use common::process::{Service, count_events};
use common::server::{API_KEY, TOKEN_KEYS};
use serde_json::{Value, json};
use tempfile::TempDir;

fn linktrack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linktrack")).args(args).output().expect("run linktrack")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: exit {}\nstdout: {}\nstderr: {}", o.status, stdout(&o), stderr(&o));
    o
}

/// The cursor in export's last stderr line: "exported N events; resume with --after C".
fn resume_cursor(o: &Output) -> String {
    let err = stderr(o);
    let line = err.lines().last().unwrap_or_default();
    match line.split_once("resume with --after ") {
        Some((_, c)) => c.trim().to_owned(),
        None => panic!("no resume cursor in {err:?}"),
    }
}

fn csv_rows(path: &std::path::Path) -> Vec<csv::StringRecord> {
    let mut rdr = csv::Reader::from_path(path).expect("open csv");
    let headers = rdr.headers().expect("csv header").clone();
    assert_eq!(headers.get(0), Some("cursor"), "the first column is the cursor: {headers:?}");
    rdr.records().map(|r| r.expect("csv record")).collect()
}

#[test]
fn migrate_twice_applies_once() {
    let dir = TempDir::new().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("linktrack.db").display());
    let first = stdout(&ok(linktrack(&["migrate", "--database-url", &url]), "first migrate"));
    assert!(first.lines().any(|l| l.starts_with("applied ")), "{first}");
    let second = stdout(&ok(linktrack(&["migrate", "--database-url", &url]), "second migrate"));
    assert_eq!(second.trim(), "schema is current");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_cli_is_complete_and_resumes_from_its_cursor() {
    let data = TempDir::new().expect("data dir");
    let db = format!("sqlite://{}", data.path().join("linktrack.db").display());
    let svc = Service::spawn(&db, data.path(), &["--event-flush-ms", "50"]);
    let mut c = Client::new(svc.addr);
    let body = json!({"mailing_id": "cli", "recipient": "r@example.com", "meta": {"a": "b, \"c\""},
        "links": [{"url": "https://shop.example/a?x=1,2"}, {"url": "https://shop.example/b"}], "pixel": true});
    let minted = c.mint(Some(API_KEY), &body, None).await.json();
    let paths: Vec<String> = minted["links"]
        .as_array()
        .expect("links")
        .iter()
        .chain([&minted["pixel"]])
        .map(|l| path_of(l["tracking_url"].as_str().expect("url")))
        .collect();
    let n = 300;
    for i in 0..n {
        let p = &paths[i % paths.len()];
        let want = if p.starts_with("/o/") { 200 } else { 302 };
        assert_eq!(c.get(p).await.status, want);
    }
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
    assert_eq!(count_events(&db).await, n as u64);

    // Everything, as NDJSON on stdout.
    let all = ok(linktrack(&["export", "--database-url", &db]), "export all");
    let rows: Vec<Value> = stdout(&all).lines().map(|l| serde_json::from_str(l).expect("ndjson row")).collect();
    assert_eq!(rows.len(), n);
    assert!(rows.iter().all(|r| r["mailing_id"] == "cli" && r["recipient"] == "r@example.com" && r["meta"]["a"] == "b, \"c\""));
    let cursors: Vec<&str> = rows.iter().map(|r| r["cursor"].as_str().expect("cursor")).collect();
    assert_eq!(cursors.iter().collect::<HashSet<_>>().len(), n, "one cursor per row");

    // Interrupted after 123 rows as CSV, then resumed from the cursor it printed.
    let first_file = data.path().join("first.csv");
    let first = ok(
        linktrack(&["export", "--database-url", &db, "--format", "csv", "--limit", "123", "-o", first_file.to_str().expect("path")]),
        "export head",
    );
    let head = csv_rows(&first_file);
    assert_eq!(head.len(), 123);
    let cursor = resume_cursor(&first);
    assert_eq!(cursor, cursors[122], "the printed cursor is the last row's");
    let rest_file = data.path().join("rest.csv");
    ok(
        linktrack(&["export", "--database-url", &db, "--format", "csv", "--after", &cursor, "-o", rest_file.to_str().expect("path")]),
        "export rest",
    );
    let tail = csv_rows(&rest_file);
    let union: Vec<String> = head.iter().chain(&tail).map(|r| r.get(0).expect("cursor").to_owned()).collect();
    assert_eq!(union, cursors, "head + resumed tail is exactly the full export, in order");

    // A bad cursor is a clear error, not an empty export.
    let bad = linktrack(&["export", "--database-url", &db, "--after", "nonsense"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("is not an export cursor"), "{}", stderr(&bad));
}

#[test]
fn inspect_decodes_a_token_and_rejects_a_forgery() {
    let dir = TempDir::new().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("linktrack.db").display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let token = rt.block_on(async {
        let svc = Service::spawn(&url, dir.path(), &[]);
        let body = json!({"mailing_id": "m", "recipient": "r", "links": [{"url": "https://a.example/"}]});
        let token =
            Client::new(svc.addr).mint(Some(API_KEY), &body, None).await.json()["links"][0]["token"].as_str().expect("token").to_owned();
        let (status, log) = svc.terminate().await;
        assert!(status.success(), "{log}");
        token
    });
    let out = stdout(&ok(linktrack(&["inspect", &token, "--token-keys", TOKEN_KEYS]), "inspect"));
    assert!(out.contains("key id   1") && out.contains("random   "), "{out}");
    let mut forged = token.into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let bad = linktrack(&["inspect", std::str::from_utf8(&forged).expect("ascii"), "--token-keys", TOKEN_KEYS]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("invalid token"), "{}", stderr(&bad));
}

/// `linktrack partitions` on the embedded store refuses to run beside a
/// server (which would keep handles to day files dropped under it), says
/// why, still prints the plan with `--dry-run`, and runs once the server is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_refuses_to_run_beside_an_embedded_server() {
    let data = TempDir::new().expect("data dir");
    let db = format!("sqlite://{}", data.path().join("linktrack.db").display());
    let svc = Service::spawn(&db, data.path(), &[]);
    let refused = linktrack(&["partitions", "--database-url", &db]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("a `linktrack serve` is running on"), "{}", stderr(&refused));
    let plan = stdout(&ok(linktrack(&["partitions", "--database-url", &db, "--dry-run"]), "dry run beside the server"));
    assert!(plan.contains("day partitions"), "{plan}");
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
    let done = stdout(&ok(linktrack(&["partitions", "--database-url", &db]), "partitions once the server is gone"));
    assert!(done.contains("day partitions"), "{done}");
}

/// The embedded store's files hold recipients and the token MAC key: every
/// directory the service creates is 0700 and every file 0600 (the database,
/// its day files and their WAL sidecars, the locks, the spool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_files_are_private() {
    let root = TempDir::new().expect("dir");
    let data = root.path().join("data");
    let db = format!("sqlite://{}", data.join("db").join("linktrack.db").display());
    let svc = Service::spawn(&db, &data, &["--event-flush-ms", "20"]);
    let mut c = Client::new(svc.addr);
    let minted = c
        .mint(Some(API_KEY), &json!({"mailing_id": "m", "recipient": "r@example.com", "links": [{"url": "https://a.example/"}]}), None)
        .await;
    assert_eq!(c.get(&path_of(minted.json()["links"][0]["tracking_url"].as_str().expect("url"))).await.status, 302);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Look while it runs (WAL sidecars exist) and after it stops.
    let running = private_modes(&data, "running");
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
    let stopped = private_modes(&data, "stopped");
    assert!(running.0 >= 4 && running.1 >= 5 && stopped.1 >= 3, "looked at {running:?} then {stopped:?} (dirs, files)");
}

/// Assert every directory under `root` is 0700 and every file 0600; count them.
fn private_modes(root: &std::path::Path, when: &str) -> (usize, usize) {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).expect("stat dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{when}: {} is {mode:o}", dir.display());
        seen.0 += 1;
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = std::fs::metadata(&path).expect("stat file").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{when}: {} is {mode:o}", path.display());
                seen.1 += 1;
            }
        }
    }
    seen
}

/// `linktrack serve` with the given extra flags on a fresh embedded store in
/// `dir`: it must exit at once with a message containing `expect`, before
/// creating the database.
fn refused_at_start(dir: &TempDir, extra: &[&str], expect: &str) {
    let db = format!("sqlite://{}", dir.path().join("db").join("linktrack.db").display());
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--database-url", &db, "--data-dir"];
    let data = dir.path().join("data");
    args.push(data.to_str().expect("path"));
    args.extend_from_slice(extra);
    // As an operator sees it: no backtrace under the message.
    let out = Command::new(env!("CARGO_BIN_EXE_linktrack")).args(&args).env("RUST_BACKTRACE", "0").output().expect("run linktrack");
    assert!(!out.status.success(), "{extra:?} was accepted");
    let err = stderr(&out);
    assert!(err.contains(expect), "{extra:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!dir.path().join("db").exists(), "{extra:?}: the store was touched before the config was checked");
}

/// The newcomer's rough edges: configuration mistakes are one-line errors
/// that say what to do, found before any store work; a busy port says so.
#[test]
fn config_mistakes_are_refused_before_any_store_work() {
    let dir = TempDir::new().expect("dir");
    let keys = ["--token-keys", TOKEN_KEYS];
    refused_at_start(&dir, &[&keys[..], &["--api-keys", "short", "--public-url", "https://t.example"]].concat(), "at least 16");
    refused_at_start(&dir, &[&keys[..], &["--api-keys", API_KEY, "--public-url", "example.com"]].concat(), "--public-url");
    refused_at_start(&dir, &["--api-keys", API_KEY, "--token-keys", "1:nothex"], "--token-keys");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = linktrack(&["serve", "--listen", &addr, "--api-keys", API_KEY, "--token-keys", TOKEN_KEYS]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("cannot listen on {addr}")) && stderr(&out).contains("--listen"), "{}", stderr(&out));
}

/// `--data-dir` moves the default embedded database too, not just the API
/// key and the spool.
#[test]
fn data_dir_holds_the_default_database() {
    let cwd = TempDir::new().expect("dir");
    let data = cwd.path().join("elsewhere");
    // A database where the old default put it is never left behind for a new, empty one.
    std::fs::create_dir(cwd.path().join("data")).expect("mkdir");
    std::fs::write(cwd.path().join("data").join("linktrack.db"), b"").expect("old db");
    let refused = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["serve", "--listen", "127.0.0.1:0", "--api-keys", API_KEY, "--token-keys", TOKEN_KEYS, "--data-dir"])
        .arg(&data)
        .current_dir(cwd.path())
        .output()
        .expect("run linktrack");
    assert!(!refused.status.success() && stderr(&refused).contains("move it there"), "{}", stderr(&refused));
    std::fs::remove_dir_all(cwd.path().join("data")).expect("rm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["serve", "--listen", "127.0.0.1:0", "--api-keys", API_KEY, "--token-keys", TOKEN_KEYS, "--data-dir"])
        .arg(&data)
        .current_dir(cwd.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn linktrack");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data.join("linktrack.db.days").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert!(child.wait().expect("wait").success());
    assert!(data.join("linktrack.db").exists(), "the database is in the data dir");
    assert!(!cwd.path().join("data").exists(), "nothing under ./data");
}

/// A database that is not there: `migrate` retries for `--db-connect-wait-secs`,
/// then says which host:port it could not reach, once, on one line. An
/// embedded path it may not create names the path.
#[test]
fn unreachable_databases_are_named() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("mysql://root@127.0.0.1:{port}/x");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["migrate", "--database-url", &url, "--db-connect-wait-secs", "2"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run linktrack");
    let err = stderr(&out);
    assert!(!out.status.success());
    let last = err.trim().lines().last().unwrap_or_default().to_owned();
    assert!(last.contains(&format!("cannot reach MySQL at 127.0.0.1:{port}")), "{err}");
    assert_eq!(last.matches("refused").count(), 1, "the cause once: {last}");
    assert!(err.contains("retrying"), "each attempt is logged: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "it gave up after its wait");

    let file = TempDir::new().expect("dir");
    let blocker = file.path().join("not-a-dir");
    std::fs::write(&blocker, b"").expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(["migrate", "--database-url", &format!("sqlite://{}/x.db", blocker.display())])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run linktrack");
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&blocker.display().to_string()), "the path is named: {}", stderr(&out));
}

/// Lines of the error message (a backtrace, when `RUST_BACKTRACE` asks for one, is not the message).
fn error_lines(o: &Output) -> usize {
    stderr(o).split("Stack backtrace:").next().unwrap_or_default().trim().lines().count()
}

fn sqlite_store(path: &std::path::Path) -> linktrack::store::sqlite::SqliteStore {
    let cfg = linktrack::store::StoreConfig {
        pool_max: 1,
        acquire_timeout: std::time::Duration::from_secs(2),
        statement_timeout: std::time::Duration::from_secs(5),
        lock_wait_timeout_secs: 3,
        connect_wait: std::time::Duration::from_secs(1),
    };
    linktrack::store::sqlite::SqliteStore::open(path, &cfg).expect("open the embedded store")
}

/// `inspect` without `--token-keys` verifies with the keys stored in the
/// database, and never creates one: no database, or none stored, is a
/// one-line error and leaves the store as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_the_stored_keys_and_never_creates_one() {
    use linktrack::token::{self, KeyRing};
    use linktrack::token_keys;
    let dir = TempDir::new().expect("dir");
    let path = dir.path().join("linktrack.db");
    let url = format!("sqlite://{}", path.display());
    let some_token = "0000000000000000000000-2000-0000000";

    let missing = linktrack(&["inspect", some_token, "--database-url", &url]);
    assert!(!missing.status.success());
    assert_eq!(error_lines(&missing), 1, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("no embedded database at"), "{}", stderr(&missing));
    assert!(!path.exists(), "inspect created the database");

    ok(linktrack(&["migrate", "--database-url", &url]), "migrate");
    let none = linktrack(&["inspect", some_token, "--database-url", &url]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("holds no token key yet"), "{}", stderr(&none));
    assert_eq!(error_lines(&none), 1, "{}", stderr(&none));
    let store = sqlite_store(&path);
    assert!(token_keys::load(&store, now()).await.expect("load").is_none(), "inspect stored a key");

    // A key as `serve` stores it at its first start; a token signed with it.
    let ring = token_keys::load_or_create(&store, now()).await.expect("create key 0");
    let mut minted = Vec::new();
    token::generate_v2(&ring, linktrack::day::Clock::System.today(), 7, 1, &mut minted);
    let tok = minted[0].0.to_string();
    let out = stdout(&ok(linktrack(&["inspect", &tok, "--database-url", &url]), "inspect with the stored key"));
    assert!(out.contains("key id   0") && out.contains("version  2"), "{out}");
    let other = KeyRing::parse(TOKEN_KEYS).expect("test keys");
    let bad = linktrack(&["inspect", &tok, "--database-url", &url, "--token-keys", TOKEN_KEYS]);
    assert!(!bad.status.success() && stderr(&bad).contains("invalid token"), "--token-keys wins: {}", stderr(&bad));
    assert!(other.get(0).is_none());
}

/// `token-keys add`, `list` and `retire` on the keys in the store (printing
/// ids, never secrets), and with `LINKTRACK_TOKEN_KEYS` (printing the value
/// to deploy, touching no store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_add_list_retire_in_the_store_and_in_the_environment() {
    use linktrack::token::{self, KeyRing};
    use linktrack::token_keys;
    let dir = TempDir::new().expect("dir");
    let path = dir.path().join("linktrack.db");
    let url = format!("sqlite://{}", path.display());
    ok(linktrack(&["migrate", "--database-url", &url]), "migrate");
    let store = sqlite_store(&path);
    let ring = token_keys::load_or_create(&store, now()).await.expect("key 0, as serve stores it");
    let today = linktrack::day::Clock::System.today();
    let mut minted = Vec::new();
    token::generate_v2(&ring, today, 1, 1, &mut minted);
    let old = minted[0].0.to_string();

    let added = stdout(&ok(linktrack(&["token-keys", "add", "--database-url", &url, "--activate-after-secs", "0"]), "add"));
    assert!(
        added.contains("added token key 1: it mints new tokens from now on") && added.ends_with("1\tminting\n0\tverifying\n"),
        "{added}"
    );
    let ring = token_keys::load(&store, now()).await.expect("load").expect("ring");
    let secret = hex::encode(ring.get(1).expect("key 1").secret());
    assert!(!added.contains(&secret), "add printed the secret");
    let listed = stdout(&ok(linktrack(&["token-keys", "list", "--database-url", &url]), "list"));
    assert_eq!(listed, "1\tminting\n0\tverifying\n");
    minted.clear();
    token::generate_v2(&ring, today, 2, 1, &mut minted);
    let new = minted[0].0.to_string();
    for (tok, id) in [(&old, "0"), (&new, "1")] {
        let out = stdout(&ok(linktrack(&["inspect", tok, "--database-url", &url]), "inspect"));
        assert!(out.contains(&format!("key id   {id}")), "{out}");
    }

    let refused = linktrack(&["token-keys", "retire", "1", "--database-url", &url]);
    assert!(!refused.status.success() && stderr(&refused).contains("mints new tokens"), "{}", stderr(&refused));
    let unknown = linktrack(&["token-keys", "retire", "9", "--database-url", &url]);
    assert!(!unknown.status.success() && stderr(&unknown).contains("not in the ring"), "{}", stderr(&unknown));
    let retired = stdout(&ok(linktrack(&["token-keys", "retire", "0", "--database-url", &url]), "retire"));
    assert!(retired.contains("retired token key 0") && retired.ends_with("1\tminting\n"), "{retired}");
    let gone = linktrack(&["inspect", &old, "--database-url", &url]);
    assert!(!gone.status.success() && stderr(&gone).contains("invalid token"), "{}", stderr(&gone));
    ok(linktrack(&["inspect", &new, "--database-url", &url]), "key 1 still verifies");

    // From the environment: the new value to deploy is printed; the store is not touched.
    let env_add = stdout(&ok(linktrack(&["token-keys", "add", "--database-url", &url, "--token-keys", TOKEN_KEYS]), "env add"));
    let value = env_add.lines().find_map(|l| l.strip_prefix("LINKTRACK_TOKEN_KEYS=")).expect("the value to deploy");
    let deployed = KeyRing::parse(value).expect("a valid spec");
    assert_eq!(token_keys::ids(&deployed), vec![2, 1], "the new key mints, the configured one verifies");
    assert_eq!(deployed.get(1).expect("key 1").secret(), KeyRing::parse(TOKEN_KEYS).unwrap().get(1).unwrap().secret());
    let env_retire = stdout(&ok(linktrack(&["token-keys", "retire", "1", "--token-keys", value]), "env retire"));
    let value = env_retire.lines().find_map(|l| l.strip_prefix("LINKTRACK_TOKEN_KEYS=")).expect("the value to deploy");
    assert_eq!(token_keys::ids(&KeyRing::parse(value).expect("spec")), vec![2]);
    assert_eq!(stdout(&ok(linktrack(&["token-keys", "list", "--database-url", &url]), "list")), "1\tminting\n", "the store is unchanged");

    // By default a new key verifies at once and mints a minute later.
    let delayed = stdout(&ok(linktrack(&["token-keys", "add", "--database-url", &url]), "delayed add"));
    assert!(delayed.contains("added token key 2: it verifies once servers reload"), "{delayed}");
    assert!(delayed.contains("1\tminting\n2\tverifying, mints from 20"), "{delayed}");
}

fn now() -> i64 {
    linktrack::day::Clock::System.now_ms()
}

/// `linktrack keys`: create prints the key once (and only the key on
/// stdout), list shows prefixes and never keys, revoke marks a key revoked
/// and refuses an unknown id; bad tenants and scopes are clear errors.
#[test]
fn keys_create_list_and_revoke() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/linktrack.db", dir.path().display());
    let created = ok(linktrack(&["keys", "create", "--tenant", "acme", "--scopes", "mint,read", "--database-url", &db]), "keys create");
    let key = stdout(&created).trim().to_owned();
    assert!(key.starts_with("ltk_") && key.len() == 52, "{key:?}");
    assert!(stderr(&created).contains("shown only this once"), "{}", stderr(&created));
    let second =
        ok(linktrack(&["keys", "create", "--database-url", &db, "--tenant", "beta", "--scopes", "all", "--label", "ops"]), "create");
    let second = stdout(&second).trim().to_owned();
    assert_ne!(key, second);

    let list = stdout(&ok(linktrack(&["keys", "list", "--database-url", &db]), "keys list"));
    assert!(!list.contains(&key[10..]) && !list.contains(&second[10..]), "list never shows a key: {list}");
    assert!(list.contains(&key[..10]) && list.contains("acme") && list.contains("mint,read") && list.contains("active"), "{list}");
    assert!(list.contains("beta") && list.contains("mint,read,admin") && list.contains("ops"), "{list}");

    ok(linktrack(&["keys", "revoke", "1", "--database-url", &db]), "keys revoke");
    let list = stdout(&ok(linktrack(&["keys", "list", "--database-url", &db]), "keys list"));
    let first_row = list.lines().find(|l| l.contains("acme")).unwrap();
    assert!(first_row.contains("revoked"), "{list}");
    let again = linktrack(&["keys", "revoke", "1", "--database-url", &db]);
    assert!(!again.status.success() && stderr(&again).contains("no active key with id 1"), "{}", stderr(&again));

    for (args, expect) in [
        (["create", "--tenant", "a b", "--scopes", "mint"], "--tenant"),
        (["create", "--tenant", "acme", "--scopes", "wrte"], "unknown scope"),
    ] {
        let mut argv = vec!["keys"];
        argv.extend(args);
        argv.extend(["--database-url", &db]);
        let out = linktrack(&argv);
        assert!(!out.status.success() && stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
}

/// Run `linktrack` with `args` and `input` on standard input.
fn linktrack_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_linktrack"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run linktrack");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for linktrack")
}

/// `linktrack rewrite`: through a running server, refused beside it without
/// `--server` on the embedded store, then straight on the store once it is
/// gone; the tracked links redirect to the letter's destinations, and a
/// `javascript:` link fails the command with the link named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_through_a_server_and_on_the_store() {
    let data = TempDir::new().expect("data dir");
    let db = format!("sqlite://{}", data.path().join("linktrack.db").display());
    let letter = r#"<html><body><a href='https://a.example/x?p=1&amp;q=2'>x</a> <a href="mailto:m@example.com">m</a></body></html>"#;
    let svc = Service::spawn(&db, data.path(), &[]);
    let server = format!("http://{}", svc.addr);
    let links_file = data.path().join("links.json");
    let via_server = ok(
        linktrack_with_stdin(
            &[
                "rewrite",
                "--mailing",
                "m-cli",
                "--recipient",
                "r@example.com",
                "--server",
                &server,
                "--api-key",
                API_KEY,
                "--pixel",
                "--links-output",
                &links_file.display().to_string(),
            ],
            letter,
        ),
        "rewrite through the server",
    );
    let out = stdout(&via_server);
    assert!(out.starts_with(&format!("<html><body><a href='{server}/c/")), "{out}");
    assert!(out.contains(r#"<a href="mailto:m@example.com">m</a>"#) && out.contains(&format!("<img src=\"{server}/o/")), "{out}");
    let links: Value = serde_json::from_str(&std::fs::read_to_string(&links_file).expect("links file")).expect("links JSON");
    assert_eq!(links[0]["url"], "https://a.example/x?p=1&q=2");
    let hit = Client::new(svc.addr).get(&path_of(links[0]["tracking_url"].as_str().expect("tracking_url"))).await;
    assert_eq!(hit.header("location"), "https://a.example/x?p=1&q=2");
    let direct = ["rewrite", "--mailing", "m-cli", "--recipient", "r@example.com", "--database-url", &db, "--token-keys", TOKEN_KEYS];
    let beside = linktrack_with_stdin(&[&direct[..], &["--public-url", &server]].concat(), letter);
    assert!(!beside.status.success() && stderr(&beside).contains("pass --server"), "{}", stderr(&beside));
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
    let missing_public_url = linktrack_with_stdin(&direct, letter);
    assert!(stderr(&missing_public_url).contains("--public-url"), "{}", stderr(&missing_public_url));
    let on_store =
        stdout(&ok(linktrack_with_stdin(&[&direct[..], &["--public-url", "https://t.example"]].concat(), letter), "rewrite on the store"));
    assert!(on_store.starts_with("<html><body><a href='https://t.example/c/"), "{on_store}");
    assert!(on_store.ends_with(r#"<a href="mailto:m@example.com">m</a></body></html>"#), "{on_store}");
    let refused =
        linktrack_with_stdin(&[&direct[..], &["--public-url", "https://t.example"]].concat(), r#"<a href="javascript:alert(1)">x</a>"#);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains(r#"422 invalid_link): link 0 ("javascript:alert(1)")"#), "{}", stderr(&refused));
}

/// `linktrack stats` prints every link of a mailing (clicked or not, by
/// position) through a server's API and straight from the store, the same
/// either way; `--json` prints the API's document; an unknown mailing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_through_a_server_and_on_the_store() {
    let data = TempDir::new().expect("data dir");
    let db = format!("sqlite://{}", data.path().join("linktrack.db").display());
    let svc = Service::spawn(&db, data.path(), &[]);
    let server = format!("http://{}", svc.addr);
    let mut c = Client::new(svc.addr);
    let body = serde_json::json!({
        "mailing_id": "news/42", "recipient": "r@example.com", "pixel": true,
        "links": [{"url": "https://a.example/top"}, {"url": "https://a.example/blog"}, {"url": "https://a.example/top"}],
    });
    assert_eq!(c.mint(Some(API_KEY), &body, None).await.status, 201);
    let api = c
        .send(http::Method::GET, "/v1/mailings/news%2F42/stats", &[("authorization", &format!("Bearer {API_KEY}"))], bytes::Bytes::new())
        .await;
    let api: Value = api.json();
    let remote = ["stats", "news/42", "--server", &server, "--api-key", API_KEY];
    let table = stdout(&ok(linktrack(&remote), "stats through the server"));
    for want in ["position", "https://a.example/top", "https://a.example/blog", "all links", "opens", "recipients with a human click: 0"] {
        assert!(table.contains(want), "{want:?} in:\n{table}");
    }
    assert_eq!(table.matches("https://a.example/top").count(), 2, "the same URL at positions 0 and 2:\n{table}");
    let json: Value =
        serde_json::from_str(stdout(&ok(linktrack(&[&remote[..], &["--json"]].concat()), "stats --json")).trim()).expect("JSON");
    assert_eq!(json, api);
    let series = stdout(&ok(linktrack(&[&remote[..], &["--series", "day", "--tz", "+05:30"]].concat()), "stats --series"));
    assert!(series.contains("day (+05:30)") && series.contains("clicks human"), "{series}");
    let (status, log) = svc.terminate().await;
    assert!(status.success(), "{log}");
    let local = ["stats", "news/42", "--database-url", &db, "--json"];
    let json: Value = serde_json::from_str(stdout(&ok(linktrack(&local), "stats on the store")).trim()).expect("JSON");
    assert_eq!(json, api, "the store's answer is the API's");
    let unknown = linktrack(&["stats", "nobody", "--database-url", &db]);
    assert!(!unknown.status.success() && stderr(&unknown).contains("no mailing with this id"), "{}", stderr(&unknown));
}

//! A MariaDB server for integration tests. If `LINKTRACK_TEST_MYSQL_URL` is
//! set, tests use that server. Otherwise the first caller in a test process
//! starts a private `mariadbd` in a temporary directory, and every test in the
//! process shares it. Each test calls [`fresh_database`] to get its own empty
//! database. The server runs under a small `sh` watchdog that reads stdin from
//! a pipe this process holds open. When the test process exits, even without
//! running destructors or after being killed, the kernel closes the pipe, and
//! the watchdog stops the server and deletes its files. Tests never skip: if
//! MariaDB is missing or fails to start, they panic and say how to fix it.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;

/// Environment variable naming an external server; see [`server_url`].
pub const URL_ENV: &str = "LINKTRACK_TEST_MYSQL_URL";

/// How long a freshly started server may take to accept `SELECT 1`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times to start over when the chosen port was taken by someone else
/// before `mariadbd` could bind it.
const START_ATTEMPTS: u32 = 3;

const INSTALL_HINT: &str = "linktrack's integration tests need MariaDB and never skip. \
     Install it with `apt-get install -y mariadb-server` (or run `scripts/install-test-deps`), \
     or set LINKTRACK_TEST_MYSQL_URL to a server the tests may use, \
     e.g. mysql://root:pw@127.0.0.1:3306/";

/// Script run by the watchdog `sh`. `$1` is the directory to delete afterwards;
/// the remaining arguments are the `mariadbd` command line. The script records
/// the server's PID so start-up can notice a crash, then waits on `read` until
/// the test process exits and the pipe closes. Signals only interrupt `read`,
/// so the cleanup still runs. The watchdog gets its own process group, so a
/// Ctrl-C to `cargo test` reaches only the test process, and that process's
/// exit then triggers the cleanup.
const WATCHDOG_SCRIPT: &str = r#"trap : HUP INT TERM
dir=$1
shift
"$@" </dev/null >"$dir/mariadbd.out" 2>&1 &
pid=$!
echo "$pid" >"$dir/mariadbd.pid.watchdog"
read -r _ || :
kill "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

/// A server this process started: the shared one lives in a static and is
/// never dropped; cleanup is the watchdog's job. One started with
/// [`start_server`] stops (and its files go) when it is dropped, since that
/// closes the watchdog's pipe.
#[derive(Debug)]
pub struct PrivateServer {
    url: String,
    port: u16,
    dir: PathBuf,
    err_log: PathBuf,
    /// The watchdog `sh`; kept for the life of the process, never waited for.
    _watchdog: Child,
    /// Write end of the watchdog's stdin. Never written; closing it (at process
    /// exit) tells the watchdog to stop the server.
    _watchdog_stdin: ChildStdin,
}

/// The private server, or why it could not be started (kept so that every
/// test reports the same error instead of retrying a slow failure).
static PRIVATE: OnceLock<Result<PrivateServer, String>> = OnceLock::new();

/// Counter that keeps database names unique within this process.
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The external server URL from `LINKTRACK_TEST_MYSQL_URL`, if set and non-empty.
pub fn external_url() -> Option<String> {
    std::env::var(URL_ENV).ok().map(|url| url.trim().to_owned()).filter(|url| !url.is_empty())
}

/// Base URL of a MariaDB the tests may use: `LINKTRACK_TEST_MYSQL_URL` if set
/// (e.g. `mysql://root:pw@127.0.0.1:3306/`), else a private server started once
/// per test process.
///
/// The private server's URL is `mysql://root@127.0.0.1:<port>/?prefer_socket=false`
/// (TCP only, no password). Add a database with [`fresh_database`] or the `url`
/// crate, not by appending to the string.
///
/// The first call blocks while the private server starts: about 1–2 s on an
/// idle machine, longer under load. Panics with installation instructions if
/// that fails.
pub fn server_url() -> String {
    if let Some(url) = external_url() {
        return url;
    }
    match private_server() {
        Ok(server) => server.url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Create a brand-new, empty database on the [`server_url`] server and return
/// its full `mysql://…/dbname` URL.
///
/// The name is `lt_<hint>_<pid>_<counter>_<random>`, so it is unique across
/// tests, test binaries and repeated runs against one external server. The
/// database uses `utf8mb4`, whatever the server's default character set is.
/// Databases are not dropped afterwards. A private server's files are deleted
/// when it stops.
pub async fn fresh_database(hint: &str) -> String {
    // Starting the private server blocks, so keep it off the async worker.
    let base = match tokio::task::spawn_blocking(server_url).await {
        Ok(url) => url,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    };
    fresh_database_at(&base, hint).await
}

/// [`fresh_database`] on the server at `base` (a URL without a database).
pub async fn fresh_database_at(base: &str, hint: &str) -> String {
    let name = unique_database_name(hint);

    let mut conn =
        mysql_async::Conn::from_url(base).await.unwrap_or_else(|e| panic!("connecting to test MariaDB at {base}: {e}{}", log_suffix()));
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}{}", log_suffix()));
    conn.disconnect().await.unwrap_or_else(|e| panic!("disconnecting from test MariaDB: {e}"));

    url_with_database(base, &name)
}

/// The last lines of the private server's error log, for diagnostics. Empty
/// when using an external server or when no private server was started.
pub fn server_error_log_tail() -> String {
    if external_url().is_some() {
        return String::new();
    }
    match PRIVATE.get() {
        Some(Ok(server)) => tail_of_file(&server.err_log, 40),
        _ => String::new(),
    }
}

fn log_suffix() -> String {
    let tail = server_error_log_tail();
    if tail.is_empty() { String::new() } else { format!("\n--- tail of the test MariaDB error log ---\n{tail}") }
}

fn unique_database_name(hint: &str) -> String {
    let hint: String = hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(24).collect();
    let counter = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("lt_{hint}_{}_{counter}_{:08x}", std::process::id(), random_u32());
    // MariaDB identifiers are limited to 64 characters.
    assert!(name.len() <= 64, "database name too long: {name}");
    name
}

/// A random number from std's randomly seeded hasher, mixed with the clock.
fn random_u32() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.finish() as u32
}

/// `base` with its path replaced by `/name`; query parameters are kept.
pub fn url_with_database(base: &str, name: &str) -> String {
    let mut url = url::Url::parse(base).unwrap_or_else(|e| panic!("test MariaDB URL {base:?} is not a valid URL: {e}"));
    url.set_path(&format!("/{name}"));
    url.into()
}

fn private_server() -> Result<&'static PrivateServer, String> {
    PRIVATE
        .get_or_init(|| {
            // Start from a plain thread: the readiness check runs its own tokio
            // runtime, which cannot be nested inside the caller's runtime.
            std::thread::Builder::new()
                .name("linktrack-test-mariadb".into())
                .spawn(start_private_server)
                .map_err(|e| format!("spawning the MariaDB start-up thread: {e}"))?
                .join()
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    Err(format!("MariaDB start-up thread panicked: {what}"))
                })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Why one start attempt failed.
enum StartError {
    /// Someone else took our port between choosing it and `mariadbd` binding it.
    PortTaken(String),
    Fatal(String),
}

impl StartError {
    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::PortTaken(message) => Self::PortTaken(f(message)),
            Self::Fatal(message) => Self::Fatal(f(message)),
        }
    }
}

fn start_private_server() -> Result<PrivateServer, String> {
    start_server(&["--skip-log-bin".to_owned()])
}

/// Start a private server like the shared one, with `extra` server options
/// (e.g. `--log-bin`, `--server-id=2`), owned by the caller: it stops and its
/// directory is deleted when the returned value is dropped, or when this
/// process exits. Blocks while it starts. Never skips: the error says what
/// to install.
pub fn start_server(extra: &[String]) -> Result<PrivateServer, String> {
    let Some(mariadbd) = find_program("mariadbd") else {
        return Err(format!("`mariadbd` was not found.\n{INSTALL_HINT}"));
    };
    let Some(install_db) = find_program("mariadb-install-db") else {
        return Err(format!("`mariadb-install-db` was not found (mariadbd is at {}).\n{INSTALL_HINT}", mariadbd.display()));
    };
    let mut last = String::new();
    for _ in 0..START_ATTEMPTS {
        match try_start(&mariadbd, &install_db, extra) {
            Ok(server) => return Ok(server),
            Err(StartError::PortTaken(message)) => last = message,
            Err(StartError::Fatal(message)) => return Err(message),
        }
    }
    Err(last)
}

fn try_start(mariadbd: &Path, install_db: &Path, extra: &[String]) -> Result<PrivateServer, StartError> {
    let fatal = StartError::Fatal;
    let started = Instant::now();

    // /tmp rather than $TMPDIR: the `mysql` user must be able to reach the
    // directory, and $TMPDIR may sit under a private home directory.
    let tmp = tempfile::Builder::new()
        .prefix("linktrack-mariadb-")
        .tempdir_in("/tmp")
        .map_err(|e| fatal(format!("creating a temporary directory in /tmp: {e}")))?;
    let dir = tmp.path().to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| fatal(format!("chmod 755 {}: {e}", dir.display())))?;
    let datadir = dir.join("data");
    fs::create_dir(&datadir).map_err(|e| fatal(format!("creating {}: {e}", datadir.display())))?;
    let err_log = dir.join("err.log");
    let socket = dir.join("mysqld.sock");

    // mariadbd refuses to run as root, so as root it runs as `mysql`, which
    // must own the directory that holds the data, socket and error log.
    let as_root = fs::metadata(&dir).map_err(|e| fatal(format!("stat {}: {e}", dir.display())))?.uid() == 0;
    let user_args: &[&str] = if as_root { &["--user=mysql"] } else { &[] };
    if as_root {
        run_quietly(Command::new("chown").args(["-R", "mysql:mysql"]).arg(&dir))
            .map_err(|e| fatal(format!("chown mysql:mysql {}: {e}\n{INSTALL_HINT}", dir.display())))?;
    }

    // `normal` gives root@localhost/127.0.0.1 an empty password instead of
    // unix_socket auth. The InnoDB options apply only to the bootstrap server,
    // which is about 6x faster when it does not flush on every commit.
    run_quietly(Command::new(install_db).arg("--no-defaults").arg(format!("--datadir={}", datadir.display())).args(user_args).args([
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--innodb-log-file-size=64M",
        "--innodb-flush-log-at-trx-commit=0",
    ]))
    .map_err(|e| fatal(format!("mariadb-install-db failed: {e}\n{INSTALL_HINT}")))?;

    let port = free_port().map_err(|e| fatal(format!("finding a free TCP port: {e}")))?;
    let mut server_args: Vec<String> = vec!["--no-defaults".into()];
    server_args.extend(user_args.iter().map(|arg| (*arg).to_owned()));
    server_args.extend([
        format!("--datadir={}", datadir.display()),
        format!("--socket={}", socket.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--skip-name-resolve".into(),
        "--innodb-buffer-pool-size=128M".into(),
        "--innodb-log-file-size=64M".into(),
        "--innodb-flush-log-at-trx-commit=1".into(),
        "--max-connections=500".into(),
        format!("--log-error={}", err_log.display()),
    ]);
    server_args.extend(extra.iter().cloned());

    let mut watchdog = Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("linktrack-mariadb-watchdog")
        .arg(&dir)
        .arg(mariadbd)
        .args(&server_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| fatal(format!("spawning the MariaDB watchdog (/bin/sh): {e}")))?;
    let stdin = watchdog.stdin.take().expect("watchdog stdin is piped");
    // From here on the watchdog deletes the directory.
    let _ = tmp.keep();

    // prefer_socket=false: mysql_async would otherwise switch to the server's
    // unix socket after the TCP handshake, unlike against a remote production
    // server.
    let url = format!("mysql://root@127.0.0.1:{port}/?prefer_socket=false");
    match wait_until_ready(&url, &dir, &mut watchdog) {
        Ok(()) => {
            eprintln!("linktrack tests: private MariaDB at {url} (in {}) ready after {:.2?}", dir.display(), started.elapsed());
            Ok(PrivateServer { url, port, dir, err_log, _watchdog: watchdog, _watchdog_stdin: stdin })
        }
        Err(failure) => {
            // Collect the logs first: stopping the watchdog deletes them.
            let mut tail = tail_of_file(&err_log, 40);
            if tail.trim().is_empty() {
                tail = "(empty)".into();
            }
            let output = tail_of_file(&dir.join("mariadbd.out"), 20);
            if !output.trim().is_empty() {
                let _ = write!(tail, "\n--- mariadbd stdout/stderr ---\n{output}");
            }
            drop(stdin);
            let _ = watchdog.wait();
            Err(failure.map(|reason| {
                format!(
                    "private MariaDB (mariadbd {}, port {port}) did not start: {reason}\n\
                     --- tail of {} ---\n{tail}\n{INSTALL_HINT}",
                    mariadbd.display(),
                    err_log.display()
                )
            }))
        }
    }
}

impl PrivateServer {
    /// `mysql://root@127.0.0.1:<port>/?prefer_socket=false`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `mariadbd` process id, as its watchdog recorded it.
    pub fn pid(&self) -> u32 {
        let text = fs::read_to_string(self.dir.join("mariadbd.pid.watchdog")).expect("the watchdog records the server's pid");
        text.trim().parse().expect("a pid")
    }

    /// The last lines of this server's error log.
    pub fn log_tail(&self) -> String {
        tail_of_file(&self.err_log, 40)
    }
}

/// Polls until a TCP login and `SELECT 1` succeed on the server running in
/// `dir`, or `mariadbd` exits, or [`READY_TIMEOUT`] passes.
fn wait_until_ready(url: &str, dir: &Path, watchdog: &mut Child) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Fatal(format!("building a tokio runtime: {e}")))?;
    // Compare canonical paths: the server reports its datadir resolved.
    let datadir = fs::canonicalize(dir.join("data")).unwrap_or_else(|_| dir.join("data"));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last_error = match runtime.block_on(probe(url)) {
            Ok(served) if Path::new(served.trim_end_matches('/')) == datadir => return Ok(()),
            // Whoever answers on our port is not our server.
            Ok(served) => return Err(StartError::PortTaken(format!("the port is served by another server (datadir {served})"))),
            Err(e) => e,
        };
        let log = fs::read_to_string(dir.join("err.log")).unwrap_or_default();
        if log.contains("[ERROR] Aborting") {
            let reason = "mariadbd aborted".to_owned();
            return Err(if log.contains("Address already in use") { StartError::PortTaken(reason) } else { StartError::Fatal(reason) });
        }
        if server_has_exited(dir) {
            return Err(StartError::Fatal("mariadbd exited during start-up".into()));
        }
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(StartError::Fatal(format!("the watchdog shell exited early ({status})")));
        }
        if Instant::now() >= deadline {
            return Err(StartError::Fatal(format!("no successful `SELECT 1` within {READY_TIMEOUT:?}; last error: {last_error}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs in, runs `SELECT 1`, and returns the server's `@@datadir`.
async fn probe(url: &str) -> Result<String, String> {
    let attempt = async {
        let mut conn = mysql_async::Conn::from_url(url).await.map_err(|e| e.to_string())?;
        let row: Option<(i64, String)> = conn.query_first("SELECT 1, @@datadir").await.map_err(|e| e.to_string())?;
        conn.disconnect().await.map_err(|e| e.to_string())?;
        match row {
            Some((1, datadir)) => Ok(datadir),
            other => Err(format!("SELECT 1 returned {other:?}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.unwrap_or_else(|_| Err("connection attempt timed out".into()))
}

/// Whether the `mariadbd` started by the watchdog in `dir` has exited: its
/// `/proc` entry is gone, or it is a zombie (the watchdog reaps it only at
/// cleanup). False while the PID is not yet known.
fn server_has_exited(dir: &Path) -> bool {
    let Ok(pid) = fs::read_to_string(dir.join("mariadbd.pid.watchdog")) else {
        return false;
    };
    let pid = pid.trim();
    if pid.is_empty() {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// A port that was free a moment ago: bind 127.0.0.1:0, note the port, release it.
fn free_port() -> std::io::Result<u16> {
    let mut last_error = None;
    for _ in 0..10 {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => return Ok(addr.port()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| ErrorKind::AddrNotAvailable.into()))
}

/// Runs a command, capturing its output; on failure the error includes it.
fn run_quietly(command: &mut Command) -> Result<(), String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("could not run {}: {e}", command.get_program().display()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut message = format!("{} exited with {}", command.get_program().display(), output.status);
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            let _ = write!(message, "\n{}", text.trim_end());
        }
    }
    Err(message)
}

/// Looks in `$PATH`, then in the sbin directories that a non-root `$PATH`
/// usually lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

//! Day files on disk: where each day lives, which days exist, how a day file
//! is created and deleted, and the pooled read-only connections resolves use.
//!
//! A day "exists" exactly when its file `<main>.days/YYYY-MM-DD.db` exists.
//! Files are created complete (schema applied under a temporary name, then
//! renamed into place), so a half-built day is never visible.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use subtle::ConstantTimeEq;

use super::{DAY_MIGRATIONS, DAY_SCHEMA_VERSION, db_err};
use crate::day::Day;
use crate::link::{LinkIds, LinkKind, Resolved};
use crate::token::{Random, Sealed, Version};
use crate::{Error, Result};

/// Idle read-only connections kept per day file. Under more concurrency extra
/// connections are opened and closed again on check-in.
const IDLE_READERS: usize = 8;

/// Bytes a WAL file is truncated to after a checkpoint (SQLite keeps it at its high-water mark otherwise).
const WAL_SIZE_LIMIT: u64 = 8 << 20;

/// The resolve query: one day file, one unique-index probe plus the URL row;
/// the letter and URL ids from the link row, for the hit's event.
pub const RESOLVE_SQL: &str =
    "SELECT l.kind, u.url, l.letter_id, l.url_id FROM links l LEFT JOIN urls u ON u.id = l.url_id WHERE l.rnd = ?1";
/// The v2 resolve: the link by rowid, its secret compared by the caller.
pub const RESOLVE_V2_SQL: &str =
    "SELECT l.kind, u.url, l.letter_id, l.url_id, l.secret FROM links_v2 l LEFT JOIN urls u ON u.id = l.url_id WHERE l.id = ?1";

/// Where the files of one store live, all derived from the main file's path.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Settings and schema version: `<main>`.
    pub main: PathBuf,
    /// One file per day: `<main>.days/YYYY-MM-DD.db`.
    pub days: PathBuf,
    /// Maintenance lock: `<main>.lock`.
    pub lock: PathBuf,
}

impl Layout {
    pub fn new(main: &Path) -> Layout {
        let sibling = |suffix: &str| {
            let mut s = OsString::from(main.as_os_str());
            s.push(suffix);
            PathBuf::from(s)
        };
        Layout { main: main.to_path_buf(), days: sibling(".days"), lock: sibling(".lock") }
    }

    pub fn day_path(&self, day: Day) -> PathBuf {
        self.days.join(format!("{day}.db"))
    }

    /// Days whose file exists, ascending; stale temporary files are returned separately.
    pub fn scan(&self) -> Result<(Vec<Day>, Vec<PathBuf>)> {
        let (mut days, mut stale) = (Vec::new(), Vec::new());
        let entries = match std::fs::read_dir(&self.days) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((days, stale)),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(day) = day_of_file_name(name) {
                days.push(day);
            } else if name.ends_with(".db.tmp") {
                stale.push(entry.path());
            }
        }
        days.sort_unstable();
        Ok((days, stale))
    }
}

/// `2026-11-22.db` → that day; anything else (sidecars, temporaries, strays) → `None`.
fn day_of_file_name(name: &str) -> Option<Day> {
    let stem = name.strip_suffix(".db")?;
    let day = Day::parse_iso(stem)?;
    (day.to_string() == stem).then_some(day)
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// Delete a database file and its SQLite sidecars; missing files are fine.
pub fn remove_db_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        match std::fs::remove_file(with_suffix(path, suffix)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Make renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Settings every writable connection gets: WAL, FULL sync, bounded lock
/// waits, and a WAL that shrinks back after a big transaction is checkpointed.
pub fn configure_writable(conn: &Connection, busy: Duration) -> Result<()> {
    conn.busy_timeout(busy).map_err(db_err)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database(format!("could not enable WAL, journal mode is {mode}")));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(db_err)?;
    let _limit: i64 = conn.query_row(&format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}"), [], |r| r.get(0)).map_err(db_err)?;
    Ok(())
}

/// Create `day`'s file with the day schema: built as `<file>.tmp`, then renamed into place.
pub fn create_day_file(path: &Path, busy: Duration) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    remove_db_files(&tmp)?;
    crate::private_fs::touch(&tmp)?;
    let conn = Connection::open_with_flags(
        &tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    configure_writable(&conn, busy)?;
    upgrade_day_schema(&conn, 0)?;
    // Closing the only connection checkpoints the WAL into the (synced) file and removes the sidecars.
    conn.close().map_err(|(_, e)| db_err(e))?;
    std::fs::rename(&tmp, path)?;
    remove_db_files(&tmp)?;
    Ok(())
}

/// Open an existing day file for writing; fails if the file or its schema is missing.
pub fn open_day_writer(path: &Path, busy: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(db_err)?;
    configure_writable(&conn, busy)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db_err)?;
    if !(1..=DAY_SCHEMA_VERSION).contains(&version) {
        return Err(Error::Schema(format!("{} has day schema version {version}, expected {DAY_SCHEMA_VERSION}", path.display())));
    }
    if version < DAY_SCHEMA_VERSION {
        upgrade_day_schema(&conn, version)?;
        tracing::info!(file = %path.display(), from = version, to = DAY_SCHEMA_VERSION, "upgraded day file schema");
    }
    Ok(conn)
}

/// Apply the day schema scripts after `from`, in one transaction.
fn upgrade_day_schema(conn: &Connection, from: i64) -> Result<()> {
    let scripts: Vec<&str> = DAY_MIGRATIONS.iter().filter(|(v, _)| *v > from).map(|(_, sql)| *sql).collect();
    conn.execute_batch(&format!("BEGIN;\n{}\nCOMMIT;", scripts.join("\n"))).map_err(|e| Error::Schema(format!("day schema: {e}")))
}

/// One day file in use by this store.
#[derive(Debug)]
pub struct DayFile {
    path: PathBuf,
    /// False once maintenance retires the day. Every read holds a read guard
    /// while it uses the file; retiring takes the write guard, so it waits for
    /// in-flight reads and no read starts on a file about to be deleted.
    /// A std `RwLock`: only taken on blocking threads, never across `.await`.
    alive: RwLock<bool>,
    /// Idle read-only connections. A std `Mutex`: held only to pop or push one
    /// connection, never while querying and never across `.await`.
    idle: Mutex<Vec<Connection>>,
}

/// The day files of one store, shared by the async side, the blocking readers and the writer thread.
#[derive(Debug)]
pub struct Days {
    pub layout: Layout,
    /// `busy_timeout` of every connection: the statement deadline.
    pub busy: Duration,
    /// Handles of the day files seen so far. A std `RwLock`: held for a map
    /// lookup, or for one `stat` plus an insert on a miss; never across `.await`.
    files: RwLock<HashMap<Day, Arc<DayFile>>>,
}

impl Days {
    pub fn new(layout: Layout, busy: Duration) -> Days {
        Days { layout, busy, files: RwLock::new(HashMap::new()) }
    }

    /// The handle of `day`'s file, or `None` if the day does not exist.
    pub fn get(&self, day: Day) -> Option<Arc<DayFile>> {
        if let Some(f) = self.files.read().expect("day map poisoned").get(&day) {
            return Some(f.clone());
        }
        // Stat under the write lock, so a concurrent drop (which forgets the
        // handle only after deleting the file) can't leave a stale handle behind.
        let mut files = self.files.write().expect("day map poisoned");
        if let Some(f) = files.get(&day) {
            return Some(f.clone());
        }
        let path = self.layout.day_path(day);
        if !path.exists() {
            return None;
        }
        let file = Arc::new(DayFile { path, alive: RwLock::new(true), idle: Mutex::new(Vec::new()) });
        files.insert(day, file.clone());
        Some(file)
    }

    /// Run `f` on a pooled read-only connection of `day`'s file; `Ok(None)` if the day doesn't exist.
    pub fn read<T>(&self, day: Day, f: impl FnOnce(&Connection) -> Result<T>) -> Result<Option<T>> {
        let Some(file) = self.get(day) else { return Ok(None) };
        let alive = file.alive.read().expect("day file lock poisoned");
        if !*alive {
            return Ok(None);
        }
        let pooled = file.idle.lock().expect("reader pool poisoned").pop();
        let conn = if let Some(c) = pooled {
            c
        } else {
            let c = Connection::open_with_flags(&file.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(db_err)?;
            c.busy_timeout(self.busy).map_err(db_err)?;
            c
        };
        let out = f(&conn)?;
        let mut idle = file.idle.lock().expect("reader pool poisoned");
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        Ok(Some(out))
    }

    /// Look up a link in `day`'s file: v1 by its random bits, v2 by rowid
    /// (the id its block hides), answering only if the secret matches.
    pub fn resolve(&self, day: Day, version: Version, random: &Random) -> Result<Option<Resolved>> {
        let columns = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(u8, Option<String>, LinkIds)> {
            let ids =
                LinkIds { letter_id: r.get::<_, i64>(2)?.try_into().unwrap_or(0), url_id: r.get::<_, i64>(3)?.try_into().unwrap_or(0) };
            Ok((r.get(0)?, r.get(1)?, ids))
        };
        let found = self.read(day, |c| match version {
            Version::V1 => {
                let mut stmt = c.prepare_cached(RESOLVE_SQL).map_err(db_err)?;
                stmt.query_row([&random.0[..]], columns).optional().map_err(db_err)
            }
            Version::V2 => {
                let sealed = Sealed::from_block(random);
                let Ok(id) = i64::try_from(sealed.id) else { return Ok(None) };
                let mut stmt = c.prepare_cached(RESOLVE_V2_SQL).map_err(db_err)?;
                let row = stmt.query_row([id], |r| Ok((columns(r)?, r.get::<_, Vec<u8>>(4)?))).optional().map_err(db_err)?;
                Ok(row.filter(|(_, secret)| bool::from(secret.as_slice().ct_eq(&sealed.secret))).map(|(link, _)| link))
            }
        })?;
        let Some((kind, url, ids)) = found.flatten() else { return Ok(None) };
        let kind = LinkKind::from_u8(kind).ok_or_else(|| Error::Database(format!("unknown link kind {kind}")))?;
        Ok(Some(Resolved { kind, url: url.map(Arc::from), ids }))
    }

    /// Stop all use of `day`'s file: wait for in-flight reads, close the idle
    /// readers, and let no new read start. The caller then deletes the files
    /// and calls [`Days::forget`].
    pub fn retire(&self, day: Day) {
        if let Some(file) = self.get(day) {
            *file.alive.write().expect("day file lock poisoned") = false;
            file.idle.lock().expect("reader pool poisoned").clear();
        }
    }

    /// Drop the handle of a retired day whose files are gone.
    pub fn forget(&self, day: Day) {
        self.files.write().expect("day map poisoned").remove(&day);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_derives_every_path_from_the_main_file() {
        let l = Layout::new(Path::new("./data/linktrack.db"));
        assert_eq!(l.days, Path::new("./data/linktrack.db.days"));
        assert_eq!(l.lock, Path::new("./data/linktrack.db.lock"));
        let day = Day::parse_iso("2026-11-22").unwrap();
        assert_eq!(l.day_path(day), Path::new("./data/linktrack.db.days/2026-11-22.db"));
    }

    #[test]
    fn only_exact_day_file_names_are_days() {
        assert_eq!(day_of_file_name("2026-11-22.db"), Day::parse_iso("2026-11-22"));
        for other in ["2026-11-22.db-wal", "2026-11-22.db.tmp", "2026-11-22", "notes.db", "2026-1-2.db"] {
            assert_eq!(day_of_file_name(other), None, "{other}");
        }
    }
}

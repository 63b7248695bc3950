//! Files only the service may read: the embedded store holds recipients and
//! the token MAC key, the spool holds events, `data/api-key` an API key. Every
//! directory the service creates is `0700` and every file `0600`, set when it
//! is created (never fixed up afterwards, which would leave a window). SQLite
//! files are created empty here first and then opened: SQLite keeps their
//! mode and gives its WAL and shared-memory sidecars the same one.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every directory the service creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the service creates.
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all` with mode `0700` for each directory it creates.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Open options that create files with mode `0600`.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Create `path` empty with mode `0600` unless it exists, so a library that
/// then opens it (SQLite) keeps that mode, and its sidecars copy it.
pub fn touch(path: &Path) -> io::Result<()> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `File::create` with mode `0600`.
pub fn create(path: &Path) -> io::Result<File> {
    options().write(true).create(true).truncate(true).open(path)
}

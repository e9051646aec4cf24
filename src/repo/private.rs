//! The catalog's place on disk is its owner's alone — the directory 0700, its files 0600 — because the catalog
//! holds in plaintext what the repository keeps encrypted: snapshot manifests, paths, host names, test-restore
//! SQL. Modes are set here explicitly, so the library is right without the binary's umask, and catalogs made by
//! older versions (0644 in a 0755 directory) are tightened when their owner next opens them.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// The files of a catalog, as suffixes of the database's name: the database, SQLite's write-ahead log and its
/// shared memory.
const CATALOG_FILES: [&str; 3] = ["", "-wal", "-shm"];

/// Creates `dir` (and missing parents) 0700, or tightens it to 0700 when it exists and is ours. One that belongs
/// to another user is left as it is (the catalog may be shared on purpose, e.g. `sudo` with a user's cache): the
/// returned note says who else can read the catalog.
pub fn private_dir(dir: &Path) -> Result<Option<String>> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create the cache directory", dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| Error::io("read the cache directory", dir, e))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Ok(Some(format!(
            "the catalog directory {} belongs to uid {}, not to this user (uid {me}): its owner can read the catalog",
            dir.display(),
            meta.uid()
        )));
    }
    tighten(dir, &meta, 0o700)?;
    Ok(None)
}

/// Creates the catalog database `db` 0600 when it is missing (SQLite gives its -wal and -shm files the
/// database's mode), and tightens an existing database and its side files of ours to 0600.
pub fn private_files(db: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
        .map_err(|e| Error::io("create the catalog", db, e))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for suffix in CATALOG_FILES {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = Path::new(&name);
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.is_file()
            && meta.uid() == me
        {
            tighten(path, &meta, 0o600)?;
        }
    }
    Ok(())
}

/// Sets `mode` when the entry's mode grants group or others anything.
fn tighten(path: &Path, meta: &std::fs::Metadata, mode: u32) -> Result<()> {
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("restrict the permissions of", path, e))
}

//! Asking the catalog on disk whether a blob is stored, from many threads at once: what backup does instead of
//! holding every blob id in memory once the repository has more blobs than its memory budget allows. Each
//! thread of the pool has its own connection (SQLite serialises the statements of one connection), so lookups
//! do not wait on each other; the catalog is in WAL mode, so they never wait for its writer either.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::format::id::Id;

/// Connections to one catalog for blob lookups.
pub struct BlobLookup {
    conns: Vec<Mutex<Connection>>,
    path: PathBuf,
}

impl BlobLookup {
    /// Opens `n` connections to the catalog database at `path`.
    pub(super) fn open(path: &Path, n: usize) -> Result<BlobLookup> {
        let err = |e| Error::Catalog { path: path.to_path_buf(), source: e };
        let conns = (0..n.max(1))
            .map(|_| {
                let c = Connection::open(path).map_err(err)?;
                c.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<_>>()?;
        Ok(BlobLookup { conns, path: path.to_path_buf() })
    }

    /// Whether the catalog lists the blob.
    pub fn contains(&self, id: &Id) -> Result<bool> {
        let i = rayon::current_thread_index().unwrap_or(0) % self.conns.len();
        let conn = self.conns[i].lock().expect("lookup connection lock");
        let err = |e| Error::Catalog { path: self.path.clone(), source: e };
        let mut st = conn.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1").map_err(err)?;
        st.exists([&id.0[..]]).map_err(err)
    }
}

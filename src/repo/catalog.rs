//! The local catalog: a SQLite cache of the repository's snapshots, packs and blobs, so dedup lookups, listings
//! and "latest" are queries instead of downloads. It is never the only copy of anything: when it is missing, of
//! another schema, or out of date (another machine wrote to the repository), it is brought up to date from the
//! repository's own index segments and snapshots.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::format::blob::{BlobInfo, BlobKind, Compression};
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::snapshot::{BaseBackup, Snapshot};
use crate::repo::Repository;

/// Bump whenever the schema changes: older catalogs are dropped and rebuilt, never migrated.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE index_objects (id BLOB PRIMARY KEY);
CREATE TABLE packs (pid INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, kind INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE TABLE blobs (id BLOB PRIMARY KEY, pid INTEGER NOT NULL, offset INTEGER NOT NULL, kind INTEGER NOT NULL,
                    compression INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots (id BLOB PRIMARY KEY, time TEXT NOT NULL, host TEXT NOT NULL, paths TEXT NOT NULL,
                        tags TEXT NOT NULL, manifest TEXT NOT NULL);
CREATE INDEX snapshots_time ON snapshots(time);
CREATE TABLE base_backups (snapshot BLOB NOT NULL, source TEXT NOT NULL, stop_ns INTEGER NOT NULL,
                           backup TEXT NOT NULL, PRIMARY KEY (snapshot, source));
CREATE INDEX base_backups_stop ON base_backups(source, stop_ns);
CREATE TABLE pack_checks (id BLOB PRIMARY KEY, checked_at TEXT NOT NULL, ok INTEGER NOT NULL);
";

/// Tables of local history (runs of jobs, test restores). Unlike the cache tables above they cannot be rebuilt
/// from the repository, so a rebuild keeps them; losing them loses only the history, never backup data.
const HISTORY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, job TEXT NOT NULL, kind TEXT NOT NULL,
                                 started TEXT NOT NULL, finished TEXT NOT NULL, ok INTEGER NOT NULL,
                                 snapshot BLOB, bytes INTEGER NOT NULL, error TEXT, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_job_kind ON runs(job, kind, started);
";

/// One recorded run of a job or maintenance task.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// The job the run belongs to.
    pub job: String,
    /// `backup`, `test-restore`, ...
    pub kind: String,
    /// When the run started.
    pub started: jiff::Timestamp,
    /// When it ended.
    pub finished: jiff::Timestamp,
    /// True if it succeeded.
    pub ok: bool,
    /// The snapshot a backup run made, if it made one.
    pub snapshot: Option<Id>,
    /// Bytes added to the repository (backups) or restored (test restores).
    pub bytes: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Kind-specific details (e.g. query results of a test restore).
    pub detail: serde_json::Value,
}

/// At most this many unreadable paths are kept with a run (their number is always kept): a tree with a
/// hundred thousand unreadable files must not make every `status` megabytes long.
pub const UNREADABLE_KEPT: usize = 100;

impl RunRecord {
    /// Marks a backup run incomplete: it saved a snapshot, but could not read these inputs (paths or objects; the
    /// first [`UNREADABLE_KEPT`] are kept). Such a run succeeded — it is no failure and no retry is due — and
    /// `status` names what its snapshot lacks.
    pub fn mark_incomplete(&mut self, unreadable: &[String]) {
        if !self.detail.is_object() {
            self.detail = serde_json::json!({});
        }
        if let Some(d) = self.detail.as_object_mut() {
            d.insert("incomplete".into(), true.into());
            d.insert("unreadable".into(), unreadable.iter().take(UNREADABLE_KEPT).cloned().collect());
            d.insert("unreadable_count".into(), unreadable.len().into());
        }
    }

    /// The measured RTO of a test restore of a physical source: seconds from the start of the restore until the
    /// recovered cluster answered (`measured_rto_secs` in its detail).
    pub fn measured_rto_secs(&self) -> Option<f64> {
        self.detail.get("measured_rto_secs").and_then(|v| v.as_f64())
    }

    /// True when the run saved a snapshot that lacks some inputs ([`RunRecord::mark_incomplete`]).
    pub fn incomplete(&self) -> bool {
        self.detail.get("incomplete").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// The inputs an incomplete run could not read, as recorded (at most [`UNREADABLE_KEPT`]), and how many there
    /// were in all.
    pub fn unreadable(&self) -> (Vec<String>, u64) {
        let listed: Vec<String> = self
            .detail
            .get("unreadable")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let count = self.detail.get("unreadable_count").and_then(|v| v.as_u64()).unwrap_or(listed.len() as u64);
        (listed, count)
    }
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack that holds the blob.
    pub pack: Id,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u64,
    /// The blob's id, kind, compression and lengths.
    pub info: BlobInfo,
}

/// A snapshot as listed by the catalog.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    /// The snapshot's id.
    pub id: Id,
    /// Its manifest.
    pub snapshot: Snapshot,
}

/// The catalog of one repository.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// Damaged objects skipped by the last sync (they are retried on the next one).
    pub warnings: Vec<String>,
    /// Whether the last sync found index segments gone (a prune rewrote the index) and rebuilt the blob tables.
    rewritten: bool,
}

/// Index segments a catalog sync downloads at once.
const INDEX_DOWNLOADS: usize = 8;
/// The table a rebuild stages blobs in (a temporary table: it never outlives the connection).
const STAGING_TABLE: &str = "DROP TABLE IF EXISTS staged_blobs;
CREATE TEMP TABLE staged_blobs (id BLOB, pid INTEGER, offset INTEGER, kind INTEGER, compression INTEGER,
                                stored_len INTEGER, raw_len INTEGER);";
/// SQLite's page cache while many index segments come in (negative: KiB), instead of its default 2 MiB.
const SYNC_CACHE_KIB: i64 = -131_072;

/// The catalog directory: `GUMVAULT_CACHE_DIR`, else the user's cache directory.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("GUMVAULT_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("gumvault"),
    }
}

/// What a command needs of the catalog as it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Snapshots and blob locations (restore, backup, ls, stats).
    Everything,
    /// The snapshots only (listing and selecting snapshots, forget, check).
    Snapshots,
}

/// How the catalog's snapshots differ from the repository's.
struct SnapshotChanges {
    gone: Vec<Id>,
    new: Vec<Id>,
}

/// Listings a catalog sync starts from when the caller took them already, in the order the sync needs: the
/// snapshots first, then the index segments (none for [`Needs::Snapshots`]).
#[derive(Debug)]
pub struct Listing {
    /// Ids of the snapshot manifests.
    pub snapshots: Vec<Id>,
    /// Ids of the index segments, listed after the snapshots.
    pub index: Option<Vec<Id>>,
}

impl Catalog {
    /// Opens (creating or recreating as needed) the catalog of `repo` under `cache_dir`, then syncs it.
    pub fn open(cache_dir: &Path, repo: &Repository) -> Result<Catalog> {
        Catalog::open_listed(cache_dir, repo, Needs::Everything, None)
    }

    /// Opens the catalog of `repo` and brings only its snapshots up to date: all that listing and selecting
    /// snapshots need. On a new machine this reads the snapshot manifests alone, not the index, so `snapshots`
    /// answers in seconds however many blobs the repository has; the index follows with the first command that
    /// needs it.
    pub fn open_for_snapshots(cache_dir: &Path, repo: &Repository) -> Result<Catalog> {
        Catalog::open_listed(cache_dir, repo, Needs::Snapshots, None)
    }

    /// Opens the catalog and brings what `needs` says up to date, from `listed` when the caller has listed
    /// already.
    pub fn open_listed(cache_dir: &Path, repo: &Repository, needs: Needs, listed: Option<Listing>) -> Result<Catalog> {
        let (mut cat, shared) = Catalog::open_unsynced(cache_dir, repo)?;
        match (needs, listed) {
            (Needs::Everything, listed) => cat.sync_from(repo, listed)?,
            (Needs::Snapshots, Some(listed)) => {
                cat.warnings.clear();
                cat.apply_snapshots(repo, listed.snapshots)?;
            }
            (Needs::Snapshots, None) => {
                cat.warnings.clear();
                cat.sync_snapshots(repo)?;
            }
        }
        cat.warnings.extend(shared);
        Ok(cat)
    }

    /// Opens (creating or recreating as needed) the catalog file; returns it with a note when the directory is
    /// shared with another user.
    fn open_unsynced(cache_dir: &Path, repo: &Repository) -> Result<(Catalog, Option<String>)> {
        let dir = cache_dir.join(repo.id());
        let shared = super::private::private_dir(&dir)?;
        let path = dir.join("catalog.sqlite");
        super::private::private_files(&path)?;
        Ok((Catalog::open_file(&path)?, shared))
    }

    fn open_file(path: &Path) -> Result<Catalog> {
        let err = |e| Error::Catalog { path: path.to_path_buf(), source: e };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get::<_, String>(0))
            .optional()
            .unwrap_or(None)
            .and_then(|v| v.parse().ok());
        let cat = Catalog { conn, path: path.to_path_buf(), warnings: Vec::new(), rewritten: false };
        if version != Some(SCHEMA_VERSION) {
            cat.recreate()?;
        }
        cat.conn.execute_batch(HISTORY_SCHEMA).map_err(|e| cat.err(e))?;
        Ok(cat)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Catalog { path: self.path.clone(), source: e }
    }

    /// Drops every table and creates the current schema, empty.
    fn recreate(&self) -> Result<()> {
        let tables: Vec<String> = {
            let mut st =
                self.conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").map_err(|e| self.err(e))?;
            st.query_map([], |r| r.get(0))
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        let mut sql = String::from("BEGIN;");
        for t in tables.iter().filter(|t| *t != "runs") {
            sql.push_str(&format!("DROP TABLE IF EXISTS \"{t}\";"));
        }
        sql.push_str(SCHEMA);
        sql.push_str(&format!("INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"));
        self.conn.execute_batch(&sql).map_err(|e| self.err(e))
    }

    /// Forces a rebuild from the repository.
    pub fn rebuild(&mut self, repo: &Repository) -> Result<()> {
        self.recreate()?;
        self.sync(repo)
    }

    /// Brings the catalog up to date with the repository's snapshots and index segments, in that order: a
    /// snapshot is stored only after its index segments, so every snapshot listed first has its segments in the
    /// listing after. (Index first, a backup that finished between the two listings would leave a snapshot whose
    /// blobs the catalog cannot place, and its restore would report them lost.)
    pub fn sync(&mut self, repo: &Repository) -> Result<()> {
        self.sync_from(repo, None)
    }

    /// [`Catalog::sync`] from listings the caller already took in the same order (while the repository was
    /// being opened), or, without them, listing now. The index is listed once the snapshots are, while the new
    /// snapshot manifests load.
    pub(super) fn sync_from(&mut self, repo: &Repository, listed: Option<Listing>) -> Result<()> {
        self.warnings.clear();
        let (snapshots, index) = match listed {
            Some(l) => (l.snapshots, l.index),
            None => (repo.list_snapshots()?, None),
        };
        let changes = self.snapshot_changes(snapshots)?;
        std::thread::scope(|scope| {
            let listing = index.is_none().then(|| scope.spawn(|| repo.list_indexes()));
            let manifests = scope.spawn(|| repo.load_snapshots(&changes.new));
            let index = match (index, listing) {
                (Some(ids), _) => Ok(ids),
                (None, Some(listing)) => listing.join().expect("a listing does not panic"),
                (None, None) => unreachable!("the index is either listed already or being listed"),
            };
            let indexed = index.and_then(|ids| self.apply_index(repo, ids));
            let loaded = manifests.join().expect("loading manifests does not panic")?;
            self.store_snapshots(&changes.gone, loaded)?;
            indexed
        })
    }

    /// Adds the index segments that are new; if one it knows has gone (a prune rewrote the index), rebuilds the
    /// blob tables from scratch.
    pub fn sync_index(&mut self, repo: &Repository) -> Result<()> {
        let listed = repo.list_indexes()?;
        self.apply_index(repo, listed)
    }

    /// [`Catalog::sync_index`] from a listing of the index segments. Segments are downloaded a few at a time and
    /// each is written in its own transaction, so memory holds a handful of segments however large the index,
    /// and an interrupted rebuild keeps what it had written.
    fn apply_index(&mut self, repo: &Repository, listed: Vec<Id>) -> Result<()> {
        let remote_idx: HashSet<Id> = listed.into_iter().collect();
        let local_idx = self.id_set("SELECT id FROM index_objects")?;
        if local_idx.iter().any(|id| !remote_idx.contains(id)) {
            self.rewritten = true;
            self.conn
                .execute_batch("BEGIN; DELETE FROM index_objects; DELETE FROM packs; DELETE FROM blobs; COMMIT;")
                .map_err(|e| self.err(e))?;
            return self.apply_index(repo, remote_idx.into_iter().collect());
        }
        let mut new_idx: Vec<Id> = remote_idx.into_iter().filter(|id| !local_idx.contains(id)).collect();
        new_idx.sort_unstable();
        // Inserting millions of random ids touches pages all over the blob table: a larger page cache while
        // the index comes in spares most of the rereads; it is given back afterwards.
        let many = new_idx.len() > 16;
        // Into an empty table (a new machine, or after a prune rewrote the index) the blobs are staged and moved
        // in sorted at the end.
        let staged = many && local_idx.is_empty();
        if many {
            self.conn.pragma_update(None, "cache_size", SYNC_CACHE_KIB).map_err(|e| self.err(e))?;
        }
        if staged {
            self.conn.execute_batch(STAGING_TABLE).map_err(|e| self.err(e))?;
        }
        let mut recorded = Vec::new();
        let synced = repo
            .for_each_index(&new_idx, INDEX_DOWNLOADS, |id, packs| match packs {
                Ok(packs) => {
                    recorded.push(*id);
                    self.insert_index(id, &packs, staged)
                }
                Err(e @ Error::Corrupt { .. }) => {
                    self.warnings.push(format!("{e}; skipped (run `gumvault check`)"));
                    Ok(())
                }
                Err(e) => Err(e),
            })
            .and_then(|()| if staged { self.finish_staged(&recorded) } else { Ok(()) });
        if many {
            self.conn.pragma_update(None, "cache_size", -2000).map_err(|e| self.err(e))?;
        }
        synced
    }

    /// Adds new snapshots and drops those that are gone.
    pub fn sync_snapshots(&mut self, repo: &Repository) -> Result<()> {
        let listed = repo.list_snapshots()?;
        self.apply_snapshots(repo, listed)
    }

    /// [`Catalog::sync_snapshots`] from a listing of the snapshots.
    fn apply_snapshots(&mut self, repo: &Repository, listed: Vec<Id>) -> Result<()> {
        let changes = self.snapshot_changes(listed)?;
        let loaded = repo.load_snapshots(&changes.new)?;
        self.store_snapshots(&changes.gone, loaded)
    }

    /// Which listed snapshots are new to the catalog and which it has that are gone.
    fn snapshot_changes(&self, listed: Vec<Id>) -> Result<SnapshotChanges> {
        let remote: HashSet<Id> = listed.into_iter().collect();
        let local = self.id_set("SELECT id FROM snapshots")?;
        Ok(SnapshotChanges {
            gone: local.iter().filter(|id| !remote.contains(id)).copied().collect(),
            new: remote.into_iter().filter(|id| !local.contains(id)).collect(),
        })
    }

    /// Drops the snapshots that are gone and adds the loaded ones; a manifest that is damaged is skipped with a
    /// warning.
    fn store_snapshots(&mut self, gone: &[Id], loaded: Vec<(Id, Result<Snapshot>)>) -> Result<()> {
        for gone in gone {
            self.conn.execute("DELETE FROM snapshots WHERE id = ?1", [&gone.0[..]]).map_err(|e| self.err(e))?;
            self.conn
                .execute("DELETE FROM base_backups WHERE snapshot = ?1", [&gone.0[..]])
                .map_err(|e| self.err(e))?;
        }
        for (id, snap) in loaded {
            match snap {
                Ok(snap) => self.add_snapshot(&id, &snap)?,
                Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                    self.warnings.push(format!("{e}; skipped (run `gumvault check`)"))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the last sync found that a prune had rewritten the index (packs may have been deleted).
    pub fn index_was_rewritten(&self) -> bool {
        self.rewritten
    }

    /// Whether the index lists the pack.
    pub fn knows_pack(&self, id: &Id) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM packs WHERE id = ?1", [&id.0[..]], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.err(e))
    }

    fn id_set(&self, sql: &str) -> Result<HashSet<Id>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0)).map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for r in rows {
            let v = r.map_err(|e| self.err(e))?;
            if let Ok(a) = <[u8; 32]>::try_from(v.as_slice()) {
                out.insert(Id(a));
            }
        }
        Ok(out)
    }

    /// Records an index segment's packs and blobs (one transaction).
    pub fn add_index(&mut self, index_id: &Id, packs: &[PackEntry]) -> Result<()> {
        self.insert_index(index_id, packs, false)
    }

    /// Records a segment's packs and blobs in one transaction; `staged` puts the blobs into the staging table of
    /// a rebuild instead, and leaves the segment to be recorded when the staged blobs are moved in.
    fn insert_index(&mut self, index_id: &Id, packs: &[PackEntry], staged: bool) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::Catalog { path: path.clone(), source: e };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut add_pack =
                tx.prepare_cached("INSERT OR IGNORE INTO packs (id, kind, size) VALUES (?1, ?2, ?3)").map_err(err)?;
            let mut pack_id = tx.prepare_cached("SELECT pid FROM packs WHERE id = ?1").map_err(err)?;
            let sql = if staged {
                "INSERT INTO staged_blobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            } else {
                "INSERT OR IGNORE INTO blobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            };
            let mut add_blob = tx.prepare_cached(sql).map_err(err)?;
            for p in packs {
                add_pack.execute(params![&p.id.0[..], p.kind as u8, p.size as i64]).map_err(err)?;
                let pid: i64 = pack_id.query_row([&p.id.0[..]], |r| r.get(0)).map_err(err)?;
                for b in &p.blobs {
                    let i = &b.info;
                    let row = params![
                        &i.id.0[..],
                        pid,
                        b.offset as i64,
                        i.kind as u8,
                        i.compression as u8,
                        i.stored_len,
                        i.raw_len
                    ];
                    add_blob.execute(row).map_err(err)?;
                }
            }
            if !staged {
                tx.execute("INSERT OR IGNORE INTO index_objects VALUES (?1)", [&index_id.0[..]]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Moves the staged blobs into the blob table in id order (SQLite sorts them on disk, then appends to the
    /// table in order instead of inserting at random places) and records their segments, in one transaction:
    /// an interrupted rebuild leaves no segment recorded whose blobs are missing.
    fn finish_staged(&mut self, segments: &[Id]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::Catalog { path: path.clone(), source: e };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO blobs SELECT * FROM staged_blobs ORDER BY id; DROP TABLE staged_blobs;",
        )
        .map_err(err)?;
        {
            let mut add = tx.prepare_cached("INSERT OR IGNORE INTO index_objects VALUES (?1)").map_err(err)?;
            for id in segments {
                add.execute([&id.0[..]]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Records a snapshot (and the base backups it holds, so they are found by time with one query).
    pub fn add_snapshot(&mut self, id: &Id, snap: &Snapshot) -> Result<()> {
        for b in &snap.base_backups {
            let stop_ns = i64::try_from(b.stop_time.as_nanosecond()).unwrap_or(i64::MAX);
            let json = serde_json::to_string(b).expect("base backups serialize");
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO base_backups VALUES (?1, ?2, ?3, ?4)",
                    params![&id.0[..], b.source, stop_ns, json],
                )
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &id.0[..],
                    snap.time.to_string(),
                    snap.host,
                    serde_json::to_string(&snap.paths).expect("paths serialize"),
                    serde_json::to_string(&snap.tags).expect("tags serialize"),
                    String::from_utf8(snap.to_bytes()).expect("JSON is UTF-8"),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The index segments the catalog has loaded.
    pub fn index_ids(&self) -> Result<HashSet<Id>> {
        self.id_set("SELECT id FROM index_objects")
    }

    /// Every blob id the repository holds (for dedup).
    pub fn blob_ids(&self) -> Result<HashSet<Id>> {
        self.id_set("SELECT id FROM blobs")
    }

    /// How many blobs the catalog lists.
    pub fn blob_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Every blob id, sorted, in a vector of exactly their number (32 bytes per blob).
    pub fn sorted_blob_ids(&self) -> Result<Vec<Id>> {
        let mut out = Vec::with_capacity(self.blob_count()? as usize);
        let mut st = self.conn.prepare("SELECT id FROM blobs ORDER BY id").map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0)).map_err(|e| self.err(e))?;
        for r in rows {
            if let Ok(a) = <[u8; 32]>::try_from(r.map_err(|e| self.err(e))?.as_slice()) {
                out.push(Id(a));
            }
        }
        Ok(out)
    }

    /// A second connection to this catalog, for a writer on another thread (a backup records each index segment
    /// the moment it is written). SQLite serialises the writers; readers never wait for them.
    pub fn another_connection(&self) -> Result<Catalog> {
        let err = |e| Error::Catalog { path: self.path.clone(), source: e };
        let conn = Connection::open(&self.path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        Ok(Catalog { conn, path: self.path.clone(), warnings: Vec::new(), rewritten: false })
    }

    /// Connections for asking, from `threads` threads, whether a blob is stored.
    pub fn blob_lookup(&self, threads: usize) -> Result<super::catalog_lookup::BlobLookup> {
        super::catalog_lookup::BlobLookup::open(&self.path, threads)
    }

    /// Where a blob is stored.
    pub fn locate(&self, id: &Id) -> Result<Option<BlobLocation>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT p.id, b.offset, b.kind, b.compression, b.stored_len, b.raw_len FROM blobs b JOIN packs p ON p.pid = b.pid WHERE b.id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let row = st
            .query_row([&id.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, u8>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u32>(5)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((pack, offset, kind, comp, stored_len, raw_len)) = row else { return Ok(None) };
        let bad = || {
            Error::corrupt(
                format!("catalog entry of blob {}", id.short()),
                "undecodable; run `gumvault catalog rebuild`",
            )
        };
        let pack: [u8; 32] = pack.try_into().map_err(|_| bad())?;
        Ok(Some(BlobLocation {
            pack: Id(pack),
            offset: offset as u64,
            info: BlobInfo {
                id: *id,
                kind: BlobKind::from_u8(kind).ok_or_else(bad)?,
                compression: Compression::from_u8(comp).ok_or_else(bad)?,
                stored_len,
                raw_len,
            },
        }))
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let mut st =
            self.conn.prepare("SELECT id, manifest FROM snapshots ORDER BY time, id").map_err(|e| self.err(e))?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(|e| self.err(e))?;
            let id = Id(id
                .try_into()
                .map_err(|_| Error::corrupt("catalog", "bad snapshot id; run `gumvault catalog rebuild`"))?);
            let snapshot = Snapshot::from_bytes(json.as_bytes()).map_err(|e| Error::corrupt("catalog", e))?;
            out.push(SnapshotEntry { id, snapshot });
        }
        Ok(out)
    }

    /// The base backups of source `source` that ended at or before `at` (every one without it), the newest end
    /// first, each with its snapshot.
    pub fn base_backups(&self, source: &str, at: Option<jiff::Timestamp>) -> Result<Vec<(Id, BaseBackup)>> {
        let at_ns = at.map(|t| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)).unwrap_or(i64::MAX);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT snapshot, backup FROM base_backups WHERE source = ?1 AND stop_ns <= ?2
                 ORDER BY stop_ns DESC, snapshot",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![source, at_ns], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let bad = || Error::corrupt("catalog", "undecodable base backup; run `gumvault catalog rebuild`");
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(|e| self.err(e))?;
            let id = Id(<[u8; 32]>::try_from(id.as_slice()).map_err(|_| bad())?);
            out.push((id, serde_json::from_str(&json).map_err(|_| bad())?));
        }
        Ok(out)
    }

    /// When each pack was last verified by `check --read-data` (only packs that were).
    pub fn pack_checks(&self) -> Result<HashMap<Id, (jiff::Timestamp, bool)>> {
        let mut st = self.conn.prepare("SELECT id, checked_at, ok FROM pack_checks").map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, at, ok) = row.map_err(|e| self.err(e))?;
            if let (Ok(id), Ok(at)) = (<[u8; 32]>::try_from(id.as_slice()), at.parse()) {
                out.insert(Id(id), (at, ok));
            }
        }
        Ok(out)
    }

    /// Records that a pack was verified now.
    pub fn record_pack_check(&self, id: &Id, at: jiff::Timestamp, ok: bool) -> Result<()> {
        self.conn
            .execute("INSERT OR REPLACE INTO pack_checks VALUES (?1, ?2, ?3)", params![&id.0[..], at.to_string(), ok])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A value in the catalog's key/value table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets (or with `None` removes) a value in the key/value table.
    pub fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", [key, v]),
            None => self.conn.execute("DELETE FROM meta WHERE key = ?1", [key]),
        }
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Counts of packs and blobs, and stored bytes.
    /// Records a run in the local history.
    pub fn record_run(&self, r: &RunRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (job, kind, started, finished, ok, snapshot, bytes, error, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.job,
                    r.kind,
                    r.started.to_string(),
                    r.finished.to_string(),
                    r.ok,
                    r.snapshot.map(|id| id.0.to_vec()),
                    r.bytes as i64,
                    r.error,
                    r.detail.to_string()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// How many recorded runs of a job and kind failed, not counting those a shutdown interrupted (one query).
    pub fn failed_runs(&self, job: &str, kind: &str) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM runs WHERE job = ?1 AND kind = ?2 AND ok = 0
                 AND coalesce(json_extract(detail, '$.interrupted'), 0) = 0",
                params![job, kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Recorded runs of a job and kind, newest first, at most `limit` (with those a shutdown interrupted, marked
    /// `"interrupted": true` in their detail).
    pub fn runs(&self, job: &str, kind: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.query_runs(job, kind, limit, false)
    }

    /// The newest run of a job and kind that a shutdown did not interrupt: the one that did (or failed) the work.
    pub fn last_completed_run(&self, job: &str, kind: &str) -> Result<Option<RunRecord>> {
        Ok(self.query_runs(job, kind, 1, true)?.into_iter().next())
    }

    fn query_runs(&self, job: &str, kind: &str, limit: usize, completed_only: bool) -> Result<Vec<RunRecord>> {
        let filter = if completed_only { "AND coalesce(json_extract(detail, '$.interrupted'), 0) = 0" } else { "" };
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT job, kind, started, finished, ok, snapshot, bytes, error, detail FROM runs
                 WHERE job = ?1 AND kind = ?2 {filter} ORDER BY started DESC, id DESC LIMIT ?3"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![job, kind, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (job, kind, started, finished, ok, snapshot, bytes, error, detail) = row.map_err(|e| self.err(e))?;
            let time = |t: &str| t.parse::<jiff::Timestamp>().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            out.push(RunRecord {
                job,
                kind,
                started: time(&started),
                finished: time(&finished),
                ok,
                snapshot: snapshot.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()).map(Id),
                bytes: bytes.max(0) as u64,
                error,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    /// What the catalog knows of the repository: packs, blobs, and the packs' total size in bytes.
    pub fn totals(&self) -> Result<(u64, u64, u64)> {
        self.conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM packs), (SELECT COUNT(*) FROM blobs), (SELECT COALESCE(SUM(size),0) FROM packs)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)),
            )
            .map_err(|e| self.err(e))
    }
}

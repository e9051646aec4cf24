//! Keeping what the repository still needs locked (S3 Object Lock): every object a current snapshot may need —
//! the config, the key files, every snapshot, every index segment and the packs they list, obsolete lists,
//! tombstones, lag markers and archived WAL files — gets its retention pushed out to `now + period`. Packs that prune has marked
//! obsolete (no index lists them) are left to run out, so prune can remove them once their lock has expired.
//! Run by `gumvault lock extend` and at the end of every prune (the daemon's maintenance).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::repo::Repository;
use crate::repo::lock::retention_at;

/// Retention requests sent at once.
const PARALLEL: usize = 16;

/// What an extension did.
#[derive(Debug, Default, Serialize)]
pub struct LockReport {
    /// Objects whose lock was extended (in every region that holds them).
    pub extended: usize,
    /// Packs left to expire because prune marked them obsolete.
    pub obsolete_left: usize,
    /// The new retain-until date.
    pub until: Option<Timestamp>,
}

/// Every object the repository still needs, as (kind, name).
pub fn needed(repo: &Repository) -> Result<Vec<(ObjectKind, String)>> {
    let mut out = vec![(ObjectKind::Config, String::new())];
    out.extend(repo.list_keys()?.into_iter().map(|k| (ObjectKind::Key, k.id)));
    let mut packs: BTreeSet<Id> = BTreeSet::new();
    for idx in repo.list_indexes()? {
        packs.extend(repo.load_index(&idx)?.into_iter().map(|p| p.id));
        out.push((ObjectKind::Index, idx.to_hex()));
    }
    for kind in [ObjectKind::Snapshot, ObjectKind::Obsolete, ObjectKind::Tombstone, ObjectKind::Lag] {
        out.extend(repo.list_ids(kind)?.into_iter().map(|id| (kind, id.to_hex())));
    }
    out.extend(packs.into_iter().map(|p| (ObjectKind::Pack, p.to_hex())));
    // Archived WAL: what is listed is what WAL retention kept.
    let wal = repo.list_wal()?.files;
    out.extend(wal.iter().filter_map(|w| ObjectKind::parse_path(&w.path).map(|(k, n)| (k, n.to_string()))));
    Ok(out)
}

/// Extends the lock of every object still needed to `now + period`.
pub fn extend(repo: &Repository, now: Timestamp) -> Result<LockReport> {
    extend_these(repo, &needed(repo)?, now)
}

/// Extends the lock of `objects` (what [`needed`] returned) to `now + period`.
pub fn extend_these(repo: &Repository, objects: &[(ObjectKind, String)], now: Timestamp) -> Result<LockReport> {
    let lock = repo.object_lock().ok_or_else(|| {
        Error::InvalidInput(
            "this repository has no Object Lock rule (it is set at init: --object-lock compliance:35d)".into(),
        )
    })?;
    let indexed: BTreeSet<String> =
        objects.iter().filter(|(k, _)| *k == ObjectKind::Pack).map(|(_, n)| n.clone()).collect();
    let obsolete_left = repo.list_packs()?.iter().filter(|(id, _)| !indexed.contains(&id.to_hex())).count();
    let pool = crate::runtime::io_pool(PARALLEL, "lock extensions")?;
    let extended = AtomicUsize::new(0);
    pool.install(|| {
        objects.par_iter().try_for_each(|(kind, name)| -> Result<()> {
            if repo.extend_lock(*kind, name, now)? > 0 {
                extended.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    })?;
    Ok(LockReport { extended: extended.into_inner(), obsolete_left, until: Some(retention_at(&lock, now).until) })
}

//! Picking snapshots: by id prefix, `latest`, and the host/tag/path filters shared by every command.

use crate::error::{Error, Result};
use crate::repo::catalog::{Catalog, SnapshotEntry};

/// Filters that narrow the snapshots a command considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep snapshots taken on any of these hosts; empty means every host.
    pub hosts: Vec<String>,
    /// Keep snapshots that carry all of these tags.
    pub tags: Vec<String>,
    /// Keep snapshots that include all of these paths (a trailing `/` is ignored).
    pub paths: Vec<String>,
}

impl Filter {
    /// True if the snapshot passes every given filter (a snapshot needs all given tags; any given host; all paths).
    pub fn matches(&self, s: &SnapshotEntry) -> bool {
        let snap = &s.snapshot;
        (self.hosts.is_empty() || self.hosts.contains(&snap.host))
            && self.tags.iter().all(|t| snap.tags.contains(t))
            && self.paths.iter().all(|p| snap.paths.iter().any(|sp| sp == p.trim_end_matches('/')))
    }

    /// The matching snapshots, oldest first.
    pub fn apply(&self, catalog: &Catalog) -> Result<Vec<SnapshotEntry>> {
        Ok(catalog.snapshots()?.into_iter().filter(|s| self.matches(s)).collect())
    }
}

/// Resolves `latest`, a full id or a unique prefix of at least 8 hex characters.
pub fn resolve(catalog: &Catalog, selector: &str, filter: &Filter) -> Result<SnapshotEntry> {
    let candidates = filter.apply(catalog)?;
    if selector == "latest" {
        return candidates.into_iter().last().ok_or_else(|| {
            Error::SnapshotNotFound(
                "no snapshot matches (none yet, or the --host/--tag/--path filters exclude all)".into(),
            )
        });
    }
    let sel = selector.to_ascii_lowercase();
    if sel.len() < 8 || !sel.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!(
            "{selector:?} is not a snapshot id: give `latest` or at least 8 hex characters of an id (see `gumvault snapshots`)"
        )));
    }
    let mut hits = candidates.into_iter().filter(|s| s.id.to_hex().starts_with(&sel));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(Error::SnapshotNotFound(format!("no snapshot with id {selector} (see `gumvault snapshots`)"))),
        (Some(_), Some(_)) => {
            Err(Error::InvalidInput(format!("snapshot id prefix {selector} is ambiguous; give more characters")))
        }
    }
}

/// The newest matching snapshot taken at or before `at`.
pub fn at(catalog: &Catalog, at: jiff::Timestamp, filter: &Filter) -> Result<SnapshotEntry> {
    filter.apply(catalog)?.into_iter().rev().find(|s| s.snapshot.time <= at).ok_or_else(|| {
        Error::SnapshotNotFound(format!("no snapshot matches at or before {at} (the filters or the time exclude all)"))
    })
}

/// Which base backup a point-in-time restore starts from.
#[derive(Clone, Debug, Default)]
pub struct BaseBackupQuery {
    /// The job source whose base backups count.
    pub source: String,
    /// The point in time to recover to: the base backup must have ended at or before it.
    pub at: Option<jiff::Timestamp>,
    /// Recovery follows this timeline: base backups of later timelines cannot lead to it.
    pub timeline: Option<u32>,
}

/// The snapshot and base backup a point-in-time restore starts from: for `latest`, the base backup of the
/// source that ended last (at or before `at`, on a timeline not after `timeline`); for an id, that snapshot's,
/// which must meet the same conditions.
pub fn base_backup(
    catalog: &Catalog,
    selector: &str,
    filter: &Filter,
    query: &BaseBackupQuery,
) -> Result<(SnapshotEntry, crate::format::snapshot::BaseBackup)> {
    let candidates = catalog.base_backups(&query.source, None)?;
    if selector != "latest" {
        let entry = resolve(catalog, selector, filter)?;
        let Some((_, b)) = candidates.into_iter().find(|(id, _)| *id == entry.id) else {
            return Err(Error::InvalidInput(format!(
                "snapshot {} holds no base backup of source {:?} (is it a postgres-physical source?)",
                entry.id.short(),
                query.source
            )));
        };
        check_reaches(&entry, &b, query)?;
        return Ok((entry, b));
    }
    let snapshots: std::collections::HashMap<_, _> = filter.apply(catalog)?.into_iter().map(|s| (s.id, s)).collect();
    let usable = |b: &crate::format::snapshot::BaseBackup| {
        query.at.is_none_or(|at| b.stop_time <= at) && query.timeline.is_none_or(|t| b.timeline <= t)
    };
    let found = candidates.into_iter().find(|(id, b)| snapshots.contains_key(id) && usable(b));
    match found {
        Some((id, b)) => Ok((snapshots[&id].clone(), b)),
        None => Err(Error::SnapshotNotFound(format!(
            "no base backup of source {:?}{}{} (the filters, the time or the timeline exclude all)",
            query.source,
            query.at.map(|t| format!(" ended at or before {t}")).unwrap_or_default(),
            query.timeline.map(|t| format!(" on timeline {t} or before")).unwrap_or_default(),
        ))),
    }
}

/// An explicitly chosen base backup must be able to reach the point in time and the timeline asked for.
fn check_reaches(
    entry: &SnapshotEntry,
    b: &crate::format::snapshot::BaseBackup,
    query: &BaseBackupQuery,
) -> Result<()> {
    if let Some(at) = query.at.filter(|at| b.stop_time > *at) {
        return Err(Error::InvalidInput(format!(
            "the base backup in snapshot {} ended at {}, after {at}: recovery cannot stop before the backup is \
             consistent; pick an older snapshot, or `latest` to pick one by time",
            entry.id.short(),
            b.stop_time
        )));
    }
    if let Some(t) = query.timeline.filter(|t| b.timeline > *t) {
        return Err(Error::InvalidInput(format!(
            "the base backup in snapshot {} is on timeline {}, after timeline {t}; pick an older snapshot",
            entry.id.short(),
            b.timeline
        )));
    }
    Ok(())
}

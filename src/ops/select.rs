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

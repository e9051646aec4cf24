//! The last phase of a prune in a repository with Object Lock: removing old versions for good. In a versioned
//! bucket a delete only hides an object behind a delete marker; its data stays as a noncurrent version, locked
//! until its retention runs out. A noncurrent version is no longer extended (only current versions are), so its
//! lock ends at most one period (plus clock skew) after the newer version that replaced or hid it was written.
//! Past that, prune deletes the version; a delete marker is removed once no older version is left behind it.
//! A version S3 still refuses to delete (a longer bucket default, a clock far off) is left for a later prune:
//! prune never fails on a locked object.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::error::{Result, StorageErrorKind};
use crate::repo::lock::ObjectVersion;

/// Clock skew tolerated between the machine that extended a lock and the bucket (as for leases, §12).
pub const SKEW: SignedDuration = SignedDuration::from_mins(5);

/// What to delete: (path, version), delete markers last; and how many old versions must wait.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PurgePlan {
    /// Noncurrent versions whose lock has run out, then delete markers with nothing left behind them.
    pub delete: Vec<(String, String)>,
    /// Delete markers to remove only if every older version of their object was deleted.
    pub markers: Vec<(String, String)>,
    /// Noncurrent versions still locked.
    pub waiting: usize,
    /// When the next of those runs out.
    pub next: Option<Timestamp>,
}

/// Plans the purge of `versions` at `now` under a lock `period`.
pub(super) fn plan(versions: Vec<ObjectVersion>, now: Timestamp, period: SignedDuration) -> PurgePlan {
    let mut by_path: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    for v in versions {
        by_path.entry(v.path.clone()).or_default().push(v);
    }
    let mut out = PurgePlan::default();
    for (path, mut vs) in by_path {
        // Newest first; within one second the current version first.
        vs.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.current.cmp(&a.current)));
        let mut all_gone = true;
        for pair in vs.windows(2) {
            let (newer, old) = (&pair[0], &pair[1]);
            let free = newer.modified.checked_add(period).and_then(|t| t.checked_add(SKEW)).unwrap_or(Timestamp::MAX);
            if free <= now {
                out.delete.push((path.clone(), old.version.clone()));
            } else {
                all_gone = false;
                out.waiting += 1;
                out.next = Some(out.next.map_or(free, |n| n.min(free)));
            }
        }
        if let Some(top) = vs.first().filter(|v| v.deleted && all_gone) {
            out.markers.push((path, top.version.clone()));
        }
    }
    out
}

/// What a purge did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PurgeReport {
    /// Old versions and delete markers deleted.
    pub versions_deleted: usize,
    /// Old versions still locked (deleted by a later prune).
    pub versions_locked: usize,
    /// When the next of those can go.
    pub next_unlock: Option<Timestamp>,
}

/// Deletes what `plan` says, in one region; a version S3 refuses to delete counts as still locked.
pub(super) fn execute(
    repo: &crate::repo::Repository,
    region: &str,
    plan: PurgePlan,
    report: &mut PurgeReport,
) -> Result<()> {
    report.versions_locked += plan.waiting;
    report.next_unlock = match (report.next_unlock, plan.next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut refused: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (path, version) in &plan.delete {
        match repo.delete_version(region, path, version) {
            Ok(()) => report.versions_deleted += 1,
            Err(crate::Error::Storage(e)) if e.kind == StorageErrorKind::PermissionDenied => {
                report.versions_locked += 1;
                refused.insert(path.clone());
            }
            Err(e) => return Err(e),
        }
    }
    for (path, marker) in plan.markers.iter().filter(|(p, _)| !refused.contains(p)) {
        repo.delete_version(region, path, marker)?;
        report.versions_deleted += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, version: &str, secs: i64, deleted: bool, current: bool) -> ObjectVersion {
        let modified = Timestamp::from_second(secs).unwrap();
        ObjectVersion { path: path.into(), version: version.into(), modified, size: 1, deleted, current }
    }

    #[test]
    fn deletes_versions_whose_lock_ran_out_and_markers_with_nothing_behind_them() {
        let period = SignedDuration::from_secs(1000);
        let skew = SKEW.as_secs();
        let now = 2000 + skew;
        let versions = vec![
            // Replaced at 1000: free at 2000 + skew. Replaced at 1500: not yet.
            v("a", "a3", 1500, false, true),
            v("a", "a2", 1000, false, false),
            v("a", "a1", 500, false, false),
            // Hidden at 900 by a marker: free; the marker then hides nothing.
            v("b", "bdel", 900, true, true),
            v("b", "b1", 100, false, false),
            // Hidden at 1800: still locked, so its marker stays.
            v("c", "cdel", 1800, true, true),
            v("c", "c1", 100, false, false),
            // A current version alone is never touched.
            v("d", "d1", 100, false, true),
        ];
        let p = plan(versions, Timestamp::from_second(now).unwrap(), period);
        assert_eq!(p.delete, vec![("a".into(), "a1".into()), ("b".into(), "b1".into())]);
        assert_eq!(p.markers, vec![("b".to_string(), "bdel".to_string())]);
        assert_eq!(p.waiting, 2);
        assert_eq!(p.next, Some(Timestamp::from_second(2500 + skew).unwrap()));
    }
}

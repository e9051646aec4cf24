//! Forget: which snapshots a retention policy removes, and removing them. Removing takes the maintenance lease
//! (so it never overlaps a prune), deletes the manifests, and writes a tombstone for any region that missed a
//! delete. The data the snapshots referenced stays until prune reclaims it.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::Result;
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::ops::retention::{self, Decision, GroupBy, Policy, SnapshotInfo};
use crate::repo::Repository;
use crate::repo::catalog::{Catalog, SnapshotEntry};
use crate::repo::lease;

/// The verdict of `policy` on each of `candidates` as of `now` (see [`retention::apply`]).
pub fn decide(
    candidates: &[SnapshotEntry],
    policy: &Policy,
    group_by: GroupBy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Decision> {
    let infos: Vec<SnapshotInfo> = candidates
        .iter()
        .map(|e| SnapshotInfo {
            id: e.id,
            time: e.snapshot.time,
            host: e.snapshot.host.clone(),
            paths: e.snapshot.paths.clone(),
            tags: e.snapshot.tags.clone(),
            restorable_from: e.snapshot.base_backups.iter().map(|b| b.stop_time).max(),
        })
        .collect();
    retention::apply(&infos, policy, group_by, now, tz)
}

/// Removes snapshots under the maintenance lease (waiting up to `wait` for another run to finish), then brings
/// the catalog's snapshots up to date. Returns notes on expired leases that were taken over.
pub fn remove(repo: &Repository, catalog: &mut Catalog, ids: &[Id], wait: Duration) -> Result<Vec<String>> {
    repo.release_reserve();
    let outcome = lease::acquire(repo, "forget", wait).and_then(|lease| {
        let notes = lease.taken_over.clone();
        for id in ids {
            repo.delete_object(ObjectKind::Snapshot, id)?;
        }
        repo.write_tombstone()?;
        drop(lease);
        Ok(notes)
    });
    let mut notes = crate::ops::prune::reserve_notes(repo);
    notes.extend(outcome?);
    catalog.sync_snapshots(repo)?;
    Ok(notes)
}

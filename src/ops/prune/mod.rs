//! Prune: reclaims space in two phases so it is safe beside running backups.
//!
//! Phase one (every run) marks packs that no snapshot needs — unused packs, packs that were repacked, and packs
//! no index knows (left by crashed backups, or still being written by a running one) — as *obsolete* in an
//! obsolete list, and rewrites the index without them. Phase two (a later run) deletes packs that have been
//! obsolete for longer than the grace period, unless a snapshot committed meanwhile needs them, in which case
//! they are brought back into the index. Order of writes: new packs → new index → new obsolete list → delete old
//! index and lists → delete expired packs; a crash between any two steps leaves a valid repository.
//!
//! The work is split the way it is reasoned about: `state` reads what the repository holds, `mark` finds
//! what snapshots need, [`plan`] decides each pack's fate (all that `--dry-run` does), `execute` writes.
//!
//! The WAL archive is pruned in the same run: archived WAL before the start of the oldest base backup that a
//! snapshot still holds, per cluster, is deleted ([`crate::ops::wal::retention`]). No grace period is needed:
//! a base backup being taken right now starts after every kept one, so it never needs WAL that goes.

mod execute;
mod mark;
pub mod plan;
pub mod purge;
mod state;

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::error::Result;
use crate::repo::Repository;
pub use plan::{PruneOptions, PruneReport};

/// Takes the maintenance lease (waiting up to `wait` for another run), prunes, and lets the lease go. Returns
/// the report and notes on expired leases that were taken over.
pub fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    now: Timestamp,
    wait: std::time::Duration,
) -> Result<(PruneReport, Vec<String>)> {
    // On a full disk the lease and the new index need room: the reserve gives it, and is made again after.
    repo.release_reserve();
    let outcome = crate::repo::lease::acquire(repo, "prune", wait).and_then(|lease| {
        let notes = lease.taken_over.clone();
        let report = prune(repo, opts, now)?;
        drop(lease);
        Ok((report, notes))
    });
    let mut notes = reserve_notes(repo);
    let (report, taken_over) = outcome?;
    notes.extend(taken_over);
    Ok((report, notes))
}

/// Makes the space reserve again; a note for each region without room for it.
pub fn reserve_notes(repo: &Repository) -> Vec<String> {
    repo.restore_reserve()
        .into_iter()
        .map(|r| {
            format!(
                "region {r} has no room for its {} MiB space reserve; free some space",
                crate::repo::RESERVE_BYTES >> 20
            )
        })
        .collect()
}

/// Plans and (unless `dry_run`) performs a prune. The caller holds the maintenance lease.
pub fn prune(repo: &Repository, opts: &PruneOptions, now: Timestamp) -> Result<PruneReport> {
    // A region that was down during an earlier prune still holds what that prune deleted: finish it first.
    crate::ops::sync::finish_pending_deletes(repo)?;
    let st = state::load(repo, &opts.memory)?;
    let marked = mark::used_blobs(repo, &st)?;
    let plan = plan::Plan::make(&st, &marked, opts, now)?;
    let mut report = plan.report(&st, &marked);
    let wal = crate::ops::wal::retention::plan(&repo.list_wal()?.files, &marked.base_backups);
    report.wal.files_deleted = wal.delete.len();
    report.wal.bytes_freed = wal.delete.iter().map(|w| w.size).sum();
    report.wal.files_kept = wal.kept;
    if !opts.dry_run {
        report.index_segments_written = execute::execute(repo, &st, &marked, plan, &wal.delete)?;
    }
    if let Some(lock) = repo.object_lock() {
        let needed = crate::ops::lock::needed(repo)?;
        if !opts.dry_run {
            report.locks_extended = Some(crate::ops::lock::extend_these(repo, &needed, now)?.extended);
        }
        let keep: BTreeSet<String> = needed.iter().map(|(kind, name)| kind.path(name)).collect();
        report.purge = Some(purge_versions(repo, &keep, lock.period(), now, opts.dry_run)?);
    }
    Ok(report)
}

/// With Object Lock: deletes, in every versioned region, the old versions whose lock has run out (see
/// [`purge`]); with `dry_run` only counts them. Old versions of an object the repository still needs are never
/// deleted: gumvault does not overwrite or delete what it needs, so they are an intruder's work, and the way
/// back (`--as-of`).
fn purge_versions(
    repo: &Repository,
    keep: &BTreeSet<String>,
    period: jiff::SignedDuration,
    now: Timestamp,
    dry_run: bool,
) -> Result<purge::PurgeReport> {
    let mut report = purge::PurgeReport::default();
    for (region, versions) in repo.versions()? {
        let versions: Vec<_> = versions.into_iter().filter(|v| !keep.contains(&v.path)).collect();
        let plan = purge::plan(versions, now, period);
        if dry_run {
            report.versions_deleted += plan.delete.len() + plan.markers.len();
            report.versions_locked += plan.waiting;
            report.next_unlock = report.next_unlock.or(plan.next);
        } else {
            purge::execute(repo, &region, plan, &mut report)?;
        }
    }
    Ok(report)
}

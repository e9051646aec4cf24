//! The plan: each pack's fate — kept, repacked, newly obsolete, deleted after its grace period, or still
//! waiting — decided before anything is written, so `--dry-run` reports exactly what a run would do.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::mark::Marked;
use super::state::State;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::ops::wal::retention::WalPruneReport;

/// Options of a prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack partly used packs until unused bytes are at most this share of used bytes.
    pub max_unused: f64,
    /// How long a pack stays obsolete before it is deleted.
    pub grace: SignedDuration,
    /// Plan and report, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused: 0.05, grace: SignedDuration::from_hours(24), dry_run: false }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Blobs they need.
    pub used_blobs: usize,
    /// Packs stored.
    pub packs: usize,
    /// Partly used packs whose used blobs were copied into new packs.
    pub packs_repacked: usize,
    /// Packs newly marked obsolete.
    pub packs_marked: usize,
    /// Packs deleted after their grace period.
    pub packs_deleted: usize,
    /// Obsolete packs a new snapshot needs again, put back into the index.
    pub packs_restored: usize,
    /// Obsolete packs still in their grace period.
    pub packs_waiting: usize,
    /// Bytes of the deleted packs.
    pub bytes_freed: u64,
    /// Bytes of the packs waiting.
    pub bytes_waiting: u64,
    /// Bytes of the repacked packs.
    pub bytes_repacked: u64,
    /// Index segments of the new index.
    pub index_segments_written: usize,
    /// The WAL archive: files before the oldest kept base backup of their cluster removed.
    pub wal: WalPruneReport,
    /// With Object Lock: objects whose lock was extended (everything still needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks_extended: Option<usize>,
    /// With Object Lock: old versions deleted for good, or still locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge: Option<super::purge::PurgeReport>,
}

/// What a prune will do.
pub(super) struct Plan<'s> {
    /// Indexed packs that stay as they are.
    pub keep: Vec<&'s PackEntry>,
    /// Partly used packs whose used blobs move to new packs.
    pub repack: Vec<&'s PackEntry>,
    /// Packs marked obsolete by this run.
    pub newly_obsolete: Vec<Id>,
    /// Obsolete packs past their grace period.
    pub delete: Vec<Id>,
    /// The obsolete list this run leaves: packs waiting, and since when.
    pub obsolete_next: BTreeMap<Id, Timestamp>,
}

/// How much of a pack snapshots use: (used bytes, unused bytes).
fn usage(p: &PackEntry, marked: &Marked) -> (u64, u64) {
    let used: u64 = p.blobs.iter().filter(|b| marked.used.contains(&b.info.id)).map(|b| b.info.stored_len as u64).sum();
    let total: u64 = p.blobs.iter().map(|b| b.info.stored_len as u64).sum();
    (used, total - used)
}

impl<'s> Plan<'s> {
    /// Decides every pack's fate.
    pub fn make(st: &'s State, marked: &Marked, opts: &PruneOptions, now: Timestamp) -> Plan<'s> {
        let mut plan = Plan {
            keep: Vec::new(),
            repack: Vec::new(),
            newly_obsolete: Vec::new(),
            delete: Vec::new(),
            obsolete_next: BTreeMap::new(),
        };
        plan.classify_live(st, marked, opts.max_unused);
        // Packs nobody indexes: crashed backups, or a backup still running. They wait out the grace period.
        for id in st.stored.keys() {
            if !st.live.contains_key(id) && !st.obsolete.contains_key(id) && !marked.restore.contains_key(id) {
                plan.newly_obsolete.push(*id);
            }
        }
        plan.judge_obsolete(st, marked, opts, now);
        for id in plan.newly_obsolete.iter().chain(plan.repack.iter().map(|p| &p.id)) {
            plan.obsolete_next.entry(*id).or_insert(now);
        }
        plan
    }

    /// Indexed packs: unused ones become obsolete, full ones stay, and the emptiest partly used ones are repacked
    /// until the unused share is within `max_unused`.
    fn classify_live(&mut self, st: &'s State, marked: &Marked, max_unused: f64) {
        let mut partial: Vec<(&PackEntry, u64, u64)> = Vec::new();
        let (mut used_bytes, mut remaining_unused) = (0u64, 0u64);
        for p in st.live.values() {
            let (used, unused) = usage(p, marked);
            match (used, unused) {
                (0, _) => self.newly_obsolete.push(p.id),
                (_, 0) => self.keep.push(p),
                _ => {
                    partial.push((p, used, unused));
                    remaining_unused += unused;
                }
            }
            used_bytes += used;
        }
        partial.sort_by(|a, b| (b.2 * a.1.max(1)).cmp(&(a.2 * b.1.max(1))));
        for (p, _used, unused) in partial {
            if (remaining_unused as f64) > max_unused * used_bytes as f64 {
                self.repack.push(p);
                remaining_unused -= unused;
            } else {
                self.keep.push(p);
            }
        }
    }

    /// Obsolete packs: deleted after the grace period unless needed or indexed again.
    fn judge_obsolete(&mut self, st: &State, marked: &Marked, opts: &PruneOptions, now: Timestamp) {
        for (id, at) in &st.obsolete {
            if marked.restore.contains_key(id) || st.live.contains_key(id) || !st.stored.contains_key(id) {
                continue; // back in use, indexed again by a backup, or already gone
            }
            if at.checked_add(opts.grace).unwrap_or(Timestamp::MAX) <= now {
                self.delete.push(*id);
            } else {
                self.obsolete_next.insert(*id, *at);
            }
        }
    }

    /// The report of this plan (before any index segment is written).
    pub fn report(&self, st: &State, marked: &Marked) -> PruneReport {
        let size = |id: &Id| st.stored.get(id).copied().unwrap_or(0);
        PruneReport {
            snapshots: marked.snapshots,
            used_blobs: marked.used.len(),
            packs: st.stored.len(),
            packs_repacked: self.repack.len(),
            packs_marked: self.newly_obsolete.len() + self.repack.len(),
            packs_deleted: self.delete.len(),
            packs_restored: marked.restore.len(),
            packs_waiting: self.obsolete_next.len(),
            bytes_freed: self.delete.iter().map(size).sum(),
            bytes_waiting: self.obsolete_next.keys().map(size).sum(),
            bytes_repacked: self.repack.iter().map(|p| p.size).sum(),
            index_segments_written: 0,
            wal: WalPruneReport::default(),
            locks_extended: None,
            purge: None,
        }
    }
}

//! The plan: each pack's fate — kept, repacked, newly obsolete, deleted after its grace period, or still
//! waiting — decided before anything is written, so `--dry-run` reports exactly what a run would do.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::mark::Marked;
use super::state::State;
use crate::error::Result;
use crate::format::id::Id;
use crate::ops::wal::retention::WalPruneReport;
use crate::repo::blob_index::MemoryBudget;

/// Options of a prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack partly used packs until unused bytes are at most this share of used bytes.
    pub max_unused: f64,
    /// How long a pack stays obsolete before it is deleted.
    pub grace: SignedDuration,
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Memory for the index, and where it spills beyond that.
    pub memory: MemoryBudget,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.05,
            grace: SignedDuration::from_hours(24),
            dry_run: false,
            memory: MemoryBudget::default(),
        }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Blobs they need.
    pub used_blobs: u64,
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
    /// Whether the index was larger than the memory budget and went through scratch files.
    pub index_spilled: bool,
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

/// What becomes of an indexed pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Stays as it is.
    Keep,
    /// Its used blobs move to new packs, then it is obsolete.
    Repack,
    /// Nothing in it is used: obsolete.
    Drop,
}

/// What a prune will do.
pub(super) struct Plan {
    /// The fate of every indexed pack, by number.
    pub fate: Vec<Fate>,
    /// Packs marked obsolete by this run.
    pub newly_obsolete: Vec<Id>,
    /// Obsolete packs past their grace period.
    pub delete: Vec<Id>,
    /// The obsolete list this run leaves: packs waiting, and since when.
    pub obsolete_next: BTreeMap<Id, Timestamp>,
}

/// How much of each indexed pack snapshots use: (used bytes, unused bytes) by pack number. Of a blob stored in
/// several packs only its first record counts as used; the other copies are unused and go with their packs.
fn usage(st: &State, marked: &Marked) -> Result<Vec<(u64, u64)>> {
    let mut usage = vec![(0u64, 0u64); st.index.packs().len()];
    let mut last: Option<Id> = None;
    st.index.blobs().for_each(|pos, r| {
        let first = last != Some(r.id);
        last = Some(r.id);
        let u = &mut usage[r.pack as usize];
        if first && marked.used.contains(pos) {
            u.0 += u64::from(r.stored_len);
        } else {
            u.1 += u64::from(r.stored_len);
        }
    })?;
    Ok(usage)
}

impl Plan {
    /// Decides every pack's fate.
    pub fn make(st: &State, marked: &Marked, opts: &PruneOptions, now: Timestamp) -> Result<Plan> {
        let mut plan = Plan {
            fate: vec![Fate::Keep; st.index.packs().len()],
            newly_obsolete: Vec::new(),
            delete: Vec::new(),
            obsolete_next: BTreeMap::new(),
        };
        plan.classify_live(st, &usage(st, marked)?, opts.max_unused);
        // Packs nobody indexes: crashed backups, or a backup still running. They wait out the grace period.
        for id in st.stored.keys() {
            if !st.indexed(id) && !st.obsolete.contains_key(id) && !marked.restore.contains_key(id) {
                plan.newly_obsolete.push(*id);
            }
        }
        plan.judge_obsolete(st, marked, opts, now);
        for (n, fate) in plan.fate.iter().enumerate() {
            if *fate != Fate::Keep {
                plan.obsolete_next.entry(st.index.packs()[n].id).or_insert(now);
            }
        }
        for id in &plan.newly_obsolete {
            plan.obsolete_next.entry(*id).or_insert(now);
        }
        Ok(plan)
    }

    /// Indexed packs: unused ones become obsolete, full ones stay, and the emptiest partly used ones are repacked
    /// until the unused share is within `max_unused`.
    fn classify_live(&mut self, st: &State, usage: &[(u64, u64)], max_unused: f64) {
        let mut partial: Vec<(usize, u64, u64)> = Vec::new();
        let (mut used_bytes, mut remaining_unused) = (0u64, 0u64);
        for (n, &(used, unused)) in usage.iter().enumerate() {
            match (used, unused) {
                (0, _) => self.fate[n] = Fate::Drop,
                (_, 0) => {}
                _ => {
                    partial.push((n, used, unused));
                    remaining_unused += unused;
                }
            }
            used_bytes += used;
        }
        // Emptiest first; ties by pack id, so a plan does not depend on the order the index was read in.
        partial.sort_by(|a, b| {
            (b.2 * a.1.max(1))
                .cmp(&(a.2 * b.1.max(1)))
                .then_with(|| st.index.pack(a.0 as u32).id.cmp(&st.index.pack(b.0 as u32).id))
        });
        for (n, _used, unused) in partial {
            if (remaining_unused as f64) > max_unused * used_bytes as f64 {
                self.fate[n] = Fate::Repack;
                remaining_unused -= unused;
            }
        }
    }

    /// Packs with this fate.
    pub fn with_fate(&self, fate: Fate) -> impl Iterator<Item = u32> + '_ {
        self.fate.iter().enumerate().filter(move |(_, f)| **f == fate).map(|(n, _)| n as u32)
    }

    /// Obsolete packs: deleted after the grace period unless needed or indexed again.
    fn judge_obsolete(&mut self, st: &State, marked: &Marked, opts: &PruneOptions, now: Timestamp) {
        for (id, at) in &st.obsolete {
            if marked.restore.contains_key(id) || st.indexed(id) || !st.stored.contains_key(id) {
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
        let repack: Vec<u32> = self.with_fate(Fate::Repack).collect();
        let dropped = self.with_fate(Fate::Drop).count();
        PruneReport {
            snapshots: marked.snapshots,
            used_blobs: marked.used_blobs(),
            packs: st.stored.len(),
            packs_repacked: repack.len(),
            packs_marked: self.newly_obsolete.len() + dropped + repack.len(),
            packs_deleted: self.delete.len(),
            packs_restored: marked.restore.len(),
            packs_waiting: self.obsolete_next.len(),
            bytes_freed: self.delete.iter().map(size).sum(),
            bytes_waiting: self.obsolete_next.keys().map(size).sum(),
            bytes_repacked: repack.iter().map(|n| st.index.pack(*n).size).sum(),
            index_spilled: st.index.blobs().on_disk(),
            index_segments_written: 0,
            wal: WalPruneReport::default(),
            locks_extended: None,
            purge: None,
        }
    }
}

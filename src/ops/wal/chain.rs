//! `check`'s WAL pass: from every kept base backup's start segment up to the newest segment archived for its
//! cluster, every segment recovery will ask for must be archived, following timeline switches as PostgreSQL does
//! (a segment at or after a switch point is read from the new timeline). Each gap is named: the missing segments,
//! as a range where they follow each other.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use crate::format::id::Id;
use crate::format::snapshot::BaseBackup;
use crate::format::wal::pg::{HistoryEntry, parse_history, segment_header};
use crate::format::wal::{WalFile, WalFileKind, valid_segment_size};
use crate::repo::Repository;
use crate::repo::wal::{WalListing, WalObject};

/// What the WAL pass found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    /// Base backups whose WAL was followed.
    pub base_backups: usize,
    /// Segments recovery from them needs (each counted once).
    pub segments_needed: u64,
    /// Each gap, and anything else that would stop a recovery.
    pub problems: Vec<String>,
}

/// The base backups of one cluster on one timeline, checked as one chain.
struct Group {
    start: u64,
    stop: u64,
    snapshots: BTreeSet<String>,
}

/// Checks the chain of every base backup (with the snapshot that holds it) against what is archived. Reads one
/// segment per cluster (for the segment size) and its timeline history files.
pub fn check_chains(repo: &Repository, listing: &WalListing, backups: &[(Id, BaseBackup)]) -> ChainReport {
    let mut report = ChainReport { base_backups: backups.len(), ..Default::default() };
    let systems: BTreeSet<u64> = backups.iter().map(|(_, b)| b.system_id).collect();
    for system in systems {
        let mine: Vec<&(Id, BaseBackup)> = backups.iter().filter(|(_, b)| b.system_id == system).collect();
        let files: Vec<&WalObject> = listing.files.iter().filter(|o| o.system_id == system).collect();
        if let Err(problem) = check_system(repo, system, &mine, &files, &mut report) {
            report.problems.push(problem);
        }
    }
    report
}

fn check_system(
    repo: &Repository,
    system: u64,
    backups: &[&(Id, BaseBackup)],
    files: &[&WalObject],
    report: &mut ChainReport,
) -> Result<(), String> {
    let needed_by = |bs: &[&(Id, BaseBackup)]| bs.iter().map(|(id, _)| id.short()).collect::<Vec<_>>().join(", ");
    let seg_size = segment_size(repo, system, backups, files).ok_or_else(|| {
        format!(
            "WAL of database system {system}: no segment archived, but the base backups in snapshots {} need WAL from {}",
            needed_by(backups),
            backups[0].1.start_wal
        )
    })?;
    let histories = histories(repo, system, files, report);
    let present: HashSet<(u32, u64)> = files
        .iter()
        .filter(|o| o.file.kind == WalFileKind::Segment)
        .map(|o| (o.file.tli, o.file.segno(seg_size)))
        .collect();
    let groups = group_backups(backups, seg_size, report);
    let mut missing: BTreeMap<(u32, u64), BTreeSet<String>> = BTreeMap::new();
    let mut needed: HashSet<(u32, u64)> = HashSet::new();
    for (tli, g) in &groups {
        if *tli > 1 && !files.iter().any(|o| o.file.kind == WalFileKind::History && o.file.tli == *tli) {
            report.problems.push(format!(
                "WAL of database system {system}: timeline history file {} is missing (snapshots {} are on timeline {tli})",
                WalFile::history(*tli),
                g.snapshots.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let path = TimelinePath::new(*tli, &histories, seg_size);
        let end = files
            .iter()
            .filter(|o| o.file.kind == WalFileKind::Segment)
            .map(|o| o.file.segno(seg_size))
            .filter(|n| *n >= g.start && present.contains(&(path.timeline_of(*n), *n)))
            .max()
            .unwrap_or(g.start)
            .max(g.stop);
        for n in g.start..=end {
            let key = (path.timeline_of(n), n);
            needed.insert(key);
            if !present.contains(&key) {
                missing.entry(key).or_default().extend(g.snapshots.iter().cloned());
            }
        }
    }
    report.segments_needed += needed.len() as u64;
    report.problems.extend(name_gaps(system, &missing, seg_size));
    Ok(())
}

/// The base backups of one cluster by timeline: the earliest start, the latest stop, the snapshots.
fn group_backups(backups: &[&(Id, BaseBackup)], seg_size: u32, report: &mut ChainReport) -> BTreeMap<u32, Group> {
    let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
    for (id, b) in backups {
        let (Some(start), Some(stop)) = (WalFile::parse(&b.start_wal), WalFile::parse(&b.stop_wal)) else {
            report.problems.push(format!("snapshot {}: base backup with unreadable WAL names", id.short()));
            continue;
        };
        let g = groups.entry(b.timeline).or_insert(Group { start: u64::MAX, stop: 0, snapshots: BTreeSet::new() });
        g.start = g.start.min(start.segno(seg_size));
        g.stop = g.stop.max(stop.segno(seg_size));
        g.snapshots.insert(id.short());
    }
    groups
}

/// The cluster's segment size, from the long header of one archived segment (a base backup's start segment
/// when there is one).
fn segment_size(repo: &Repository, system: u64, backups: &[&(Id, BaseBackup)], files: &[&WalObject]) -> Option<u32> {
    let starts: BTreeSet<&str> = backups.iter().map(|(_, b)| b.start_wal.as_str()).collect();
    let mut segments: Vec<&&WalObject> = files.iter().filter(|o| o.file.kind == WalFileKind::Segment).collect();
    segments.sort_by_key(|o| !starts.contains(o.file.name.as_str()));
    segments.iter().take(3).find_map(|o| {
        let content = repo.get_wal(system, &o.file).ok()?;
        segment_header(&content).ok().map(|h| h.seg_size).filter(|s| valid_segment_size((*s).into()))
    })
}

/// Every timeline history file of the cluster, parsed; one that cannot be read is a problem.
fn histories(
    repo: &Repository,
    system: u64,
    files: &[&WalObject],
    report: &mut ChainReport,
) -> BTreeMap<u32, Vec<HistoryEntry>> {
    let mut out = BTreeMap::new();
    for o in files.iter().filter(|o| o.file.kind == WalFileKind::History) {
        let parsed = repo
            .get_wal(system, &o.file)
            .map_err(|e| e.to_string())
            .and_then(|c| parse_history(&String::from_utf8_lossy(&c)).map_err(|e| e.to_string()));
        match parsed {
            Ok(h) => {
                out.insert(o.file.tli, h);
            }
            Err(e) => report.problems.push(format!("WAL of database system {system}: {}: {e}", o.file)),
        }
    }
    out
}

/// The way recovery from a timeline goes: to the newest timeline that descends from it, switching at each
/// switch point on the way.
pub struct TimelinePath {
    start: u32,
    /// (first segment number of the child, child timeline), in order.
    switches: Vec<(u64, u32)>,
}

impl TimelinePath {
    /// The path from timeline `tli` to the newest timeline whose history includes it.
    pub fn new(tli: u32, histories: &BTreeMap<u32, Vec<HistoryEntry>>, seg_size: u32) -> TimelinePath {
        let target = histories
            .iter()
            .filter(|(_, h)| h.iter().any(|e| e.parent == tli))
            .map(|(t, _)| *t)
            .max()
            .filter(|t| *t > tli);
        let mut switches = Vec::new();
        if let Some(target) = target {
            let h = &histories[&target];
            let from = h.iter().position(|e| e.parent == tli).unwrap_or(h.len());
            for (i, e) in h.iter().enumerate().skip(from) {
                let child = h.get(i + 1).map_or(target, |next| next.parent);
                switches.push((e.switch_lsn / u64::from(seg_size), child));
            }
        }
        TimelinePath { start: tli, switches }
    }

    /// The timeline recovery reads segment number `segno` from.
    pub fn timeline_of(&self, segno: u64) -> u32 {
        self.switches.iter().rev().find(|(first, _)| segno >= *first).map_or(self.start, |(_, t)| *t)
    }
}

/// One problem per run of consecutive missing segments.
fn name_gaps(system: u64, missing: &BTreeMap<(u32, u64), BTreeSet<String>>, seg_size: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<(&(u32, u64), &BTreeSet<String>)> = Vec::new();
    let flush = |run: &mut Vec<(&(u32, u64), &BTreeSet<String>)>, out: &mut Vec<String>| {
        let (Some(first), Some(last)) = (run.first(), run.last()) else { return };
        let name = |k: &(u32, u64)| WalFile::from_segno(k.0, k.1, seg_size).name;
        let who: BTreeSet<&String> = run.iter().flat_map(|(_, s)| s.iter()).collect();
        let who = who.into_iter().cloned().collect::<Vec<_>>().join(", ");
        out.push(if run.len() == 1 {
            format!("WAL of database system {system}: segment {} is missing (needed by snapshots {who})", name(first.0))
        } else {
            format!(
                "WAL of database system {system}: segments {} to {} ({} segments) are missing (needed by snapshots {who})",
                name(first.0),
                name(last.0),
                run.len()
            )
        });
        run.clear();
    };
    for (k, who) in missing {
        if run.last().is_some_and(|(p, _)| p.0 != k.0 || p.1 + 1 != k.1) {
            flush(&mut run, &mut out);
        }
        run.push((k, who));
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_follows_timeline_switches() {
        let mb16 = 16 << 20;
        let mut h = BTreeMap::new();
        h.insert(2, vec![HistoryEntry { parent: 1, switch_lsn: 0x0500_0100 }]);
        h.insert(
            3,
            vec![
                HistoryEntry { parent: 1, switch_lsn: 0x0500_0100 },
                HistoryEntry { parent: 2, switch_lsn: 0x0800_0000 },
            ],
        );
        // A branch off timeline 1 that recovery to the newest timeline does not take.
        h.insert(4, vec![HistoryEntry { parent: 1, switch_lsn: 0x0300_0000 }]);
        let p = TimelinePath::new(1, &h, mb16);
        let tl: Vec<u32> = (3..10).map(|n| p.timeline_of(n)).collect();
        assert_eq!(tl, [4, 4, 4, 4, 4, 4, 4], "the newest descendant is timeline 4, switching at segment 3");
        let p = TimelinePath::new(2, &h, mb16);
        assert_eq!((6..10).map(|n| p.timeline_of(n)).collect::<Vec<_>>(), [2, 2, 3, 3]);
        let p = TimelinePath::new(3, &h, mb16);
        assert_eq!(p.timeline_of(100), 3);
        h.remove(&4);
        let p = TimelinePath::new(1, &h, mb16);
        assert_eq!((3..10).map(|n| p.timeline_of(n)).collect::<Vec<_>>(), [1, 1, 2, 2, 2, 3, 3]);
    }

    #[test]
    fn gaps_are_named_as_runs() {
        let mut missing = BTreeMap::new();
        let who: BTreeSet<String> = ["abcd1234".to_string()].into();
        for k in [(1, 5), (1, 6), (1, 7), (1, 9), (2, 10)] {
            missing.insert(k, who.clone());
        }
        let gaps = name_gaps(42, &missing, 16 << 20);
        assert_eq!(gaps.len(), 3, "{gaps:?}");
        assert!(gaps[0].contains("000000010000000000000005 to 000000010000000000000007 (3 segments)"), "{}", gaps[0]);
        assert!(gaps[1].contains("segment 000000010000000000000009 is missing"), "{}", gaps[1]);
        assert!(gaps[2].contains("00000002000000000000000A") && gaps[2].contains("abcd1234"), "{}", gaps[2]);
    }
}

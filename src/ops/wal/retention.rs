//! Which archived WAL prune removes: for each cluster (system id), the files before the start of the oldest base
//! backup still kept for it, on any timeline — no restore can begin before that. Timeline history files are
//! always kept (they are tiny, and recovery reads them to choose a timeline); a cluster with no base backup
//! keeps all its WAL (it may be a cluster whose first base backup is still being taken). A pure function of the
//! listing and the snapshots' base backups.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::format::snapshot::BaseBackup;
use crate::format::wal::{WalFile, WalFileKind};
use crate::repo::wal::WalObject;

/// What WAL retention removes and keeps.
#[derive(Clone, Debug, Default)]
pub struct WalRetention {
    /// Archived files no kept base backup needs.
    pub delete: Vec<WalObject>,
    /// Archived files that stay.
    pub kept: usize,
    /// For each cluster with base backups: the oldest start, below which WAL goes.
    pub oldest_start: BTreeMap<u64, String>,
    /// Clusters whose base backups give no usable start (nothing of theirs is removed).
    pub notes: Vec<String>,
}

/// What prune did to the WAL archive (or, with `--dry-run`, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct WalPruneReport {
    /// Archived files removed.
    pub files_deleted: usize,
    /// Their bytes as stored.
    pub bytes_freed: u64,
    /// Archived files kept.
    pub files_kept: usize,
}

/// Decides which archived files go, given every base backup of every kept snapshot.
pub fn plan(files: &[WalObject], base_backups: &[BaseBackup]) -> WalRetention {
    let mut out = WalRetention::default();
    let mut oldest: BTreeMap<u64, Option<(u32, u32)>> = BTreeMap::new();
    for b in base_backups {
        let pos = WalFile::parse(&b.start_wal).filter(|f| f.kind == WalFileKind::Segment).and_then(|f| f.position());
        if pos.is_none() {
            out.notes.push(format!(
                "base backup of system {} (source {}) has an unreadable start WAL {:?}: none of its WAL is removed",
                b.system_id, b.source, b.start_wal
            ));
        }
        let e = oldest.entry(b.system_id).or_insert(pos);
        // An unreadable start pins everything of that cluster.
        *e = match (*e, pos) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
    for (system, pos) in &oldest {
        if let Some((log, seg)) = pos {
            out.oldest_start.insert(*system, format!("{log:08X}{seg:08X}"));
        }
    }
    for f in files {
        let floor = oldest.get(&f.system_id).copied().flatten();
        match (floor, f.file.position()) {
            (Some(floor), Some(pos)) if pos < floor => out.delete.push(f.clone()),
            _ => out.kept += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(system_id: u64, name: &str) -> WalObject {
        WalObject { system_id, file: WalFile::parse(name).unwrap(), size: 10, modified: None, path: name.into() }
    }

    fn backup(system_id: u64, start: &str) -> BaseBackup {
        BaseBackup {
            source: "db".into(),
            system_id,
            pg_version: 150013,
            timeline: 1,
            start_lsn: "0/0".into(),
            start_wal: start.into(),
            stop_lsn: "0/0".into(),
            stop_wal: start.into(),
            stop_time: "2026-12-01T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn wal_before_the_oldest_kept_base_backup_goes_on_every_timeline() {
        let files = [
            obj(1, "000000010000000000000003"),
            obj(1, "000000010000000000000004.00000028.backup"),
            obj(1, "000000010000000000000005"),
            obj(1, "000000020000000000000004.partial"),
            obj(1, "00000002.history"),
            obj(1, "000000020000000100000000"),
            obj(2, "000000010000000000000001"),
            obj(3, "000000010000000000000001"),
        ];
        let backups = [backup(1, "000000020000000000000009"), backup(1, "000000010000000000000005"), backup(3, "junk")];
        let plan = plan(&files, &backups);
        let gone: Vec<&str> = plan.delete.iter().map(|o| o.file.name.as_str()).collect();
        assert_eq!(
            gone,
            [
                "000000010000000000000003",
                "000000010000000000000004.00000028.backup",
                "000000020000000000000004.partial"
            ]
        );
        assert_eq!(plan.kept, 5, "history files, newer WAL, a cluster without base backups, an unreadable start");
        assert_eq!(plan.oldest_start[&1], "0000000000000005");
        assert_eq!(plan.notes.len(), 1);
    }
}

//! Recovery point and recovery time as numbers an operator watches: for each source of a job, the newest moment
//! it can be restored to (a physical PostgreSQL source: its newest archived WAL; any other: its newest
//! snapshot), the job's recovery point (its oldest source's: a restore of the whole application reaches no
//! later), its age against the job's `rpo`, and the last measured RTO (a test restore's duration) against `rto`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Job;
use crate::repo::catalog::{RunRecord, SnapshotEntry};

/// What the WAL archive of one PostgreSQL cluster says, for the recovery point of its physical source.
#[derive(Clone, Debug, Default)]
pub struct ArchiveView {
    /// The newest archived WAL file and when it was archived.
    pub newest: Option<(String, Timestamp)>,
}

/// The WAL archives of the repository by cluster (database system identifier), and whether pushing WAL fails.
#[derive(Clone, Debug, Default)]
pub struct Archives {
    /// Each cluster's archive.
    pub clusters: BTreeMap<u64, ArchiveView>,
    /// `wal-push` has failed since its last success (its last failure), as recorded on this machine.
    pub push_failing: Option<PushFailure>,
}

/// `wal-push` failing: PostgreSQL retries forever, and only its log says so.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushFailure {
    /// When it last failed.
    pub time: Timestamp,
    /// How many pushes failed in a row.
    pub failures: u64,
    /// The file it could not push.
    pub file: String,
    /// Why (no secrets: the message of the failed push).
    pub error: String,
}

/// The newest moment something can be restored to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    /// That moment.
    pub time: Timestamp,
    /// Seconds from then until the status was computed.
    pub age_seconds: i64,
    /// What it is: `snapshot` (the newest backup holding the source) or `wal` (the newest archived WAL).
    pub kind: &'static str,
    /// The source it belongs to (for a job: its source with the oldest recovery point).
    pub source: String,
    /// The snapshot (hex id) or the WAL file it comes from.
    pub from: String,
}

/// One source's recovery point.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecovery {
    /// The source's name.
    pub name: String,
    /// Its kind as in the config.
    pub kind: &'static str,
    /// Its newest recovery point (none before its first backup).
    pub recovery_point: Option<RecoveryPoint>,
}

/// A job's recovery numbers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// The job's recovery point: the oldest of its sources' (none while a source has none).
    pub recovery_point: Option<RecoveryPoint>,
    /// Each source's.
    pub sources: Vec<SourceRecovery>,
    /// The job's `rpo`, in seconds.
    pub rpo_seconds: Option<i64>,
    /// The job's `rto`, in seconds.
    pub rto_seconds: Option<i64>,
    /// How long the last successful test restore took: the job's measured RTO, in seconds.
    pub measured_rto_seconds: Option<f64>,
    /// When that test restore ran.
    pub measured_rto_at: Option<Timestamp>,
}

/// A job's recovery numbers from its snapshots (oldest first), its last successful test restore and the WAL
/// archives.
pub fn of_job(
    job: &Job,
    mine: &[&SnapshotEntry],
    last_good_test_restore: Option<&RunRecord>,
    archives: &Archives,
    now: Timestamp,
) -> Recovery {
    let sources: Vec<SourceRecovery> = job
        .sources
        .iter()
        .map(|s| {
            let spec = s.get_ref();
            let point = source_point(spec.name(), mine, archives, now);
            SourceRecovery { name: spec.name().to_string(), kind: spec.kind(), recovery_point: point }
        })
        .collect();
    let recovery_point = if sources.iter().all(|s| s.recovery_point.is_some()) {
        sources.iter().filter_map(|s| s.recovery_point.clone()).min_by_key(|p| p.time)
    } else {
        None
    };
    Recovery {
        recovery_point,
        sources,
        rpo_seconds: job.rpo.map(|d| d.0.as_secs()),
        rto_seconds: job.rto.map(|d| d.0.as_secs()),
        measured_rto_seconds: last_good_test_restore.map(measured_rto),
        measured_rto_at: last_good_test_restore.map(|r| r.started),
    }
}

/// A test restore's duration: the RTO it measured itself when it says so (a physical source: the time from
/// nothing to a database answering, `measured_rto_secs`), else the whole run.
fn measured_rto(r: &RunRecord) -> f64 {
    r.measured_rto_secs().unwrap_or_else(|| r.finished.duration_since(r.started).as_secs_f64().max(0.0))
}

/// One source's newest recovery point: the newest snapshot that holds it, or for a physical PostgreSQL source
/// the newest WAL archived for its cluster when that is newer.
fn source_point(name: &str, mine: &[&SnapshotEntry], archives: &Archives, now: Timestamp) -> Option<RecoveryPoint> {
    let skipped_prefix = format!("{name} (");
    let newest = mine
        .iter()
        .rev()
        .find(|s| !s.snapshot.summary.skipped_sources.iter().any(|k| k.starts_with(&skipped_prefix)))?;
    let point = |time: Timestamp, kind: &'static str, from: String| RecoveryPoint {
        time,
        age_seconds: now.duration_since(time).as_secs(),
        kind,
        source: name.to_string(),
        from,
    };
    let base = newest.snapshot.base_backups.iter().find(|b| b.source == name);
    let snapshot_point = point(base.map_or(newest.snapshot.time, |b| b.stop_time), "snapshot", newest.id.to_hex());
    let wal = base
        .and_then(|b| archives.clusters.get(&b.system_id))
        .and_then(|a| a.newest.clone())
        .filter(|(_, t)| *t > snapshot_point.time);
    Some(match wal {
        Some((file, time)) => point(time, "wal", file),
        None => snapshot_point,
    })
}

/// The alert conditions of a job's recovery numbers, each with its message: `rpo_exceeded` (the recovery point
/// is older than `rpo`), `rto_exceeded` (the last test restore took longer than `rto`) and `wal_archive_failed`
/// (pushing WAL fails, for a job with a physical source).
pub fn conditions(job_name: &str, r: &Recovery, archives: &Archives) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let (Some(rpo), Some(p)) = (r.rpo_seconds, &r.recovery_point)
        && p.age_seconds > rpo
    {
        out.push((
            "rpo_exceeded",
            format!(
                "job {job_name}: the recovery point ({}, source {}) is {} old, more than its rpo of {}",
                p.kind,
                p.source,
                human(p.age_seconds),
                human(rpo)
            ),
        ));
    }
    if let (Some(rto), Some(took)) = (r.rto_seconds, r.measured_rto_seconds)
        && took > rto as f64
    {
        out.push((
            "rto_exceeded",
            format!(
                "job {job_name}: the last test restore took {}, more than its rto of {}",
                human(took as i64),
                human(rto)
            ),
        ));
    }
    if let Some(f) = &archives.push_failing
        && r.sources.iter().any(|s| s.kind == "postgres-physical")
    {
        out.push((
            "wal_archive_failed",
            format!(
                "WAL archiving fails: {} push(es) in a row, the last at {} for {}: {}",
                f.failures, f.time, f.file, f.error
            ),
        ));
    }
    out
}

/// Seconds as `2d 3h`, `4h 12m` or `3m 20s`.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 86400 {
        format!("{}d {}h", s / 86400, s % 86400 / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m {}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(age: i64, rpo: Option<i64>, took: Option<f64>, rto: Option<i64>, kind: &'static str) -> Recovery {
        let point = RecoveryPoint {
            time: Timestamp::UNIX_EPOCH,
            age_seconds: age,
            kind: "wal",
            source: "pg".into(),
            from: "000000010000000000000003".into(),
        };
        Recovery {
            recovery_point: Some(point.clone()),
            sources: vec![SourceRecovery { name: "pg".into(), kind, recovery_point: Some(point) }],
            rpo_seconds: rpo,
            rto_seconds: rto,
            measured_rto_seconds: took,
            measured_rto_at: None,
        }
    }

    fn kinds(r: &Recovery, a: &Archives) -> Vec<&'static str> {
        conditions("app", r, a).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn each_objective_is_judged_only_when_it_is_set_and_broken() {
        let quiet = Archives::default();
        assert!(kinds(&numbers(7200, None, Some(9e9), None, "postgres-physical"), &quiet).is_empty());
        assert!(kinds(&numbers(3599, Some(3600), Some(100.0), Some(100), "postgres-physical"), &quiet).is_empty());
        assert_eq!(kinds(&numbers(3601, Some(3600), None, Some(100), "files"), &quiet), ["rpo_exceeded"]);
        assert_eq!(kinds(&numbers(10, Some(3600), Some(100.5), Some(100), "files"), &quiet), ["rto_exceeded"]);
        let failing = Archives {
            clusters: BTreeMap::new(),
            push_failing: Some(PushFailure {
                time: Timestamp::UNIX_EPOCH,
                failures: 3,
                file: "000000010000000000000004".into(),
                error: "region a is unavailable".into(),
            }),
        };
        assert_eq!(kinds(&numbers(10, None, None, None, "postgres-physical"), &failing), ["wal_archive_failed"]);
        assert!(kinds(&numbers(10, None, None, None, "postgres"), &failing).is_empty(), "only jobs that archive WAL");
        let msg = &conditions("app", &numbers(7300, Some(3600), None, None, "files"), &quiet)[0].1;
        assert!(msg.contains("2h 1m") && msg.contains("1h 0m"), "{msg}");
    }
}

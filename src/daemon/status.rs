//! Health of each job, for `gumvault status`, the HTTP endpoint and the daemon's alerts: the newest backup, its
//! age against the thresholds, the next scheduled backup, and the last check and test restore. The JSON keys
//! (`status`, `lastBackup`, `size`, `nextBackup`, …) are meant to be shown as they are on an admin page.

use serde::Serialize;

use super::recovery::{self, ArchiveView, Archives, PushFailure, Recovery};
use crate::config::{Config, Job};
use crate::error::Result;
use crate::ops::sync::RegionHealth;
use crate::repo::catalog::{Catalog, RunRecord, SnapshotEntry};
use crate::repo::session::Session;

/// A job's (or the whole installation's) health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Backed up recently enough, and the last runs succeeded.
    Healthy,
    /// Needs a look: a backup older than `warning_after`, a failed check or test restore, or a region in trouble.
    Warning,
    /// Needs action now: no backup, one older than `critical_after`, or a failed backup run.
    Critical,
}

impl Health {
    /// The name as shown and serialised: `healthy`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }

    /// 0, 1, 2 for metrics.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// The newest backup of a job: the snapshot, and how old it is.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Seconds from the backup's start until the status was computed.
    pub age_seconds: i64,
    /// The snapshot (its time, id, size, what it added, how long it took).
    #[serde(flatten)]
    pub point: HistoryPoint,
}

/// A recorded run, as shown.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// When the run started.
    pub time: jiff::Timestamp,
    /// True if the run succeeded.
    pub ok: bool,
    /// How long the run took, in seconds.
    pub duration_seconds: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// A backup that saved its snapshot without some inputs it could not read (exit 3): it succeeded, and its
    /// snapshot lacks `unreadable`.
    pub incomplete: bool,
    /// The inputs an incomplete backup could not read (paths, or S3 objects; the first hundred).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// How many inputs it could not read in all.
    #[serde(skip_serializing_if = "is_zero")]
    pub unreadable_count: u64,
    /// Kind-specific details (e.g. a test restore's query results).
    pub detail: serde_json::Value,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&RunRecord> for RunInfo {
    fn from(r: &RunRecord) -> RunInfo {
        let (unreadable, unreadable_count) = r.unreadable();
        RunInfo {
            time: r.started,
            ok: r.ok,
            duration_seconds: r.finished.duration_since(r.started).as_secs_f64().max(0.0),
            error: r.error.clone(),
            incomplete: r.incomplete(),
            unreadable,
            unreadable_count,
            detail: r.detail.clone(),
        }
    }
}

/// One job's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's name, as in `[jobs.NAME]`.
    pub name: String,
    /// The job's health.
    pub status: Health,
    /// Why it is not healthy.
    pub reasons: Vec<String>,
    /// The job's newest snapshot, if it has one.
    pub last_backup: Option<BackupInfo>,
    /// Size of the newest snapshot (bytes), for admin pages.
    pub size: Option<u64>,
    /// When the job's schedule next has a backup slot (without the random delay).
    pub next_backup: Option<jiff::Timestamp>,
    /// The last completed backup run, successful or not.
    pub last_run: Option<RunInfo>,
    /// The last completed check.
    pub last_check: Option<RunInfo>,
    /// The last completed test restore.
    pub last_test_restore: Option<RunInfo>,
    /// Failed runs in the recorded history, by kind.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Snapshots of this job, oldest first: time, size, duration (for the dashboard's charts).
    pub history: Vec<HistoryPoint>,
    /// The recovery point (per job and per source), its `rpo`, and the measured RTO against `rto`.
    #[serde(flatten)]
    pub recovery: Recovery,
}

/// One snapshot of a job, for charts.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// The snapshot's id (hex).
    pub snapshot: String,
    /// Logical size of the snapshot, in bytes.
    pub size: u64,
    /// Plaintext bytes of the new data the backup added to the repository.
    pub bytes_added: u64,
    /// How long the backup took, in seconds.
    pub duration_seconds: f64,
}

impl HistoryPoint {
    /// The point of one snapshot.
    pub fn of(s: &SnapshotEntry) -> HistoryPoint {
        HistoryPoint {
            time: s.snapshot.time,
            snapshot: s.id.to_hex(),
            size: s.snapshot.summary.total_bytes,
            bytes_added: s.snapshot.summary.bytes_added,
            duration_seconds: s.snapshot.summary.duration_secs,
        }
    }
}

/// Everything `status` reports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The worst health of any job, and at least `warning` when a region is unreachable or lacks objects.
    pub status: Health,
    /// When this status was computed.
    pub generated: jiff::Timestamp,
    /// Every job of the config, by name.
    pub jobs: Vec<JobStatus>,
    /// Each region's health: present when the repository has several regions or it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<RegionHealth>>,
}

/// The status of every job of the config, now, from an open repository: with each region's health when the
/// repository has several regions or `with_regions` asks for it.
pub fn of_session(config: &Config, s: &Session, with_regions: bool, now: jiff::Timestamp) -> Result<Status> {
    let regions =
        if with_regions || s.repo.region_count() > 1 { Some(crate::ops::sync::health(&s.repo)?) } else { None };
    compute(config, &s.catalog, now, regions, &archives_of(&s.repo, &s.cache_dir, &s.url))
}

/// What the repository's WAL archives say (one listing of `wal/`), for the recovery points of physical sources,
/// and whether `wal-push` from this machine (with this cache directory) fails. Neither is fatal to a status: an
/// archive that cannot be listed shows as no archive (the regions' health says why), a state file that cannot be
/// read as no failure, each with a warning.
pub fn archives_of(repo: &crate::repo::Repository, cache_dir: &std::path::Path, url: &str) -> Archives {
    let clusters = match crate::ops::wal::archive_status(repo) {
        Ok(summaries) => summaries
            .into_iter()
            .map(|a| {
                let newest = a.newest_segment.zip(a.newest_time);
                (a.system_id, ArchiveView { newest })
            })
            .collect(),
        Err(e) => {
            eprintln!("gumvault: warning: cannot list the WAL archive: {e}");
            Default::default()
        }
    };
    let push_failing = match crate::ops::wal::read_push_state(cache_dir, url) {
        Ok(state) => state.and_then(|s| push_failure(&s)),
        Err(e) => {
            eprintln!("gumvault: warning: {e}");
            None
        }
    };
    Archives { clusters, push_failing }
}

/// The failure of a push state whose newest push failed.
fn push_failure(s: &crate::ops::wal::PushState) -> Option<PushFailure> {
    let last = s.last_failure.as_ref().filter(|_| s.failing())?;
    Some(PushFailure {
        time: last.time,
        failures: s.consecutive_failures,
        file: last.file.clone(),
        error: last.error.clone().unwrap_or_default(),
    })
}

/// Computes every job's status at `now`.
pub fn compute(
    config: &Config,
    catalog: &Catalog,
    now: jiff::Timestamp,
    regions: Option<Vec<RegionHealth>>,
    archives: &Archives,
) -> Result<Status> {
    let snapshots = catalog.snapshots()?;
    let mut jobs = Vec::new();
    for (name, job) in &config.jobs {
        let mine: Vec<&SnapshotEntry> =
            snapshots.iter().filter(|s| s.snapshot.job.as_deref() == Some(name.as_str())).collect();
        jobs.push(job_status(catalog, name, job, &mine, now, archives)?);
    }
    let mut overall = jobs.iter().map(|j| j.status).max().unwrap_or(Health::Healthy);
    if let Some(rs) = &regions
        && rs.iter().any(|r| !r.reachable || r.missing > 0)
    {
        overall = overall.max(Health::Warning);
    }
    Ok(Status { status: overall, generated: now, jobs, regions })
}

/// One job's status from its snapshots (oldest first) and its recorded runs.
fn job_status(
    catalog: &Catalog,
    name: &str,
    job: &Job,
    mine: &[&SnapshotEntry],
    now: jiff::Timestamp,
    archives: &Archives,
) -> Result<JobStatus> {
    let history = history_of(mine, now);
    let last_backup = mine
        .last()
        .map(|s| BackupInfo { age_seconds: now.duration_since(s.snapshot.time).as_secs(), point: HistoryPoint::of(s) });
    // Runs interrupted by a daemon shutdown neither failed nor did their work: the one before them counts.
    let last_run = catalog.last_completed_run(name, "backup")?;
    let last_check = catalog.last_completed_run(name, "check")?;
    let last_test_restore = catalog.last_completed_run(name, "test-restore")?;
    let mut failures = std::collections::BTreeMap::new();
    for kind in RUN_KINDS {
        let n = catalog.failed_runs(name, kind)?;
        if n > 0 {
            failures.insert(kind.to_string(), n);
        }
    }
    let last_good_test_restore = catalog.runs(name, "test-restore", 50)?.into_iter().find(|r| r.ok);
    let recovery = recovery::of_job(job, mine, last_good_test_restore.as_ref(), archives, now);
    let (mut status, mut reasons) =
        judge(job, last_backup.as_ref(), last_run.as_ref(), last_check.as_ref(), last_test_restore.as_ref());
    for (kind, message) in recovery::conditions(name, &recovery, archives) {
        status = status.max(if kind == "rto_exceeded" { Health::Warning } else { Health::Critical });
        reasons.push(message);
    }
    Ok(JobStatus {
        name: name.to_string(),
        status,
        reasons,
        size: last_backup.as_ref().map(|b| b.point.size),
        last_backup,
        next_backup: job.schedule.next_after(now, &jiff::tz::TimeZone::system()),
        last_run: last_run.as_ref().map(RunInfo::from),
        last_check: last_check.as_ref().map(RunInfo::from),
        last_test_restore: last_test_restore.as_ref().map(RunInfo::from),
        failures,
        history,
        recovery,
    })
}

/// The job's snapshots of the last 30 days, for charts.
fn history_of(mine: &[&SnapshotEntry], now: jiff::Timestamp) -> Vec<HistoryPoint> {
    let cutoff = now - jiff::SignedDuration::from_hours(24 * 30);
    mine.iter().filter(|s| s.snapshot.time >= cutoff).map(|s| HistoryPoint::of(s)).collect()
}

/// The kinds of runs the daemon records.
pub const RUN_KINDS: [&str; 5] = ["backup", "forget", "prune", "check", "test-restore"];

/// Health from the newest backup's age and the last runs.
fn judge(
    job: &Job,
    last_backup: Option<&BackupInfo>,
    last_run: Option<&RunRecord>,
    last_check: Option<&RunRecord>,
    last_test_restore: Option<&RunRecord>,
) -> (Health, Vec<String>) {
    let mut health = Health::Healthy;
    let mut reasons = Vec::new();
    let mut worse = |h: Health, why: String| {
        health = health.max(h);
        reasons.push(why);
    };
    match last_backup {
        None => worse(Health::Critical, "no backup yet".into()),
        Some(b) => {
            let age = jiff::SignedDuration::from_secs(b.age_seconds);
            if age > job.critical_after.0 {
                worse(Health::Critical, format!("the newest backup is {} old", human(age)));
            } else if age > job.warning_after.0 {
                worse(Health::Warning, format!("the newest backup is {} old", human(age)));
            }
        }
    }
    if let Some(r) = last_run.filter(|r| !r.ok) {
        worse(Health::Critical, format!("the last backup run failed: {}", r.error.as_deref().unwrap_or("see the log")));
    }
    if let Some(r) = last_run.filter(|r| r.ok && r.incomplete()) {
        worse(Health::Warning, incomplete_reason(r));
    }
    if let Some(r) = last_check.filter(|r| !r.ok) {
        worse(Health::Warning, format!("the last check failed: {}", r.error.as_deref().unwrap_or("see the log")));
    }
    if let Some(r) = last_test_restore.filter(|r| !r.ok) {
        worse(
            Health::Warning,
            format!("the last test restore failed: {}", r.error.as_deref().unwrap_or("see the log")),
        );
    }
    (health, reasons)
}

/// What an incomplete backup run lacks, in one line: how many inputs, and the first few of them.
fn incomplete_reason(r: &RunRecord) -> String {
    const SHOWN: usize = 3;
    let (paths, count) = r.unreadable();
    let mut shown: Vec<String> = paths.iter().take(SHOWN).map(|p| format!("{p:?}")).collect();
    if count > shown.len() as u64 {
        shown.push(format!("and {} more", count - shown.len() as u64));
    }
    format!("the last backup run could not read {count} input(s), its snapshot lacks them: {}", shown.join(", "))
}

fn human(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    if s >= 86400 {
        format!("{}d {}h", s / 86400, s % 86400 / 3600)
    } else {
        format!("{}h {}m", s / 3600, s % 3600 / 60)
    }
}

//! Health of each job, for `gumvault status`, the HTTP endpoint and the daemon's alerts: the newest backup, its
//! age against the thresholds, the next scheduled backup, and the last check and test restore. The JSON keys
//! (`status`, `lastBackup`, `size`, `nextBackup`, …) are meant to be shown as they are on an admin page.

use serde::Serialize;

use crate::config::{Config, Job};
use crate::error::Result;
use crate::ops::sync::RegionHealth;
use crate::repo::catalog::{Catalog, RunRecord};

/// A job's (or the whole installation's) health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Warning,
    Critical,
}

impl Health {
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

/// The newest backup of a job.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub time: jiff::Timestamp,
    pub age_seconds: i64,
    pub snapshot: String,
    /// Logical size of the snapshot.
    pub size: u64,
    pub bytes_added: u64,
    pub duration_seconds: f64,
}

/// A recorded run, as shown.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub time: jiff::Timestamp,
    pub ok: bool,
    pub duration_seconds: f64,
    pub error: Option<String>,
    pub detail: serde_json::Value,
}

impl From<&RunRecord> for RunInfo {
    fn from(r: &RunRecord) -> RunInfo {
        RunInfo {
            time: r.started,
            ok: r.ok,
            duration_seconds: r.finished.duration_since(r.started).as_secs_f64().max(0.0),
            error: r.error.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// One job's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub name: String,
    pub status: Health,
    /// Why it is not healthy.
    pub reasons: Vec<String>,
    pub last_backup: Option<BackupInfo>,
    /// Size of the newest snapshot (bytes), for admin pages.
    pub size: Option<u64>,
    pub next_backup: Option<jiff::Timestamp>,
    pub last_run: Option<RunInfo>,
    pub last_check: Option<RunInfo>,
    pub last_test_restore: Option<RunInfo>,
    /// Failed runs in the recorded history, by kind.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Snapshots of this job, oldest first: time, size, duration (for the dashboard's charts).
    pub history: Vec<HistoryPoint>,
}

/// One snapshot of a job, for charts.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    pub time: jiff::Timestamp,
    pub snapshot: String,
    pub size: u64,
    pub bytes_added: u64,
    pub duration_seconds: f64,
}

/// Everything `status` reports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub status: Health,
    pub generated: jiff::Timestamp,
    pub jobs: Vec<JobStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<RegionHealth>>,
}

/// Computes every job's status at `now`.
pub fn compute(
    config: &Config,
    catalog: &Catalog,
    now: jiff::Timestamp,
    regions: Option<Vec<RegionHealth>>,
) -> Result<Status> {
    let snapshots = catalog.snapshots()?;
    let tz = jiff::tz::TimeZone::system();
    let mut jobs = Vec::new();
    for (name, job) in &config.jobs {
        let mine: Vec<_> = snapshots.iter().filter(|s| s.snapshot.job.as_deref() == Some(name.as_str())).collect();
        let cutoff = now - jiff::SignedDuration::from_hours(24 * 30);
        let history: Vec<HistoryPoint> = mine
            .iter()
            .filter(|s| s.snapshot.time >= cutoff)
            .map(|s| HistoryPoint {
                time: s.snapshot.time,
                snapshot: s.id.to_hex(),
                size: s.snapshot.summary.total_bytes,
                bytes_added: s.snapshot.summary.bytes_added,
                duration_seconds: s.snapshot.summary.duration_secs,
            })
            .collect();
        let last_backup = mine.last().map(|s| BackupInfo {
            time: s.snapshot.time,
            age_seconds: now.duration_since(s.snapshot.time).as_secs(),
            snapshot: s.id.to_hex(),
            size: s.snapshot.summary.total_bytes,
            bytes_added: s.snapshot.summary.bytes_added,
            duration_seconds: s.snapshot.summary.duration_secs,
        });
        // Runs interrupted by a daemon shutdown neither failed nor did their work: the one before them counts.
        let last = |kind: &str| -> Result<Option<RunRecord>> { catalog.last_completed_run(name, kind) };
        let last_run = last("backup")?;
        let last_check = last("check")?;
        let last_test_restore = last("test-restore")?;
        let mut failures = std::collections::BTreeMap::new();
        for kind in ["backup", "forget", "prune", "check", "test-restore"] {
            let n = catalog.failed_runs(name, kind)?;
            if n > 0 {
                failures.insert(kind.to_string(), n);
            }
        }
        let (status, reasons) =
            judge(job, last_backup.as_ref(), last_run.as_ref(), last_check.as_ref(), last_test_restore.as_ref());
        jobs.push(JobStatus {
            name: name.clone(),
            status,
            reasons,
            size: last_backup.as_ref().map(|b| b.size),
            last_backup,
            next_backup: job.schedule.next_after(now, &tz),
            last_run: last_run.as_ref().map(RunInfo::from),
            last_check: last_check.as_ref().map(RunInfo::from),
            last_test_restore: last_test_restore.as_ref().map(RunInfo::from),
            failures,
            history,
        });
    }
    let mut overall = jobs.iter().map(|j| j.status).max().unwrap_or(Health::Healthy);
    if let Some(rs) = &regions
        && rs.iter().any(|r| !r.reachable || r.missing > 0)
    {
        overall = overall.max(Health::Warning);
    }
    Ok(Status { status: overall, generated: now, jobs, regions })
}

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

fn human(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    if s >= 86400 {
        format!("{}d {}h", s / 86400, s % 86400 / 3600)
    } else {
        format!("{}h {}m", s / 3600, s % 3600 / 60)
    }
}

/// The status in Prometheus' text exposition format.
pub fn metrics(status: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let job = |j: &JobStatus| format!("{{job=\"{}\"}}", j.name);
    let per_job = |f: &dyn Fn(&JobStatus) -> Option<f64>| -> Vec<(String, f64)> {
        status.jobs.iter().filter_map(|j| f(j).map(|v| (job(j), v))).collect()
    };
    family(
        "gumvault_job_health",
        "gauge",
        "Health of the job: 0 healthy, 1 warning, 2 critical.",
        per_job(&|j| Some(j.status.level() as f64)),
    );
    family(
        "gumvault_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the newest backup of the job.",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.time.as_second() as f64)),
    );
    family(
        "gumvault_backup_age_seconds",
        "gauge",
        "Age of the newest backup.",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.age_seconds as f64)),
    );
    family(
        "gumvault_backup_duration_seconds",
        "gauge",
        "Duration of the newest backup.",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.duration_seconds)),
    );
    family(
        "gumvault_backup_size_bytes",
        "gauge",
        "Logical size of the newest snapshot.",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.size as f64)),
    );
    family(
        "gumvault_backup_added_bytes",
        "gauge",
        "Bytes the newest backup added to the repository (before compression).",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.bytes_added as f64)),
    );
    family(
        "gumvault_dedup_ratio",
        "gauge",
        "Logical size of the newest snapshot divided by what it added.",
        per_job(&|j| j.last_backup.as_ref().map(|b| b.size as f64 / (b.bytes_added.max(1)) as f64)),
    );
    family(
        "gumvault_next_backup_timestamp_seconds",
        "gauge",
        "Unix time of the next scheduled backup.",
        per_job(&|j| j.next_backup.map(|t| t.as_second() as f64)),
    );
    let mut fails = Vec::new();
    for j in &status.jobs {
        for kind in ["backup", "forget", "prune", "check", "test-restore"] {
            fails.push((format!("{{job=\"{}\",kind=\"{kind}\"}}", j.name), *j.failures.get(kind).unwrap_or(&0) as f64));
        }
    }
    family("gumvault_run_failures_total", "counter", "Failed runs recorded, by job and kind.", fails);
    family(
        "gumvault_last_check_success",
        "gauge",
        "1 when the last check passed, 0 when it failed.",
        per_job(&|j| j.last_check.as_ref().map(|r| r.ok as u8 as f64)),
    );
    family(
        "gumvault_last_test_restore_success",
        "gauge",
        "1 when the last test restore passed, 0 when it failed.",
        per_job(&|j| j.last_test_restore.as_ref().map(|r| r.ok as u8 as f64)),
    );
    if let Some(regions) = &status.regions {
        let r = |f: &dyn Fn(&RegionHealth) -> f64| -> Vec<(String, f64)> {
            regions.iter().map(|x| (format!("{{region=\"{}\"}}", x.name), f(x))).collect()
        };
        family("gumvault_region_up", "gauge", "1 when the region answers.", r(&|x| x.reachable as u8 as f64));
        family("gumvault_region_objects", "gauge", "Objects in the region.", r(&|x| x.objects as f64));
        family("gumvault_region_bytes", "gauge", "Bytes in the region.", r(&|x| x.bytes as f64));
        family(
            "gumvault_region_missing_objects",
            "gauge",
            "Objects other regions hold that this one lacks.",
            r(&|x| x.missing as f64),
        );
    }
    out
}

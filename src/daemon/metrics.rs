//! Job health in Prometheus' text exposition format, for `/metrics`.

use std::fmt::Write;

use super::status::{JobStatus, RUN_KINDS, Status};
use crate::ops::sync::RegionHealth;

/// Samples of one metric: label set and value.
type Samples = Vec<(String, f64)>;

/// A job's value of a gauge (none when there is nothing to say).
type PerJob<'a> = &'a dyn Fn(&JobStatus) -> Option<f64>;

/// A per-job gauge: name, help, and its value for a job (none when there is nothing to say).
type Gauge<'a> = (&'a str, &'a str, &'a dyn Fn(&JobStatus) -> Option<f64>);

/// Writes one metric family: its help, its type and its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: Samples) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// The status in Prometheus' text exposition format.
pub fn metrics(status: &Status) -> String {
    let mut out = String::new();
    job_metrics(&mut out, &status.jobs);
    if let Some(regions) = &status.regions {
        region_metrics(&mut out, regions);
    }
    out
}

/// One gauge per job and what is known of it.
fn job_metrics(out: &mut String, jobs: &[JobStatus]) {
    let per_job = |f: &dyn Fn(&JobStatus) -> Option<f64>| -> Samples {
        jobs.iter().filter_map(|j| f(j).map(|v| (format!("{{job=\"{}\"}}", j.name), v))).collect()
    };
    let backups: [Gauge<'_>; 8] = [
        ("gumvault_job_health", "Health of the job: 0 healthy, 1 warning, 2 critical.", &|j| {
            Some(j.status.level() as f64)
        }),
        ("gumvault_last_success_timestamp_seconds", "Unix time of the newest backup of the job.", &|j| {
            j.last_backup.as_ref().map(|b| b.point.time.as_second() as f64)
        }),
        ("gumvault_backup_age_seconds", "Age of the newest backup.", &|j| {
            j.last_backup.as_ref().map(|b| b.age_seconds as f64)
        }),
        ("gumvault_backup_duration_seconds", "Duration of the newest backup.", &|j| {
            j.last_backup.as_ref().map(|b| b.point.duration_seconds)
        }),
        ("gumvault_backup_size_bytes", "Logical size of the newest snapshot.", &|j| {
            j.last_backup.as_ref().map(|b| b.point.size as f64)
        }),
        (
            "gumvault_backup_added_bytes",
            "Bytes the newest backup added to the repository (before compression).",
            &|j| j.last_backup.as_ref().map(|b| b.point.bytes_added as f64),
        ),
        ("gumvault_dedup_ratio", "Logical size of the newest snapshot divided by what it added.", &|j| {
            j.last_backup.as_ref().map(|b| b.point.size as f64 / (b.point.bytes_added.max(1)) as f64)
        }),
        ("gumvault_next_backup_timestamp_seconds", "Unix time of the next scheduled backup.", &|j| {
            j.next_backup.map(|t| t.as_second() as f64)
        }),
    ];
    let checks: [Gauge<'_>; 2] = [
        ("gumvault_last_check_success", "1 when the last check passed, 0 when it failed.", &|j| {
            j.last_check.as_ref().map(|r| r.ok as u8 as f64)
        }),
        ("gumvault_last_test_restore_success", "1 when the last test restore passed, 0 when it failed.", &|j| {
            j.last_test_restore.as_ref().map(|r| r.ok as u8 as f64)
        }),
    ];
    for (name, help, f) in backups {
        family(out, name, "gauge", help, per_job(f));
    }
    family(out, "gumvault_run_failures_total", "counter", "Failed runs recorded, by job and kind.", failures(jobs));
    for (name, help, f) in checks {
        family(out, name, "gauge", help, per_job(f));
    }
    recovery_metrics(out, jobs, &per_job);
}

/// The recovery numbers: each source's recovery point and age, the job's targets and its measured RTO.
fn recovery_metrics(out: &mut String, jobs: &[JobStatus], per_job: &dyn Fn(PerJob<'_>) -> Samples) {
    let per_source = |f: &dyn Fn(&super::recovery::RecoveryPoint) -> f64| -> Samples {
        let mut samples = Vec::new();
        for j in jobs {
            for s in &j.recovery.sources {
                if let Some(p) = &s.recovery_point {
                    samples.push((format!("{{job=\"{}\",source=\"{}\",kind=\"{}\"}}", j.name, s.name, p.kind), f(p)));
                }
            }
        }
        samples
    };
    let help = "Unix time of the newest point the source can be restored to (newest snapshot, or archived WAL).";
    family(out, "gumvault_recovery_point_timestamp_seconds", "gauge", help, per_source(&|p| p.time.as_second() as f64));
    let help = "Age of the newest point the source can be restored to: the data lost if it were lost now.";
    family(out, "gumvault_recovery_point_age_seconds", "gauge", help, per_source(&|p| p.age_seconds as f64));
    let job_gauges: [Gauge<'_>; 3] = [
        ("gumvault_rpo_seconds", "The job's recovery point objective.", &|j| j.recovery.rpo_seconds.map(|v| v as f64)),
        ("gumvault_rto_seconds", "The job's recovery time objective.", &|j| j.recovery.rto_seconds.map(|v| v as f64)),
        ("gumvault_measured_rto_seconds", "How long the last successful test restore took.", &|j| {
            j.recovery.measured_rto_seconds
        }),
    ];
    for (name, help, f) in job_gauges {
        family(out, name, "gauge", help, per_job(f));
    }
}

/// Failed runs by job and kind (zero included, so rates work from the first scrape).
fn failures(jobs: &[JobStatus]) -> Samples {
    let mut fails = Vec::new();
    for j in jobs {
        for kind in RUN_KINDS {
            fails.push((format!("{{job=\"{}\",kind=\"{kind}\"}}", j.name), *j.failures.get(kind).unwrap_or(&0) as f64));
        }
    }
    fails
}

/// One gauge per region.
fn region_metrics(out: &mut String, regions: &[RegionHealth]) {
    let r = |f: &dyn Fn(&RegionHealth) -> f64| -> Samples {
        regions.iter().map(|x| (format!("{{region=\"{}\"}}", x.name), f(x))).collect()
    };
    family(out, "gumvault_region_up", "gauge", "1 when the region answers.", r(&|x| x.reachable as u8 as f64));
    family(out, "gumvault_region_objects", "gauge", "Objects in the region.", r(&|x| x.objects as f64));
    family(out, "gumvault_region_bytes", "gauge", "Bytes in the region.", r(&|x| x.bytes as f64));
    family(
        out,
        "gumvault_region_missing_objects",
        "gauge",
        "Objects other regions hold that this one lacks.",
        r(&|x| x.missing as f64),
    );
}

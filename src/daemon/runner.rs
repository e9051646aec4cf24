//! The daemon's loop: waits for the next due task, runs it as a child, records the run, applies the job's
//! retention after a backup, and keeps alerts in step with what happened. One task at a time per repository.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::json;

use super::alerts::{self, Alert};
use super::child::{ChildCommand, ChildRun};
use super::clock::Clock;
use super::recovery::{self, Archives};
use super::schedule::{AfterRun, Entry, Role, TaskKind, Timetable};
use super::tasks::{forget_args, lock_extend_args, task_args};
use crate::config::Config;
use crate::repo::catalog::{Catalog, RunRecord, SnapshotEntry};

/// Catalog key of the conditions currently alerted.
const ALERTS_KEY: &str = "alerts_active";

/// Where the daemon writes one line per event (text or JSON, the caller decides).
pub type Log<'a> = &'a (dyn Fn(serde_json::Value) + Sync);

/// What the repository's WAL archives say now (a listing of `wal/` and the local push state).
pub type ArchivesNow<'a> = &'a (dyn Fn() -> Archives + Sync);

/// How often the daemon looks at recovery points and backup ages between tasks (real time only): an RPO of
/// an hour is watched by the minute, not at the next backup six hours later.
const WATCH_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// The conditions the daemon watches between tasks, each alerted once while it holds and once when it clears.
const WATCHED: [&str; 4] = ["backup_stale", "rpo_exceeded", "rto_exceeded", "wal_archive_failed"];

/// A running daemon's state.
pub struct Daemon<'a> {
    /// The config it runs.
    pub config: &'a Config,
    /// How it starts tasks.
    pub child: ChildCommand,
    /// Real or simulated time.
    pub clock: Clock,
    /// Where runs are recorded.
    pub catalog: Catalog,
    /// Where events go.
    pub log: Log<'a>,
    /// The WAL archives, for recovery points.
    archives: ArchivesNow<'a>,
    /// Conditions alerted and not yet cleared: (job, condition).
    alerting: HashSet<(String, String)>,
    /// Which tasks it runs, and so when the jobs' retention runs (see [`Role`]).
    pub role: Role,
}

impl<'a> Daemon<'a> {
    /// A daemon with the alerts a previous run left active (so a restart neither repeats an alert nor loses a
    /// recovery).
    pub fn new(
        config: &'a Config,
        child: ChildCommand,
        clock: Clock,
        catalog: Catalog,
        log: Log<'a>,
        archives: ArchivesNow<'a>,
    ) -> Daemon<'a> {
        let alerting = catalog
            .meta(ALERTS_KEY)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_str::<Vec<(String, String)>>(&v).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        Daemon { config, child, clock, catalog, log, archives, alerting, role: Role::All }
    }

    /// Runs tasks as they fall due until the daemon is stopped (or the simulation ends).
    pub fn run(&mut self, table: &mut Timetable) {
        self.watch(self.clock.now());
        while let Some((i, due)) = table.next_due() {
            let look = self.clock.now() + WATCH_EVERY;
            if !self.clock.is_simulated() && look < due {
                if !self.clock.wait_until(look) {
                    break;
                }
                self.watch(self.clock.now());
                continue;
            }
            if !self.clock.wait_until(due) {
                break;
            }
            let entry = table.entries[i].clone();
            if !self.run_slot(table, i, &entry) {
                break;
            }
        }
    }

    /// Runs one due task (and the retention after a backup); false when a shutdown interrupted it.
    fn run_slot(&mut self, table: &mut Timetable, i: usize, entry: &Entry) -> bool {
        // The maintenance side applies retention before its prune, the backup side never (it may not delete).
        if entry.kind == TaskKind::Prune && self.role == Role::Maintenance && !self.apply_retention(&entry.job) {
            return false;
        }
        // The backup side may not prune, but may keep the locks extended (Object Lock) on the prune schedule.
        let (event, args) = match (self.role, entry.kind) {
            (Role::Backup, TaskKind::Prune) => ("lock-extend", lock_extend_args()),
            (_, kind) => (kind.as_str(), task_args(self.config, &entry.job, kind)),
        };
        let started = self.clock.now();
        let child = self.child.run(&self.clock, &args);
        self.clock.advance(child.elapsed);
        let finished = self.clock.now();
        // A task killed along with the daemon (e.g. systemd stopping the whole unit) is not a failure to alert
        // on or retry: it is logged, and the next start catches the slot up.
        let interrupted = child.interrupted();
        self.record(&entry.job, event, started, finished, &child, interrupted);
        if interrupted {
            (self.log)(json!({
                "time": started.to_string(), "event": event, "job": entry.job,
                "outcome": "interrupted", "exit_code": child.code, "error": child.error,
            }));
            return false;
        }
        let after = table.completed(i, child.ok, finished);
        let outcome = match (child.ok, child.incomplete) {
            (true, false) => "ok",
            (true, true) => "incomplete",
            (false, _) => "failed",
        };
        (self.log)(json!({
            "time": started.to_string(), "event": event, "job": entry.job,
            "outcome": outcome, "exit_code": child.code, "unreadable": child.stdout.get("unreadable"),
            "duration": format!("{:.1}s", child.elapsed.as_secs_f64()),
            "snapshot": child.stdout.get("short_id"), "error": child.error,
            "next": match after { AfterRun::WillRetry(t) => format!("retry at {t}"), _ => String::new() },
        }));
        if entry.kind == TaskKind::Backup && child.ok && self.role == Role::All && !self.apply_retention(&entry.job) {
            return false;
        }
        self.update_alerts(entry, after, &child, finished);
        self.watch(finished);
        true
    }

    /// The job's retention (`forget`) after a successful backup; false when a shutdown interrupted it.
    fn apply_retention(&mut self, job: &str) -> bool {
        let started = self.clock.now();
        let forget = self.child.run(&self.clock, &forget_args(self.config, job));
        self.clock.advance(forget.elapsed);
        let interrupted = forget.interrupted();
        self.record(job, "forget", started, self.clock.now(), &forget, interrupted);
        let outcome = match (forget.ok, interrupted) {
            (true, _) => "ok",
            (false, true) => "interrupted",
            (false, false) => "failed",
        };
        (self.log)(json!({ "time": started.to_string(), "event": "forget", "job": job,
                           "outcome": outcome, "error": forget.error }));
        !interrupted
    }

    /// One alert per condition until it clears: a task that gave up after its retries, and its recovery.
    fn update_alerts(&mut self, entry: &Entry, after: AfterRun, child: &ChildRun, finished: Timestamp) {
        let condition = format!("{}_failed", entry.kind.as_str().replace('-', "_"));
        let key = (entry.job.clone(), condition.clone());
        match after {
            AfterRun::GaveUp(failures) if !self.alerting.contains(&key) => {
                let message = format!(
                    "{} of job {} failed {failures} times in a row: {}",
                    entry.kind.as_str(),
                    entry.job,
                    child.error.as_deref().unwrap_or("see the daemon log")
                );
                self.alert(Alert::new(&condition, &entry.job, "critical", message, finished));
                self.alerting.insert(key);
            }
            AfterRun::Succeeded if self.alerting.remove(&key) => {
                let message = format!("{} of job {} succeeded again", entry.kind.as_str(), entry.job);
                self.alert(Alert::new("recovered", &entry.job, "healthy", message, finished));
            }
            _ => {}
        }
    }

    /// Alerts once per watched condition while it holds, and once more when it clears: a job's newest backup
    /// older than critical_after (`backup_stale`) and its recovery numbers (`rpo_exceeded`, `rto_exceeded`,
    /// `wal_archive_failed`).
    fn watch(&mut self, now: Timestamp) {
        let Ok(snaps) = self.catalog.snapshots() else { return };
        let archives = (self.archives)();
        for (name, job) in &self.config.jobs {
            let mine: Vec<&SnapshotEntry> =
                snaps.iter().filter(|s| s.snapshot.job.as_deref() == Some(name.as_str())).collect();
            let mut holding: Vec<(&'static str, String)> = stale_condition(name, job, &mine, now).into_iter().collect();
            let good_test = self.catalog.runs(name, "test-restore", 50).ok().and_then(|r| r.into_iter().find(|r| r.ok));
            let numbers = recovery::of_job(job, &mine, good_test.as_ref(), &archives, now);
            holding.extend(recovery::conditions(name, &numbers, &archives));
            self.settle(name, &holding, now);
        }
        self.save_alerting();
    }

    /// Alerts the conditions that newly hold, and the recovery of those that no longer do.
    fn settle(&mut self, job: &str, holding: &[(&'static str, String)], now: Timestamp) {
        for kind in WATCHED {
            let key = (job.to_string(), kind.to_string());
            match holding.iter().find(|(k, _)| *k == kind) {
                Some((_, message)) if !self.alerting.contains(&key) => {
                    let severity = if kind == "rto_exceeded" { "warning" } else { "critical" };
                    self.alert(Alert::new(kind, job, severity, message.clone(), now));
                    self.alerting.insert(key);
                }
                None if self.alerting.remove(&key) => {
                    let message = match kind {
                        "backup_stale" => format!("job {job} has a fresh backup again"),
                        "rpo_exceeded" => format!("job {job}: the recovery point is within its rpo again"),
                        "rto_exceeded" => format!("job {job}: the last test restore was within its rto"),
                        _ => format!("job {job}: WAL archiving works again"),
                    };
                    self.alert(Alert::new("recovered", job, "healthy", message, now));
                }
                _ => {}
            }
        }
    }

    fn save_alerting(&self) {
        let mut v: Vec<&(String, String)> = self.alerting.iter().collect();
        v.sort();
        if let Ok(text) = serde_json::to_string(&v) {
            let _ = self.catalog.set_meta(ALERTS_KEY, Some(&text));
        }
    }

    fn alert(&self, a: Alert) {
        let failures = alerts::send(&self.config.alerts, &self.config.child_env(), &a);
        (self.log)(json!({ "time": a.time.to_string(), "event": "alert", "job": a.job, "outcome": a.kind,
                           "message": a.message, "error": if failures.is_empty() { None } else { Some(failures.join("; ")) } }));
    }

    fn record(
        &self,
        job: &str,
        kind: &str,
        started: Timestamp,
        finished: Timestamp,
        child: &ChildRun,
        interrupted: bool,
    ) {
        let snapshot =
            child.stdout.get("snapshot_id").and_then(|v| v.as_str()).and_then(crate::format::id::Id::from_hex);
        let bytes = child.stdout.pointer("/summary/bytes_added").and_then(|v| v.as_u64()).unwrap_or(0);
        let mut record = RunRecord {
            job: job.into(),
            kind: kind.into(),
            started,
            finished,
            ok: child.ok,
            snapshot,
            bytes,
            error: child.error.clone(),
            detail: json!({ "exit_code": child.code, "interrupted": interrupted }),
        };
        if child.incomplete {
            record.mark_incomplete(&unreadable_of(&child.stdout));
        }
        if let Some(rto) = child.stdout.pointer("/report/measured_rto_secs").and_then(|v| v.as_f64()) {
            record.detail["measured_rto_secs"] = rto.into();
        }
        if let Err(e) = self.catalog.record_run(&record) {
            eprintln!("gumvault: warning: could not record the run: {e}");
        }
        super::refresh::state_changed();
    }
}

/// `backup_stale` when the job's newest backup is older than its critical_after.
fn stale_condition(
    name: &str,
    job: &crate::config::Job,
    mine: &[&SnapshotEntry],
    now: Timestamp,
) -> Option<(&'static str, String)> {
    let newest = mine.iter().map(|s| s.snapshot.time).max()?;
    let age = now.duration_since(newest);
    (age > job.critical_after.0).then(|| {
        let message = format!(
            "the newest backup of job {name} is {}h old (threshold {}h)",
            age.as_hours(),
            job.critical_after.0.as_hours()
        );
        ("backup_stale", message)
    })
}

/// The inputs an incomplete backup could not read, from its JSON output.
fn unreadable_of(stdout: &serde_json::Value) -> Vec<String> {
    let listed = stdout.get("unreadable").and_then(|v| v.as_array());
    listed.map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

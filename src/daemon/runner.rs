//! The daemon's loop: waits for the next due task, runs it as a child, records the run, applies the job's
//! retention after a backup, and keeps alerts in step with what happened. One task at a time per repository.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::json;

use super::alerts::{self, Alert};
use super::child::{ChildCommand, ChildRun};
use super::clock::Clock;
use super::schedule::{AfterRun, Entry, TaskKind, Timetable};
use super::tasks::{forget_args, task_args};
use crate::config::Config;
use crate::repo::catalog::{Catalog, RunRecord};

/// Catalog key of the conditions currently alerted.
const ALERTS_KEY: &str = "alerts_active";

/// Where the daemon writes one line per event (text or JSON, the caller decides).
pub type Log<'a> = &'a (dyn Fn(serde_json::Value) + Sync);

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
    /// Conditions alerted and not yet cleared: (job, condition).
    alerting: HashSet<(String, String)>,
}

impl<'a> Daemon<'a> {
    /// A daemon with the alerts a previous run left active (so a restart neither repeats an alert nor loses a
    /// recovery).
    pub fn new(config: &'a Config, child: ChildCommand, clock: Clock, catalog: Catalog, log: Log<'a>) -> Daemon<'a> {
        let alerting = catalog
            .meta(ALERTS_KEY)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_str::<Vec<(String, String)>>(&v).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        Daemon { config, child, clock, catalog, log, alerting }
    }

    /// Runs tasks as they fall due until the daemon is stopped (or the simulation ends).
    pub fn run(&mut self, table: &mut Timetable) {
        self.check_staleness(self.clock.now());
        while let Some((i, due)) = table.next_due() {
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
        let started = self.clock.now();
        let child = self.child.run(&self.clock, &task_args(self.config, &entry.job, entry.kind));
        self.clock.advance(child.elapsed);
        let finished = self.clock.now();
        // A task killed along with the daemon (e.g. systemd stopping the whole unit) is not a failure to alert
        // on or retry: it is logged, and the next start catches the slot up.
        let interrupted = child.interrupted();
        self.record(&entry.job, entry.kind.as_str(), started, finished, &child, interrupted);
        if interrupted {
            (self.log)(json!({
                "time": started.to_string(), "event": entry.kind.as_str(), "job": entry.job,
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
            "time": started.to_string(), "event": entry.kind.as_str(), "job": entry.job,
            "outcome": outcome, "exit_code": child.code, "unreadable": child.stdout.get("unreadable"),
            "duration": format!("{:.1}s", child.elapsed.as_secs_f64()),
            "snapshot": child.stdout.get("short_id"), "error": child.error,
            "next": match after { AfterRun::WillRetry(t) => format!("retry at {t}"), _ => String::new() },
        }));
        if entry.kind == TaskKind::Backup && child.ok && !self.apply_retention(&entry.job) {
            return false;
        }
        self.update_alerts(entry, after, &child, finished);
        self.check_staleness(finished);
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

    /// Alerts once when a job's newest backup is older than critical_after; clears when it is fresh again.
    fn check_staleness(&mut self, now: Timestamp) {
        let Ok(snaps) = self.catalog.snapshots() else { return };
        for (name, job) in &self.config.jobs {
            let newest = snaps
                .iter()
                .filter(|s| s.snapshot.job.as_deref() == Some(name.as_str()))
                .map(|s| s.snapshot.time)
                .max();
            let key = (name.clone(), "backup_stale".to_string());
            let stale = newest.is_some_and(|t| now.duration_since(t) > job.critical_after.0);
            if stale && !self.alerting.contains(&key) {
                let age = now.duration_since(newest.expect("stale implies a backup"));
                let message = format!(
                    "the newest backup of job {name} is {}h old (threshold {}h)",
                    age.as_hours(),
                    job.critical_after.0.as_hours()
                );
                self.alert(Alert::new("backup_stale", name, "critical", message, now));
                self.alerting.insert(key);
            } else if !stale && newest.is_some() && self.alerting.remove(&key) {
                let message = format!("job {name} has a fresh backup again");
                self.alert(Alert::new("recovered", name, "healthy", message, now));
            }
        }
        self.save_alerting();
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

/// The inputs an incomplete backup could not read, from its JSON output.
fn unreadable_of(stdout: &serde_json::Value) -> Vec<String> {
    let listed = stdout.get("unreadable").and_then(|v| v.as_array());
    listed.map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

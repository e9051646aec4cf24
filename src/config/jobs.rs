//! `[jobs.NAME]`: one snapshot's sources, its schedule, health thresholds, retention, prune, check and test
//! restore.

use serde::Deserialize;
use toml::Spanned;

use super::sources::{PhysicalSource, PostgresSource, SourceSpec};
use super::values::{Duration, Schedule, Secret};
use crate::error::{Error, Result};

/// `[jobs.NAME]`: what one `gumvault run NAME` backs up into one snapshot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Host name recorded in the snapshot (default: this machine's).
    pub host: Option<String>,
    /// Tags added besides the job's name.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `[[jobs.NAME.sources]]`: what the job backs up, each source a top-level directory `/NAME` of the snapshot.
    pub sources: Vec<Spanned<SourceSpec>>,
    /// `[jobs.NAME.test_restore]`: how `gumvault test-restore NAME` proves the database dump restores.
    pub test_restore: Option<TestRestore>,
    /// When the daemon backs the job up (cron syntax, local time; default every 6 hours).
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Up to this long a random wait before each scheduled backup (spreads load across machines).
    pub random_delay: Option<Duration>,
    /// Health turns `warning` when the newest backup is older than this (default 7h) ...
    #[serde(default = "default_warning")]
    pub warning_after: Duration,
    /// ... and `critical` after this (default 8h), or when the last run failed.
    #[serde(default = "default_critical")]
    pub critical_after: Duration,
    /// The recovery point objective: how much data the job may lose at most (e.g. "1h"). `status` turns
    /// critical and the daemon alerts (`rpo_exceeded`) when the job's recovery point is older.
    pub rpo: Option<Duration>,
    /// The recovery time objective: how long a restore may take at most (e.g. "4h"). `status` warns and the
    /// daemon alerts (`rto_exceeded`) when the last test restore took longer.
    pub rto: Option<Duration>,
    /// `[jobs.NAME.retention]`: applied after every backup (default: keep_within = "30d").
    #[serde(default)]
    pub retention: Retention,
    /// `[jobs.NAME.prune]` (default: weekly, Sunday 03:00).
    #[serde(default)]
    pub prune: PruneSchedule,
    /// `[jobs.NAME.check]` (default: daily at 04:00, read_data_subset = "auto": every pack within a week).
    #[serde(default)]
    pub check: CheckSchedule,
}

fn default_schedule() -> Schedule {
    Schedule::parse("0 */6 * * *").expect("the default schedule parses")
}

fn default_warning() -> Duration {
    Duration(jiff::SignedDuration::from_hours(7))
}

fn default_critical() -> Duration {
    Duration(jiff::SignedDuration::from_hours(8))
}

/// `[jobs.NAME.retention]`: the `forget` policy the daemon applies to the job's snapshots after each backup.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep every snapshot taken within this long of now, e.g. `"30d"` (default `"30d"`).
    #[serde(default = "default_keep_within")]
    pub keep_within: Option<String>,
    /// Keep the N newest snapshots (default 0: rule off, as for the rules below).
    #[serde(default)]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    #[serde(default)]
    pub keep_hourly: usize,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    #[serde(default)]
    pub keep_daily: usize,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one.
    #[serde(default)]
    pub keep_weekly: usize,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    #[serde(default)]
    pub keep_monthly: usize,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    #[serde(default)]
    pub keep_yearly: usize,
}

fn default_keep_within() -> Option<String> {
    Some("30d".into())
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_within: default_keep_within(),
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
        }
    }
}

impl Retention {
    /// The `forget` flags of this policy.
    pub fn forget_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(w) = &self.keep_within {
            a.extend(["--keep-within".to_string(), w.clone()]);
        }
        for (flag, n) in [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
            ("--keep-yearly", self.keep_yearly),
        ] {
            if n > 0 {
                a.extend([flag.to_string(), n.to_string()]);
            }
        }
        a
    }
}

/// `[jobs.NAME.prune]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSchedule {
    /// When the daemon runs `prune` (cron syntax, local time; default `"0 3 * * 0"`, Sunday 03:00).
    #[serde(default = "default_prune_schedule")]
    pub schedule: Schedule,
}

fn default_prune_schedule() -> Schedule {
    Schedule::parse("0 3 * * 0").expect("the default schedule parses")
}

impl Default for PruneSchedule {
    fn default() -> Self {
        PruneSchedule { schedule: default_prune_schedule() }
    }
}

/// `[jobs.NAME.check]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSchedule {
    /// When the daemon runs `check` (cron syntax, local time; default `"0 4 * * *"`, daily at 04:00).
    #[serde(default = "default_check_schedule")]
    pub schedule: Schedule,
    /// `10%`, `3/7`, `auto` (default) or `all`.
    #[serde(default = "default_subset")]
    pub read_data_subset: String,
}

fn default_check_schedule() -> Schedule {
    Schedule::parse("0 4 * * *").expect("the default schedule parses")
}

fn default_subset() -> String {
    "auto".into()
}

impl Default for CheckSchedule {
    fn default() -> Self {
        CheckSchedule { schedule: default_check_schedule(), read_data_subset: default_subset() }
    }
}

/// `[jobs.NAME.test_restore]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRestore {
    /// When the daemon runs it (default: monthly, the 1st at 05:00).
    #[serde(default = "default_test_restore_schedule")]
    pub schedule: Schedule,
    /// Which postgres or postgres-physical source (default: the job's only one).
    pub source: Option<String>,
    /// A connection allowed to create and drop databases (default: the source's URL).
    pub admin_url: Option<Secret>,
    /// Queries run against the restored database; each must pass for the test restore to succeed.
    #[serde(default)]
    pub queries: Vec<VerifyQuery>,
    /// Physical sources: the database the queries run in (default: the source URL's, else `postgres`).
    pub database: Option<String>,
    /// Physical sources: the role the queries run as (default: the source URL's user).
    pub user: Option<String>,
    /// Physical sources: the OS user the scratch server runs as when gumvault runs as root (default `postgres`).
    pub os_user: Option<String>,
    /// Physical sources: how long recovery may take before the test restore fails (default `"1h"`).
    #[serde(default = "default_recovery_timeout")]
    pub recovery_timeout: Duration,
}

fn default_recovery_timeout() -> Duration {
    Duration(jiff::SignedDuration::from_hours(1))
}

/// The source a test restore works on: a dump loaded into a scratch database, or a base backup recovered into a
/// scratch cluster.
#[derive(Clone, Copy, Debug)]
pub enum TestRestoreSource<'a> {
    /// A `postgres` source.
    Logical(&'a PostgresSource),
    /// A `postgres-physical` source.
    Physical(&'a PhysicalSource),
}

impl TestRestoreSource<'_> {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            TestRestoreSource::Logical(p) => &p.name,
            TestRestoreSource::Physical(p) => &p.name,
        }
    }
}

/// A verification query run against the restored database.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// The SQL to run, e.g. `SELECT COUNT(*) FROM users`.
    pub sql: String,
    /// The first column of the first row must be a number at least this large.
    pub min: Option<i64>,
    /// The query must return at least this many rows.
    pub min_rows: Option<u64>,
}

fn default_test_restore_schedule() -> Schedule {
    Schedule::parse("0 5 1 * *").expect("the default schedule parses")
}

impl Job {
    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().map(|s| s.get_ref()).find(|s| s.name() == name)
    }

    /// The postgres source `test-restore` uses, when it is a `postgres` (dump) source.
    pub fn test_restore_source(&self) -> Result<&PostgresSource> {
        match self.test_restore_target()? {
            TestRestoreSource::Logical(p) => Ok(p),
            TestRestoreSource::Physical(p) => Err(Error::InvalidInput(format!(
                "source {:?} is a postgres-physical source: its test restore recovers a scratch cluster",
                p.name
            ))),
        }
    }

    /// The `postgres` or `postgres-physical` source `test-restore` uses: `test_restore.source`, else the only one.
    pub fn test_restore_target(&self) -> Result<TestRestoreSource<'_>> {
        let wanted = self.test_restore.as_ref().and_then(|t| t.source.as_deref());
        let found: Vec<TestRestoreSource<'_>> = self
            .sources
            .iter()
            .filter_map(|s| match s.get_ref() {
                SourceSpec::Postgres(p) => Some(TestRestoreSource::Logical(p)),
                SourceSpec::PostgresPhysical(p) => Some(TestRestoreSource::Physical(p)),
                _ => None,
            })
            .filter(|s| wanted.is_none_or(|w| w == s.name()))
            .collect();
        match (found.as_slice(), wanted) {
            ([one], _) => Ok(*one),
            ([], Some(w)) => Err(Error::InvalidInput(format!("the job has no postgres source named {w:?}"))),
            ([], None) => Err(Error::InvalidInput("the job has no postgres source to test".into())),
            _ => Err(Error::InvalidInput(
                "the job has several postgres sources: name one with test_restore.source".into(),
            )),
        }
    }
}

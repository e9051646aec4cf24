//! The daemon's timetable: for every job, when its backup, prune, check and test restore are next due; retries
//! with backoff after a failure; one catch-up run at start for slots missed while the machine was off. Pure
//! logic over an explicit `now`, so tests drive it with simulated time.

use jiff::{SignedDuration, Timestamp};

use crate::config::{Config, Schedule};

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    /// `run JOB`, then the job's retention (`forget`).
    Backup,
    /// `prune` of the repository, on the job's `[prune]` schedule.
    Prune,
    /// `check` of the repository, reading the job's `read_data_subset` of packs, on its `[check]` schedule.
    Check,
    /// `test-restore JOB`, on the job's `[test_restore]` schedule.
    TestRestore,
}

impl TaskKind {
    /// The name runs are recorded under.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Backup => "backup",
            TaskKind::Prune => "prune",
            TaskKind::Check => "check",
            TaskKind::TestRestore => "test-restore",
        }
    }
}

/// Which tasks a daemon runs (`daemon --role`): all of them, or one side of a split between the machine that
/// backs up with credentials that may only add, and one that may delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Everything; each backup is followed by the job's retention (`forget`).
    #[default]
    All,
    /// Backups, checks and test restores, no retention, and on the prune schedule `lock extend` instead of prune:
    /// nothing that deletes.
    Backup,
    /// Prunes, each preceded by the job's retention (`forget`).
    Maintenance,
}

impl Role {
    /// True when a daemon in this role schedules tasks of `kind`.
    pub fn runs(self, kind: TaskKind) -> bool {
        match self {
            Role::All => true,
            Role::Backup => true,
            Role::Maintenance => kind == TaskKind::Prune,
        }
    }
}

/// Retries after a failed run, before its next regular slot: after 5 and then 10 minutes.
pub const MAX_RETRIES: u32 = 2;
const FIRST_RETRY: SignedDuration = SignedDuration::from_mins(5);

/// One scheduled task.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The job the task belongs to.
    pub job: String,
    /// What the task does.
    pub kind: TaskKind,
    /// When its regular slots are.
    pub schedule: Schedule,
    /// The next regular slot (random delay included).
    pub next: Timestamp,
    /// Failures in a row.
    pub failures: u32,
    /// When a failed run is retried, if a retry is pending.
    pub retry_at: Option<Timestamp>,
    random_delay: SignedDuration,
}

/// What happened to an entry after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterRun {
    /// The run succeeded; the entry waits for its next slot.
    Succeeded,
    /// Failed; retried at the given time.
    WillRetry(Timestamp),
    /// Failed this many times in a row, out of retries: alert, then wait for the next slot (which starts a new
    /// round of retries).
    GaveUp(u32),
}

/// Every task of every job.
#[derive(Clone, Debug)]
pub struct Timetable {
    /// The tasks: job by job (by name), its backup, prune, check and, if configured, test restore.
    pub entries: Vec<Entry>,
    tz: jiff::tz::TimeZone,
}

impl Timetable {
    /// Builds the timetable at `now`. `last_run(job, kind)` is when that task last ran (any outcome); a task whose
    /// most recent slot passed without a run is due at once (missed slots are caught up once, not one by one).
    pub fn new(
        config: &Config,
        now: Timestamp,
        tz: jiff::tz::TimeZone,
        last_run: impl Fn(&str, TaskKind) -> Option<Timestamp>,
    ) -> Timetable {
        let mut entries = Vec::new();
        for (name, job) in &config.jobs {
            let delay = job.random_delay.map(|d| d.0).unwrap_or(SignedDuration::ZERO);
            let mut add = |kind: TaskKind, schedule: &Schedule, delay: SignedDuration| {
                let missed = match (schedule.previous_at_or_before(now, &tz), last_run(name, kind)) {
                    (Some(slot), Some(ran)) => ran < slot,
                    // Never ran: a backup is due now; maintenance waits for its slot.
                    (Some(_), None) => kind == TaskKind::Backup,
                    (None, _) => false,
                };
                let next = if missed { now } else { next_slot(schedule, now, &tz, delay) };
                entries.push(Entry {
                    job: name.clone(),
                    kind,
                    schedule: schedule.clone(),
                    next,
                    failures: 0,
                    retry_at: None,
                    random_delay: delay,
                });
            };
            add(TaskKind::Backup, &job.schedule, delay);
            add(TaskKind::Prune, &job.prune.schedule, SignedDuration::ZERO);
            add(TaskKind::Check, &job.check.schedule, SignedDuration::ZERO);
            if let Some(t) = &job.test_restore {
                add(TaskKind::TestRestore, &t.schedule, SignedDuration::ZERO);
            }
        }
        Timetable { entries, tz }
    }

    /// The entry due first and when; ties go to the order of the config (backups before maintenance).
    pub fn next_due(&self) -> Option<(usize, Timestamp)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.retry_at.map_or(e.next, |r| r.min(e.next))))
            .min_by_key(|(i, t)| (*t, *i))
    }

    /// Records the outcome of entry `i`'s run, which ended at `now`, and plans its next run.
    pub fn completed(&mut self, i: usize, ok: bool, now: Timestamp) -> AfterRun {
        let tz = self.tz.clone();
        let e = &mut self.entries[i];
        // The next regular slot is always after this run (a run that overran a slot does not repeat at once).
        if e.next <= now {
            e.next = next_slot(&e.schedule, now, &tz, e.random_delay);
        }
        if ok {
            e.failures = 0;
            e.retry_at = None;
            return AfterRun::Succeeded;
        }
        e.failures += 1;
        if e.failures <= MAX_RETRIES {
            let wait = FIRST_RETRY * (1i32 << (e.failures - 1));
            let at = now.checked_add(wait).unwrap_or(Timestamp::MAX);
            if at < e.next {
                e.retry_at = Some(at);
                return AfterRun::WillRetry(at);
            }
        }
        e.retry_at = None;
        let failures = e.failures;
        e.failures = 0;
        AfterRun::GaveUp(failures)
    }
}

/// The first slot after `now`, plus a random delay of up to `delay`.
fn next_slot(schedule: &Schedule, now: Timestamp, tz: &jiff::tz::TimeZone, delay: SignedDuration) -> Timestamp {
    let slot = schedule.next_after(now, tz).unwrap_or(Timestamp::MAX);
    if delay.is_zero() {
        return slot;
    }
    let jitter = SignedDuration::from_secs((rand::random::<u64>() % delay.as_secs().max(1) as u64) as i64);
    slot.checked_add(jitter).unwrap_or(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text =
            format!("[jobs.app]\nsources = [{{ name = \"c\", kind = \"files\", paths = [\"/etc\"] }}]\n{extra}\n");
        Config::parse(&text, std::path::Path::new("/g.toml")).unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Runs the timetable from `start` to `end` with every run succeeding (or failing when `fail` says so).
    fn simulate(
        c: &Config,
        start: &str,
        end: &str,
        fail: impl Fn(TaskKind, Timestamp) -> bool,
    ) -> Vec<(TaskKind, Timestamp, bool)> {
        let mut tt = Timetable::new(c, t(start), jiff::tz::TimeZone::UTC, |_, _| Some(t(start)));
        let mut log = Vec::new();
        while let Some((i, at)) = tt.next_due() {
            if at > t(end) {
                break;
            }
            let kind = tt.entries[i].kind;
            let ok = !fail(kind, at);
            log.push((kind, at, ok));
            tt.completed(i, ok, at + SignedDuration::from_secs(30));
        }
        log
    }

    #[test]
    fn two_days_give_eight_backups_two_checks_and_a_weekly_prune() {
        let c = config("");
        // 48 hours from Thursday 23:30 to Saturday 23:30 (UTC).
        let log = simulate(&c, "2026-11-26T23:30:00Z", "2026-11-28T23:30:00Z", |_, _| false);
        let count = |k| log.iter().filter(|(kind, _, _)| *kind == k).count();
        assert_eq!(count(TaskKind::Backup), 8, "{log:?}");
        assert_eq!(count(TaskKind::Check), 2);
        assert_eq!(count(TaskKind::Prune), 0, "the weekly prune is on Sunday");
        let week = simulate(&c, "2026-11-27T00:00:00Z", "2026-12-03T23:59:59Z", |_, _| false);
        assert_eq!(week.iter().filter(|(k, _, _)| *k == TaskKind::Prune).count(), 1);
        assert_eq!(week.iter().find(|(k, _, _)| *k == TaskKind::Prune).unwrap().1, t("2026-11-29T03:00:00Z"));
    }

    #[test]
    fn a_failing_backup_is_retried_twice_then_waits_for_its_slot() {
        let c = config("");
        let log = simulate(&c, "2026-11-27T00:00:00Z", "2026-11-27T12:30:00Z", |k, at| {
            k == TaskKind::Backup && at < t("2026-11-27T11:00:00Z")
        });
        let backups: Vec<(Timestamp, bool)> =
            log.iter().filter(|(k, _, _)| *k == TaskKind::Backup).map(|(_, at, ok)| (*at, *ok)).collect();
        assert_eq!(
            backups,
            [
                (t("2026-11-27T06:00:00Z"), false),
                (t("2026-11-27T06:05:30Z"), false),
                (t("2026-11-27T06:16:00Z"), false),
                (t("2026-11-27T12:00:00Z"), true),
            ]
        );
    }

    #[test]
    fn missed_slots_are_caught_up_once_at_start() {
        let c = config("");
        let now = t("2026-11-27T13:00:00Z");
        // The last backup ran yesterday: the 12:00 slot (and earlier ones) were missed.
        let tt = Timetable::new(&c, now, jiff::tz::TimeZone::UTC, |_, k| {
            (k == TaskKind::Backup).then(|| t("2026-11-26T18:00:00Z"))
        });
        let due: Vec<_> = tt.entries.iter().filter(|e| e.next == now).map(|e| e.kind).collect();
        assert_eq!(due, [TaskKind::Backup], "one catch-up backup; maintenance that never ran waits for its slot");
        let tt = Timetable::new(&c, now, jiff::tz::TimeZone::UTC, |_, _| Some(t("2026-11-27T12:30:00Z")));
        assert!(tt.entries.iter().all(|e| e.next > now), "nothing was missed");
    }
}

//! The command line of each scheduled task: what a child `gumvault` is asked to do for a job's backup, its
//! retention, prune, check and test restore.

use super::schedule::TaskKind;
use crate::config::Config;

/// The arguments of the task `kind` of `job`.
pub fn task_args(config: &Config, job: &str, kind: TaskKind) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match kind {
        TaskKind::Backup => s(&["run", job, "--json"]),
        TaskKind::Prune => s(&["prune", "--retry-lock", "20m", "--json"]),
        TaskKind::Check => {
            let subset =
                config.jobs.get(job).map(|j| j.check.read_data_subset.clone()).unwrap_or_else(|| "auto".into());
            if subset == "all" {
                s(&["check", "--read-data", "--json"])
            } else {
                s(&["check", "--read-data-subset", &subset, "--json"])
            }
        }
        TaskKind::TestRestore => s(&["test-restore", job, "--json"]),
    }
}

/// The arguments of `lock extend`, which the backup side of a split daemon runs on the prune schedule.
pub fn lock_extend_args() -> Vec<String> {
    vec!["lock".into(), "extend".into(), "--json".into()]
}

/// The arguments of the retention run after a job's backup (its snapshots only, by its tag).
pub fn forget_args(config: &Config, job: &str) -> Vec<String> {
    let mut args = vec!["forget".to_string(), "--tag".to_string(), job.to_string()];
    if let Some(j) = config.jobs.get(job) {
        args.extend(j.retention.forget_args());
    }
    // A prune or forget killed with an earlier daemon leaves its lease until it expires: wait that out.
    args.extend(["--retry-lock".into(), "20m".into(), "--json".into()]);
    args
}

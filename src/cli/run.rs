//! `gumvault run JOB`: one snapshot of every source of a job from the config file.

use clap::Args;

use super::backup::perform;
use super::backup::print_outcome;
use super::context::Context;
use crate::ops::backup::BackupOutcome;
use crate::repo::catalog::RunRecord;

#[derive(Args, Debug)]
#[command(after_help = "Every source of the job becomes a top-level directory of one snapshot (/db, /uploads, /cache,
/config, /env ...), tagged with the job's name, so one snapshot id restores the whole stack as it was.
A required source that fails means no snapshot is written (exit 4); an optional one (Redis by default) is left out
with a note. Each run is recorded in the local catalog.

Examples:
  gumvault --config /etc/gumvault.toml run bubblegum
  GUMVAULT_CONFIG=/etc/gumvault.toml gumvault run bubblegum --json")]
pub(crate) struct RunArgs {
    /// The job's name (a `[jobs.NAME]` table of the config file); may be left out when there is only one
    pub job: Option<String>,
    /// Read every file and object even if the parent snapshot says it is unchanged
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(g: &Context, a: &RunArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let (job_name, job) = config.job_or_only(a.job.as_deref())?;
    let job_name = job_name.to_string();
    let (source, mut opts) = crate::sources::job::backup_of(&job_name, job, a.force);
    opts.child_env = config.child_env();
    let mut session = g.open()?;
    let started = crate::time::now();
    let outcome = perform(g, &mut session, source, &opts);
    let record = record_of(&job_name, started, &outcome);
    if super::context::records_runs()
        && let Err(e) = session.catalog.record_run(&record)
    {
        eprintln!("gumvault: warning: could not record the run in the catalog: {e}");
    }
    Ok(print_outcome(g, &outcome?))
}

/// The run's record: a failure with its error; a snapshot saved with some inputs unreadable (exit 3) is a run
/// that succeeded incompletely, with the paths it could not read.
fn record_of(job: &str, started: jiff::Timestamp, outcome: &anyhow::Result<BackupOutcome>) -> RunRecord {
    let mut record = RunRecord {
        job: job.to_string(),
        kind: "backup".into(),
        started,
        finished: crate::time::now(),
        ok: outcome.is_ok(),
        snapshot: outcome.as_ref().ok().map(|o| o.id),
        bytes: outcome.as_ref().map(|o| o.snapshot.summary.bytes_added).unwrap_or(0),
        error: outcome.as_ref().err().map(|e| format!("{e:#}")),
        detail: serde_json::json!({}),
    };
    if let Ok(o) = outcome {
        if !o.missing.is_empty() {
            let missing: Vec<String> = o.missing.iter().map(|(r, p)| format!("{r}:{p}")).collect();
            record.detail = serde_json::json!({ "degraded": true, "missing": missing });
        }
        if o.snapshot.incomplete {
            record.mark_incomplete(&o.unreadable);
        }
    }
    record
}

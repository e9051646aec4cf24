//! A job of the config file as backup sees it: its sources as [`JobSource`]s, and the options of its snapshot.

use crate::children::ChildEnv;
use crate::config::{Job, SourceSpec};
use crate::ops::backup::source::{BackupOptions, JobSource, Source};

/// The job's sources, in the order the config lists them.
pub fn sources_of(job: &Job) -> Vec<Box<dyn JobSource>> {
    job.sources.iter().map(|s| boxed(s.get_ref())).collect()
}

fn boxed(spec: &SourceSpec) -> Box<dyn JobSource> {
    match spec {
        SourceSpec::Postgres(s) => Box::new(s.clone()),
        SourceSpec::PostgresPhysical(s) => Box::new(s.clone()),
        SourceSpec::S3(s) => Box::new(s.clone()),
        SourceSpec::Redis(s) => Box::new(s.clone()),
        SourceSpec::Files(s) => Box::new(s.clone()),
        SourceSpec::Env(s) => Box::new(s.clone()),
    }
}

/// What `gumvault run NAME` backs up, and how: one snapshot tagged with the job's name and its own tags. The
/// caller sets `child_env` from the whole config (a job knows only its own sources' secrets).
pub fn backup_of(name: &str, job: &Job, force: bool) -> (Source, BackupOptions) {
    let mut tags = vec![name.to_string()];
    tags.extend(job.tags.iter().cloned());
    let opts = BackupOptions {
        host: job.host.clone().unwrap_or_else(crate::hostname),
        tags,
        excludes: Vec::new(),
        chunker: None,
        force,
        time: None,
        child_env: ChildEnv::default(),
        known_in_memory: None,
    };
    (Source::Job { name: name.to_string(), sources: sources_of(job) }, opts)
}

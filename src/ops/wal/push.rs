//! `wal-push`: PostgreSQL's `archive_command`. A file counts as archived only when `min_regions` regions hold it
//! durably; the same file pushed again succeeds (a region that lacks it gets it), other content under the same
//! name fails and changes nothing (objects of the archive are never overwritten).
//!
//! Keeping up with a busy server, as pgBackRest's asynchronous archiving does: opening the repository costs a key
//! derivation, so one run also archives the other files waiting in `archive_status` (a few at once) and leaves a
//! marker for each in the local spool once it is durable; when PostgreSQL then asks for one of them, the marker
//! (same content, pushed within the hour, same repository URL) answers without opening the repository.

use std::path::PathBuf;

use jiff::Timestamp;
use rayon::prelude::*;
use serde::Serialize;

use super::local::{LocalDir, Marker};
use super::pgdata::{data_dir, read_wal_file, ready_files, system_id};
use super::state;
use super::tuning::WalTuning;
use crate::error::Result;
use crate::format::wal::WalFile;
use crate::repo::Repository;

/// What one `wal-push` is asked to do.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The cluster's data directory (for its system identifier); `None`: see [`super::pgdata::data_dir`].
    pub pgdata: Option<PathBuf>,
    /// The file to archive (`%p`: relative to the working directory, usually `pg_wal/NAME`).
    pub file: PathBuf,
    /// The local spool and state of the repository's URL.
    pub local: LocalDir,
    /// How much to take along.
    pub tuning: WalTuning,
}

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushReport {
    /// The file PostgreSQL asked for.
    pub file: String,
    /// Its cluster.
    pub system_id: u64,
    /// True when a marker of an earlier push answered, without opening the repository.
    pub already_pushed: bool,
    /// Regions that took a new copy of it.
    pub written: usize,
    /// Regions that already held it with the same content.
    pub present: usize,
    /// Other waiting files archived along with it.
    pub ahead_pushed: Vec<String>,
    /// Other waiting files that could not be archived now (PostgreSQL will ask for them in turn), with why.
    pub ahead_failed: Vec<String>,
    /// Regions that missed a write of this run and were marked as lagging (`gumvault sync` heals them).
    pub lagging: Vec<String>,
    /// Things that went wrong without failing the push.
    pub warnings: Vec<String>,
}

/// Archives `opts.file` (and the files waiting behind it), opening the repository with `open` only when a
/// marker does not already vouch for it, and records the outcome in the state file either way.
pub fn push(opts: &PushOptions, open: impl FnOnce() -> Result<Repository>, now: Timestamp) -> Result<PushReport> {
    let name = opts.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let outcome = push_unrecorded(opts, open, now);
    let recorded = state::record(&opts.local, &name, outcome.as_ref().map(drop).map_err(|e| e.to_string()), now);
    let mut report = outcome?;
    if let Err(e) = recorded {
        report.warnings.push(format!("the push state could not be recorded: {e}"));
    }
    Ok(report)
}

fn push_unrecorded(
    opts: &PushOptions,
    open: impl FnOnce() -> Result<Repository>,
    now: Timestamp,
) -> Result<PushReport> {
    let system_id = system_id(&data_dir(opts.pgdata.as_deref())?)?;
    let (file, content) = read_wal_file(&opts.file, system_id)?;
    let hash = hex::encode(blake3::hash(&content).as_bytes());
    let mut report = PushReport { file: file.name.clone(), system_id, ..Default::default() };
    if opts.local.marker(system_id, &file.name, now).is_some_and(|m| m.blake3 == hash) {
        report.already_pushed = true;
        return Ok(report);
    }
    let repo = open()?;
    let ahead: Vec<PathBuf> = ready_files(&opts.file)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            opts.local.marker(system_id, n, now).is_none()
        })
        .take(opts.tuning.push_ahead)
        .collect();
    let pool = crate::runtime::io_pool(opts.tuning.concurrency, "WAL uploads")?;
    let current = Job { path: opts.file.clone(), read: Some((file, content)) };
    let jobs: Vec<Job> =
        std::iter::once(current).chain(ahead.into_iter().map(|path| Job { path, read: None })).collect();
    let mut results = pool
        .install(|| jobs.into_par_iter().map(|j| push_one(&repo, &opts.local, system_id, j, now)).collect::<Vec<_>>());
    let mine = results.remove(0);
    for (name, r) in results {
        match r {
            Ok(_) => report.ahead_pushed.push(name),
            Err(e) => report.ahead_failed.push(format!("{name}: {e}")),
        }
    }
    finish(&repo, &opts.local, system_id, now, &mut report);
    let written = mine.1?;
    (report.written, report.present) = (written.written, written.present);
    Ok(report)
}

/// One file to archive: the one asked for (already read and checked) or one waiting behind it.
struct Job {
    path: PathBuf,
    read: Option<(WalFile, Vec<u8>)>,
}

/// Archives one file and, once it is durable, leaves its marker.
fn push_one(
    repo: &Repository,
    local: &LocalDir,
    system_id: u64,
    job: Job,
    now: Timestamp,
) -> (String, Result<crate::repo::wal::WriteOnce>) {
    let name = job.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let outcome = (|| -> Result<crate::repo::wal::WriteOnce> {
        let (file, content) = match job.read {
            Some(r) => r,
            None => read_wal_file(&job.path, system_id)?,
        };
        let written = repo.put_wal(system_id, &file, &content)?;
        let marker = Marker {
            blake3: hex::encode(blake3::hash(&content).as_bytes()),
            pushed: now,
            repository: repo.id().to_string(),
        };
        // The file is durable; a marker that cannot be written only costs a second push later.
        let _ = local.write_marker(system_id, &file.name, &marker);
        Ok(written)
    })();
    (name, outcome)
}

/// After the pushes: lag markers for regions that missed writes (as a degraded backup leaves them), and old
/// markers removed.
fn finish(repo: &Repository, local: &LocalDir, system_id: u64, now: Timestamp, report: &mut PushReport) {
    let mut lagging: Vec<String> = repo.missing().into_iter().map(|(region, _)| region).collect();
    lagging.sort();
    lagging.dedup();
    if !lagging.is_empty()
        && let Err(e) = repo.record_lag(now)
    {
        report
            .warnings
            .push(format!("regions {} missed this push, and the lag marker failed: {e}", lagging.join(", ")));
    }
    report.lagging = lagging;
    report.warnings.extend(repo.take_events());
    local.clean_markers(system_id, now);
}

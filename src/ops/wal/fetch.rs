//! `wal-fetch`: PostgreSQL's `restore_command`. What it returns is verified (the copy authenticates under the
//! name asked for, and its content against its recorded hash), written whole (temporary file, fsync, rename),
//! and read from the first region with a good copy.
//!
//! The outcome decides what PostgreSQL does next, so it is exact: [`FetchOutcome::Absent`] (exit 1) only when the
//! file is certainly not archived — recovery then ends, or tries the next timeline — and any other failure, after
//! a few retries with backoff, is an error the command turns into an exit code above 125, on which PostgreSQL
//! aborts recovery rather than starting up with WAL missing (`shell_restore`/`RestoreArchivedFile` treat a
//! status above 125 like a signal: FATAL).
//!
//! Fetching ahead: once the segment size is known, a run also fetches the next few segments of the timeline into
//! the local spool, so the calls that follow are answered without opening the repository. The spool is emptied
//! when a file turns out absent (the end of recovery) and files older than an hour are dropped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::Serialize;

use super::local::LocalDir;
use super::pgdata::{data_dir, system_id};
use super::tuning::WalTuning;
use crate::error::{Error, Result};
use crate::format::wal::pg::segment_header;
use crate::format::wal::{WalFile, WalFileKind, valid_segment_size};
use crate::repo::Repository;
use crate::repo::wal::Fetched;

/// What one `wal-fetch` is asked to do.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// The data directory being recovered (for its system identifier); `None`: see [`super::pgdata::data_dir`].
    pub pgdata: Option<PathBuf>,
    /// The file PostgreSQL asks for (`%f`).
    pub name: String,
    /// Where to write it (`%p`).
    pub dest: PathBuf,
    /// The local spool of the repository's URL.
    pub local: LocalDir,
    /// How far ahead to fetch and how often to retry.
    pub tuning: WalTuning,
}

/// How a fetch ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum FetchOutcome {
    /// The file was written to its destination.
    Restored {
        /// Served from the local spool, without opening the repository.
        from_spool: bool,
        /// Segments fetched ahead into the spool by this run.
        prefetched: usize,
    },
    /// The file is not in the archive.
    Absent,
}

/// Fetches `opts.name` into `opts.dest`. `open` opens the repository (again for each attempt, so a region that
/// failed is tried afresh); `sleep` waits between attempts.
pub fn fetch(
    opts: &FetchOptions,
    open: impl Fn() -> Result<Repository>,
    sleep: impl Fn(Duration),
) -> Result<FetchOutcome> {
    let Some(file) = WalFile::parse(&opts.name) else {
        return Ok(FetchOutcome::Absent); // nothing by such a name is ever archived
    };
    let system_id = system_id(&data_dir(opts.pgdata.as_deref())?)?;
    let now = crate::time::now();
    opts.local.clean_fetched(system_id, Some(now));
    let spooled = opts.local.fetched_path(system_id, &file.name);
    if let Ok(content) = std::fs::read(&spooled) {
        write_whole(&opts.dest, &content)?;
        let _ = std::fs::remove_file(&spooled);
        return Ok(FetchOutcome::Restored { from_spool: true, prefetched: 0 });
    }
    let mut delay = opts.tuning.fetch_retry_delay;
    let mut attempt = 0;
    loop {
        let err = match open().map(|repo| fetch_from(&repo, opts, system_id, &file)) {
            Ok(Ok(outcome)) => return Ok(outcome),
            Ok(Err(e)) | Err(e) => e,
        };
        if attempt >= opts.tuning.fetch_retries || !transient(&err) {
            let tries = attempt + 1;
            return Err(Error::InvalidInput(format!(
                "cannot fetch {} after {tries} attempt{}: {err}",
                file.name,
                if tries == 1 { "" } else { "s" }
            )));
        }
        attempt += 1;
        sleep(delay);
        delay = delay.saturating_mul(2);
    }
}

/// Errors worth another attempt: storage trouble, a repository not there (an unmounted disk, a network), a
/// damaged copy (another region may come back with a good one); not a wrong password or a bad configuration.
fn transient(e: &Error) -> bool {
    !matches!(e, Error::WrongPassword { .. } | Error::Config { .. } | Error::UnsupportedVersion { .. })
}

/// One attempt: the file (and the segments after it, in parallel) from the repository.
fn fetch_from(repo: &Repository, opts: &FetchOptions, system_id: u64, file: &WalFile) -> Result<FetchOutcome> {
    let known_size = opts.local.segment_size(system_id);
    let n = opts.tuning.fetch_ahead;
    let mut ahead = following(file, known_size, n);
    let wanted: Vec<WalFile> = std::iter::once(file.clone()).chain(ahead.iter().cloned()).collect();
    let mut got = fetch_all(repo, system_id, &wanted, opts.tuning.concurrency);
    let content = match got.remove(0) {
        Fetched::Found(c) => c,
        Fetched::Absent => {
            opts.local.clean_fetched(system_id, None);
            return Ok(FetchOutcome::Absent);
        }
        Fetched::Unknown(e) => return Err(e),
    };
    write_whole(&opts.dest, &content)?;
    if known_size.is_none()
        && file.kind == WalFileKind::Segment
        && let Some(size) =
            segment_header(&content).ok().map(|h| h.seg_size).filter(|s| valid_segment_size((*s).into()))
    {
        // The first fetch for this cluster: the segment tells its size; now fetch ahead.
        let _ = opts.local.set_segment_size(system_id, size);
        ahead = following(file, Some(size), n);
        got = fetch_all(repo, system_id, &ahead, opts.tuning.concurrency);
    }
    let mut prefetched = 0;
    for (f, outcome) in ahead.iter().zip(got) {
        if let Fetched::Found(c) = outcome
            && opts.local.keep_fetched(system_id, &f.name, &c).is_ok()
        {
            prefetched += 1;
        }
    }
    Ok(FetchOutcome::Restored { from_spool: false, prefetched })
}

/// The `n` segments after `file` on its timeline, when it is a segment and the segment size is known.
fn following(file: &WalFile, seg_size: Option<u32>, n: usize) -> Vec<WalFile> {
    match (file.kind, seg_size) {
        (WalFileKind::Segment, Some(s)) => {
            (1..=n as u64).map(|i| WalFile::from_segno(file.tli, file.segno(s) + i, s)).collect()
        }
        _ => Vec::new(),
    }
}

/// Fetches files in parallel (at most `concurrency` at once), in order.
fn fetch_all(repo: &Repository, system_id: u64, files: &[WalFile], concurrency: usize) -> Vec<Fetched> {
    let pool = crate::runtime::io_pool(concurrency, "WAL downloads");
    match pool {
        Ok(pool) => pool.install(|| files.par_iter().map(|f| repo.fetch_wal(system_id, f)).collect()),
        Err(_) => files.iter().map(|f| repo.fetch_wal(system_id, f)).collect(),
    }
}

/// Writes `dest` whole: a temporary file beside it, fsynced, renamed over it, the directory fsynced.
pub fn write_whole(dest: &Path, content: &[u8]) -> Result<()> {
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.gumvault-{}", hex::encode(rand::random::<[u8; 6]>())));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(content).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, dest))
        .and_then(|()| std::fs::File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", dest, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wrong_password_or_configuration_is_final() {
        assert!(transient(&Error::RepoNotFound { url: "/x".into() }));
        assert!(!transient(&Error::WrongPassword { repo: "/x".into() }));
        assert!(transient(&Error::corrupt("wal/x", "authentication failed")));
    }

    #[test]
    fn writes_are_whole_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        std::fs::write(&dest, b"old").unwrap();
        write_whole(&dest, b"new content").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new content");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        assert!(write_whole(&dir.path().join("missing/x"), b"x").is_err());
    }
}

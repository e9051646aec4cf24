//! Backup: from a source (paths, a stream, a command, a job's sources) to a committed snapshot. The snapshot
//! manifest is written last, only after every pack and index segment it references is durable.
//!
//! The parts: [`source`] says what can be backed up (and the [`source::JobSource`] trait the kinds of `sources/`
//! implement), [`context`] is what the walkers share, [`fs`] walks file trees, [`stream`] cuts one byte stream,
//! [`saver`] packs and uploads blobs, `job` saves a job's sources, `commit` makes sure the snapshot refers
//! only to indexed data.

mod commit;
pub mod context;
mod file;
pub mod fs;
mod job;
pub mod known;
pub mod progress;
pub mod saver;
pub mod source;
pub mod stream;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use context::{BackupContext, TreeLoader};
pub use fs::{read_exclude_file, scan};
pub use progress::Progress;
pub use saver::{BlobSaver, SaverStats, UploadState};
pub use source::{BackupOptions, BackupOutcome, JobSource, Profile, Source};

use crate::children::ChildEnv;
use crate::error::{Error, Result};
use crate::format::chunker::ChunkerParams;
use crate::format::id::Id;
use crate::format::snapshot::{BaseBackup, SNAPSHOT_VERSION, Snapshot, Summary};
use crate::format::tree::Tree;
use crate::ops::globs::PathGlobs;
use crate::repo::Repository;
use crate::repo::catalog::Catalog;
use crate::repo::reader::BlobReader;

/// The `chunker` recorded in job snapshots: each source uses the profile of its kind.
pub const JOB_PROFILES: &str = "per-source";

/// What a backup decided before reading anything: the snapshot's paths and how content is cut.
struct Setup {
    /// The snapshot's top-level paths (absolute).
    paths: Vec<PathBuf>,
    /// The chunker profile recorded in the snapshot.
    profile: String,
    /// Parameters of files (and of everything, outside a job).
    params: ChunkerParams,
    /// Parameters of a job's stream and pages sources.
    job_params: job::JobParams,
    /// The job's name, for a job.
    job: Option<String>,
}

impl Setup {
    fn resolve(repo: &Repository, source: &Source, opts: &BackupOptions) -> Result<Setup> {
        let (paths, default_profile, job) = match source {
            Source::Paths(p) => (normalize_paths(p)?, "files", None),
            Source::Stream { name, .. } | Source::Command { name, .. } => {
                (vec![PathBuf::from(stream_path(name)?)], "stream", None)
            }
            Source::Job { name, sources } => {
                let mut p: Vec<PathBuf> = sources.iter().map(|s| PathBuf::from(format!("/{}", s.name()))).collect();
                p.sort();
                (p, JOB_PROFILES, Some(name.clone()))
            }
        };
        let profile = opts.chunker.clone().unwrap_or_else(|| default_profile.to_string());
        let (params, job_params) = match &job {
            Some(_) => {
                let stream = repo.chunker_profile("stream")?;
                let pages = repo.chunker_profile("pages").unwrap_or(stream);
                (repo.chunker_profile("files")?, job::JobParams { stream, pages })
            }
            None => {
                let p = repo.chunker_profile(&profile)?;
                (p, job::JobParams { stream: p, pages: p })
            }
        };
        Ok(Setup { paths, profile, params, job_params, job })
    }

    fn path_strings(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }
}

/// What the sources reported while they were read.
#[derive(Default)]
struct Reports {
    warnings: Mutex<Vec<String>>,
    unreadable: Mutex<Vec<String>>,
    notices: Mutex<Vec<String>>,
    skipped: Mutex<Vec<String>>,
    base_backups: Mutex<Vec<BaseBackup>>,
}

/// What the walk shares besides the repository and the catalog.
struct Shared<'a> {
    excludes: &'a PathGlobs,
    progress: &'a Progress,
    uploads: &'a UploadState,
    reports: &'a Reports,
    child_env: &'a ChildEnv,
    /// Bytes the known blob ids may take in memory.
    known_in_memory: u64,
}

/// What the walk inside the upload scope produced.
struct Walked {
    root: Result<Id>,
    flushed: Result<()>,
    stats: SaverStats,
}

/// Runs a backup and commits the snapshot.
pub fn run(
    repo: &Repository,
    catalog: &mut Catalog,
    source: Source,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time = opts.time.unwrap_or_else(crate::time::now);
    let setup = Setup::resolve(repo, &source, opts)?;
    // One listing of the lag markers says which regions still miss what an earlier degraded backup wrote.
    let lagging_before = repo.lagging_regions()?;
    let parent = find_parent(catalog, &opts.host, &setup.path_strings(), setup.job.as_deref())?;
    let excludes = PathGlobs::new(&opts.excludes, "exclude")?;
    let indexes_at_start = catalog.index_ids()?;
    let uploads = UploadState::default();
    let reports = Reports::default();
    let use_parent = parent.as_ref().filter(|_| !opts.force && matches!(source, Source::Paths(_) | Source::Job { .. }));
    let parent_tree = use_parent.map(|p| p.1.tree);
    let shared = Shared {
        excludes: &excludes,
        progress,
        uploads: &uploads,
        reports: &reports,
        child_env: &opts.child_env,
        known_in_memory: opts.known_in_memory(),
    };
    let walked = walk(repo, catalog, source, &setup, parent_tree, &shared)?;
    // Before the commit: its check that every blob is indexed reads this backup's own index segments from the
    // catalog. Should the commit fail, they are deleted and the next catalog sync notices and rebuilds.
    uploads.record_in(catalog)?;
    let warnings = reports.warnings.into_inner().expect("warnings lock");
    let mut unreadable = reports.unreadable.into_inner().expect("unreadable lock");
    unreadable.sort();
    unreadable.dedup();
    let mut notices = reports.notices.into_inner().expect("notices lock");
    let skipped: Vec<String> = reports.skipped.into_inner().expect("skipped lock");
    let mut base_backups = reports.base_backups.into_inner().expect("base backups lock");
    base_backups.sort_by(|a, b| a.source.cmp(&b.source));
    notices.extend(skipped.iter().map(|s| format!("optional source left out: {s}")));
    let draft =
        Draft { time, started, setup, parent: parent.map(|p| p.0), opts, warnings: &warnings, skipped, base_backups };
    let (id, snapshot) = match commit(repo, catalog, walked, &indexes_at_start, progress, draft) {
        Ok(done) => done,
        Err(e) => {
            // Nothing refers to what this backup wrote: remove it, unless a snapshot may have reached a region.
            let maybe_visible =
                matches!(&e, Error::Storage(s) if s.kind == crate::error::StorageErrorKind::TooFewRegions);
            if !maybe_visible {
                uploads.discard(repo);
            }
            return Err(e);
        }
    };
    catalog.add_snapshot(&id, &snapshot)?;
    repo.record_lag(time)?;
    let missing = repo.missing();
    let lagging = lagging_before.into_iter().filter(|(r, _)| !missing.iter().any(|(m, _)| m == r)).collect();
    Ok(BackupOutcome { id, snapshot, warnings, unreadable, notices, missing, lagging })
}

/// What the snapshot manifest says besides its tree and summary.
struct Draft<'a> {
    time: jiff::Timestamp,
    started: Instant,
    setup: Setup,
    parent: Option<Id>,
    opts: &'a BackupOptions,
    warnings: &'a [String],
    skipped: Vec<String>,
    base_backups: Vec<BaseBackup>,
}

/// The walk went well: makes sure everything the tree refers to is indexed, then writes the manifest.
fn commit(
    repo: &Repository,
    catalog: &mut Catalog,
    walked: Walked,
    indexes_at_start: &std::collections::HashSet<Id>,
    progress: &Progress,
    d: Draft<'_>,
) -> Result<(Id, Snapshot)> {
    let root = walked.root?;
    walked.flushed?;
    commit::ensure_indexed(repo, catalog, &root, indexes_at_start)?;
    let mut summary = summarize(progress, &walked.stats, d.warnings.len(), d.skipped);
    summary.duration_secs = d.started.elapsed().as_secs_f64();
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time: d.time,
        host: d.opts.host.clone(),
        paths: d.setup.path_strings(),
        tags: d.opts.tags.clone(),
        tree: root,
        parent: d.parent,
        chunker: d.setup.profile,
        job: d.setup.job,
        incomplete: !d.warnings.is_empty(),
        summary,
        base_backups: d.base_backups,
    };
    let id = repo.save_snapshot(&snapshot)?;
    Ok((id, snapshot))
}

/// Reads the source and saves its blobs and trees; whatever happened, what was written is flushed, so it is
/// durable and indexed and a retry can reuse it.
fn walk(
    repo: &Repository,
    catalog: &mut Catalog,
    source: Source,
    setup: &Setup,
    parent_tree: Option<Id>,
    shared: &Shared<'_>,
) -> Result<Walked> {
    std::thread::scope(|scope| -> Result<Walked> {
        let saver = BlobSaver::new(repo, catalog, shared.known_in_memory, shared.uploads, scope)?;
        let loader = TreeLoader::new(BlobReader::new(repo, catalog));
        let ctx = BackupContext {
            saver: &saver,
            loader: &loader,
            params: setup.params,
            excludes: shared.excludes,
            progress: shared.progress,
            gear: repo.gear(),
            warnings: &shared.reports.warnings,
            unreadable: &shared.reports.unreadable,
            notices: &shared.reports.notices,
            base_backups: &shared.reports.base_backups,
            child_env: shared.child_env,
        };
        let root = parent_tree
            .map(|t| loader.load(&t))
            .transpose()
            .and_then(|parent_root| save_source(&ctx, source, setup, parent_root, &shared.reports.skipped));
        let flushed = saver.flush();
        Ok(Walked { root, flushed, stats: saver.stats.snapshot() })
    })
}

/// Saves the source through `ctx`; returns the root tree.
fn save_source(
    ctx: &BackupContext<'_, '_>,
    source: Source,
    setup: &Setup,
    parent_root: Option<Tree>,
    skipped: &Mutex<Vec<String>>,
) -> Result<Id> {
    match source {
        Source::Paths(_) => fs::save_paths(ctx, &setup.paths, parent_root.as_ref()),
        Source::Stream { name, reader } => save_stream_root(ctx, &name, reader, "standard input"),
        Source::Command { argv, name } => save_command(ctx, &argv, &name),
        Source::Job { sources, .. } => job::save_job(ctx, &sources, setup.job_params, parent_root.as_ref(), skipped),
    }
}

/// The snapshot's summary from the live counters and what the saver added.
fn summarize(progress: &Progress, stats: &SaverStats, errors: usize, skipped_sources: Vec<String>) -> Summary {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Summary {
        files_new: get(&progress.files_new),
        files_changed: get(&progress.files_changed),
        files_unchanged: get(&progress.files_unchanged),
        dirs: get(&progress.dirs),
        bytes_read: get(&progress.bytes_read),
        total_bytes: get(&progress.total_bytes),
        blobs_added: get(&stats.blobs_added),
        bytes_added: get(&stats.bytes_added),
        stored_bytes_added: get(&stats.stored_bytes_added),
        errors: errors as u64,
        duration_secs: 0.0,
        skipped_sources,
    }
}

/// Makes paths absolute and lexically clean, without following symlinks; drops duplicates.
pub fn normalize_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::InvalidInput("nothing to back up: give at least one path, or --stdin, or --command".into()));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    let mut out = Vec::new();
    for p in paths {
        let abs = if p.is_absolute() { p.clone() } else { cwd.join(p) };
        let mut clean = PathBuf::from("/");
        for c in abs.components() {
            match c {
                std::path::Component::Normal(n) => clean.push(n),
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                _ => {}
            }
        }
        if std::fs::symlink_metadata(&clean).is_err() {
            return Err(Error::InvalidInput(format!("{} does not exist or cannot be read", clean.display())));
        }
        if clean == Path::new("/") {
            return Err(Error::InvalidInput(
                "backing up / as a whole is not supported yet; name its directories".into(),
            ));
        }
        out.push(clean);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `/NAME` for a stream file; the name must be one plain file name.
fn stream_path(name: &str) -> Result<String> {
    let n = name.trim_start_matches('/');
    if n.is_empty() || n.contains('/') || n == "." || n == ".." {
        return Err(Error::InvalidInput(format!("--stdin-filename {name:?} must be a plain file name such as db.sql")));
    }
    Ok(format!("/{n}"))
}

/// The newest snapshot of the same host, paths and job.
fn find_parent(catalog: &Catalog, host: &str, paths: &[String], job: Option<&str>) -> Result<Option<(Id, Snapshot)>> {
    let snaps = catalog.snapshots()?;
    Ok(snaps
        .into_iter()
        .rev()
        .find(|s| s.snapshot.host == host && s.snapshot.paths == paths && s.snapshot.job.as_deref() == job)
        .map(|s| (s.id, s.snapshot)))
}

fn save_stream_root(ctx: &BackupContext<'_, '_>, name: &str, reader: Box<dyn Read + Send>, what: &str) -> Result<Id> {
    let node = ctx.save_stream_file(name.trim_start_matches('/'), 0o600, reader, what)?;
    ctx.save_tree(vec![node])
}

/// Runs a command (no shell) and saves its standard output; its standard error goes to ours. It gets the
/// environment of every child (`ChildEnv`): no repository password, no secret of the config.
fn save_command(ctx: &BackupContext<'_, '_>, argv: &[String], name: &str) -> Result<Id> {
    let (prog, args) = argv.split_first().ok_or_else(|| Error::InvalidInput("--command is empty".into()))?;
    let mut child = ctx
        .child_env
        .command(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::SourceFailed(format!("cannot start command {prog:?}: {e}; no snapshot was written")))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let saved = save_stream_root(ctx, name, Box::new(stdout), &format!("output of {prog}"));
    let status = child.wait().map_err(|e| Error::SourceFailed(format!("waiting for {prog:?} failed: {e}")))?;
    if !status.success() {
        return Err(Error::SourceFailed(format!("command {prog:?} failed ({status}); no snapshot was written")));
    }
    saved
}

//! Backup: from a source (paths, a stream, a command) to a committed snapshot. The snapshot manifest is written
//! last, only after every pack and index segment it references is durable.

mod commit;
mod fs;
mod saver;
pub(crate) mod stream;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use fs::{Excludes, read_exclude_file, scan};
pub use saver::{BlobSaver, UploadState};

use crate::error::{Error, Result};
use crate::format::chunker::ChunkerParams;
use crate::format::id::Id;
use crate::format::snapshot::{SNAPSHOT_VERSION, Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::repo::Repository;
use crate::repo::catalog::Catalog;
use crate::repo::reader::BlobReader;
pub(crate) use fs::save_paths;

/// Live counters a progress display reads while a backup runs.
#[derive(Default)]
pub struct Progress {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub dirs: AtomicU64,
    /// Bytes read from sources so far.
    pub bytes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub total_bytes: AtomicU64,
    /// Bytes of unchanged files taken from the parent snapshot without reading.
    pub bytes_skipped: AtomicU64,
    pub errors: AtomicU64,
    /// Filled in by [`scan`] running beside the backup, for an ETA.
    pub estimate_files: AtomicU64,
    pub estimate_bytes: AtomicU64,
    pub estimate_done: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// Files finished so far.
    pub fn files(&self) -> u64 {
        self.files_new.load(Ordering::Relaxed)
            + self.files_changed.load(Ordering::Relaxed)
            + self.files_unchanged.load(Ordering::Relaxed)
    }
}

/// What to back up.
pub enum Source {
    /// Files and directories (absolute paths).
    Paths(Vec<PathBuf>),
    /// A byte stream saved as one file named `name` at the snapshot's root.
    Stream { name: String, reader: Box<dyn Read + Send> },
    /// A command whose standard output is saved as `name`; a non-zero exit fails the backup.
    Command { argv: Vec<String>, name: String },
    /// A job of the config file: one top-level directory per source, named after it.
    Job { name: String, sources: Vec<crate::config::SourceSpec> },
}

/// Options of one backup.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub host: String,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    /// Chunker profile; default by source kind (`files` for paths, `stream` for streams and commands).
    pub chunker: Option<String>,
    /// Ignore the parent snapshot and read every file.
    pub force: bool,
    /// Snapshot time (defaults to now; tests set it).
    pub time: Option<jiff::Timestamp>,
}

/// The outcome of a committed backup.
#[derive(Debug)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Inputs that could not be read (each also counted in `snapshot.summary.errors`).
    pub warnings: Vec<String>,
    /// Things worth telling that are not errors (a file changed while read).
    pub notices: Vec<String>,
    /// Objects of this backup that some region did not get (region, path): the backup is *degraded* — it met
    /// `min_regions`, and `gumvault sync` copies these over.
    pub missing: Vec<(String, String)>,
}

/// Everything the source walkers share.
pub(crate) struct BackupContext<'a, 'c> {
    pub repo: &'a Repository,
    pub saver: &'a BlobSaver<'c>,
    pub loader: &'a TreeLoader<'c>,
    pub params: ChunkerParams,
    pub excludes: Excludes,
    pub progress: &'a Progress,
    warnings: &'a Mutex<Vec<String>>,
    notices: &'a Mutex<Vec<String>>,
}

impl<'a, 'c> BackupContext<'a, 'c> {
    /// Records an input that could not be read.
    pub fn warn(&self, msg: String) {
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.warnings.lock().expect("warnings lock").push(msg);
    }

    pub fn notice(&self, msg: String) {
        self.notices.lock().expect("notices lock").push(msg);
    }

    /// The same backup with other chunker parameters and excludes (for one source of a job).
    pub fn derive(&self, params: ChunkerParams, excludes: Excludes) -> BackupContext<'a, 'c> {
        BackupContext { params, excludes, ..*self }
    }
}

/// Loads parent-snapshot trees during a backup.
pub(crate) struct TreeLoader<'a> {
    reader: BlobReader<'a>,
}

impl TreeLoader<'_> {
    pub(crate) fn load(&self, id: &Id) -> Result<Tree> {
        self.reader.load_tree(id)
    }
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
    let (paths, default_profile) = match &source {
        Source::Paths(p) => (normalize_paths(p)?, "files"),
        Source::Stream { name, .. } | Source::Command { name, .. } => {
            (vec![PathBuf::from(stream_path(name)?)], "stream")
        }
        Source::Job { sources, .. } => {
            let mut p: Vec<PathBuf> = sources.iter().map(|s| PathBuf::from(format!("/{}", s.name()))).collect();
            p.sort();
            (p, JOB_PROFILES)
        }
    };
    let job = match &source {
        Source::Job { name, .. } => Some(name.clone()),
        _ => None,
    };
    let profile = opts.chunker.clone().unwrap_or_else(|| default_profile.to_string());
    let params = if job.is_some() { repo.chunker_profile("files")? } else { repo.chunker_profile(&profile)? };
    let stream_params = if job.is_some() { repo.chunker_profile("stream")? } else { params };
    let path_strings: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let parent = find_parent(catalog, &opts.host, &path_strings, job.as_deref())?;
    let excludes = Excludes::new(&opts.excludes)?;
    let indexes_at_start = catalog.index_ids()?;
    let uploads = saver::UploadState::default();
    let stats = saver::SaverStats::default();
    let warnings = Mutex::new(Vec::new());
    let notices = Mutex::new(Vec::new());
    let skipped_sources = Mutex::new(Vec::new());
    let walked = std::thread::scope(|scope| -> Result<Walked> {
        let saver = BlobSaver::new(repo, catalog, &uploads, scope)?;
        let loader = TreeLoader { reader: BlobReader::new(repo, catalog) };
        let parent_root = match (&parent, opts.force, &source) {
            (Some(p), false, Source::Paths(_) | Source::Job { .. }) => loader.load(&p.1.tree).map(Some),
            _ => Ok(None),
        };
        let ctx = BackupContext {
            repo,
            saver: &saver,
            loader: &loader,
            params,
            excludes,
            progress,
            warnings: &warnings,
            notices: &notices,
        };
        let root = parent_root.and_then(|parent_root| match source {
            Source::Paths(_) => fs::save_paths(&ctx, &paths, parent_root),
            Source::Stream { name, reader } => save_stream_root(&ctx, &name, reader, "standard input"),
            Source::Command { argv, name } => save_command(&ctx, &argv, &name),
            Source::Job { sources, .. } => {
                save_job(&ctx, &sources, stream_params, parent_root.as_ref(), &skipped_sources)
            }
        });
        // Whatever happened, make what was written durable and indexed so a retry can reuse it.
        let flushed = saver.flush();
        for (to, from) in [
            (&stats.blobs_added, &saver.stats.blobs_added),
            (&stats.bytes_added, &saver.stats.bytes_added),
            (&stats.stored_bytes_added, &saver.stats.stored_bytes_added),
        ] {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        Ok(Walked { root, flushed })
    })?;
    uploads.record_in(catalog)?;
    let Walked { root, flushed } = walked;
    let warnings = warnings.into_inner().expect("warnings lock");
    let mut notices = notices.into_inner().expect("notices lock");
    let skipped_sources: Vec<String> = skipped_sources.into_inner().expect("skipped lock");
    notices.extend(skipped_sources.iter().map(|s| format!("optional source left out: {s}")));
    let root = root?;
    flushed?;
    commit::ensure_indexed(repo, catalog, &root, &indexes_at_start)?;
    let summary = Summary {
        files_new: progress.files_new.load(Ordering::Relaxed),
        files_changed: progress.files_changed.load(Ordering::Relaxed),
        files_unchanged: progress.files_unchanged.load(Ordering::Relaxed),
        dirs: progress.dirs.load(Ordering::Relaxed),
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        total_bytes: progress.total_bytes.load(Ordering::Relaxed),
        blobs_added: stats.blobs_added.load(Ordering::Relaxed),
        bytes_added: stats.bytes_added.load(Ordering::Relaxed),
        stored_bytes_added: stats.stored_bytes_added.load(Ordering::Relaxed),
        errors: warnings.len() as u64,
        duration_secs: started.elapsed().as_secs_f64(),
        skipped_sources,
    };
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time,
        host: opts.host.clone(),
        paths: path_strings,
        tags: opts.tags.clone(),
        tree: root,
        parent: parent.map(|p| p.0),
        chunker: profile,
        job,
        incomplete: !warnings.is_empty(),
        summary,
    };
    let id = repo.save_snapshot(&snapshot)?;
    catalog.add_snapshot(&id, &snapshot)?;
    Ok(BackupOutcome { id, snapshot, warnings, notices, missing: repo.storage.missing() })
}

/// What the walk inside the upload scope produced.
struct Walked {
    root: Result<Id>,
    flushed: Result<()>,
}

/// The `chunker` recorded in job snapshots: each source uses the profile of its kind.
pub const JOB_PROFILES: &str = "per-source";

/// Saves every source of a job as a top-level directory. A required source that fails fails the whole job; an
/// optional one is left out and named in `skipped`.
fn save_job(
    ctx: &BackupContext<'_, '_>,
    sources: &[crate::config::SourceSpec],
    stream_params: ChunkerParams,
    parent_root: Option<&Tree>,
    skipped: &Mutex<Vec<String>>,
) -> Result<Id> {
    let mut nodes = Vec::new();
    for spec in sources {
        let parent_node = parent_root.and_then(|t| t.find(spec.name().as_bytes()));
        match crate::sources::save(ctx, spec, stream_params, parent_node) {
            Ok(node) => nodes.push(node),
            Err(Error::SourceFailed(why)) if spec.optional() => {
                skipped.lock().expect("skipped lock").push(format!("{} ({}): {why}", spec.name(), spec.kind()))
            }
            Err(Error::SourceFailed(why)) => {
                return Err(Error::SourceFailed(format!(
                    "source {:?} ({}) failed: {why}; no snapshot was written",
                    spec.name(),
                    spec.kind()
                )));
            }
            Err(e) => return Err(e),
        }
    }
    save_tree_nodes(ctx, nodes)
}

/// Saves a directory's tree.
pub(crate) fn save_tree_nodes(ctx: &BackupContext<'_, '_>, nodes: Vec<Node>) -> Result<Id> {
    ctx.saver.save(crate::format::blob::BlobKind::Tree, &Tree::new(nodes).to_bytes())
}

/// A directory node made by gumvault itself (a job's source directory, an S3 prefix): owned by us, mode 0700.
pub(crate) fn synthetic_dir(name: &str, tree: Id) -> Node {
    let mut n = synthetic_file(name, 0o700);
    n.kind = NodeKind::Dir;
    n.subtree = Some(tree);
    n
}

/// A file node for content gumvault produced (a dump, an environment file), stamped now.
pub(crate) fn synthetic_file(name: &str, mode: u32) -> Node {
    let now = jiff::Timestamp::now();
    Node {
        name: RawName(name.as_bytes().to_vec()),
        kind: NodeKind::File,
        mode,
        uid: unsafe_free_uid(),
        gid: unsafe_free_gid(),
        mtime_ns: i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX),
        ctime_ns: 0,
        inode: 0,
        dev: 0,
        size: 0,
        content: Vec::new(),
        subtree: None,
        target: None,
        rdev: None,
        etag: None,
        content_type: None,
    }
}

/// Saves a stream as one file node (mode `mode`); `what` names the stream in messages.
pub(crate) fn save_stream_file(
    ctx: &BackupContext<'_, '_>,
    params: ChunkerParams,
    name: &str,
    mode: u32,
    reader: impl Read + Send,
    what: &str,
) -> Result<Node> {
    let content = stream::save_stream(ctx.saver, reader, params, ctx.repo.gear(), ctx.progress, what, None)?;
    ctx.progress.files_new.fetch_add(1, Ordering::Relaxed);
    ctx.progress.bytes_read.fetch_add(content.size, Ordering::Relaxed);
    ctx.progress.total_bytes.fetch_add(content.size, Ordering::Relaxed);
    let mut node = synthetic_file(name, mode);
    node.size = content.size;
    node.content = content.blobs;
    Ok(node)
}

/// Makes paths absolute and lexically clean, without following symlinks; drops duplicates.
pub(crate) fn normalize_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
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

use std::path::Path;

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
    let node = save_stream_file(ctx, ctx.params, name.trim_start_matches('/'), 0o600, reader, what)?;
    save_tree_nodes(ctx, vec![node])
}

fn unsafe_free_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0)
}

fn unsafe_free_gid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::gid(&m)).unwrap_or(0)
}

/// Runs a command (no shell) and saves its standard output; its standard error goes to ours.
fn save_command(ctx: &BackupContext<'_, '_>, argv: &[String], name: &str) -> Result<Id> {
    let (prog, args) = argv.split_first().ok_or_else(|| Error::InvalidInput("--command is empty".into()))?;
    let mut child = Command::new(prog)
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

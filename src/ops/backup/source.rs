//! What a backup is asked to save, and what it reports.

use std::io::Read;
use std::path::PathBuf;

use crate::children::ChildEnv;
use crate::error::Result;
use crate::format::id::Id;
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;

/// How a job source's content is cut: big chunks for files, small ones for dumps and other streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The repository's `files` chunker profile.
    Files,
    /// The repository's `stream` profile.
    Stream,
    /// The repository's `pages` profile (database pages); `stream` in a repository made before it existed, so
    /// that base backups keep deduplicating against the ones already stored.
    Pages,
}

/// One source of a job (a database, a bucket, files, …), as backup sees it: something that saves itself as a
/// directory of the snapshot. The kinds live in `sources/`; backup knows only this.
pub trait JobSource: Send + Sync {
    /// The source's name: its directory `/NAME` in the snapshot.
    fn name(&self) -> &str;
    /// Its kind, for messages (`postgres`, `s3`, …).
    fn kind(&self) -> &'static str;
    /// An optional source that fails is left out with a note instead of failing the job.
    fn optional(&self) -> bool;
    /// How its content is cut.
    fn profile(&self) -> Profile;
    /// Saves the source through `ctx`; returns the tree of its directory. `parent` is the same directory in the
    /// parent snapshot (unchanged files and objects are taken from it without reading). A failure of the source
    /// itself (a program that fails, a bucket that cannot be listed) is [`crate::Error::SourceFailed`].
    fn save(&self, ctx: &BackupContext<'_, '_>, parent: Option<&Tree>) -> Result<Id>;
}

/// What to back up.
pub enum Source {
    /// Files and directories (absolute paths).
    Paths(Vec<PathBuf>),
    /// A byte stream saved as one file named `name` at the snapshot's root.
    Stream {
        /// The file's name.
        name: String,
        /// Where the bytes come from.
        reader: Box<dyn Read + Send>,
    },
    /// A command whose standard output is saved as `name`; a non-zero exit fails the backup.
    Command {
        /// Program and arguments (no shell).
        argv: Vec<String>,
        /// The file's name.
        name: String,
    },
    /// A job: one top-level directory per source, named after it.
    Job {
        /// The job's name (recorded in the snapshot).
        name: String,
        /// Its sources, in order.
        sources: Vec<Box<dyn JobSource>>,
    },
}

/// Options of one backup.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Host recorded in the snapshot.
    pub host: String,
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Exclude patterns (paths only).
    pub excludes: Vec<String>,
    /// Chunker profile; default by source kind (`files` for paths, `stream` for streams and commands).
    pub chunker: Option<String>,
    /// Ignore the parent snapshot and read every file.
    pub force: bool,
    /// Snapshot time (defaults to now; tests set it).
    pub time: Option<jiff::Timestamp>,
    /// The environment of the programs the backup starts (`--command`, pg_dump, redis-cli): the caller knows the
    /// config and so which variables hold secrets.
    pub child_env: ChildEnv,
    /// Bytes the ids of the blobs already stored may take in memory before backup asks the catalog on disk
    /// instead (default [`super::known::DEFAULT_IN_MEMORY`]).
    pub known_in_memory: Option<u64>,
}

impl BackupOptions {
    /// The memory share of the known blob ids.
    pub fn known_in_memory(&self) -> u64 {
        self.known_in_memory.unwrap_or(super::known::DEFAULT_IN_MEMORY)
    }
}

/// The outcome of a committed backup.
#[derive(Debug)]
pub struct BackupOutcome {
    /// The snapshot's id.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Inputs that could not be read (each also counted in `snapshot.summary.errors`).
    pub warnings: Vec<String>,
    /// The paths (or objects) of those inputs, sorted: what a run record and `status` name.
    pub unreadable: Vec<String>,
    /// Things worth telling that are not errors (a file changed while read).
    pub notices: Vec<String>,
    /// Objects of this backup that some region did not get (region, path): the backup is *degraded* — it met
    /// `min_regions`, and `gumvault sync` copies these over.
    pub missing: Vec<(String, String)>,
    /// Regions that lag behind from an earlier degraded write (not synced since), with when that was: the new
    /// snapshot is not in them whole either, though this backup wrote everything it could there.
    pub lagging: Vec<(String, jiff::Timestamp)>,
}

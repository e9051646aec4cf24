//! What every part of a backup shares while it runs: the blob saver, the parent snapshot's trees, the chunker
//! parameters and excludes of the source at hand, live progress counters, and the warnings and notes collected.
//! Sources of a job reach the repository only through this.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::progress::Progress;
use super::saver::BlobSaver;
use super::stream::{self, StreamContent};
use crate::children::ChildEnv;
use crate::error::Result;
use crate::format::blob::BlobKind;
use crate::format::chunker::{Chunker, ChunkerParams};
use crate::format::id::Id;
use crate::format::snapshot::BaseBackup;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::globs::PathGlobs;
use crate::repo::reader::BlobReader;

/// Loads parent-snapshot trees during a backup.
pub struct TreeLoader<'a> {
    reader: BlobReader<'a>,
}

impl<'a> TreeLoader<'a> {
    /// A loader reading through `reader`.
    pub fn new(reader: BlobReader<'a>) -> Self {
        TreeLoader { reader }
    }

    /// The tree with this id.
    pub fn load(&self, id: &Id) -> Result<Tree> {
        self.reader.load_tree(id)
    }

    /// The parent snapshot's tree of a directory node, if there is one.
    pub fn subtree(&self, node: Option<&Node>) -> Result<Option<Tree>> {
        match node.filter(|n| n.kind == NodeKind::Dir).and_then(|n| n.subtree) {
            Some(id) => self.load(&id).map(Some),
            None => Ok(None),
        }
    }
}

/// Everything the source walkers share.
pub struct BackupContext<'a, 'c> {
    pub(super) saver: &'a BlobSaver<'c>,
    pub(super) loader: &'a TreeLoader<'c>,
    /// How the content of the source at hand is cut.
    pub params: ChunkerParams,
    /// What the source at hand leaves out.
    pub excludes: &'a PathGlobs,
    /// The backup's live counters.
    pub progress: &'a Progress,
    pub(super) gear: &'a crate::format::chunker::Gear,
    pub(super) warnings: &'a Mutex<Vec<String>>,
    pub(super) unreadable: &'a Mutex<Vec<String>>,
    pub(super) notices: &'a Mutex<Vec<String>>,
    pub(super) base_backups: &'a Mutex<Vec<BaseBackup>>,
    /// The environment of programs a source starts (pg_dump, redis-cli): without the secrets gumvault holds.
    pub child_env: &'a ChildEnv,
}

impl<'a, 'c> BackupContext<'a, 'c> {
    /// Records an input that could not be read — its path (or object) `what`, and the message saying why — so
    /// the snapshot is marked incomplete and the run's record names what is missing from it.
    pub fn warn(&self, what: impl Into<String>, msg: String) {
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.warnings.lock().expect("warnings lock").push(msg);
        self.unreadable.lock().expect("unreadable lock").push(what.into());
    }

    /// Records something worth telling that is not an error.
    pub fn notice(&self, msg: String) {
        self.notices.lock().expect("notices lock").push(msg);
    }

    /// Records the PostgreSQL base backup a source saved, for the snapshot's `base_backups`. A source calls it
    /// last, once its directory is saved: what a failed source reported would otherwise describe nothing.
    pub fn record_base_backup(&self, backup: BaseBackup) {
        self.base_backups.lock().expect("base backups lock").push(backup);
    }

    /// The same backup with other chunker parameters and excludes (for one source of a job).
    pub fn derive(&self, params: ChunkerParams, excludes: &'a PathGlobs) -> BackupContext<'a, 'c> {
        BackupContext { params, excludes, ..*self }
    }

    /// The parent snapshot's tree with this id.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        self.loader.load(id)
    }

    /// The parent snapshot's tree of a directory node, if there is one.
    pub fn parent_subtree(&self, node: Option<&Node>) -> Result<Option<Tree>> {
        self.loader.subtree(node)
    }

    /// True when every blob that an unchanged file's `node` names is still in the repository, so the file can
    /// reuse them: its content lists and every id in them (a lost pack that `repair index` dropped takes data
    /// blobs out of the index while the lists stay). A damaged list also means the file is read again.
    pub fn has_all(&self, node: &Node) -> Result<bool> {
        self.loader.reader.has_all_content(node, |id| self.saver.has(id))
    }

    /// Gives the unchanged file's `node` the content of `old`, its ids cut into content lists when a snapshot
    /// from before lists holds more than fit in a node (the lists are saved; the data is not read again).
    pub fn reuse_content(&self, old: &Node, node: &mut Node) -> Result<()> {
        if old.content.len() <= crate::format::content_list::INLINE_MAX {
            node.copy_content_from(old);
            return Ok(());
        }
        let mut content = StreamContent::default();
        for id in &old.content {
            content.push(self.saver, *id)?;
        }
        content.size = old.size;
        content.finish_into(self.saver, node)
    }

    /// Reads a stream to its end into `out`, cut with this context's parameters; `what` names it in errors.
    pub fn save_stream(
        &self,
        out: &mut StreamContent,
        reader: impl Read + Send,
        what: &str,
        size_hint: Option<u64>,
    ) -> Result<()> {
        let chunker = Chunker::with_size_hint(reader, self.params, self.gear, size_hint);
        stream::save_stream(self.saver, out, chunker, self.progress, what)
    }

    /// `len` zero bytes into `out` as blobs of at most the maximum chunk size, without reading anything: a hole.
    pub fn save_zeros(&self, out: &mut StreamContent, len: u64) -> Result<()> {
        let max = u64::from(self.params.max_size);
        let mut left = len;
        while left > 0 {
            let n = left.min(max);
            out.push(self.saver, self.saver.save_zeros(n as usize)?)?;
            left -= n;
        }
        out.size += len;
        out.holes += len;
        self.progress.bytes_skipped.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Puts what was read into the file's `node`: its size, and its blobs or content lists.
    pub fn finish_content(&self, content: StreamContent, node: &mut Node) -> Result<()> {
        content.finish_into(self.saver, node)
    }

    /// Saves a directory's entries as a tree; returns its id.
    pub fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        self.saver.save(BlobKind::Tree, &Tree::new(nodes).to_bytes())
    }

    /// Saves a stream as one file named `name` (mode `mode`) made by gumvault, stamped now.
    pub fn save_stream_file(&self, name: &str, mode: u32, reader: impl Read + Send, what: &str) -> Result<Node> {
        let mut content = StreamContent::default();
        self.save_stream(&mut content, reader, what, None)?;
        self.progress.files_new.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes_read.fetch_add(content.size, Ordering::Relaxed);
        self.progress.total_bytes.fetch_add(content.size, Ordering::Relaxed);
        let mut node = synthetic(name, NodeKind::File, mode);
        self.finish_content(content, &mut node)?;
        Ok(node)
    }
}

/// A node for something gumvault made itself (a dump, an environment file, a job's source directory): owned by
/// the user running gumvault, stamped now.
pub fn synthetic(name: &str, kind: NodeKind, mode: u32) -> Node {
    let (uid, gid) = std::fs::metadata("/proc/self")
        .map(|m| (std::os::unix::fs::MetadataExt::uid(&m), std::os::unix::fs::MetadataExt::gid(&m)))
        .unwrap_or((0, 0));
    let now = jiff::Timestamp::now();
    Node {
        uid,
        gid,
        mtime_ns: i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX),
        ..Node::new(RawName(name.as_bytes().to_vec()), kind, mode)
    }
}

/// A directory gumvault made (a job's source, an S3 prefix) holding the tree `tree`.
pub fn synthetic_dir(name: &str, mode: u32, tree: Id) -> Node {
    Node { subtree: Some(tree), ..synthetic(name, NodeKind::Dir, mode) }
}

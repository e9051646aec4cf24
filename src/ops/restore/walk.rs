//! Reading a snapshot's tree: every entry (filtered by include patterns, where a matching directory brings
//! everything below it), or the one node at a path.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind};
use crate::ops::globs::PathGlobs;
use crate::repo::reader::BlobReader;

/// One entry to restore: its path inside the snapshot (absolute) and its node.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Where it is in the snapshot.
    pub path: PathBuf,
    /// What it is.
    pub node: Node,
}

/// Every entry of a tree, depth first, parents before children; filtered by `includes`.
pub fn walk(reader: &BlobReader<'_>, root: &Id, includes: Option<&PathGlobs>) -> Result<Vec<Entry>> {
    Walker::new(reader, root, includes)?.map(|e| e.map_err(|u| u.error)).collect()
}

/// What a [`Walker`] gives: an entry, or a directory below which nothing could be read.
pub type Walked = std::result::Result<Entry, Unreadable>;

/// A directory whose tree could not be read: nothing below it is known.
#[derive(Debug)]
pub struct Unreadable {
    /// The directory's path in the snapshot.
    pub path: PathBuf,
    /// Why its tree could not be had.
    pub error: Error,
}

/// The entries of a tree one at a time, in [`walk`]'s order, holding only the trees on the way to the current
/// entry (so a restore of millions of files never has them all at once). A directory whose tree cannot be read is
/// given as [`Unreadable`] and the walk goes on with its neighbours.
pub struct Walker<'r, 'a> {
    reader: &'r BlobReader<'a>,
    includes: Option<&'r PathGlobs>,
    stack: Vec<Level>,
    /// Directories on the way to the current entry that no include has matched yet: they come out (before it)
    /// only once something at or below them does.
    pending: Vec<Entry>,
    ready: VecDeque<Walked>,
}

/// One directory being walked.
struct Level {
    dir: PathBuf,
    /// Everything below is included.
    all: bool,
    /// Its entry is in `pending`.
    pending: bool,
    nodes: std::vec::IntoIter<Node>,
}

impl<'r, 'a> Walker<'r, 'a> {
    /// A walk of the tree `root`, filtered by `includes`; an error when the root tree itself cannot be read.
    pub fn new(reader: &'r BlobReader<'a>, root: &Id, includes: Option<&'r PathGlobs>) -> Result<Self> {
        let nodes = reader.load_tree(root)?.nodes.into_iter();
        let top = Level { dir: PathBuf::from("/"), all: includes.is_none(), pending: false, nodes };
        Ok(Walker { reader, includes, stack: vec![top], pending: Vec::new(), ready: VecDeque::new() })
    }

    /// The next node of the deepest directory, queued in `ready` when it is to be given out.
    fn step(&mut self) -> Option<()> {
        let level = self.stack.last_mut()?;
        let Some(node) = level.nodes.next() else {
            if self.stack.pop().is_some_and(|l| l.pending) {
                self.pending.pop();
            }
            return Some(());
        };
        let path = level.dir.join(std::ffi::OsStr::from_bytes(&node.name.0));
        let hit = level.all || self.includes.is_some_and(|i| i.matches(&path));
        if node.kind != NodeKind::Dir {
            if hit {
                self.flush();
                self.ready.push_back(Ok(Entry { path, node }));
            }
            return Some(());
        }
        let tree = node
            .subtree
            .ok_or_else(|| Error::corrupt(path.display().to_string(), "directory without a tree"))
            .and_then(|sub| self.reader.load_tree(&sub));
        match tree {
            Err(error) => {
                self.flush();
                self.ready.push_back(Err(Unreadable { path, error }));
            }
            Ok(tree) => {
                let entry = Entry { path: path.clone(), node };
                if hit {
                    self.flush();
                    self.ready.push_back(Ok(entry));
                } else {
                    self.pending.push(entry);
                }
                self.stack.push(Level { dir: path, all: hit, pending: !hit, nodes: tree.nodes.into_iter() });
            }
        }
        Some(())
    }

    /// Something matched: the directories above it come out first.
    fn flush(&mut self) {
        for level in &mut self.stack {
            level.pending = false;
        }
        self.ready.extend(self.pending.drain(..).map(Ok));
    }
}

impl Iterator for Walker<'_, '_> {
    type Item = Walked;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            self.step()?;
        }
    }
}

/// Finds the node at `path` (absolute or relative to the snapshot root).
pub fn find(reader: &BlobReader<'_>, root: &Id, path: &str) -> Result<Node> {
    let mut tree = reader.load_tree(root)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let not_found = || Error::PathNotFound(format!("{path} is not in the snapshot (see `gumvault ls`)"));
    for (i, part) in parts.iter().enumerate() {
        let node = tree.find(part.as_bytes()).ok_or_else(not_found)?.clone();
        if i + 1 == parts.len() {
            return Ok(node);
        }
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => tree = reader.load_tree(&sub)?,
            _ => return Err(not_found()),
        }
    }
    Err(Error::InvalidInput("give the path of a file inside the snapshot, e.g. /db.sql".into()))
}

/// The tree of a source's top-level directory in a job snapshot.
pub fn source_tree(reader: &BlobReader<'_>, entry: &crate::repo::catalog::SnapshotEntry, source: &str) -> Result<Id> {
    let name = source.trim_matches('/');
    let node = find(reader, &entry.snapshot.tree, name).map_err(|_| {
        Error::PathNotFound(format!(
            "snapshot {} has no source {name:?} (its top-level entries: {})",
            entry.id.short(),
            entry.snapshot.paths.join(", ")
        ))
    })?;
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(id)) => Ok(id),
        _ => Err(Error::InvalidInput(format!("/{name} in snapshot {} is not a source directory", entry.id.short()))),
    }
}

//! Walking every tree of a set of snapshots the way check and prune do, with the reads in flight together: trees
//! (and the content lists of large files) are taken breadth first, up to [`IN_FLIGHT`] at once (and at most 16 MiB
//! of them) are fetched and parsed on threads of their own, and each is then handed, in order, to the caller's
//! visitor in the calling thread. Against a distant region a walk costs
//! about one round trip per [`IN_FLIGHT`] trees instead of one per tree. Each tree is visited once, however many
//! snapshots and directories share it.

use std::collections::{HashSet, VecDeque};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::{ContentList, Tree};
use crate::repo::Repository;

/// Trees (and snapshots) read at once.
pub const IN_FLIGHT: usize = 16;
/// Bytes of trees (as stored) in flight at once: a directory of huge files has trees of many MiB, and sixteen
/// of those would be most of a command's memory. One tree is always read, however large.
const BYTES_IN_FLIGHT: u64 = 16 << 20;

/// What the visitor is told about one tree or content list.
pub enum Visit {
    /// The tree, read and parsed.
    Tree(Tree),
    /// The content list, read and checked: the data blob ids it holds.
    List(Vec<Id>),
    /// It could not be read or parsed.
    Failed(Error),
    /// No index places it (the locator said so).
    NotIndexed,
}

/// Something to read next: a tree, or a file's content list.
pub enum Next<L> {
    /// The tree with this id, and its label.
    Tree(Id, L),
    /// A content list, and its label.
    List(ContentList, L),
}

impl<L> Next<L> {
    /// What to read (a tree's id, or the list), apart from the label.
    fn split(self) -> ((Id, Option<ContentList>), L) {
        match self {
            Next::Tree(id, label) => ((id, None), label),
            Next::List(list, label) => ((list.id, Some(list)), label),
        }
    }
}

/// Walks the trees from `roots` (each with a label, e.g. its path). `locate` says where a tree or list lies;
/// `visit` gets each once and returns the subtrees and content lists to read next, with their labels.
pub fn walk<L>(
    repo: &Repository,
    roots: Vec<(Id, L)>,
    mut locate: impl FnMut(&Id) -> Result<Option<(Id, PackedBlob)>>,
    mut visit: impl FnMut(Id, L, Visit) -> Result<Vec<Next<L>>>,
) -> Result<()> {
    let pool = crate::runtime::io_pool(IN_FLIGHT, "tree downloads")?;
    let mut seen: HashSet<Id> = HashSet::new();
    let mut queue: VecDeque<Next<L>> = roots.into_iter().map(|(id, label)| Next::Tree(id, label)).collect();
    while !queue.is_empty() {
        let (mut batch, mut labels) = (Vec::with_capacity(IN_FLIGHT), Vec::with_capacity(IN_FLIGHT));
        let mut bytes = 0;
        while batch.len() < IN_FLIGHT
            && bytes < BYTES_IN_FLIGHT
            && let Some(next) = queue.pop_front()
        {
            let ((id, list), label) = next.split();
            if seen.insert(id) {
                let at = locate(&id)?;
                bytes += at.as_ref().map_or(0, |(_, b)| u64::from(b.info.raw_len));
                batch.push((id, list, at));
                labels.push(label);
            }
        }
        let read: Vec<Visit> =
            pool.install(|| batch.par_iter().map(|(id, list, at)| read_one(repo, id, list.as_ref(), at)).collect());
        for (((id, _, _), label), v) in batch.into_iter().zip(labels).zip(read) {
            queue.extend(visit(id, label, v)?);
        }
    }
    Ok(())
}

/// Reads and parses one tree (or, given `list`, a content list) from where the locator put it.
fn read_one(repo: &Repository, id: &Id, list: Option<&ContentList>, at: &Option<(Id, PackedBlob)>) -> Visit {
    let Some((pack, b)) = at else { return Visit::NotIndexed };
    let plain = match repo.read_blob(pack, b.offset, &b.info) {
        Ok(p) => p,
        Err(e) => return Visit::Failed(e),
    };
    let parsed = match list {
        None => repo.parse_tree(id, &plain).map(Visit::Tree),
        Some(list) => repo.parse_list(list, &plain).map(Visit::List),
    };
    parsed.unwrap_or_else(Visit::Failed)
}

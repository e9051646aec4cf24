//! Walking every tree of a set of snapshots the way check and prune do, with the reads in flight together: trees
//! are taken breadth first, up to [`IN_FLIGHT`] at once (and at most 16 MiB of them) are fetched and parsed on threads of their own, and each
//! is then handed, in order, to the caller's visitor in the calling thread. Against a distant region a walk costs
//! about one round trip per [`IN_FLIGHT`] trees instead of one per tree. Each tree is visited once, however many
//! snapshots and directories share it.

use std::collections::{HashSet, VecDeque};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::Tree;
use crate::repo::Repository;

/// Trees (and snapshots) read at once.
pub const IN_FLIGHT: usize = 16;
/// Bytes of trees (as stored) in flight at once: a directory of huge files has trees of many MiB, and sixteen
/// of those would be most of a command's memory. One tree is always read, however large.
const BYTES_IN_FLIGHT: u64 = 16 << 20;

/// What the visitor is told about one tree.
pub enum Visit {
    /// The tree, read and parsed.
    Tree(Tree),
    /// It could not be read or parsed.
    Failed(Error),
    /// No index places it (the locator said so).
    NotIndexed,
}

/// Walks the trees from `roots` (each with a label, e.g. its path). `locate` says where a tree lies; `visit` gets
/// each tree once and returns the subtrees to walk next, with their labels.
pub fn walk<L>(
    repo: &Repository,
    roots: Vec<(Id, L)>,
    mut locate: impl FnMut(&Id) -> Result<Option<(Id, PackedBlob)>>,
    mut visit: impl FnMut(Id, L, Visit) -> Result<Vec<(Id, L)>>,
) -> Result<()> {
    let pool = crate::runtime::io_pool(IN_FLIGHT, "tree downloads")?;
    let mut seen: HashSet<Id> = HashSet::new();
    let mut queue: VecDeque<(Id, L)> = roots.into();
    while !queue.is_empty() {
        let (mut batch, mut labels) = (Vec::with_capacity(IN_FLIGHT), Vec::with_capacity(IN_FLIGHT));
        let mut bytes = 0;
        while batch.len() < IN_FLIGHT
            && bytes < BYTES_IN_FLIGHT
            && let Some((id, label)) = queue.pop_front()
        {
            if seen.insert(id) {
                let at = locate(&id)?;
                bytes += at.as_ref().map_or(0, |(_, b)| u64::from(b.info.raw_len));
                batch.push((id, at));
                labels.push(label);
            }
        }
        let read: Vec<Visit> = pool.install(|| batch.par_iter().map(|(id, at)| read_tree(repo, id, at)).collect());
        for (((id, _), label), v) in batch.into_iter().zip(labels).zip(read) {
            queue.extend(visit(id, label, v)?);
        }
    }
    Ok(())
}

/// Reads and parses one tree from where the locator put it.
fn read_tree(repo: &Repository, id: &Id, at: &Option<(Id, PackedBlob)>) -> Visit {
    let Some((pack, b)) = at else { return Visit::NotIndexed };
    match repo.read_blob(pack, b.offset, &b.info).and_then(|p| repo.parse_tree(id, &p)) {
        Ok(t) => Visit::Tree(t),
        Err(e) => Visit::Failed(e),
    }
}

//! `diff` and `stats`: comparing two snapshots and measuring what a snapshot or the repository holds.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind};
use crate::repo::blob_index::{BlobRecord, MemoryBudget};
use crate::repo::reader::BlobReader;

/// One difference between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `+` added, `-` removed, `M` content changed, `U` metadata only, `T` type changed.
    pub kind: char,
    /// The path that changed, from the snapshot's root (`/...`).
    pub path: PathBuf,
}

/// Differences from tree `a` to tree `b`, in path order. Identical subtrees are skipped without reading.
pub fn diff(reader: &BlobReader<'_>, a: &Id, b: &Id) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_trees(reader, Some(a), Some(b), Path::new("/"), &mut out)?;
    Ok(out)
}

/// Whether two files hold the same blobs. Nodes in the same form compare as they are (lists are cut by the ids
/// alone); a file saved inline before content lists and the same file in lists compare id by id.
fn same_content(reader: &BlobReader<'_>, x: &Node, y: &Node) -> Result<bool> {
    if x.same_content(y) {
        return Ok(true);
    }
    if x.content_lists.is_empty() == y.content_lists.is_empty() || x.blob_count() != y.blob_count() {
        return Ok(false);
    }
    for (a, b) in reader.content(x).zip(reader.content(y)) {
        if a? != b? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn diff_trees(
    reader: &BlobReader<'_>,
    a: Option<&Id>,
    b: Option<&Id>,
    dir: &Path,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |t: Option<&Id>| -> Result<BTreeMap<Vec<u8>, Node>> {
        Ok(match t {
            Some(id) => reader.load_tree(id)?.nodes.into_iter().map(|n| (n.name.0.clone(), n)).collect(),
            None => BTreeMap::new(),
        })
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let names: std::collections::BTreeSet<&Vec<u8>> = ta.keys().chain(tb.keys()).collect();
    for name in names {
        let path = dir.join(OsStr::from_bytes(name));
        match (ta.get(name), tb.get(name)) {
            (Some(x), None) => removed_or_added(reader, x, &path, '-', out)?,
            (None, Some(y)) => removed_or_added(reader, y, &path, '+', out)?,
            (Some(x), Some(y)) if x.kind != y.kind => {
                out.push(Change { kind: 'T', path: path.clone() });
            }
            (Some(x), Some(y)) if x.kind == NodeKind::Dir => {
                if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid) {
                    out.push(Change { kind: 'U', path: path.clone() });
                }
                diff_trees(reader, x.subtree.as_ref(), y.subtree.as_ref(), &path, out)?;
            }
            (Some(x), Some(y)) => {
                if x.target != y.target || x.size != y.size || !same_content(reader, x, y)? {
                    out.push(Change { kind: 'M', path });
                } else if (x.mode, x.uid, x.gid, x.mtime_ns) != (y.mode, y.uid, y.gid, y.mtime_ns) {
                    out.push(Change { kind: 'U', path });
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn removed_or_added(
    reader: &BlobReader<'_>,
    node: &Node,
    path: &Path,
    kind: char,
    out: &mut Vec<Change>,
) -> Result<()> {
    out.push(Change { kind, path: path.to_path_buf() });
    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
        for child in reader.load_tree(&sub)?.nodes {
            removed_or_added(reader, &child, &path.join(OsStr::from_bytes(&child.name.0)), kind, out)?;
        }
    }
    Ok(())
}

/// What one snapshot holds.
#[derive(Debug, Default, Serialize)]
pub struct SnapshotStats {
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Sum of file sizes.
    pub logical_bytes: u64,
    /// Distinct blobs the snapshot references, their plaintext and stored sizes.
    pub unique_blobs: u64,
    /// Plaintext bytes of those distinct blobs (trees included).
    pub unique_bytes: u64,
    /// Bytes those distinct blobs take in the packs (compressed and encrypted).
    pub stored_bytes: u64,
    /// logical / unique plaintext: how much deduplication saved within the snapshot.
    pub dedup_ratio: f64,
    /// Whether the ids went through scratch files (the snapshot references more than the memory budget holds).
    #[serde(skip)]
    pub spilled: bool,
}

/// Walks a snapshot and totals it. Its distinct blobs are counted by sorting every id it references, in memory
/// up to `budget` and in sorted runs on disk beyond it, so memory does not grow with the snapshot: each distinct
/// id is then looked up once in the catalog for its sizes.
pub fn snapshot_stats(reader: &BlobReader<'_>, root: &Id, budget: &MemoryBudget) -> Result<SnapshotStats> {
    let mut st = SnapshotStats::default();
    let mut ids = budget.sorter(0)?;
    let mut stack = vec![*root];
    let mut note = |id: &Id| ids.push(BlobRecord { id: *id, pack: 0, stored_len: 0 });
    while let Some(t) = stack.pop() {
        note(&t)?;
        for node in reader.load_tree(&t)?.nodes {
            match node.kind {
                NodeKind::Dir => {
                    st.dirs += 1;
                    stack.extend(node.subtree);
                }
                NodeKind::File => {
                    st.files += 1;
                    st.logical_bytes += node.size;
                    for list in &node.content_lists {
                        note(&list.id)?;
                    }
                    for id in reader.content(&node) {
                        note(&id?)?;
                    }
                }
                _ => {}
            }
        }
    }
    st.spilled = ids.spilled();
    let (mut last, mut failed) = (None, None);
    ids.finish()?.for_each(|_, r| {
        if failed.is_some() || last == Some(r.id) {
            return;
        }
        last = Some(r.id);
        match reader.locate(&r.id) {
            Ok(loc) => {
                st.unique_blobs += 1;
                st.unique_bytes += loc.info.raw_len as u64;
                st.stored_bytes += loc.info.stored_len as u64;
            }
            Err(e) => failed = Some(e),
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    st.dedup_ratio = if st.unique_bytes > 0 { st.logical_bytes as f64 / st.unique_bytes as f64 } else { 1.0 };
    Ok(st)
}

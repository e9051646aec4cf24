//! Reading a snapshot's tree: every entry (filtered by include patterns, where a matching directory brings
//! everything below it), or the one node at a path.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    let mut out = Vec::new();
    walk_into(reader, root, Path::new("/"), includes.is_none(), includes, &mut out)?;
    Ok(out)
}

fn walk_into(
    reader: &BlobReader<'_>,
    tree: &Id,
    dir: &Path,
    all: bool,
    includes: Option<&PathGlobs>,
    out: &mut Vec<Entry>,
) -> Result<bool> {
    let tree = reader.load_tree(tree)?;
    let mut any = false;
    for node in tree.nodes {
        let path = dir.join(std::ffi::OsStr::from_bytes(&node.name.0));
        let hit = all || includes.is_some_and(|i| i.matches(&path));
        if node.kind == NodeKind::Dir {
            let at = out.len();
            out.push(Entry { path: path.clone(), node: node.clone() });
            let sub =
                node.subtree.ok_or_else(|| Error::corrupt(path.display().to_string(), "directory without a tree"))?;
            let kept = walk_into(reader, &sub, &path, hit, includes, out)?;
            if !hit && !kept {
                out.remove(at);
            } else {
                any = true;
            }
        } else if hit {
            out.push(Entry { path, node });
            any = true;
        }
    }
    Ok(any)
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

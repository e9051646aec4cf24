//! Repair: rebuilding the index from the packs themselves, and rewriting snapshots whose data was lost so that
//! everything still present stays restorable. Nothing is repaired silently: every loss is reported and marked in
//! the snapshot itself.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::backup::BlobSaver;
use crate::repo::Repository;
use crate::repo::catalog::Catalog;
use crate::repo::reader::BlobReader;

/// Name of the empty file that marks lost data in a repaired snapshot.
pub const LOST_SUFFIX: &str = ".gumvault-lost";

/// What `repair index` did.
#[derive(Debug, Default, Serialize)]
pub struct IndexRepair {
    /// Packs whose header was read and entered into the new index.
    pub packs_indexed: usize,
    /// Blobs entered into the new index, over all those packs.
    pub blobs_indexed: usize,
    /// New index segments written.
    pub segments_written: usize,
    /// Old index segments deleted once the new ones were written.
    pub segments_removed: usize,
    /// Packs whose header could not be read: their data is lost.
    pub unreadable_packs: Vec<String>,
}

/// Rebuilds the index from every pack's own header, then removes the old index segments.
pub fn repair_index(repo: &Repository) -> Result<IndexRepair> {
    let old = repo.list_indexes()?;
    let mut report = IndexRepair::default();
    let mut segment: Vec<PackEntry> = Vec::new();
    let mut blobs_in_segment = 0;
    for (id, size) in repo.list_packs()? {
        match repo.pack_entry_from_header(&id, size) {
            Ok(entry) => {
                report.packs_indexed += 1;
                report.blobs_indexed += entry.blobs.len();
                blobs_in_segment += entry.blobs.len();
                segment.push(entry);
                if blobs_in_segment >= 100_000 {
                    repo.save_index(&std::mem::take(&mut segment))?;
                    report.segments_written += 1;
                    blobs_in_segment = 0;
                }
            }
            Err(e) => report.unreadable_packs.push(format!("{}: {e}", ObjectKind::Pack.path_of(&id))),
        }
    }
    if !segment.is_empty() {
        repo.save_index(&segment)?;
        report.segments_written += 1;
    }
    for id in &old {
        repo.delete_object(ObjectKind::Index, id)?;
        report.segments_removed += 1;
    }
    repo.write_tombstone()?;
    Ok(report)
}

/// What `repair snapshots` did for one snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotRepair {
    /// The damaged snapshot's id (hex).
    pub old_id: String,
    /// The id (hex) of the repaired snapshot that replaces it; `None` on a dry run or when it cannot be repaired.
    pub new_id: Option<String>,
    /// Paths whose content (or whole directory) was lost.
    pub lost: Vec<String>,
}

/// Rewrites every snapshot that references blobs the index does not have. Lost files become empty files named
/// `NAME.gumvault-lost`, lost directories hold only such a marker; the new snapshot is tagged `repaired` and
/// marked incomplete, and replaces the old one. A snapshot whose root tree is lost cannot be repaired and is
/// reported.
pub fn repair_snapshots(repo: &Repository, catalog: &mut Catalog, dry_run: bool) -> Result<Vec<SnapshotRepair>> {
    let known = catalog.blob_ids()?;
    let snaps = catalog.snapshots()?;
    let uploads = crate::ops::backup::UploadState::default();
    let mut out = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        let saver = BlobSaver::new(repo, catalog, &uploads, scope)?;
        let mut rewritten = Vec::new();
        {
            let reader = BlobReader::new(repo, catalog);
            for entry in &snaps {
                let mut lost = Vec::new();
                if !known.contains(&entry.snapshot.tree) {
                    out.push(SnapshotRepair {
                        old_id: entry.id.to_hex(),
                        new_id: None,
                        lost: vec!["/ (the root tree is lost; this snapshot cannot be repaired)".into()],
                    });
                    continue;
                }
                let root = rewrite_tree(&reader, &saver, &known, &entry.snapshot.tree, "", &mut lost, dry_run)?;
                if !lost.is_empty() {
                    rewritten.push((entry.id, entry.snapshot.clone(), root, lost));
                }
            }
        }
        saver.flush()?;
        for (old_id, mut snap, root, lost) in rewritten {
            let new_id = if dry_run {
                None
            } else {
                snap.tree = root;
                snap.incomplete = true;
                snap.parent = Some(old_id);
                if !snap.tags.iter().any(|t| t == "repaired") {
                    snap.tags.push("repaired".into());
                }
                let id = repo.save_snapshot(&snap)?;
                repo.delete_object(ObjectKind::Snapshot, &old_id)?;
                Some(id.to_hex())
            };
            out.push(SnapshotRepair { old_id: old_id.to_hex(), new_id, lost });
        }
        Ok(())
    })?;
    uploads.record_in(catalog)?;
    catalog.sync(repo)?;
    if !dry_run {
        repo.write_tombstone()?;
    }
    Ok(out)
}

fn lost_marker(name: &[u8], template: &Node) -> Node {
    let mut n = template.clone();
    let mut marker = name.to_vec();
    marker.extend_from_slice(LOST_SUFFIX.as_bytes());
    n.name = RawName(marker);
    n.kind = NodeKind::File;
    n.size = 0;
    n.content = Vec::new();
    n.subtree = None;
    n.target = None;
    n
}

/// Returns the id of the tree with lost parts replaced; unchanged trees keep their id.
fn rewrite_tree(
    reader: &BlobReader<'_>,
    saver: &BlobSaver<'_>,
    known: &HashSet<Id>,
    id: &Id,
    path: &str,
    lost: &mut Vec<String>,
    dry_run: bool,
) -> Result<Id> {
    let tree = match reader.load_tree(id) {
        Ok(t) => t,
        Err(Error::Corrupt { .. }) => {
            lost.push(format!("{path}/ (directory tree damaged)"));
            return save(saver, Tree::new(Vec::new()), dry_run);
        }
        Err(e) => return Err(e),
    };
    let mut changed = false;
    let mut nodes = Vec::with_capacity(tree.nodes.len());
    for node in &tree.nodes {
        let child_path = format!("{path}/{}", node.name.display());
        match node.kind {
            NodeKind::Dir => {
                let mut n = node.clone();
                match node.subtree {
                    Some(sub) if known.contains(&sub) => {
                        let new = rewrite_tree(reader, saver, known, &sub, &child_path, lost, dry_run)?;
                        changed |= new != sub;
                        n.subtree = Some(new);
                    }
                    _ => {
                        lost.push(format!("{child_path}/ (whole directory)"));
                        let marker = lost_marker(b"", node);
                        n.subtree = Some(save(saver, Tree::new(vec![marker]), dry_run)?);
                        changed = true;
                    }
                }
                nodes.push(n);
            }
            NodeKind::File if node.content.iter().any(|b| !known.contains(b)) => {
                lost.push(child_path);
                nodes.push(lost_marker(&node.name.0, node));
                changed = true;
            }
            _ => nodes.push(node.clone()),
        }
    }
    if !changed {
        return Ok(*id);
    }
    save(saver, Tree::new(nodes), dry_run)
}

fn save(saver: &BlobSaver<'_>, tree: Tree, dry_run: bool) -> Result<Id> {
    if dry_run {
        return Ok(Id::default());
    }
    saver.save(BlobKind::Tree, &tree.to_bytes())
}

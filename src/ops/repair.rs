//! Repair: rebuilding the index from the packs themselves, and rewriting snapshots whose data was lost so that
//! everything still present stays restorable. Nothing is repaired silently: every loss is reported and marked in
//! the snapshot itself.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::PackedBlob;
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
    /// Packs entered into the new index (read from their header, or salvaged).
    pub packs_indexed: usize,
    /// Blobs entered into the new index, over all those packs.
    pub blobs_indexed: usize,
    /// New index segments written.
    pub segments_written: usize,
    /// Old index segments deleted once the new ones were written.
    pub segments_removed: usize,
    /// Old index segments kept because they describe a pack that could not be fully re-read.
    pub segments_kept: Vec<String>,
    /// Old index segments that could not be read at all (damaged): removed, as nothing in them can be used
    /// (unless a region failed during the repair: its copy may be whole).
    pub segments_unreadable: Vec<String>,
    /// Packs whose header could not be read as it is, and what was recovered from each.
    pub damaged_packs: Vec<DamagedPack>,
    /// Packs that could not be read (storage errors): the old segments describing them are kept.
    pub unreadable_packs: Vec<String>,
    /// Packs whose header cannot be read and that no readable index segment describes: without an entry a blob's
    /// id and length are unknown, so nothing in them can be authenticated. Their bytes are left in place.
    pub unrecoverable_packs: Vec<String>,
    /// Packs the old index described that no region holds any more, with the number of blobs lost with each.
    pub missing_packs: Vec<String>,
    /// Blobs the old index or a pack's header placed somewhere that no pack holds readable any more.
    pub blobs_lost: usize,
}

/// One pack that needed more than reading its header.
#[derive(Debug, Serialize)]
pub struct DamagedPack {
    /// The pack's path.
    pub pack: String,
    /// What is wrong with it.
    pub problem: String,
    /// Whether its own header was found (else its blobs were known only from the old index).
    pub header_found: bool,
    /// Blobs whose bytes still authenticate: they stay in the index.
    pub blobs_recovered: usize,
    /// Ids (hex) of the blobs placed in it that authenticate in no copy: lost.
    pub blobs_lost: Vec<String>,
}

/// What an old index segment says, and whether it could be read.
struct OldIndex {
    /// Readable segments and the packs each describes.
    segments: Vec<(Id, Vec<PackEntry>)>,
    /// Every blob the readable segments place in each pack.
    described: HashMap<Id, Vec<PackedBlob>>,
}

/// How re-reading one pack went.
enum Reread {
    /// Its header lists every blob the old index placed in it (or more): nothing lost, nothing uncertain.
    Whole(PackEntry),
    /// Read whole and every blob checked: what authenticates is kept, the rest is known lost.
    Salvaged(PackEntry),
    /// It could not be read: what the old index says about it must stay.
    Unreadable,
}

/// Rebuilds the index from the packs themselves. Each pack's header is read; a pack whose header cannot be read
/// as it is (trailing bytes, a damaged or missing header) is read whole and every blob that still authenticates
/// is kept ([`Repository::salvage_pack`]), its place known from the header found further back or from the old
/// index. New segments are written first; then an old segment is removed only when every pack it describes was
/// re-read completely (every blob it lists either found again or read and found damaged in every region) or
/// is gone from every region. A segment describing a pack that could not be read stays, and is reported.
pub fn repair_index(repo: &Repository) -> Result<IndexRepair> {
    let mut report = IndexRepair::default();
    let old = load_old_index(repo, &mut report)?;
    let stored = repo.list_packs()?;
    let listed: HashSet<Id> = stored.iter().map(|(id, _)| *id).collect();
    let mut rereads: HashMap<Id, Reread> = HashMap::new();
    for (id, size) in stored {
        let described = old.described.get(&id).map(Vec::as_slice).unwrap_or_default();
        rereads.insert(id, reread(repo, &id, size, described, &mut report));
    }
    write_new_index(repo, &rereads, &mut report)?;
    for (pack, blobs) in old.described.iter().filter(|(id, _)| !listed.contains(*id)) {
        report.missing_packs.push(format!("{}: {} blobs lost", ObjectKind::Pack.path_of(pack), blobs.len()));
        report.blobs_lost += blobs.len();
    }
    // A region that failed during the repair may hold what the others lack: then nothing old is removed.
    let all_answered = repo.all_regions_healthy();
    for (seg, packs) in &old.segments {
        let complete = |p: &PackEntry| match rereads.get(&p.id) {
            None => true,
            Some(Reread::Whole(_) | Reread::Salvaged(_)) => true,
            Some(Reread::Unreadable) => false,
        };
        if all_answered && packs.iter().all(complete) {
            repo.delete_object(ObjectKind::Index, seg)?;
            report.segments_removed += 1;
        } else {
            report.segments_kept.push(ObjectKind::Index.path_of(seg));
        }
    }
    for seg in report.segments_unreadable.iter().filter(|_| all_answered) {
        if let Some(id) = ObjectKind::id_of_path(seg) {
            repo.delete_object(ObjectKind::Index, &id)?;
        }
    }
    repo.write_tombstone()?;
    Ok(report)
}

/// Reads every old index segment. A damaged one is noted (it describes nothing that can be used); any other
/// error ends the repair before anything is written.
fn load_old_index(repo: &Repository, report: &mut IndexRepair) -> Result<OldIndex> {
    let mut old = OldIndex { segments: Vec::new(), described: HashMap::new() };
    for id in repo.list_indexes()? {
        match repo.load_index(&id) {
            Ok(packs) => {
                for p in &packs {
                    let known = old.described.entry(p.id).or_default();
                    known.extend(p.blobs.iter().filter(|b| !known.contains(b)).copied().collect::<Vec<_>>());
                }
                old.segments.push((id, packs));
            }
            Err(Error::Corrupt { .. }) => report.segments_unreadable.push(ObjectKind::Index.path_of(&id)),
            Err(e) => return Err(e),
        }
    }
    Ok(old)
}

/// Re-reads one pack: its header when that is whole and lists everything the old index placed in it, else the
/// whole pack, blob by blob.
fn reread(repo: &Repository, id: &Id, size: u64, described: &[PackedBlob], report: &mut IndexRepair) -> Reread {
    let path = ObjectKind::Pack.path_of(id);
    if let Ok(entry) = repo.pack_entry_from_header(id, size) {
        let listed: HashSet<(u64, Id)> = entry.blobs.iter().map(|b| (b.offset, b.info.id)).collect();
        if described.iter().all(|b| listed.contains(&(b.offset, b.info.id))) {
            return Reread::Whole(entry);
        }
    }
    let salvaged = match repo.salvage_pack(id, described) {
        Ok(s) => s,
        Err(e) => {
            report.unreadable_packs.push(format!("{path}: {e}"));
            return Reread::Unreadable;
        }
    };
    if !salvaged.header_found && described.is_empty() {
        report.unrecoverable_packs.push(format!("{path}: {}", salvaged.problem));
        return Reread::Salvaged(PackEntry { id: *id, kind: BlobKind::Data, size, blobs: Vec::new() });
    }
    report.blobs_lost += salvaged.lost.len();
    report.damaged_packs.push(DamagedPack {
        pack: path,
        problem: salvaged.problem.clone(),
        header_found: salvaged.header_found,
        blobs_recovered: salvaged.blobs.len(),
        blobs_lost: salvaged.lost.iter().map(|b| b.info.id.to_hex()).collect(),
    });
    let kind = salvaged.blobs.first().map_or(BlobKind::Data, |b| b.info.kind);
    Reread::Salvaged(PackEntry { id: *id, kind, size: salvaged.size, blobs: salvaged.blobs })
}

/// Writes the new index: every pack re-read with at least one blob, in segments of about 100,000 blobs.
fn write_new_index(repo: &Repository, rereads: &HashMap<Id, Reread>, report: &mut IndexRepair) -> Result<()> {
    let mut segment: Vec<PackEntry> = Vec::new();
    let mut blobs_in_segment = 0;
    for reread in rereads.values() {
        let (Reread::Whole(entry) | Reread::Salvaged(entry)) = reread else { continue };
        if entry.blobs.is_empty() {
            continue;
        }
        report.packs_indexed += 1;
        report.blobs_indexed += entry.blobs.len();
        blobs_in_segment += entry.blobs.len();
        segment.push(entry.clone());
        if blobs_in_segment >= 100_000 {
            repo.save_index(&std::mem::take(&mut segment))?;
            report.segments_written += 1;
            blobs_in_segment = 0;
        }
    }
    if !segment.is_empty() {
        repo.save_index(&segment)?;
        report.segments_written += 1;
    }
    Ok(())
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
        let saver = BlobSaver::new(repo, catalog, crate::ops::backup::known::DEFAULT_IN_MEMORY, &uploads, scope)?;
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
    n.clear_content();
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
            NodeKind::File if !content_known(reader, known, node)? => {
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

/// Whether every blob of a file's content is known: its content lists, intact, and every id they hold. A list
/// that cannot be read for another reason than damage (a region down) stops the repair, as a tree's does: that
/// is no loss to record.
fn content_known(reader: &BlobReader<'_>, known: &HashSet<Id>, node: &Node) -> Result<bool> {
    reader.has_all_content(node, |id| Ok(known.contains(id)))
}

fn save(saver: &BlobSaver<'_>, tree: Tree, dry_run: bool) -> Result<Id> {
    if dry_run {
        return Ok(Id::default());
    }
    saver.save(BlobKind::Tree, &tree.to_bytes())
}

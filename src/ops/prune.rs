//! Prune: reclaims space in two phases so it is safe beside running backups.
//!
//! Phase one (every run) marks packs that no snapshot needs — unused packs, packs that were repacked, and packs
//! no index knows (left by crashed backups, or still being written by a running one) — as *obsolete* in an
//! `obsolete/` object, and rewrites the index without them. Phase two (a later run) deletes packs that have been
//! obsolete for longer than the grace period, unless a snapshot committed meanwhile needs them, in which case
//! they are brought back into the index. Order of writes: new packs → new index → new obsolete list → delete old
//! index and lists → delete expired packs; a crash between any two steps leaves a valid repository.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::blob::{self, BlobKind};
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::pack::{self, PackWriter, PackedBlob};
use crate::format::tree::NodeKind;
use crate::repo::{self, Repository};
use crate::storage;

const OBSOLETE_AAD: &[u8] = b"gumvault obsolete v1";
/// Blobs per index segment written by prune.
const SEGMENT_BLOBS: usize = 100_000;

/// One pack waiting for deletion.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObsoletePack {
    pub id: Id,
    pub marked: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ObsoleteList {
    version: u32,
    packs: Vec<ObsoletePack>,
}

/// Every obsolete-list object and the packs it marks (earliest mark wins).
pub fn load_obsolete(repo: &Repository) -> Result<(Vec<String>, BTreeMap<Id, Timestamp>)> {
    let mut names = Vec::new();
    let mut packs: BTreeMap<Id, Timestamp> = BTreeMap::new();
    for (path, _) in repo.storage.list("obsolete/")? {
        let sealed = repo.storage.read(&path)?;
        let plain =
            repo.key.open(OBSOLETE_AAD, &sealed).ok_or_else(|| Error::corrupt(&path, "authentication failed"))?;
        let list: ObsoleteList = serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&path, e.to_string()))?;
        if list.version != 1 {
            return Err(Error::UnsupportedVersion { what: path, found: list.version, supported: 1 });
        }
        for p in list.packs {
            let e = packs.entry(p.id).or_insert(p.marked);
            *e = (*e).min(p.marked);
        }
        names.push(path);
    }
    Ok((names, packs))
}

fn save_obsolete(repo: &Repository, packs: &BTreeMap<Id, Timestamp>) -> Result<Option<String>> {
    if packs.is_empty() {
        return Ok(None);
    }
    let list = ObsoleteList {
        version: 1,
        packs: packs.iter().map(|(id, marked)| ObsoletePack { id: *id, marked: *marked }).collect(),
    };
    let sealed = repo.key.seal(OBSOLETE_AAD, serde_json::to_vec(&list).expect("list serializes"));
    let path = format!("obsolete/{}", Id::of_object(&sealed));
    repo.storage.write(&path, sealed)?;
    Ok(Some(path))
}

/// Options of a prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack partly used packs until unused bytes are at most this share of used bytes.
    pub max_unused: f64,
    /// How long a pack stays obsolete before it is deleted.
    pub grace: SignedDuration,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused: 0.05, grace: SignedDuration::from_hours(24), dry_run: false }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub snapshots: usize,
    pub used_blobs: usize,
    pub packs: usize,
    pub packs_repacked: usize,
    pub packs_marked: usize,
    pub packs_deleted: usize,
    pub packs_restored: usize,
    pub packs_waiting: usize,
    pub bytes_freed: u64,
    pub bytes_waiting: u64,
    pub bytes_repacked: u64,
    pub index_segments_written: usize,
}

/// Everything the plan needs to know about the repository.
struct State {
    index_names: Vec<Id>,
    live: HashMap<Id, PackEntry>,
    blob_pack: HashMap<Id, (Id, PackedBlob)>,
    obsolete_names: Vec<String>,
    obsolete: BTreeMap<Id, Timestamp>,
    stored: HashMap<Id, u64>,
}

fn load_state(repo: &Repository) -> Result<State> {
    let index_names = repo.list_indexes()?;
    let mut live = HashMap::new();
    let mut blob_pack = HashMap::new();
    for idx in &index_names {
        for p in repo.load_index(idx)? {
            for b in &p.blobs {
                blob_pack.entry(b.info.id).or_insert((p.id, *b));
            }
            live.insert(p.id, p);
        }
    }
    let (obsolete_names, obsolete) = load_obsolete(repo)?;
    let stored = repo
        .storage
        .list("data/")?
        .into_iter()
        .filter_map(|(p, size)| Some((Id::from_hex(p.rsplit('/').next()?)?, size)))
        .collect();
    Ok(State { index_names, live, blob_pack, obsolete_names, obsolete, stored })
}

/// Reads a pack's header (a range read of its tail) to learn its blobs.
pub fn read_pack_header(repo: &Repository, id: &Id, size: u64) -> Result<Vec<PackedBlob>> {
    let path = storage::pack_path(id);
    let bad = |e: String| Error::corrupt(&path, e);
    if size < 4 {
        return Err(bad("pack is shorter than its trailer".into()));
    }
    let trailer = repo.storage.read_range(&path, size - 4, 4)?;
    let hlen = pack::header_len_from_trailer(&trailer, size).map_err(bad)?;
    let sealed = repo.storage.read_range(&path, size - 4 - hlen, hlen)?;
    pack::decode_header(&repo.key, &sealed, size - 4 - hlen).map_err(bad)
}

/// Every blob some snapshot needs. Blobs found only in obsolete packs put those packs in `restore`.
fn used_blobs(repo: &Repository, st: &State, restore: &mut HashMap<Id, PackEntry>) -> Result<(HashSet<Id>, usize)> {
    let mut obsolete_blobs: Option<HashMap<Id, (Id, PackedBlob)>> = None;
    let mut used = HashSet::new();
    let snaps = repo.list_snapshots()?;
    let mut trees: Vec<Id> = Vec::new();
    for s in &snaps {
        trees.push(repo.load_snapshot(s)?.tree);
    }
    let mut locate = |id: &Id, restore: &mut HashMap<Id, PackEntry>| -> Result<(Id, PackedBlob)> {
        if let Some(l) = st.blob_pack.get(id) {
            return Ok(*l);
        }
        let ob = match &mut obsolete_blobs {
            Some(m) => m,
            None => {
                let mut m = HashMap::new();
                for pid in st.obsolete.keys() {
                    if let Some(size) = st.stored.get(pid) {
                        for b in read_pack_header(repo, pid, *size)? {
                            m.entry(b.info.id).or_insert((*pid, b));
                        }
                    }
                }
                obsolete_blobs.insert(m)
            }
        };
        let (pid, b) = *ob.get(id).ok_or_else(|| {
            Error::corrupt(
                format!("blob {id}"),
                "needed by a snapshot but in no pack; prune stops (run `gumvault check`)",
            )
        })?;
        if let std::collections::hash_map::Entry::Vacant(v) = restore.entry(pid) {
            let size = st.stored[&pid];
            let blobs = read_pack_header(repo, &pid, size)?;
            let kind = blobs.first().map_or(BlobKind::Data, |b| b.info.kind);
            v.insert(PackEntry { id: pid, kind, size, blobs });
        }
        Ok((pid, b))
    };
    while let Some(tree_id) = trees.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        let (pid, b) = locate(&tree_id, restore)?;
        let plain = repo.read_blob(&pid, b.offset, &b.info)?;
        let tree = repo.parse_tree(&tree_id, &plain)?;
        for node in tree.nodes {
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                trees.push(sub);
            }
            for id in node.content {
                if used.insert(id) {
                    locate(&id, restore)?;
                }
            }
        }
    }
    Ok((used, snaps.len()))
}

/// Plans and (unless `dry_run`) performs a prune. The caller holds the maintenance lease.
pub fn prune(repo: &Repository, opts: &PruneOptions, now: Timestamp) -> Result<PruneReport> {
    // A region that was down during an earlier prune still holds what that prune deleted: finish it first.
    crate::ops::sync::finish_pending_deletes(repo)?;
    let st = load_state(repo)?;
    let mut restore: HashMap<Id, PackEntry> = HashMap::new();
    let (used, snapshots) = used_blobs(repo, &st, &mut restore)?;
    let mut report = PruneReport { snapshots, used_blobs: used.len(), packs: st.stored.len(), ..Default::default() };

    // Classify live packs.
    let mut keep: Vec<&PackEntry> = Vec::new();
    let mut partial: Vec<(&PackEntry, u64, u64)> = Vec::new();
    let mut newly_obsolete: Vec<Id> = Vec::new();
    let (mut used_bytes, mut unused_bytes) = (0u64, 0u64);
    for p in st.live.values() {
        let u: u64 = p.blobs.iter().filter(|b| used.contains(&b.info.id)).map(|b| b.info.stored_len as u64).sum();
        let total: u64 = p.blobs.iter().map(|b| b.info.stored_len as u64).sum();
        if u == 0 {
            newly_obsolete.push(p.id);
        } else if u == total {
            keep.push(p);
        } else {
            partial.push((p, u, total - u));
        }
        used_bytes += u;
        unused_bytes += total - u;
    }
    // Repack the emptiest partly used packs until the unused share is within bounds.
    partial.sort_by(|a, b| (b.2 * a.1.max(1)).cmp(&(a.2 * b.1.max(1))));
    let mut remaining_unused = unused_bytes - newly_obsolete_unused(&st, &newly_obsolete);
    let mut repack: Vec<&PackEntry> = Vec::new();
    for (p, _u, unused) in partial {
        if (remaining_unused as f64) > opts.max_unused * used_bytes as f64 {
            repack.push(p);
            remaining_unused -= unused;
        } else {
            keep.push(p);
        }
    }
    // Packs nobody indexes: crashed backups, or a backup still running. They wait out the grace period.
    for id in st.stored.keys() {
        if !st.live.contains_key(id) && !st.obsolete.contains_key(id) && !restore.contains_key(id) {
            newly_obsolete.push(*id);
        }
    }
    // Obsolete packs: delete after the grace period unless needed again or indexed again.
    let mut obsolete_next: BTreeMap<Id, Timestamp> = BTreeMap::new();
    let mut delete: Vec<Id> = Vec::new();
    for (id, marked) in &st.obsolete {
        if restore.contains_key(id) || st.live.contains_key(id) || !st.stored.contains_key(id) {
            continue; // back in use, indexed again by a backup, or already gone
        }
        if marked.checked_add(opts.grace).unwrap_or(Timestamp::MAX) <= now {
            delete.push(*id);
            report.bytes_freed += st.stored[id];
        } else {
            obsolete_next.insert(*id, *marked);
            report.bytes_waiting += st.stored[id];
        }
    }
    for id in newly_obsolete.iter().chain(repack.iter().map(|p| &p.id)) {
        obsolete_next.entry(*id).or_insert(now);
        report.bytes_waiting += st.stored.get(id).copied().unwrap_or(0);
    }
    report.packs_repacked = repack.len();
    report.packs_marked = newly_obsolete.len() + repack.len();
    report.packs_deleted = delete.len();
    report.packs_restored = restore.len();
    report.packs_waiting = obsolete_next.len();
    report.bytes_repacked = repack.iter().map(|p| p.size).sum();
    if opts.dry_run {
        return Ok(report);
    }

    // 1. New packs with the used blobs of repacked packs.
    let mut new_index: Vec<PackEntry> = keep.into_iter().cloned().collect();
    new_index.extend(restore.into_values());
    new_index.extend(repack_packs(repo, &repack, &used)?);
    // 2. The new index, segment by segment.
    let mut segment: Vec<PackEntry> = Vec::new();
    let mut n = 0;
    for p in new_index {
        n += p.blobs.len();
        segment.push(p);
        if n >= SEGMENT_BLOBS {
            repo.save_index(&std::mem::take(&mut segment))?;
            report.index_segments_written += 1;
            n = 0;
        }
    }
    if !segment.is_empty() {
        repo.save_index(&segment)?;
        report.index_segments_written += 1;
    }
    // 3. The new obsolete list; 4. then the old index and lists go.
    let new_list = save_obsolete(repo, &obsolete_next)?;
    for idx in &st.index_names {
        repo.storage.delete(&storage::index_path(idx))?;
    }
    for name in st.obsolete_names.iter().filter(|n| Some(*n) != new_list.as_ref()) {
        repo.storage.delete(name)?;
    }
    // 5. Packs past their grace period.
    for id in &delete {
        repo.storage.delete(&storage::pack_path(id))?;
    }
    crate::ops::sync::write_tombstone(repo)?;
    Ok(report)
}

fn newly_obsolete_unused(st: &State, ids: &[Id]) -> u64 {
    ids.iter()
        .filter_map(|id| st.live.get(id))
        .map(|p| p.blobs.iter().map(|b| b.info.stored_len as u64).sum::<u64>())
        .sum()
}

/// Copies the used blobs of `packs` into new packs, verifying each on the way (sealed bytes are copied as is:
/// associated data binds a blob to its id, not to its pack).
fn repack_packs(repo: &Repository, packs: &[&PackEntry], used: &HashSet<Id>) -> Result<Vec<PackEntry>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut writers: HashMap<u8, PackWriter> = HashMap::new();
    for p in packs {
        let path = storage::pack_path(&p.id);
        let bytes = repo.storage.read(&path)?;
        repo::verify_name(&path, &p.id, &bytes)?;
        for b in p.blobs.iter().filter(|b| used.contains(&b.info.id)) {
            if !seen.insert(b.info.id) {
                continue;
            }
            let sealed = &bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
            blob::decode(&repo.key, &b.info, sealed)
                .map_err(|e| Error::corrupt(format!("{path} blob {}", b.info.id.short()), e))?;
            let w = writers.entry(b.info.kind as u8).or_insert_with(|| PackWriter::new(b.info.kind));
            w.add(b.info, sealed);
            if w.len() >= repo::pack_target(&repo.config, b.info.kind)
                && let Some(full) = writers.remove(&(b.info.kind as u8))
            {
                out.push(write_pack(repo, full)?);
            }
        }
    }
    for (_, w) in writers {
        if !w.is_empty() {
            out.push(write_pack(repo, w)?);
        }
    }
    Ok(out)
}

fn write_pack(repo: &Repository, w: PackWriter) -> Result<PackEntry> {
    let f = w.finish(&repo.key);
    let size = f.bytes.len() as u64;
    repo.storage.write(&storage::pack_path(&f.id), f.bytes)?;
    Ok(PackEntry { id: f.id, kind: f.kind, size, blobs: f.blobs })
}

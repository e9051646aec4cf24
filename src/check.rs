//! `check`: proves the repository is restorable. The structural pass reads every index segment and snapshot,
//! walks every tree, and confirms every referenced blob is indexed in a pack that exists with the right size.
//! With `read_data`, every pack is downloaded, its name (a hash of its bytes) verified, its header decrypted and
//! every blob decrypted and checked against its id.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::error::Result;
use crate::id::Id;
use crate::index::PackEntry;
use crate::pack;
use crate::repo::{self, Repository};
use crate::storage;
use crate::tree::NodeKind;

/// Options of a check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Download and verify every pack.
    pub read_data: bool,
}

/// What a check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    /// Each problem names the object and, where it matters, the snapshot and path.
    pub problems: Vec<String>,
    /// Things that are not damage (unreferenced packs left by an interrupted backup).
    pub notes: Vec<String>,
}

/// Where the index says a blob lies.
struct Located {
    pack: Id,
    offset: u64,
    info: blob::BlobInfo,
}

/// Runs the check.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let stored: HashMap<Id, u64> = repo
        .storage
        .list("data/")?
        .into_iter()
        .filter_map(|(p, size)| Some((Id::from_hex(p.rsplit('/').next()?)?, size)))
        .collect();
    let mut packs: HashMap<Id, PackEntry> = HashMap::new();
    let mut blobs: HashMap<Id, Located> = HashMap::new();
    for idx in repo.list_indexes()? {
        match repo.load_index(&idx) {
            Ok(entries) => {
                for p in entries {
                    for b in &p.blobs {
                        blobs.entry(b.info.id).or_insert(Located { pack: p.id, offset: b.offset, info: b.info });
                    }
                    packs.insert(p.id, p);
                }
            }
            Err(e) => report.problems.push(format!("index {}: {e}", idx.short())),
        }
    }
    for (id, p) in &packs {
        match stored.get(id) {
            None => report.problems.push(format!("pack {} is indexed but missing from the repository", id.short())),
            Some(size) if *size != p.size => {
                report.problems.push(format!("pack {} has {size} bytes, the index says {}", id.short(), p.size))
            }
            _ => {}
        }
    }
    let unindexed = stored.keys().filter(|id| !packs.contains_key(id)).count();
    if unindexed > 0 {
        report
            .notes
            .push(format!("{unindexed} packs are not in any index (left by interrupted backups; prune removes them)"));
    }
    report.packs = packs.len();
    report.blobs = blobs.len();
    check_snapshots(repo, &blobs, &mut report)?;
    if opts.read_data {
        read_packs(repo, &packs, &mut report);
    }
    Ok(report)
}

/// Walks every snapshot's trees; each tree is read once however many snapshots share it.
fn check_snapshots(repo: &Repository, blobs: &HashMap<Id, Located>, report: &mut CheckReport) -> Result<()> {
    let mut seen: HashSet<Id> = HashSet::new();
    for sid in repo.list_snapshots()? {
        let snap = match repo.load_snapshot(&sid) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!("snapshot {}: {e}", sid.short()));
                continue;
            }
        };
        report.snapshots += 1;
        let mut stack = vec![(snap.tree, String::from("/"))];
        while let Some((tree_id, path)) = stack.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            let Some(loc) = blobs.get(&tree_id) else {
                report.problems.push(format!(
                    "snapshot {}: tree {} of {path} is not in any index",
                    sid.short(),
                    tree_id.short()
                ));
                continue;
            };
            let tree =
                match repo.read_blob(&loc.pack, loc.offset, &loc.info).and_then(|p| repo.parse_tree(&tree_id, &p)) {
                    Ok(t) => t,
                    Err(e) => {
                        report.problems.push(format!("snapshot {}: tree of {path}: {e}", sid.short()));
                        continue;
                    }
                };
            report.trees += 1;
            for node in &tree.nodes {
                let child = format!("{}{}", path, node.name.display());
                if node.kind == NodeKind::Dir {
                    match node.subtree {
                        Some(sub) => stack.push((sub, format!("{child}/"))),
                        None => {
                            report.problems.push(format!("snapshot {}: directory {child} has no tree", sid.short()))
                        }
                    }
                }
                for id in &node.content {
                    match blobs.get(id) {
                        Some(l) if l.info.kind == BlobKind::Data => {}
                        _ => report.problems.push(format!(
                            "snapshot {}: {child}: data blob {} is not in any index",
                            sid.short(),
                            id.short()
                        )),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Downloads every indexed pack and verifies it completely.
fn read_packs(repo: &Repository, packs: &HashMap<Id, PackEntry>, report: &mut CheckReport) {
    let problems = Mutex::new(Vec::new());
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let list: Vec<&PackEntry> = packs.values().collect();
    list.par_iter().for_each(|p| {
        if let Err(msg) = verify_pack(repo, p) {
            problems.lock().expect("problems lock").push(format!("pack {}: {msg}", p.id.short()));
        }
        bytes.fetch_add(p.size, std::sync::atomic::Ordering::Relaxed);
    });
    report.packs_read = list.len();
    report.bytes_read = bytes.into_inner();
    report.problems.extend(problems.into_inner().expect("problems lock"));
}

fn verify_pack(repo: &Repository, p: &PackEntry) -> std::result::Result<(), String> {
    let path = storage::pack_path(&p.id);
    let bytes = repo.storage.read(&path).map_err(|e| e.to_string())?;
    repo::verify_name(&path, &p.id, &bytes).map_err(|e| e.to_string())?;
    let header = pack::parse_pack(&repo.key, &bytes)?;
    if header.len() != p.blobs.len() || header.iter().zip(&p.blobs).any(|(a, b)| a != b) {
        return Err("its header disagrees with the index".into());
    }
    for b in &header {
        let sealed = &bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
        blob::decode(&repo.key, &b.info, sealed)
            .map_err(|e| format!("blob {} at offset {}: {e}", b.info.id.short(), b.offset))?;
    }
    Ok(())
}

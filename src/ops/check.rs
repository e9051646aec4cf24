//! `check`: proves the repository is restorable. The structural pass reads every index segment and snapshot,
//! walks every tree, and confirms every referenced blob is indexed in a pack that exists with the right size.
//! With `read_data`, every pack is downloaded, its name (a hash of its bytes) verified, its header decrypted and
//! every blob decrypted and checked against its id.
//!
//! The WAL archive is checked too: from every kept base backup's start up to the newest archived segment of its
//! cluster, no segment may be missing ([`crate::ops::wal::chain`]); with `read_data` every archived file is
//! read and authenticated (all of them for a full run, the same share for a subset).

use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::snapshot::{BaseBackup, Snapshot};
use crate::format::tree::{NodeKind, Tree};
use crate::ops::tree_walk::{self, Next, Visit};
use crate::repo::Repository;
use crate::repo::blob_index::{BlobIndex, MemoryBudget, PackRow};
use crate::repo::catalog::Catalog;
use crate::repo::wal::{WalListing, WalObject};

/// Which packs `--read-data` downloads and verifies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DataSubset {
    /// Every pack (an interrupted run resumes where it stopped).
    All,
    /// This share of the packs, those verified longest ago (never first).
    Fraction(f64),
    /// Slice `k` of `n` (1-based): a fixed partition by pack id, so `n` runs with k = 1..n cover everything.
    Slice {
        /// Which slice, from 1 to `n`.
        k: u64,
        /// How many slices the packs are cut into.
        n: u64,
    },
    /// The packs verified longest ago, about a seventh of the data: daily runs cover everything in a week.
    Auto,
}

impl DataSubset {
    /// Parses `10%`, `3/7` or `auto`.
    pub fn parse(s: &str) -> Result<DataSubset> {
        let bad =
            || Error::InvalidInput(format!("invalid subset {s:?}: use a percentage (10%), a slice (3/7) or auto"));
        if s == "auto" {
            return Ok(DataSubset::Auto);
        }
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if v > 0.0 && v <= 100.0 { Ok(DataSubset::Fraction(v / 100.0)) } else { Err(bad()) };
        }
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u64, u64) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(DataSubset::Slice { k, n })
    }
}

/// Options of a check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Download and verify packs.
    pub read_data: Option<DataSubset>,
    /// Memory for the index, and where it spills beyond that.
    pub memory: MemoryBudget,
}

/// What a check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots that loaded and whose trees were walked.
    pub snapshots: usize,
    /// Distinct trees read and parsed (a tree shared by several snapshots counts once).
    pub trees: usize,
    /// Packs the index lists.
    pub packs: usize,
    /// Distinct blobs the index lists.
    pub blobs: usize,
    /// Packs downloaded for `--read-data` (0 without it).
    pub packs_read: usize,
    /// Bytes downloaded for `--read-data`.
    pub bytes_read: u64,
    /// Whether the index was larger than the memory budget and went through scratch files.
    pub index_spilled: bool,
    /// Names of the packs read and verified.
    pub packs_verified: Vec<String>,
    /// Each problem names the object and, where it matters, the snapshot and path.
    pub problems: Vec<String>,
    /// Things that are not damage (unreferenced packs left by an interrupted backup).
    pub notes: Vec<String>,
    /// Files in the WAL archive.
    pub wal_files: usize,
    /// Base backups whose WAL chain was followed.
    pub wal_base_backups: usize,
    /// Segments those chains need.
    pub wal_segments_needed: u64,
    /// Archived WAL files read and authenticated (`read_data`).
    pub wal_files_read: usize,
}

impl CheckReport {
    /// Adds what another part of the check found.
    fn absorb(&mut self, other: CheckReport) {
        let CheckReport {
            snapshots,
            trees,
            packs,
            blobs,
            packs_read,
            bytes_read,
            index_spilled,
            packs_verified,
            problems,
            notes,
            wal_files,
            wal_base_backups,
            wal_segments_needed,
            wal_files_read,
        } = other;
        self.snapshots += snapshots;
        self.trees += trees;
        self.packs += packs;
        self.blobs += blobs;
        self.packs_read += packs_read;
        self.bytes_read += bytes_read;
        self.index_spilled |= index_spilled;
        self.packs_verified.extend(packs_verified);
        self.problems.extend(problems);
        self.notes.extend(notes);
        self.wal_files += wal_files;
        self.wal_base_backups += wal_base_backups;
        self.wal_segments_needed += wal_segments_needed;
        self.wal_files_read += wal_files_read;
    }
}

/// Runs the check.
pub fn check(repo: &Repository, catalog: &Catalog, opts: &CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    // Listed in the reverse of the order a backup writes (packs, then index segments, then the snapshot): all a
    // listed snapshot refers to is then in the listings after it, so a backup running beside the check raises
    // no false alarm. What does not depend on another listing is fetched beside it.
    let snapshot_ids = repo.list_snapshots()?;
    let (manifests, wal, indexed) = std::thread::scope(|scope| {
        let manifests = scope.spawn(|| repo.load_snapshots(&snapshot_ids));
        let wal = scope.spawn(|| repo.list_wal());
        let indexed = load_index(repo, &opts.memory);
        (joined(manifests), joined(wal), indexed)
    });
    let (index, stored, bad_segments) = indexed?;
    report.problems.extend(bad_segments);
    compare_packs(&index, &stored, &mut report);
    report.packs = index.packs().len();
    report.blobs = index.distinct_blobs() as usize;
    report.index_spilled = index.blobs().on_disk();
    let (manifests, wal) = (manifests?, wal?);
    // The walk of the trees and the reading of the data at once: each waits on storage for its own requests.
    let (walked, read) = std::thread::scope(|scope| {
        let walk = scope.spawn(|| -> Result<CheckReport> {
            let mut walked = CheckReport::default();
            let base_backups = check_snapshots(repo, &index, manifests, &mut walked)?;
            check_wal(repo, &wal, &base_backups, opts.read_data, &mut walked)?;
            Ok(walked)
        });
        let mut read = CheckReport::default();
        let outcome = match opts.read_data {
            Some(subset) => read_data(repo, catalog, &index, subset, &mut read),
            None => Ok(()),
        };
        (joined(walk), outcome.map(|()| read))
    });
    report.absorb(walked?);
    report.absorb(read?);
    Ok(report)
}

/// A scoped thread's result; the work it runs does not panic.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().expect("a check task does not panic")
}

/// The index, the stored packs and the segments that could not be read. The packs are listed once the index is
/// (see [`check`]), while its segments download.
fn load_index(repo: &Repository, memory: &MemoryBudget) -> Result<(BlobIndex, HashMap<Id, u64>, Vec<String>)> {
    let listed = repo.list_indexes_sized()?;
    let mut bad_segments = Vec::new();
    let (index, stored) = std::thread::scope(|scope| {
        let stored = scope.spawn(|| repo.list_packs());
        let index = BlobIndex::load_listed(repo, memory, listed, |idx, e| {
            bad_segments.push(format!("index {}: {e}", idx.short()));
            Ok(())
        });
        (index, joined(stored))
    });
    Ok((index?, stored?.into_iter().collect(), bad_segments))
}

/// Every indexed pack must be stored with the size the index says; stored packs no index lists are noted.
fn compare_packs(index: &BlobIndex, stored: &HashMap<Id, u64>, report: &mut CheckReport) {
    for p in index.packs() {
        match stored.get(&p.id) {
            None => report.problems.push(format!("pack {} is indexed but missing from the repository", p.id.short())),
            Some(size) if *size != p.size => {
                report.problems.push(format!("pack {} has {size} bytes, the index says {}", p.id.short(), p.size))
            }
            _ => {}
        }
    }
    let unindexed = stored.keys().filter(|id| index.pack_number(id).is_none()).count();
    if unindexed > 0 {
        report
            .notes
            .push(format!("{unindexed} packs are not in any index (left by interrupted backups; prune removes them)"));
    }
}

/// `--read-data`: picks the packs of the subset, downloads and verifies them; a full run that completes clears
/// the mark that lets an interrupted one resume.
fn read_data(
    repo: &Repository,
    catalog: &Catalog,
    index: &BlobIndex,
    subset: DataSubset,
    report: &mut CheckReport,
) -> Result<()> {
    let chosen = choose_packs(catalog, index, subset, report)?;
    read_packs(repo, catalog, index, &chosen, report)?;
    if subset == DataSubset::All {
        catalog.set_meta(RUN_KEY, None)?;
    }
    Ok(())
}

/// Walks every snapshot's trees, many read at once; each tree is read once however many snapshots share it.
/// Returns the base backups the snapshots hold.
fn check_snapshots(
    repo: &Repository,
    index: &BlobIndex,
    manifests: Vec<(Id, Result<Snapshot>)>,
    report: &mut CheckReport,
) -> Result<Vec<(Id, BaseBackup)>> {
    let mut base_backups = Vec::new();
    let mut roots = Vec::new();
    for (sid, snap) in manifests {
        match snap {
            Ok(snap) => {
                report.snapshots += 1;
                base_backups.extend(snap.base_backups.iter().map(|b| (sid, b.clone())));
                roots.push((snap.tree, (sid, String::from("/"))));
            }
            Err(e) => report.problems.push(format!("snapshot {}: {e}", sid.short())),
        }
    }
    let locate = |id: &Id| Ok(index.tree(id));
    tree_walk::walk(repo, roots, locate, |tree_id, (sid, path), visit| {
        // A content list's label is its file's path; a tree's, its directory's (ending in `/`).
        let what = if path.ends_with('/') { "tree" } else { "content list" };
        let tree = match visit {
            Visit::Tree(t) => t,
            Visit::List(ids) => {
                check_data_blobs(index, &sid, &path, &ids, report)?;
                return Ok(Vec::new());
            }
            Visit::NotIndexed => {
                report.problems.push(format!(
                    "snapshot {}: {what} {} of {path} is not in any index",
                    sid.short(),
                    tree_id.short()
                ));
                return Ok(Vec::new());
            }
            Visit::Failed(e) => {
                report.problems.push(format!("snapshot {}: {what} of {path}: {e}", sid.short()));
                return Ok(Vec::new());
            }
        };
        report.trees += 1;
        check_tree(index, &sid, &path, &tree, report)
    })?;
    Ok(base_backups)
}

/// Checks one tree's entries; returns its subtrees and content lists, labelled with their snapshot and path.
fn check_tree(
    index: &BlobIndex,
    sid: &Id,
    path: &str,
    tree: &Tree,
    report: &mut CheckReport,
) -> Result<Vec<Next<(Id, String)>>> {
    let mut next = Vec::new();
    for node in &tree.nodes {
        let child = format!("{}{}", path, node.name.display());
        if node.kind == NodeKind::Dir {
            match node.subtree {
                Some(sub) => next.push(Next::Tree(sub, (*sid, format!("{child}/")))),
                None => report.problems.push(format!("snapshot {}: directory {child} has no tree", sid.short())),
            }
        }
        check_data_blobs(index, sid, &child, &node.content, report)?;
        next.extend(node.content_lists.iter().map(|l| Next::List(*l, (*sid, child.clone()))));
    }
    Ok(next)
}

/// Every one of a file's data blobs `ids` (its content, or one content list of it) is in the index, in a data
/// pack. What is missing is one problem, not one per blob: a lost pack can take thousands of one file's blobs.
fn check_data_blobs(index: &BlobIndex, sid: &Id, file: &str, ids: &[Id], report: &mut CheckReport) -> Result<()> {
    let mut missing = Vec::new();
    for id in ids {
        match index.find(id)? {
            Some((_, r)) if index.pack(r.pack).kind == BlobKind::Data => {}
            _ => missing.push(id),
        }
    }
    let problem = match missing.as_slice() {
        [] => return Ok(()),
        [id] => format!("data blob {} is not in any index", id.short()),
        [first, ..] => format!("{} data blobs (the first {}) are not in any index", missing.len(), first.short()),
    };
    report.problems.push(format!("snapshot {}: {file}: {problem}", sid.short()));
    Ok(())
}

/// The WAL archive: every kept base backup's chain, names that are not this repository's, and with `read_data`
/// the files themselves.
fn check_wal(
    repo: &Repository,
    listing: &WalListing,
    base_backups: &[(Id, BaseBackup)],
    read_data: Option<DataSubset>,
    report: &mut CheckReport,
) -> Result<()> {
    report.wal_files = listing.files.len();
    for path in &listing.foreign {
        report
            .problems
            .push(format!("{path}: not an archived WAL file of this repository (its name does not open with the key)"));
    }
    let chains = crate::ops::wal::chain::check_chains(repo, listing, base_backups);
    report.wal_base_backups = chains.base_backups;
    report.wal_segments_needed = chains.segments_needed;
    report.problems.extend(chains.problems);
    let Some(subset) = read_data else { return Ok(()) };
    let chosen: Vec<&WalObject> = listing.files.iter().filter(|o| wal_in_subset(o, subset)).collect();
    let bad: Vec<String> = chosen
        .par_iter()
        .filter_map(|o| {
            repo.get_wal(o.system_id, &o.file)
                .err()
                .map(|e| format!("WAL file {} of database system {}: {e}", o.file, o.system_id))
        })
        .collect();
    report.wal_files_read = chosen.len();
    report.problems.extend(bad);
    Ok(())
}

/// Whether `--read-data` of this subset reads an archived file: every one for a full run, a fixed slice by the
/// object's name for `k/n`, a random share for a percentage, a seventh for `auto`.
fn wal_in_subset(o: &WalObject, subset: DataSubset) -> bool {
    match subset {
        DataSubset::All => true,
        DataSubset::Slice { k, n } => {
            let h = blake3::hash(o.path.as_bytes());
            u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) % n == k - 1
        }
        DataSubset::Fraction(f) => rand::random::<f64>() < f,
        DataSubset::Auto => rand::random::<f64>() < 1.0 / 7.0,
    }
}

/// Catalog key remembering when an unfinished full `--read-data` run began.
const RUN_KEY: &str = "read_data_run_started";

/// Picks the packs to read, oldest-verified first where the subset allows a choice; returns their numbers.
fn choose_packs(
    catalog: &Catalog,
    index: &BlobIndex,
    subset: DataSubset,
    report: &mut CheckReport,
) -> Result<Vec<u32>> {
    let history = catalog.pack_checks()?;
    let mut all: Vec<(u32, &PackRow)> = (0u32..).zip(index.packs()).collect();
    // Never verified first, then by the time of the last verification; ties by id for determinism.
    all.sort_by_key(|(_, p)| (history.get(&p.id).map(|h| h.0), p.id));
    let chosen: Vec<(u32, &PackRow)> = match subset {
        DataSubset::All => {
            let now = crate::time::now();
            match catalog.meta(RUN_KEY)?.and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
                Some(started) => {
                    let before = all.len();
                    all.retain(|(_, p)| !history.get(&p.id).is_some_and(|(at, ok)| *ok && *at >= started));
                    if all.len() < before {
                        report.notes.push(format!(
                            "resuming the check interrupted at {started}: {} packs were already verified",
                            before - all.len()
                        ));
                    }
                }
                None => catalog.set_meta(RUN_KEY, Some(&now.to_string()))?,
            }
            all
        }
        DataSubset::Slice { k, n } => all
            .into_iter()
            .filter(|(_, p)| u64::from_le_bytes(p.id.0[..8].try_into().expect("8 bytes")) % n == k - 1)
            .collect(),
        DataSubset::Fraction(f) => {
            let take = ((all.len() as f64) * f).ceil() as usize;
            all.truncate(take);
            all
        }
        DataSubset::Auto => {
            let budget = index.packs().iter().map(|p| p.size).sum::<u64>() / 7;
            let mut sum = 0;
            all.into_iter()
                .take_while(|(_, p)| {
                    let go = sum == 0 || sum < budget;
                    sum += p.size;
                    go
                })
                .collect()
        }
    };
    Ok(chosen.into_iter().map(|(n, _)| n).collect())
}

/// Downloads the chosen packs and verifies them completely, recording each in the catalog as it goes. Packs are
/// read in the order of the index's spool, which hands each pack's full entry back from local disk.
fn read_packs(
    repo: &Repository,
    catalog: &Catalog,
    index: &BlobIndex,
    chosen: &[u32],
    report: &mut CheckReport,
) -> Result<()> {
    let mut wanted = vec![false; index.packs().len()];
    chosen.iter().for_each(|n| wanted[*n as usize] = true);
    let problems = Mutex::new(Vec::new());
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(Id, bool)>();
    let mut record_err = None;
    let mut verified = Vec::new();
    // Packs are verified as they stream in, each holding one blob: as many in flight as a restore keeps reads
    // (16 for a remote region, where each read waits a round trip; one per core for local disks).
    let in_flight = repo.read_concurrency()?;
    let (to_verify, queue) = std::sync::mpsc::sync_channel::<PackEntry>(in_flight);
    // Each verifier holds the queue: should they all die, it goes with them and the reader's sends fail.
    let queue = std::sync::Arc::new(Mutex::new(queue));
    let walked = std::thread::scope(|s| {
        for _ in 0..in_flight {
            let tx = tx.clone();
            let queue = queue.clone();
            let (problems, bytes) = (&problems, &bytes);
            s.spawn(move || verify_queued(repo, &queue, &tx, problems, bytes));
        }
        drop(tx); // the receiver below ends when the verifiers do
        drop(queue);
        let reader = s.spawn(move || {
            let to_verify = to_verify; // moved in, so the verifiers end when this thread does
            index.for_each_pack(|p| {
                if index.pack_number(&p.id).is_some_and(|n| wanted[n as usize]) && to_verify.send(p).is_err() {
                    return Err(Error::InvalidInput("the pack verifiers stopped".into()));
                }
                Ok(())
            })
        });
        // The catalog is not shared between threads; this thread records results as they arrive.
        for (id, ok) in rx {
            verified.push(id.to_hex());
            if let Err(e) = catalog.record_pack_check(&id, crate::time::now(), ok) {
                record_err.get_or_insert(e);
            }
        }
        reader.join().expect("the pack reader does not panic")
    });
    walked?;
    if let Some(e) = record_err {
        return Err(e);
    }
    report.packs_read = verified.len();
    report.packs_verified = verified;
    report.bytes_read = bytes.into_inner();
    report.problems.extend(problems.into_inner().expect("problems lock"));
    Ok(())
}

/// One verifier of [`read_packs`]: takes packs from `queue` until it closes, verifies each, and sends whether it
/// was sound to `done`, with its problem in `problems` and its size counted in `bytes`.
fn verify_queued(
    repo: &Repository,
    queue: &Mutex<std::sync::mpsc::Receiver<PackEntry>>,
    done: &std::sync::mpsc::Sender<(Id, bool)>,
    problems: &Mutex<Vec<String>>,
    bytes: &std::sync::atomic::AtomicU64,
) {
    loop {
        // The lock is held only to take the next pack, not while it is verified.
        let next = queue.lock().expect("queue lock").recv();
        let Ok(p) = next else { return };
        let ok = match verify_pack(repo, &p) {
            Ok(()) => true,
            Err(msg) => {
                problems.lock().expect("problems lock").push(format!("pack {}: {msg}", p.id.short()));
                false
            }
        };
        bytes.fetch_add(p.size, std::sync::atomic::Ordering::Relaxed);
        let _ = done.send((p.id, ok));
    }
}

/// Verifies one pack whole. A pack that fails says how many of its indexed blobs still authenticate on their
/// own (range reads, any region): a pack with bytes appended or a damaged header may still restore completely.
fn verify_pack(repo: &Repository, p: &PackEntry) -> std::result::Result<(), String> {
    let outcome = match repo.verify_pack_streamed(p) {
        // A read that failed on the way, or a copy shorter than the index says: the careful whole read, from
        // any region that has the pack, says what is wrong (or that another region's copy is sound).
        Err(e) if !matches!(e, Error::Corrupt { .. }) => verify_pack_whole(repo, p),
        streamed => streamed,
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(e @ Error::Corrupt { .. }) => {
            let good = p.blobs.par_iter().filter(|b| repo.read_blob_range(&p.id, b.offset, &b.info).is_ok()).count();
            Err(format!("{e}; {good} of its {} indexed blobs still authenticate", p.blobs.len()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// [`Repository::verify_pack_streamed`] from the pack read whole.
fn verify_pack_whole(repo: &Repository, p: &PackEntry) -> Result<()> {
    let bytes = repo.read_pack_copy(&p.id)?;
    let header = repo.parse_pack(&p.id, &bytes)?;
    if header.len() != p.blobs.len() || header.iter().zip(&p.blobs).any(|(a, b)| a != b) {
        return Err(Error::corrupt(
            crate::format::objects::ObjectKind::Pack.path_of(&p.id),
            "its header disagrees with the index",
        ));
    }
    header.par_iter().try_for_each(|b| {
        let sealed = &bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
        repo.open_blob(&p.id, b, sealed).map(drop)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse() {
        assert_eq!(DataSubset::parse("10%").unwrap(), DataSubset::Fraction(0.1));
        assert_eq!(DataSubset::parse("3/7").unwrap(), DataSubset::Slice { k: 3, n: 7 });
        assert_eq!(DataSubset::parse("auto").unwrap(), DataSubset::Auto);
        for bad in ["0%", "101%", "8/7", "0/7", "x", "1/0"] {
            assert!(DataSubset::parse(bad).is_err(), "{bad}");
        }
    }
}

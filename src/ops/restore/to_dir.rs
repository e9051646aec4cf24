//! A snapshot (or part of it) back into a directory, safely and completely.
//!
//! Every path is reached through [`Target`]: directory descriptors and `O_NOFOLLOW`, so nothing is written
//! outside the target or through a link the restore did not make. The work goes in four steps:
//! 1. lay out: directories (0700 for now), symlinks and FIFOs are made in snapshot order; each file gets a plan;
//! 2. settle: a file already at its place with the snapshot's size and time is read and compared blob by blob;
//!    when identical it is kept (so a second restore continues where an interrupted one stopped);
//! 3. write: each file is written under a temporary name (`NAME.gumvault-partial`, mode 0600), pack by pack
//!    (one range read covers neighbouring blobs, every blob verified), holes left where the snapshot has zeros;
//!    when its last blob is in, it gets its owner, mode and time and is renamed into place; a file whose content
//!    could not be had is removed, never left looking whole;
//! 4. finish: directories get their owners, modes and times, deepest first.
//!
//! A path that cannot be restored is reported with its reason and the rest carries on.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::target::{Existing, PathResult, Target, partial_name};
use super::walk::Entry;
use crate::error::Result;
use crate::format::blob::BlobInfo;
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::NodeKind;
use crate::repo::reader::BlobReader;

/// Neighbouring blobs closer than this are fetched with one range read.
const COALESCE_GAP: u64 = 1 << 20;

/// Options of a restore to a directory.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The directory restored into.
    pub target: PathBuf,
    /// Replace files, links and FIFOs that are in the way (never directories).
    pub overwrite: bool,
}

/// One path that could not be restored, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreFailure {
    /// The path in the snapshot.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Files written.
    pub files: u64,
    /// Files already in place and identical to the snapshot, left as they were.
    pub unchanged: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Problems, each naming the path (and for damaged data the object): `PATH: REASON`.
    pub errors: Vec<String>,
    /// The same problems, as path and reason.
    pub failures: Vec<RestoreFailure>,
    /// Entries skipped on purpose (device files, sockets).
    pub skipped: Vec<String>,
}

impl RestoreSummary {
    fn fail(&mut self, path: &Path, error: impl Into<String>) {
        let f = RestoreFailure { path: path.display().to_string(), error: error.into() };
        self.errors.push(format!("{}: {}", f.path, f.error));
        self.failures.push(f);
    }
}

/// Counters a progress display reads during a restore.
#[derive(Default)]
pub struct RestoreProgress {
    /// Bytes written so far.
    pub bytes: AtomicU64,
    /// Bytes to write in all.
    pub total_bytes: AtomicU64,
}

/// Where an entry goes: a directory of the target and a name in it.
#[derive(Clone, Debug)]
struct Slot {
    dir: Option<usize>,
    name: OsString,
}

/// A file to write (or to compare with what is there).
struct FileJob<'e> {
    entry: &'e Entry,
    slot: Slot,
    partial: OsString,
    /// What was at the slot when the restore began.
    existing: Existing,
    /// Inode of the partial file once created.
    ino: AtomicU64,
    /// Blob writes still to come.
    remaining: AtomicUsize,
    /// Why the file cannot be restored, once something failed.
    failed: Mutex<Option<String>>,
}

impl FileJob<'_> {
    fn fail(&self, why: String) {
        self.failed.lock().expect("job lock").get_or_insert(why);
    }
}

/// Restores `entries` under `opts.target`: every path that can be restored is, and each one that cannot is in
/// the summary's `errors` (the command then exits 12).
pub fn restore(
    reader: &BlobReader<'_>,
    entries: &[Entry],
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    let target = Target::open(&opts.target)?;
    let mut summary = RestoreSummary::default();
    let (dirs, jobs) = lay_out(&target, entries, opts.overwrite, &mut summary);
    let jobs = settle(reader, &target, jobs, opts.overwrite, &mut summary);
    progress.total_bytes.store(jobs.iter().map(|j| j.entry.node.size).sum(), Ordering::Relaxed);
    let failures = Mutex::new(Vec::new());
    write_files(reader, &target, &jobs, progress, &failures);
    summary.files = jobs.iter().filter(|j| j.failed.lock().expect("job lock").is_none()).count() as u64;
    summary.bytes = progress.bytes.load(Ordering::Relaxed);
    for (dir, entry) in dirs.iter().rev() {
        let done = target.dir_fd(Some(*dir)).and_then(|fd| target.apply_metadata(&*fd, &entry.node));
        if let Err(e) = done {
            failures.lock().expect("failures lock").push((entry.path.clone(), format!("cannot set its metadata: {e}")));
        }
    }
    for (path, why) in failures.into_inner().expect("failures lock") {
        summary.fail(&path, why);
    }
    Ok(summary)
}

/// Step 1: directories, links and FIFOs, in snapshot order (parents first); plans for the files.
fn lay_out<'e>(
    target: &Target,
    entries: &'e [Entry],
    overwrite: bool,
    summary: &mut RestoreSummary,
) -> (Vec<(usize, &'e Entry)>, Vec<FileJob<'e>>) {
    let mut dir_of: HashMap<&Path, usize> = HashMap::new();
    let mut dirs = Vec::new();
    let mut jobs = Vec::new();
    for e in entries {
        let Some(slot) = slot_of(e, &dir_of) else { continue };
        let placed = match e.node.kind {
            NodeKind::Dir => target.make_dir(slot.dir, &slot.name, overwrite).map(|i| {
                dir_of.insert(&e.path, i);
                dirs.push((i, e));
                summary.dirs += 1;
            }),
            NodeKind::File => plan_file(target, e, slot, overwrite).map(|job| jobs.push(job)),
            NodeKind::Symlink => place_symlink(target, e, &slot, overwrite).map(|()| summary.symlinks += 1),
            NodeKind::Fifo => place_fifo(target, e, &slot, overwrite),
            kind => {
                summary.skipped.push(format!("{} ({kind:?} not restored)", e.path.display()));
                Ok(())
            }
        };
        if let Err(why) = placed {
            let why = if e.node.kind == NodeKind::Dir { format!("{why}; nothing below it was restored") } else { why };
            summary.fail(&e.path, why);
        }
    }
    (dirs, jobs)
}

/// The directory an entry goes into, `None` when that directory could not be restored (already reported).
fn slot_of(e: &Entry, dir_of: &HashMap<&Path, usize>) -> Option<Slot> {
    let name = e.path.file_name()?.to_os_string();
    let parent = e.path.parent().unwrap_or(Path::new("/"));
    let dir = if parent == Path::new("/") { None } else { Some(*dir_of.get(parent)?) };
    Some(Slot { dir, name })
}

fn plan_file<'e>(target: &Target, e: &'e Entry, slot: Slot, overwrite: bool) -> PathResult<FileJob<'e>> {
    let existing = target.existing(slot.dir, &slot.name)?;
    match existing {
        Existing::Dir => return Err("a directory is where the file belongs".into()),
        Existing::File { size, mtime_ns, linked: false } if size == e.node.size && mtime_ns == e.node.mtime_ns => {}
        Existing::Nothing => {}
        _ if overwrite => {}
        _ => return Err("already exists and differs; pass --overwrite to replace it".into()),
    }
    let partial = partial_name(&slot.name);
    Ok(FileJob {
        entry: e,
        slot,
        partial,
        existing,
        ino: AtomicU64::new(0),
        remaining: AtomicUsize::new(0),
        failed: Mutex::new(None),
    })
}

fn place_symlink(target: &Target, e: &Entry, slot: &Slot, overwrite: bool) -> PathResult<()> {
    let want = e.node.target.as_ref().map(|t| t.0.clone()).unwrap_or_default();
    match target.existing(slot.dir, &slot.name)? {
        Existing::Nothing => target.symlink(slot.dir, &slot.name, &want)?,
        Existing::Other if target.link_target(slot.dir, &slot.name).as_deref() == Some(want.as_slice()) => {}
        Existing::Dir => return Err("a directory is where the symlink belongs".into()),
        _ if overwrite => {
            target.remove(slot.dir, &slot.name)?;
            target.symlink(slot.dir, &slot.name, &want)?;
        }
        _ => return Err("already exists and differs; pass --overwrite to replace it".into()),
    }
    target.apply_link_metadata(slot.dir, &slot.name, &e.node)
}

fn place_fifo(target: &Target, e: &Entry, slot: &Slot, overwrite: bool) -> PathResult<()> {
    match target.existing(slot.dir, &slot.name)? {
        Existing::Nothing => {}
        Existing::Other if overwrite => target.remove(slot.dir, &slot.name)?,
        _ => return Err("already exists; pass --overwrite to replace it".into()),
    }
    let fd = target.fifo(slot.dir, &slot.name)?;
    target.apply_metadata(&fd, &e.node)
}

/// Step 2: files already in place with the snapshot's size and time are compared with the snapshot; identical
/// ones are kept (their metadata set again), different ones are replaced with `--overwrite` or reported.
fn settle<'e>(
    reader: &BlobReader<'_>,
    target: &Target,
    jobs: Vec<FileJob<'e>>,
    overwrite: bool,
    summary: &mut RestoreSummary,
) -> Vec<FileJob<'e>> {
    let verdicts: Vec<Option<bool>> = jobs
        .par_iter()
        .map(|j| matches!(j.existing, Existing::File { .. }).then(|| is_identical(reader, target, j)))
        .collect();
    let mut keep = Vec::with_capacity(jobs.len());
    for (job, verdict) in jobs.into_iter().zip(verdicts) {
        match verdict {
            Some(true) => {
                summary.unchanged += 1;
                let fixed = target
                    .read_file(job.slot.dir, &job.slot.name)
                    .and_then(|f| target.apply_metadata(&f, &job.entry.node));
                if let Err(why) = fixed {
                    summary.fail(&job.entry.path, format!("identical, but its metadata cannot be set: {why}"));
                }
            }
            Some(false) if !overwrite => {
                summary.fail(&job.entry.path, "already exists and differs; pass --overwrite to replace it")
            }
            _ => keep.push(job),
        }
    }
    keep
}

/// Reads the file at the job's slot and compares it, blob by blob, with the snapshot's content.
fn is_identical(reader: &BlobReader<'_>, target: &Target, job: &FileJob<'_>) -> bool {
    let Ok(file) = target.read_file(job.slot.dir, &job.slot.name) else { return false };
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for id in &job.entry.node.content {
        let Ok(loc) = reader.locate(id) else { return false };
        buf.resize(loc.info.raw_len as usize, 0);
        if file.read_exact_at(&mut buf, offset).is_err() || reader.repo.blob_id(&buf) != *id {
            return false;
        }
        offset += buf.len() as u64;
    }
    offset == job.entry.node.size
}

/// A blob to fetch and the places it goes: (job, offset in the file).
struct Need {
    offset: u64,
    info: BlobInfo,
    targets: Vec<(usize, u64)>,
}

/// Step 3: every file under its partial name, then its content pack by pack, then into place.
fn write_files(
    reader: &BlobReader<'_>,
    target: &Target,
    jobs: &[FileJob<'_>],
    progress: &RestoreProgress,
    failures: &Mutex<Vec<(PathBuf, String)>>,
) {
    jobs.par_iter().for_each(|job| create_partial(target, job));
    let plan = plan_by_pack(reader, jobs);
    // Empty files, and files that already failed, are done before any data comes.
    for job in jobs.iter().filter(|j| j.remaining.load(Ordering::SeqCst) == 0) {
        finalize(target, job, failures);
    }
    plan.par_iter().for_each(|(pack, needs)| fetch_pack(reader, target, pack, needs, jobs, progress, failures));
}

/// Removes what an interrupted restore left under the partial name, then creates the file there, 0600, sized.
fn create_partial(target: &Target, job: &FileJob<'_>) {
    let made = target.remove(job.slot.dir, &job.partial).and_then(|()| {
        let (file, ino) = target.create_file(job.slot.dir, &job.partial)?;
        file.set_len(job.entry.node.size).map_err(|e| e.to_string())?;
        job.ino.store(ino, Ordering::SeqCst);
        Ok(())
    });
    if let Err(why) = made {
        job.fail(format!("cannot create it: {why}"));
    }
}

/// Groups every needed blob by pack, in pack order; counts each job's writes.
fn plan_by_pack(reader: &BlobReader<'_>, jobs: &[FileJob<'_>]) -> Vec<(Id, Vec<Need>)> {
    let mut by_pack: HashMap<Id, HashMap<Id, Need>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        if job.failed.lock().expect("job lock").is_some() {
            continue;
        }
        let mut offset = 0u64;
        for id in &job.entry.node.content {
            match reader.locate(id) {
                Ok(loc) => {
                    let need = by_pack.entry(loc.pack).or_default().entry(*id).or_insert_with(|| Need {
                        offset: loc.offset,
                        info: loc.info,
                        targets: Vec::new(),
                    });
                    need.targets.push((i, offset));
                    job.remaining.fetch_add(1, Ordering::SeqCst);
                    offset += loc.info.raw_len as u64;
                }
                Err(err) => {
                    job.fail(err.to_string());
                    break;
                }
            }
        }
    }
    by_pack
        .into_iter()
        .map(|(pack, needs)| {
            let mut v: Vec<Need> = needs.into_values().collect();
            v.sort_by_key(|n| n.offset);
            (pack, v)
        })
        .collect()
}

/// Reads the blobs one pack contributes (neighbours coalesced into one range read) and writes them out.
fn fetch_pack(
    reader: &BlobReader<'_>,
    target: &Target,
    pack: &Id,
    needs: &[Need],
    jobs: &[FileJob<'_>],
    progress: &RestoreProgress,
    failures: &Mutex<Vec<(PathBuf, String)>>,
) {
    for run in coalesce(needs) {
        let blobs: Vec<PackedBlob> = run.iter().map(|n| PackedBlob { info: n.info, offset: n.offset }).collect();
        let plains = reader.repo.read_blob_run(pack, &blobs);
        for (k, need) in run.iter().enumerate() {
            let plain = match &plains {
                Ok(p) => p[k].as_ref().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            // A blob of zeros is checked once, however many files (or holes of one file) it fills.
            let zero = plain.as_ref().is_ok_and(|p| p.iter().all(|b| *b == 0));
            for (j, offset) in &need.targets {
                let job = &jobs[*j];
                match &plain {
                    Ok(bytes) => write_blob(target, job, bytes, zero, *offset, progress),
                    Err(why) => job.fail(why.clone()),
                }
                if job.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                    finalize(target, job, failures);
                }
            }
        }
    }
}

/// Writes one blob into a partial file; a blob of zeros is left as a hole (the file was sized when created).
fn write_blob(target: &Target, job: &FileJob<'_>, plain: &[u8], zero: bool, offset: u64, progress: &RestoreProgress) {
    if job.failed.lock().expect("job lock").is_some() {
        return;
    }
    progress.bytes.fetch_add(plain.len() as u64, Ordering::Relaxed);
    if zero {
        return;
    }
    let written = target
        .reopen_file(job.slot.dir, &job.partial, job.ino.load(Ordering::SeqCst))
        .and_then(|f| f.write_all_at(plain, offset).map_err(|e| e.to_string()));
    if let Err(why) = written {
        job.fail(format!("cannot write it: {why}"));
    }
}

/// A file's last write is done: into place with its metadata, or, when something failed, removed.
fn finalize(target: &Target, job: &FileJob<'_>, failures: &Mutex<Vec<(PathBuf, String)>>) {
    let failed = job.failed.lock().expect("job lock").clone();
    let outcome = match failed {
        Some(why) => {
            let _ = target.remove(job.slot.dir, &job.partial);
            Err(format!("{why}; the file was not restored"))
        }
        None => place_file(target, job),
    };
    if let Err(why) = outcome {
        job.fail(why.clone());
        failures.lock().expect("failures lock").push((job.entry.path.clone(), why));
    }
}

fn place_file(target: &Target, job: &FileJob<'_>) -> PathResult<()> {
    let placed = target
        .reopen_file(job.slot.dir, &job.partial, job.ino.load(Ordering::SeqCst))
        .and_then(|f| target.apply_metadata(&f, &job.entry.node))
        .and_then(|()| target.rename(job.slot.dir, &job.partial, &job.slot.name, job.existing != Existing::Nothing));
    if placed.is_err() {
        let _ = target.remove(job.slot.dir, &job.partial);
    }
    placed
}

/// Splits a pack's needed blobs (sorted by offset) into runs that one range read each covers: neighbours closer
/// than [`COALESCE_GAP`], at most 8 MiB from the run's start.
fn coalesce(needs: &[Need]) -> Vec<&[Need]> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < needs.len() {
        let mut end = start + 1;
        let mut span_end = needs[start].offset + needs[start].info.stored_len as u64;
        while end < needs.len()
            && needs[end].offset <= span_end + COALESCE_GAP
            && needs[end].offset - needs[start].offset < 8 << 20
        {
            span_end = span_end.max(needs[end].offset + needs[end].info.stored_len as u64);
            end += 1;
        }
        runs.push(&needs[start..end]);
        start = end;
    }
    runs
}

//! A snapshot (or part of it) back into a directory, safely and completely.
//!
//! Every path is reached through [`Target`]: directory descriptors and `O_NOFOLLOW`, so nothing is written
//! outside the target or through a link the restore did not make. The entries come one at a time from the walk
//! of the snapshot, and the work goes in four steps, the middle two a window of files at a time ([`plan`]), so
//! memory does not grow with the snapshot or its files. Laying out and settling the next window overlaps with
//! writing the last one, and the reads of two windows can be in flight, on download threads of their own when a
//! region is remote (`GUMVAULT_STORAGE_READS`):
//! 1. lay out: directories (0700 for now), symlinks and FIFOs are made in snapshot order; each file gets a job;
//! 2. settle: a file already at its place with the snapshot's size and time is read and compared blob by blob;
//!    when identical it is kept (so a second restore continues where an interrupted one stopped);
//! 3. write: each file is written under a temporary name (`NAME.gumvault-partial`, mode 0600), pack by pack
//!    within its window (one streamed range read covers neighbouring blobs, every blob verified), holes left where
//!    the snapshot has zeros; when its last blob is in, it gets its owner, mode and time and is renamed into
//!    place; a file whose content could not be had is removed, never left looking whole;
//! 4. finish: directories get their owners, modes and times, deepest first.
//!
//! A path that cannot be restored is reported with its reason and the rest carries on.

use std::collections::HashMap;
use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::plan::{self, Limits, Need, Window, Windows};
use super::target::{Existing, PathResult, Target, partial_name};
use super::walk::{Entry, Walked};
use crate::error::Result;
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::{ContentList, NodeKind};
use crate::repo::reader::BlobReader;

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
    /// Bytes to write in all, as far as the restore has come: it grows as the walk of the snapshot goes on.
    pub total_bytes: AtomicU64,
}

/// Where an entry goes: a directory of the target and a name in it.
#[derive(Clone, Debug)]
struct Slot {
    dir: Option<usize>,
    name: OsString,
}

/// A file to write (or to compare with what is there).
struct FileJob {
    entry: Entry,
    slot: Slot,
    partial: OsString,
    /// What was at the slot when the restore began.
    existing: Existing,
    /// Inode of the partial file once created.
    ino: AtomicU64,
    /// Blobs not yet written (or given up): the file is finished when this reaches 0.
    remaining: AtomicUsize,
    /// Where the next piece of the file starts (windows are planned one after the other).
    planned: AtomicU64,
    /// Why the file cannot be restored, once something failed.
    failed: Mutex<Option<String>>,
    /// The content list being planned, for a file that has lists.
    lists: Mutex<ListCursor>,
}

impl FileJob {
    fn new(entry: Entry, slot: Slot, existing: Existing) -> Self {
        FileJob {
            partial: partial_name(&slot.name),
            remaining: AtomicUsize::new(entry.node.blob_count()),
            entry,
            slot,
            existing,
            ino: AtomicU64::new(0),
            planned: AtomicU64::new(0),
            failed: Mutex::new(None),
            lists: Mutex::new(ListCursor::default()),
        }
    }

    /// The ids of the file's blobs `range`. A file with content lists reads them as its pieces are planned, in
    /// order, holding one list at a time.
    fn blob_ids(&self, reader: &BlobReader<'_>, range: Range<usize>) -> Result<Vec<Id>> {
        let node = &self.entry.node;
        if node.content_lists.is_empty() {
            return Ok(node.content[range].to_vec());
        }
        let mut cursor = self.lists.lock().expect("list cursor lock");
        let ids = cursor.take(reader, &node.content_lists, range.clone());
        if ids.is_err() || range.end >= node.blob_count() {
            *cursor = ListCursor::default();
        }
        ids
    }

    fn fail(&self, why: String) {
        self.failed.lock().expect("job lock").get_or_insert(why);
    }

    fn has_failed(&self) -> bool {
        self.failed.lock().expect("job lock").is_some()
    }
}

/// Restores `entries` (a [`Walker`](super::walk::Walker)'s, or any in its order: parents before children) under
/// `opts.target`: every path that can be restored is, and each one that cannot is in the summary's `errors` (the
/// command then exits 12). Memory is bounded by the window ([`Limits`]) and the parallelism, not by the number of
/// entries or their size.
pub fn restore(
    reader: &BlobReader<'_>,
    entries: impl IntoIterator<Item = Walked>,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    restore_within(reader, entries, opts, progress, Limits::default())
}

/// [`restore`] a window of at most `limits` at a time.
pub fn restore_within(
    reader: &BlobReader<'_>,
    entries: impl IntoIterator<Item = Walked>,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
    limits: Limits,
) -> Result<RestoreSummary> {
    let target = Target::open(&opts.target)?;
    let reads = reader.repo.read_concurrency()?;
    // Remote reads mostly wait: they get threads of their own, more than the cores.
    let downloads = crate::runtime::io_pool_beyond_cores(reads, "restore downloads")?;
    let writer = Writer {
        reader,
        target: &target,
        progress,
        downloads,
        reads,
        failures: Mutex::default(),
        placed: AtomicU64::new(0),
    };
    // Two stages overlap: this thread walks, lays out and creates the files of the next window while the
    // fetcher writes the content of the last one (a window of 16,384 files takes seconds to create).
    let (ready, windows) = std::sync::mpsc::sync_channel::<Window<Arc<FileJob>>>(1);
    let (mut summary, dirs) = std::thread::scope(|scope| {
        let writer = &writer;
        scope.spawn(move || writer.fetch_windows(windows.into_iter()));
        let mut run = Run::new(writer, ready, opts.overwrite, limits);
        for item in entries {
            if run.fetcher_gone {
                break; // it panicked: the scope re-raises that, and nothing more is laid out meanwhile
            }
            match item {
                Ok(entry) => run.add(entry),
                Err(u) => {
                    let why =
                        format!("its directory listing cannot be read: {}; nothing below it was restored", u.error);
                    run.summary.fail(&u.path, why);
                }
            }
        }
        run.finish()
    });
    summary.files = writer.placed.load(Ordering::Relaxed);
    summary.bytes = progress.bytes.load(Ordering::Relaxed);
    for (dir, entry) in dirs.iter().rev() {
        let done = target.dir_fd(Some(*dir)).and_then(|fd| target.apply_metadata(&*fd, &entry.node));
        if let Err(e) = done {
            writer.fail(&entry.path, format!("cannot set its metadata: {e}"));
        }
    }
    for (path, why) in writer.failures.into_inner().expect("failures lock") {
        summary.fail(&path, why);
    }
    Ok(summary)
}

/// The sequential side of a restore: entries laid out as they come, files gathered into a batch to settle, then
/// into windows to write.
struct Run<'w, 'r, 'a> {
    writer: &'w Writer<'r, 'a>,
    overwrite: bool,
    limits: Limits,
    summary: RestoreSummary,
    /// Directories made so far, by their path in the snapshot.
    dir_of: HashMap<PathBuf, usize>,
    /// The same, in the order made, for their metadata at the end.
    dirs: Vec<(usize, Entry)>,
    /// Files laid out and not yet settled: at most a window's worth.
    batch: Vec<FileJob>,
    batch_blobs: usize,
    windows: Windows<Arc<FileJob>>,
    /// Windows whose files are created, to the fetcher.
    ready: std::sync::mpsc::SyncSender<Window<Arc<FileJob>>>,
    /// The fetcher stopped taking windows (it can only have panicked).
    fetcher_gone: bool,
}

impl<'w, 'r, 'a> Run<'w, 'r, 'a> {
    fn new(
        writer: &'w Writer<'r, 'a>,
        ready: std::sync::mpsc::SyncSender<Window<Arc<FileJob>>>,
        overwrite: bool,
        limits: Limits,
    ) -> Self {
        Run {
            ready,
            fetcher_gone: false,
            writer,
            overwrite,
            limits,
            summary: RestoreSummary::default(),
            dir_of: HashMap::new(),
            dirs: Vec::new(),
            batch: Vec::new(),
            batch_blobs: 0,
            windows: Windows::new(limits),
        }
    }

    /// Step 1 for one entry: directories, links and FIFOs are made now (parents come first); a file that may be
    /// restored joins the batch.
    fn add(&mut self, e: Entry) {
        let Some(slot) = slot_of(&e, &self.dir_of) else { return };
        let target = self.writer.target;
        if e.node.kind == NodeKind::File {
            match file_slot(target, &e, &slot, self.overwrite) {
                Ok(existing) => self.push_file(FileJob::new(e, slot, existing)),
                Err(why) => self.summary.fail(&e.path, why),
            }
            return;
        }
        let placed = match e.node.kind {
            NodeKind::Dir => target.make_dir(slot.dir, &slot.name, self.overwrite).map(|i| {
                self.dir_of.insert(e.path.clone(), i);
                self.summary.dirs += 1;
                Some(i)
            }),
            NodeKind::Symlink => place_symlink(target, &e, &slot, self.overwrite).map(|()| {
                self.summary.symlinks += 1;
                None
            }),
            NodeKind::Fifo => place_fifo(target, &e, &slot, self.overwrite).map(|()| None),
            kind => {
                self.summary.skipped.push(format!("{} ({kind:?} not restored)", e.path.display()));
                Ok(None)
            }
        };
        match placed {
            Ok(Some(dir)) => self.dirs.push((dir, e)),
            Ok(None) => {}
            Err(why) if e.node.kind == NodeKind::Dir => {
                self.summary.fail(&e.path, format!("{why}; nothing below it was restored"))
            }
            Err(why) => self.summary.fail(&e.path, why),
        }
    }

    fn push_file(&mut self, job: FileJob) {
        self.batch_blobs += job.entry.node.blob_count();
        self.batch.push(job);
        if self.batch.len() >= self.limits.files || self.batch_blobs >= self.limits.blobs {
            self.settle_batch();
        }
    }

    /// Step 2 for the batch; what is to be written goes into windows, and each full window is written.
    fn settle_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_blobs = 0;
        let mut full = Vec::new();
        for job in settle(self.writer, batch, self.overwrite, &mut self.summary) {
            self.writer.progress.total_bytes.fetch_add(job.entry.node.size, Ordering::Relaxed);
            let blobs = job.entry.node.blob_count();
            self.windows.push(Arc::new(job), blobs, &mut |w| full.push(w));
            for w in full.drain(..) {
                self.hand_over(w);
            }
        }
    }

    /// Creates the window's new files, then hands it to the fetcher (waiting while it still has one queued).
    fn hand_over(&mut self, w: Window<Arc<FileJob>>) {
        if self.fetcher_gone {
            return;
        }
        self.writer.create_files(&w);
        // The fetcher takes windows until this sender is dropped; a send fails only if it panicked.
        self.fetcher_gone = self.ready.send(w).is_err();
    }

    /// Everything still gathered is handed over; the summary so far and the directories made. The fetcher
    /// finishes once the sender is dropped, here.
    fn finish(mut self) -> (RestoreSummary, Vec<(usize, Entry)>) {
        self.settle_batch();
        if let Some(w) = std::mem::replace(&mut self.windows, Windows::new(self.limits)).finish() {
            self.hand_over(w);
        }
        (self.summary, self.dirs)
    }
}

/// The directory an entry goes into, `None` when that directory could not be restored (already reported).
fn slot_of(e: &Entry, dir_of: &HashMap<PathBuf, usize>) -> Option<Slot> {
    let name = e.path.file_name()?.to_os_string();
    let parent = e.path.parent().unwrap_or(Path::new("/"));
    let dir = if parent == Path::new("/") { None } else { Some(*dir_of.get(parent)?) };
    Some(Slot { dir, name })
}

/// Whether a file may go at its slot, and what is there now.
fn file_slot(target: &Target, e: &Entry, slot: &Slot, overwrite: bool) -> PathResult<Existing> {
    let existing = target.existing(slot.dir, &slot.name)?;
    match existing {
        Existing::Dir => return Err("a directory is where the file belongs".into()),
        Existing::File { size, mtime_ns, linked: false } if size == e.node.size && mtime_ns == e.node.mtime_ns => {}
        Existing::Nothing => {}
        _ if overwrite => {}
        _ => return Err("already exists and differs; pass --overwrite to replace it".into()),
    }
    Ok(existing)
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
/// ones are kept (their metadata set again), different ones are replaced with `--overwrite` or reported. A file
/// whose content the snapshot cannot give (a damaged content list, a lost blob) is reported as that, and what is
/// in place is left alone.
fn settle(writer: &Writer<'_, '_>, jobs: Vec<FileJob>, overwrite: bool, summary: &mut RestoreSummary) -> Vec<FileJob> {
    let target = writer.target;
    let verdicts: Vec<Option<Result<bool, String>>> = jobs
        .par_iter()
        .map(|j| matches!(j.existing, Existing::File { .. }).then(|| is_identical(writer.reader, target, j)))
        .collect();
    let mut keep = Vec::with_capacity(jobs.len());
    for (job, verdict) in jobs.into_iter().zip(verdicts) {
        match verdict {
            Some(Err(why)) => summary.fail(&job.entry.path, format!("{why}; the file was not restored")),
            Some(Ok(true)) => {
                summary.unchanged += 1;
                let fixed = target
                    .read_file(job.slot.dir, &job.slot.name)
                    .and_then(|f| target.apply_metadata(&f, &job.entry.node));
                if let Err(why) = fixed {
                    summary.fail(&job.entry.path, format!("identical, but its metadata cannot be set: {why}"));
                }
            }
            Some(Ok(false)) if !overwrite => {
                summary.fail(&job.entry.path, "already exists and differs; pass --overwrite to replace it")
            }
            _ => keep.push(job),
        }
    }
    keep
}

/// Reads the file at the job's slot and compares it, blob by blob, with the snapshot's content; an error when the
/// snapshot's side cannot be had.
fn is_identical(reader: &BlobReader<'_>, target: &Target, job: &FileJob) -> Result<bool, String> {
    let Ok(file) = target.read_file(job.slot.dir, &job.slot.name) else { return Ok(false) };
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for id in reader.content(&job.entry.node) {
        let id = id.map_err(|e| e.to_string())?;
        let loc = reader.locate(&id).map_err(|e| e.to_string())?;
        buf.resize(loc.info.raw_len as usize, 0);
        if file.read_exact_at(&mut buf, offset).is_err() || reader.repo.blob_id(&buf) != id {
            return Ok(false);
        }
        offset += buf.len() as u64;
    }
    Ok(offset == job.entry.node.size)
}

/// One content list of a file in memory: the ids of blobs `first..first + held.len()`, and which list is next.
#[derive(Default)]
struct ListCursor {
    next: usize,
    first: usize,
    held: Vec<Id>,
}

impl ListCursor {
    /// The ids of blobs `range` of a file whose lists are `lists`, reading lists forward as needed.
    fn take(&mut self, reader: &BlobReader<'_>, lists: &[ContentList], range: Range<usize>) -> Result<Vec<Id>> {
        if range.start < self.first {
            *self = ListCursor::default(); // planned out of order: start again from the first list
        }
        let mut out = Vec::with_capacity(range.len());
        let mut at = range.start;
        while at < range.end {
            if at >= self.first + self.held.len() {
                let list = lists.get(self.next).ok_or_else(|| {
                    crate::error::Error::corrupt("a file's content lists", "hold fewer blobs than they add up to")
                })?;
                self.first += self.held.len();
                self.held = reader.load_list(list)?;
                self.next += 1;
                continue;
            }
            let end = (range.end - self.first).min(self.held.len());
            out.extend_from_slice(&self.held[at - self.first..end]);
            at = self.first + end;
        }
        Ok(out)
    }
}

/// The parallel side of a restore: step 3, a window at a time.
struct Writer<'r, 'a> {
    reader: &'r BlobReader<'a>,
    target: &'r Target,
    progress: &'r RestoreProgress,
    /// Threads for range reads when there are to be more in flight than cores (remote regions).
    downloads: Option<rayon::ThreadPool>,
    /// Range reads to keep in flight: runs are sized for it. Without download threads of their own (local
    /// disks), rayon's one per core do the reads.
    reads: usize,
    failures: Mutex<Vec<(PathBuf, String)>>,
    /// Files put into place.
    placed: AtomicU64,
}

impl Writer<'_, '_> {
    fn fail(&self, path: &Path, why: String) {
        self.failures.lock().expect("failures lock").push((path.to_path_buf(), why));
    }

    /// Files whose first piece is in the window are created under their partial names; empty ones are done.
    fn create_files(&self, w: &Window<Arc<FileJob>>) {
        let firsts = || w.pieces.iter().filter(|p| p.is_first()).map(|p| &w.items[p.item]);
        firsts().collect::<Vec<_>>().par_iter().for_each(|job| create_partial(self.target, job));
        for job in firsts().filter(|j| j.entry.node.has_no_content()) {
            self.finalize(job);
        }
    }

    /// The windows' blobs (their files created) are fetched pack by pack, in streamed range reads spread over the
    /// download threads, and written where they go. Windows are planned in order, so a file's pieces are planned
    /// in order; the reads of the next window start while the last ones of the previous are still out, so no
    /// thread waits for a window's slowest read. At most [`WINDOWS_IN_FLIGHT`] windows are planned and unfinished.
    fn fetch_windows(&self, windows: impl Iterator<Item = Window<Arc<FileJob>>>) {
        let gate = Gate::new(WINDOWS_IN_FLIGHT);
        match &self.downloads {
            Some(pool) => pool.in_place_scope(|scope| self.spawn_reads(scope, &gate, windows)),
            None => rayon::in_place_scope(|scope| self.spawn_reads(scope, &gate, windows)),
        }
    }

    /// Plans each window and spawns its range reads into `scope`, waiting at `gate` for room.
    fn spawn_reads<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        gate: &'s Gate,
        windows: impl Iterator<Item = Window<Arc<FileJob>>>,
    ) {
        for w in windows {
            gate.enter();
            let plan = self.plan_by_pack(&w);
            let per_run = plan::blobs_per_run(w.blobs, self.reads);
            let runs: Vec<(usize, Range<usize>)> = plan
                .iter()
                .enumerate()
                .flat_map(|(p, (_, needs))| {
                    let mut at = 0;
                    plan::coalesce(needs, per_run).into_iter().map(move |r| {
                        at += r.len();
                        (p, at - r.len()..at)
                    })
                })
                .collect();
            if runs.is_empty() {
                gate.leave();
                continue;
            }
            let window = Arc::new((w.items, plan, AtomicUsize::new(runs.len())));
            for (p, range) in runs {
                let window = window.clone();
                scope.spawn(move |_| {
                    let (items, plan, left) = &*window;
                    // Counted off even if the read panics, so the gate opens and the scope can end and re-raise.
                    let _done = RunDone { left, gate };
                    self.fetch_run(&plan[p].0, &plan[p].1[range], items);
                });
            }
        }
    }

    /// Groups the window's blobs by pack, each pack's in offset order. A file that failed has its blobs given up.
    fn plan_by_pack(&self, w: &Window<Arc<FileJob>>) -> Vec<(Id, Vec<Need>)> {
        let mut by_pack: HashMap<Id, HashMap<Id, Need>> = HashMap::new();
        for p in &w.pieces {
            let job = &w.items[p.item];
            if job.has_failed() {
                self.give_up(job, p.blobs.len());
                continue;
            }
            let ids = match job.blob_ids(self.reader, p.blobs.clone()) {
                Ok(ids) => ids,
                Err(err) => {
                    job.fail(err.to_string());
                    self.give_up(job, p.blobs.len());
                    continue;
                }
            };
            let mut offset = job.planned.load(Ordering::SeqCst);
            for (i, id) in p.blobs.clone().zip(ids) {
                match self.reader.locate(&id) {
                    Ok(loc) => {
                        let need = by_pack.entry(loc.pack).or_default().entry(id).or_insert_with(|| Need {
                            offset: loc.offset,
                            info: loc.info,
                            targets: Vec::new(),
                        });
                        need.targets.push((p.item, offset));
                        offset += u64::from(loc.info.raw_len);
                    }
                    Err(err) => {
                        job.fail(err.to_string());
                        self.give_up(job, p.blobs.end - i);
                        break;
                    }
                }
            }
            job.planned.store(offset, Ordering::SeqCst);
        }
        let mut plan: Vec<(Id, Vec<Need>)> = by_pack
            .into_iter()
            .map(|(pack, needs)| {
                let mut v: Vec<Need> = needs.into_values().collect();
                v.sort_by_key(|n| n.offset);
                (pack, v)
            })
            .collect();
        plan.sort_by_key(|(pack, _)| *pack);
        plan
    }

    /// `n` of a failed file's blobs will not be written; when they were its last, the file is finished.
    fn give_up(&self, job: &FileJob, n: usize) {
        if n > 0 && job.remaining.fetch_sub(n, Ordering::SeqCst) == n {
            self.finalize(job);
        }
    }

    /// Reads one run of a pack's blobs with one streamed range read and writes each where it goes as it comes.
    fn fetch_run(&self, pack: &Id, run: &[Need], jobs: &[Arc<FileJob>]) {
        let blobs: Vec<PackedBlob> = run.iter().map(|n| PackedBlob { info: n.info, offset: n.offset }).collect();
        self.reader.repo.stream_blob_run(pack, &blobs, |k, plain| {
            let plain = plain.map_err(|e| e.to_string());
            // A blob of zeros is checked once, however many files (or holes of one file) it fills.
            let zero = plain.as_ref().is_ok_and(|p| p.iter().all(|b| *b == 0));
            for (j, offset) in &run[k].targets {
                let job = &jobs[*j];
                match &plain {
                    Ok(bytes) => write_blob(self.target, job, bytes, zero, *offset, self.progress),
                    Err(why) => job.fail(why.clone()),
                }
                if job.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.finalize(job);
                }
            }
        });
    }

    /// A file's last write is done: into place with its metadata, or, when something failed, removed.
    fn finalize(&self, job: &FileJob) {
        let failed = job.failed.lock().expect("job lock").clone();
        let outcome = match failed {
            Some(why) => {
                let _ = self.target.remove(job.slot.dir, &job.partial);
                Err(format!("{why}; the file was not restored"))
            }
            None => place_file(self.target, job),
        };
        match outcome {
            Ok(()) => {
                self.placed.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                job.fail(why.clone());
                self.fail(&job.entry.path, why);
            }
        }
    }
}

/// Windows planned and not yet written: two, so reads of the next go out while the last of one come in. (One
/// more may wait in the channel, and the walker fills the one after: at most four windows are held.)
const WINDOWS_IN_FLIGHT: usize = 2;

/// One read of a window is over: the window's last lets the next one through the gate.
struct RunDone<'a> {
    left: &'a AtomicUsize,
    gate: &'a Gate,
}

impl Drop for RunDone<'_> {
    fn drop(&mut self) {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gate.leave();
        }
    }
}

/// Lets at most a number of holders in at once; the others wait.
struct Gate {
    inside: Mutex<usize>,
    room: std::sync::Condvar,
    max: usize,
}

impl Gate {
    fn new(max: usize) -> Self {
        Gate { inside: Mutex::new(0), room: std::sync::Condvar::new(), max }
    }

    fn enter(&self) {
        let inside = self.inside.lock().expect("gate lock");
        let mut inside = self.room.wait_while(inside, |n| *n >= self.max).expect("gate lock");
        *inside += 1;
    }

    fn leave(&self) {
        *self.inside.lock().expect("gate lock") -= 1;
        self.room.notify_one();
    }
}

/// Removes what an interrupted restore left under the partial name, then creates the file there, 0600, sized.
fn create_partial(target: &Target, job: &FileJob) {
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

/// Writes one blob into a partial file; a blob of zeros is left as a hole (the file was sized when created).
fn write_blob(target: &Target, job: &FileJob, plain: &[u8], zero: bool, offset: u64, progress: &RestoreProgress) {
    if job.has_failed() {
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

fn place_file(target: &Target, job: &FileJob) -> PathResult<()> {
    let placed = target
        .reopen_file(job.slot.dir, &job.partial, job.ino.load(Ordering::SeqCst))
        .and_then(|f| target.apply_metadata(&f, &job.entry.node))
        .and_then(|()| target.rename(job.slot.dir, &job.partial, &job.slot.name, job.existing != Existing::Nothing));
    if placed.is_err() {
        let _ = target.remove(job.slot.dir, &job.partial);
    }
    placed
}

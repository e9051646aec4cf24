//! A snapshot (or part of it) back into a directory. Data is fetched pack by pack (one range read covers
//! neighbouring blobs), every blob is verified, and files are written at their offsets, so memory stays bounded
//! by the packs in flight.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::walk::Entry;
use crate::error::{Error, Result};
use crate::format::blob::BlobInfo;
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::{Node, NodeKind};
use crate::repo::reader::BlobReader;

/// Neighbouring blobs closer than this are fetched with one range read.
const COALESCE_GAP: u64 = 1 << 20;

/// Options of a restore to a directory.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The directory restored into.
    pub target: PathBuf,
    /// Replace what already exists there.
    pub overwrite: bool,
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Problems, each naming the object and the affected files.
    pub errors: Vec<String>,
    /// Entries skipped on purpose (device files when not root).
    pub skipped: Vec<String>,
}

/// Counters a progress display reads during a restore.
#[derive(Default)]
pub struct RestoreProgress {
    /// Bytes written so far.
    pub bytes: AtomicU64,
    /// Bytes to write in all.
    pub total_bytes: AtomicU64,
}

/// A blob to fetch and the places it goes.
struct Need {
    offset: u64,
    info: BlobInfo,
    targets: Vec<(usize, u64)>,
}

/// Restores `entries` under `opts.target`. Fails with [`Error::RestoreIncomplete`] after restoring what it can.
pub fn restore(
    reader: &BlobReader<'_>,
    entries: &[Entry],
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    let target = &opts.target;
    if !opts.overwrite {
        refuse_clashes(entries, target)?;
    }
    std::fs::create_dir_all(target).map_err(|e| Error::io("create directory", target, e))?;
    let mut summary = RestoreSummary::default();
    let files = create_entries(entries, opts, &mut summary)?;
    let total: u64 = files.iter().map(|(_, e)| e.node.size).sum();
    progress.total_bytes.store(total, Ordering::Relaxed);
    let errors = Mutex::new(Vec::new());
    let plan = plan_by_pack(reader, &files, &errors)?;
    plan.par_iter().for_each(|(pack, needs)| fetch_pack(reader, pack, needs, &files, &errors, progress));
    summary.bytes = progress.bytes.load(Ordering::Relaxed);
    for e in entries.iter().rev() {
        if let Err(err) = apply_metadata(&dest(target, e), &e.node) {
            errors.lock().expect("errors lock").push(err.to_string());
        }
    }
    summary.errors.extend(errors.into_inner().expect("errors lock"));
    Ok(summary)
}

/// Where an entry goes under the target.
fn dest(target: &Path, e: &Entry) -> PathBuf {
    target.join(e.path.strip_prefix("/").unwrap_or(&e.path))
}

/// Fails, naming a few, when files of `entries` already exist under the target.
fn refuse_clashes(entries: &[Entry], target: &Path) -> Result<()> {
    let clashes: Vec<String> = entries
        .iter()
        .filter(|e| e.node.kind != NodeKind::Dir)
        .map(|e| dest(target, e))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    if clashes.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "refusing to overwrite existing files (e.g. {}); restore into an empty directory or pass --overwrite",
        clashes.join(", ")
    )))
}

/// Creates directories, links and special files, and the files that content is written into later; returns
/// the files with their paths.
fn create_entries<'e>(
    entries: &'e [Entry],
    opts: &RestoreOptions,
    summary: &mut RestoreSummary,
) -> Result<Vec<(PathBuf, &'e Entry)>> {
    let mut files: Vec<(PathBuf, &Entry)> = Vec::new();
    for e in entries {
        let path = dest(&opts.target, e);
        match e.node.kind {
            NodeKind::Dir => {
                create_dir(&path)?;
                summary.dirs += 1;
            }
            NodeKind::File => {
                // Parents come before children in `entries`, so the directory exists. Files of one blob are
                // created when their data arrives (one open instead of two); the others are sized now.
                if e.node.content.len() != 1 {
                    let f = std::fs::File::create(&path).map_err(|err| Error::io("create file", &path, err))?;
                    f.set_len(e.node.size).map_err(|err| Error::io("size file", &path, err))?;
                }
                files.push((path, e));
                summary.files += 1;
            }
            NodeKind::Symlink => {
                remove_existing(&path, opts.overwrite)?;
                let t = e.node.target.as_ref().map(|t| t.0.clone()).unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &path)
                    .map_err(|err| Error::io("create symlink", &path, err))?;
                summary.symlinks += 1;
            }
            NodeKind::Fifo => {
                remove_existing(&path, opts.overwrite)?;
                if let Err(err) = make_fifo(&path) {
                    summary.errors.push(format!("cannot create fifo {}: {err}", path.display()));
                }
            }
            _ => summary.skipped.push(format!("{} ({:?} not restored)", e.path.display(), e.node.kind)),
        }
    }
    Ok(files)
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

fn remove_existing(path: &Path, overwrite: bool) -> Result<()> {
    if overwrite && std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(|e| Error::io("replace", path, e))?;
    }
    Ok(())
}

/// Groups every needed blob by pack, in pack order.
fn plan_by_pack(
    reader: &BlobReader<'_>,
    files: &[(PathBuf, &Entry)],
    errors: &Mutex<Vec<String>>,
) -> Result<Vec<(Id, Vec<Need>)>> {
    let mut by_pack: HashMap<Id, HashMap<Id, Need>> = HashMap::new();
    for (i, (path, e)) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &e.node.content {
            match reader.locate(id) {
                Ok(loc) => {
                    let need = by_pack.entry(loc.pack).or_default().entry(*id).or_insert_with(|| Need {
                        offset: loc.offset,
                        info: loc.info,
                        targets: Vec::new(),
                    });
                    need.targets.push((i, offset));
                    offset += loc.info.raw_len as u64;
                }
                Err(err) => {
                    errors.lock().expect("errors lock").push(format!("{}: {err}", path.display()));
                    break;
                }
            }
        }
    }
    Ok(by_pack
        .into_iter()
        .map(|(pack, needs)| {
            let mut v: Vec<Need> = needs.into_values().collect();
            v.sort_by_key(|n| n.offset);
            (pack, v)
        })
        .collect())
}

/// Reads the blobs one pack contributes (neighbours coalesced into one range read) and writes them out.
fn fetch_pack(
    reader: &BlobReader<'_>,
    pack: &Id,
    needs: &[Need],
    files: &[(PathBuf, &Entry)],
    errors: &Mutex<Vec<String>>,
    progress: &RestoreProgress,
) {
    let fail = |msg: String, run: &[Need]| {
        let mut names: Vec<String> =
            run.iter().flat_map(|n| n.targets.iter().map(|(f, _)| files[*f].0.display().to_string())).collect();
        names.sort();
        names.dedup();
        errors.lock().expect("errors lock").push(format!("{msg}; affected files: {}", names.join(", ")));
    };
    for run in coalesce(needs) {
        let blobs: Vec<PackedBlob> = run.iter().map(|n| PackedBlob { info: n.info, offset: n.offset }).collect();
        match reader.repo.read_blob_run(pack, &blobs) {
            Ok(plains) => {
                for (need, plain) in run.iter().zip(plains) {
                    match plain {
                        Ok(plain) => write_targets(&plain, need, files, errors, progress),
                        Err(e) => fail(e.to_string(), std::slice::from_ref(need)),
                    }
                }
            }
            Err(e) => fail(e.to_string(), run),
        }
    }
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

fn write_targets(
    plain: &[u8],
    need: &Need,
    files: &[(PathBuf, &Entry)],
    errors: &Mutex<Vec<String>>,
    progress: &RestoreProgress,
) {
    for (file, offset) in &need.targets {
        let (path, entry) = &files[*file];
        let res = if entry.node.content.len() == 1 {
            std::fs::File::create(path).and_then(|mut f| f.write_all(plain))
        } else {
            std::fs::OpenOptions::new().write(true).open(path).and_then(|f| f.write_all_at(plain, *offset))
        };
        match res {
            Ok(()) => {
                progress.bytes.fetch_add(plain.len() as u64, Ordering::Relaxed);
            }
            Err(e) => errors.lock().expect("errors lock").push(format!("cannot write {}: {e}", path.display())),
        }
    }
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidInput(format!("path {} holds a NUL byte", path.display())))
}

/// Sets owner (when permitted), mode and mtime; symlinks are not followed.
fn apply_metadata(path: &Path, node: &Node) -> Result<()> {
    let is_link = node.kind == NodeKind::Symlink;
    if !matches!(node.kind, NodeKind::File | NodeKind::Dir | NodeKind::Symlink | NodeKind::Fifo) {
        return Ok(());
    }
    // Ownership needs privileges; as an ordinary user the files simply stay ours.
    let _ = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid));
    if !is_link {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))
            .map_err(|e| Error::io("set permissions of", path, e))?;
    }
    let c = cstring(path)?;
    let ts = libc::timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000),
    };
    let times = [ts, ts];
    // SAFETY: `c` is a valid NUL-terminated path and `times` points to two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(Error::io("set times of", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

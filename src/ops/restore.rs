//! Restore: snapshots back to a directory, single files to a stream, and listings. Data is fetched pack by pack
//! (one range read covers neighbouring blobs), every blob is verified, and files are written at their offsets,
//! so memory stays bounded by the packs in flight.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::blob::BlobInfo;
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::{Node, NodeKind};
use crate::repo::reader::BlobReader;

/// Neighbouring blobs closer than this are fetched with one range read.
const COALESCE_GAP: u64 = 1 << 20;

/// Include patterns for restore: like excludes, a pattern with `/` matches the whole snapshot path, one
/// without matches a name at any depth; a matching directory brings everything below it.
pub struct Includes(GlobSet, GlobSet);

impl Includes {
    pub fn new(patterns: &[String]) -> Result<Option<Includes>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for p in patterns {
            let has_slash = p.contains('/');
            let pat = if has_slash && !p.starts_with('/') { format!("/{p}") } else { p.clone() };
            let pat = pat.trim_end_matches('/').to_string();
            let glob = GlobBuilder::new(&pat)
                .literal_separator(has_slash)
                .build()
                .map_err(|e| Error::InvalidInput(format!("invalid include pattern {p:?}: {e}")))?;
            if has_slash {
                by_path.add(glob)
            } else {
                by_name.add(glob)
            };
        }
        let b =
            |s: GlobSetBuilder| s.build().map_err(|e| Error::InvalidInput(format!("invalid include patterns: {e}")));
        Ok(Some(Includes(b(by_name)?, b(by_path)?)))
    }

    fn matches(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.0.is_match(Path::new(n))) || self.1.is_match(path)
    }
}

/// One entry to restore: its path inside the snapshot (absolute) and its node.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub node: Node,
}

/// Every entry of a tree, depth first, parents before children; filtered by `includes`.
pub fn walk(reader: &BlobReader<'_>, root: &Id, includes: Option<&Includes>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_into(reader, root, Path::new("/"), includes.is_none(), includes, &mut out)?;
    Ok(out)
}

fn walk_into(
    reader: &BlobReader<'_>,
    tree: &Id,
    dir: &Path,
    all: bool,
    includes: Option<&Includes>,
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

/// Streams a file's content to `out` (named `dest` in messages), fetching a few blobs ahead in parallel.
pub fn dump(reader: &BlobReader<'_>, node: &Node, path: &str, out: &mut dyn Write, dest: &str) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::InvalidInput(format!(
            "{path} is not a regular file; use `gumvault restore` for directories"
        )));
    }
    let mut written = 0u64;
    for batch in node.content.chunks(16) {
        let blobs: Vec<Vec<u8>> = batch.par_iter().map(|id| reader.read(id)).collect::<Result<_>>()?;
        for b in blobs {
            out.write_all(&b).map_err(|e| Error::io("write to", dest, e))?;
            written += b.len() as u64;
        }
    }
    out.flush().map_err(|e| Error::io("write to", dest, e))?;
    Ok(written)
}

/// Options of a restore to a directory.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub overwrite: bool,
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Problems, each naming the object and the affected files.
    pub errors: Vec<String>,
    /// Entries skipped on purpose (device files when not root).
    pub skipped: Vec<String>,
}

/// Counters a progress display reads during a restore.
#[derive(Default)]
pub struct RestoreProgress {
    pub bytes: AtomicU64,
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
    let dest = |e: &Entry| target.join(e.path.strip_prefix("/").unwrap_or(&e.path));
    if !opts.overwrite {
        let clashes: Vec<String> = entries
            .iter()
            .filter(|e| e.node.kind != NodeKind::Dir)
            .map(&dest)
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .take(5)
            .map(|p| p.display().to_string())
            .collect();
        if !clashes.is_empty() {
            return Err(Error::InvalidInput(format!(
                "refusing to overwrite existing files (e.g. {}); restore into an empty directory or pass --overwrite",
                clashes.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(target).map_err(|e| Error::io("create directory", target, e))?;
    let mut summary = RestoreSummary::default();
    let mut files: Vec<(PathBuf, &Entry)> = Vec::new();
    for e in entries {
        let path = dest(e);
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
                let c = cstring(&path)?;
                // SAFETY: `c` is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    summary.errors.push(format!(
                        "cannot create fifo {}: {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    ));
                }
            }
            _ => summary.skipped.push(format!("{} ({:?} not restored)", e.path.display(), e.node.kind)),
        }
    }
    let total: u64 = files.iter().map(|(_, e)| e.node.size).sum();
    progress.total_bytes.store(total, Ordering::Relaxed);
    let errors = Mutex::new(Vec::new());
    let plan = plan_by_pack(reader, &files, &errors)?;
    plan.par_iter().for_each(|(pack, needs)| fetch_pack(reader, pack, needs, &files, &errors, progress));
    summary.bytes = progress.bytes.load(Ordering::Relaxed);
    for e in entries.iter().rev() {
        if let Err(err) = apply_metadata(&dest(e), &e.node) {
            errors.lock().expect("errors lock").push(err.to_string());
        }
    }
    summary.errors.extend(errors.into_inner().expect("errors lock"));
    Ok(summary)
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

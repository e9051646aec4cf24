//! The file-tree source: walks paths, skips excluded entries, reuses the parent snapshot's content for files
//! whose size, mtime, ctime and inode are unchanged, and saves one tree per directory. Directory entries are
//! processed in parallel.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::context::BackupContext;
use super::file::{FileRead, read_stable};
use super::progress::Progress;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::globs::PathGlobs;

/// Reads `--exclude-file` style files: one pattern a line, `#` comments and blank lines ignored.
pub fn read_exclude_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read exclude file", path, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// Counts the files and bytes a backup of `paths` will visit (metadata only), for the progress bar's ETA.
/// Runs beside the backup; stops early when `progress.estimate_done` is set by someone else.
pub fn scan(paths: &[PathBuf], excludes: &PathGlobs, progress: &Progress) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if progress.estimate_done.load(Ordering::Relaxed) {
            return;
        }
        if excludes.matches(&p) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            progress.estimate_files.fetch_add(1, Ordering::Relaxed);
            progress.estimate_bytes.fetch_add(meta.size(), Ordering::Relaxed);
        }
    }
    progress.estimate_done.store(true, Ordering::Relaxed);
}

/// The directory structure above the paths given on the command line.
#[derive(Default)]
struct VirtualDir {
    children: BTreeMap<Vec<u8>, VirtualEntry>,
}

enum VirtualEntry {
    /// A path given by the user: saved with all it contains.
    Real(PathBuf),
    /// An ancestor of given paths, with the real directory whose metadata it takes.
    Virtual(PathBuf, VirtualDir),
}

impl VirtualDir {
    fn insert(&mut self, full: &Path, components: &[&OsStr], prefix: PathBuf) {
        let Some((first, rest)) = components.split_first() else { return };
        let here = prefix.join(first);
        let key = first.as_bytes().to_vec();
        if rest.is_empty() {
            self.children.insert(key, VirtualEntry::Real(full.to_path_buf()));
            return;
        }
        let entry =
            self.children.entry(key).or_insert_with(|| VirtualEntry::Virtual(here.clone(), VirtualDir::default()));
        if let VirtualEntry::Virtual(_, dir) = entry {
            dir.insert(full, rest, here);
        }
    }
}

/// Saves the given absolute paths; returns the root tree id.
pub fn save_paths(ctx: &BackupContext<'_, '_>, paths: &[PathBuf], parent_root: Option<&Tree>) -> Result<Id> {
    let mut root = VirtualDir::default();
    for p in paths {
        let comps: Vec<&OsStr> = p.components().skip(1).map(|c| c.as_os_str()).collect();
        root.insert(p, &comps, PathBuf::from("/"));
    }
    save_virtual(ctx, &root, parent_root)
}

fn save_virtual(ctx: &BackupContext<'_, '_>, dir: &VirtualDir, parent: Option<&Tree>) -> Result<Id> {
    let nodes: Vec<Option<Node>> = dir
        .children
        .par_iter()
        .map(|(name, entry)| {
            let parent_node = parent.and_then(|t| t.find(name));
            match entry {
                VirtualEntry::Real(path) => save_entry(ctx, path, RawName(name.clone()), parent_node),
                VirtualEntry::Virtual(path, sub) => {
                    let meta = match std::fs::metadata(path) {
                        Ok(m) => m,
                        Err(e) => {
                            ctx.warn(path.display().to_string(), format!("cannot read {}: {e}", path.display()));
                            return Ok(None);
                        }
                    };
                    let parent_tree = ctx.parent_subtree(parent_node)?;
                    let id = save_virtual(ctx, sub, parent_tree.as_ref())?;
                    Ok(Some(dir_node(RawName(name.clone()), &meta, id)))
                }
            }
        })
        .collect::<Result<_>>()?;
    save_tree(ctx, nodes)
}

fn save_tree(ctx: &BackupContext<'_, '_>, nodes: Vec<Option<Node>>) -> Result<Id> {
    ctx.save_tree(nodes.into_iter().flatten().collect())
}

/// Saves one file system entry (not following symlinks). `None` when it was excluded or unreadable.
fn save_entry(ctx: &BackupContext<'_, '_>, path: &Path, name: RawName, parent: Option<&Node>) -> Result<Option<Node>> {
    if ctx.excludes.matches(path) {
        return Ok(None);
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            ctx.warn(path.display().to_string(), format!("cannot read {}: {e}", path.display()));
            return Ok(None);
        }
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return save_dir(ctx, path, name, &meta, parent);
    }
    if ft.is_file() {
        return save_file(ctx, path, name, &meta, parent);
    }
    let mut node = base_node(name, &meta, NodeKind::Fifo);
    if ft.is_symlink() {
        node.kind = NodeKind::Symlink;
        match std::fs::read_link(path) {
            Ok(target) => node.target = Some(RawName(target.as_os_str().as_bytes().to_vec())),
            Err(e) => {
                ctx.warn(path.display().to_string(), format!("cannot read symlink {}: {e}", path.display()));
                return Ok(None);
            }
        }
    } else if ft.is_socket() {
        node.kind = NodeKind::Socket;
    } else if ft.is_char_device() {
        node.kind = NodeKind::CharDevice;
        node.rdev = Some(meta.rdev());
    } else if ft.is_block_device() {
        node.kind = NodeKind::BlockDevice;
        node.rdev = Some(meta.rdev());
    }
    Ok(Some(node))
}

fn save_dir(
    ctx: &BackupContext<'_, '_>,
    path: &Path,
    name: RawName,
    meta: &Metadata,
    parent: Option<&Node>,
) -> Result<Option<Node>> {
    let read = std::fs::read_dir(path).and_then(|rd| rd.collect::<std::io::Result<Vec<_>>>());
    let entries = match read {
        Ok(e) => e,
        Err(e) => {
            ctx.warn(path.display().to_string(), format!("cannot read directory {}: {e}", path.display()));
            return Ok(None);
        }
    };
    let parent_tree = ctx.parent_subtree(parent)?;
    let nodes: Vec<Option<Node>> = entries
        .par_iter()
        .map(|e| {
            let child_name = e.file_name().as_bytes().to_vec();
            let parent_node = parent_tree.as_ref().and_then(|t| t.find(&child_name));
            save_entry(ctx, &e.path(), RawName(child_name), parent_node)
        })
        .collect::<Result<_>>()?;
    ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
    let id = save_tree(ctx, nodes)?;
    Ok(Some(dir_node(name, meta, id)))
}

fn save_file(
    ctx: &BackupContext<'_, '_>,
    path: &Path,
    name: RawName,
    meta: &Metadata,
    parent: Option<&Node>,
) -> Result<Option<Node>> {
    let mut node = base_node(name, meta, NodeKind::File);
    node.size = meta.size();
    if let Some(old) = parent.filter(|old| unchanged(old, &node))
        && ctx.has_all(old)?
    {
        ctx.reuse_content(old, &mut node)?;
        ctx.progress.files_unchanged.fetch_add(1, Ordering::Relaxed);
        ctx.progress.bytes_skipped.fetch_add(node.size, Ordering::Relaxed);
        ctx.progress.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        return Ok(Some(node));
    }
    let (meta, content) = match read_stable(ctx, path)? {
        FileRead::Unreadable(why) => {
            ctx.warn(path.display().to_string(), format!("cannot read {}: {why}", path.display()));
            return Ok(None);
        }
        FileRead::Read { meta, content, torn } => {
            if torn {
                ctx.warn(path.display().to_string(), format!(
                    "{} changed while it was read, and again when it was read once more; the snapshot holds the second read",
                    path.display()
                ));
            }
            (meta, content)
        }
    };
    let mut node = base_node(node.name, &meta, NodeKind::File);
    let (size, holes) = (content.size, content.holes);
    ctx.finish_content(*content, &mut node)?;
    let counter = if parent.is_some_and(|p| p.kind == NodeKind::File) {
        &ctx.progress.files_changed
    } else {
        &ctx.progress.files_new
    };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.progress.bytes_read.fetch_add(size - holes, Ordering::Relaxed);
    ctx.progress.total_bytes.fetch_add(size, Ordering::Relaxed);
    Ok(Some(node))
}

/// The parent-snapshot shortcut: same kind, size, mtime, ctime, inode and device.
fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && old.size == new.size
        && old.mtime_ns == new.mtime_ns
        && old.ctime_ns == new.ctime_ns
        && old.inode == new.inode
        && old.dev == new.dev
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A node with the metadata of a file system entry.
fn base_node(name: RawName, meta: &Metadata, kind: NodeKind) -> Node {
    Node {
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        dev: meta.dev(),
        ..Node::new(name, kind, meta.mode() & 0o7777)
    }
}

fn dir_node(name: RawName, meta: &Metadata, tree: Id) -> Node {
    Node { subtree: Some(tree), ..base_node(name, meta, NodeKind::Dir) }
}

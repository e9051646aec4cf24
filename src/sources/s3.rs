//! S3 buckets: objects below a prefix, filtered by include/exclude globs, saved as files (key → path) with their
//! size, last-modified time, ETag and Content-Type. Objects whose size and last-modified time (and ETag, when the
//! listing carries one) match the parent snapshot are not downloaded again; S3 sets a new last-modified time on
//! every write. Many objects are fetched at once; each one streams through the
//! chunker. The way back writes objects into a bucket with their Content-Type.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::config::{Glob, S3Source};
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::backup::{BackupContext, save_tree_nodes, stream::save_stream, synthetic_dir};
use crate::ops::restore::Entry;
use crate::repo::reader::BlobReader;
use crate::storage::Location;

/// Objects fetched at once when the config does not say.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Multipart chunk size when restoring objects (S3 needs parts of at least 5 MiB).
const WRITE_CHUNK: usize = 8 << 20;

/// Which keys to keep: a glob without `/` matches the last path component, one with `/` the whole key; an empty
/// include list keeps everything, and excludes win.
pub struct KeyFilter {
    include: Option<(GlobSet, GlobSet)>,
    exclude: Option<(GlobSet, GlobSet)>,
}

impl KeyFilter {
    pub fn new(include: &[Glob], exclude: &[Glob]) -> Result<KeyFilter> {
        Ok(KeyFilter { include: set(include)?, exclude: set(exclude)? })
    }

    pub fn keep(&self, key: &str) -> bool {
        let matches = |(by_name, by_key): &(GlobSet, GlobSet)| {
            by_name.is_match(key.rsplit('/').next().unwrap_or(key)) || by_key.is_match(key)
        };
        self.include.as_ref().is_none_or(matches) && !self.exclude.as_ref().is_some_and(matches)
    }
}

fn set(globs: &[Glob]) -> Result<Option<(GlobSet, GlobSet)>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut by_name = GlobSetBuilder::new();
    let mut by_key = GlobSetBuilder::new();
    for g in globs {
        let has_slash = g.0.contains('/');
        let glob = GlobBuilder::new(g.0.trim_start_matches('/'))
            .literal_separator(has_slash)
            .build()
            .map_err(|e| Error::InvalidInput(format!("invalid glob {:?}: {e}", g.0)))?;
        if has_slash {
            by_key.add(glob)
        } else {
            by_name.add(glob)
        };
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidInput(format!("invalid globs: {e}")));
    Ok(Some((build(by_name)?, build(by_key)?)))
}

/// Opens a bucket (and prefix) as an operator.
pub fn open_bucket(url: &str, src: Option<&S3Source>) -> Result<opendal::blocking::Operator> {
    let loc = Location::parse(url)?;
    if !matches!(loc, Location::S3 { .. }) {
        return Err(Error::InvalidInput(format!("{url} is not an s3:// URL")));
    }
    let credentials = match src.map(|s| (&s.access_key_id, &s.secret_access_key)) {
        Some((Some(k), Some(s))) => Some((k.resolve()?, s.resolve()?)),
        _ => None,
    };
    loc.operator("source", url, credentials)
}

/// One object as listed.
struct Object {
    key: String,
    size: u64,
    mtime_ns: i64,
    etag: Option<String>,
}

/// Objects grouped by key prefix into directories.
#[derive(Default)]
struct Dir {
    children: BTreeMap<String, Child>,
}

enum Child {
    Dir(Dir),
    Object(Object),
}

impl Dir {
    /// Files an object under its key's components; false when the key cannot be a path.
    fn insert(&mut self, obj: Object) -> bool {
        let parts: Vec<String> = obj.key.split('/').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
            return false;
        }
        let mut dir = self;
        for part in &parts[..parts.len() - 1] {
            let entry = dir.children.entry(part.clone()).or_insert_with(|| Child::Dir(Dir::default()));
            match entry {
                Child::Dir(d) => dir = d,
                Child::Object(_) => return false,
            }
        }
        let last = parts[parts.len() - 1].clone();
        if dir.children.contains_key(&last) {
            return false;
        }
        dir.children.insert(last, Child::Object(obj));
        true
    }
}

/// Backs up a bucket; returns the tree of the source's directory.
pub(crate) fn save(ctx: &BackupContext<'_, '_>, src: &S3Source, parent: Option<&Tree>) -> Result<Id> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::SourceFailed(format!("{what} {}: {e}", src.url));
    let op = open_bucket(&src.url, Some(src)).map_err(|e| failed("cannot open", &e))?;
    let filter = KeyFilter::new(&src.include, &src.exclude)?;
    let entries = op
        .list_options("", opendal::options::ListOptions { recursive: true, ..Default::default() })
        .map_err(|e| failed("cannot list", &e))?;
    let mut root = Dir::default();
    for entry in entries {
        let key = entry.path().trim_start_matches('/');
        let meta = entry.metadata();
        if key.is_empty() || key.ends_with('/') || !meta.is_file() || !filter.keep(key) {
            continue;
        }
        let obj = Object {
            key: key.to_string(),
            size: meta.content_length(),
            mtime_ns: meta.last_modified().map(|t| nanos(t.into())).unwrap_or(0),
            etag: meta.etag().map(str::to_string),
        };
        ctx.progress.estimate_files.fetch_add(1, Ordering::Relaxed);
        ctx.progress.estimate_bytes.fetch_add(obj.size, Ordering::Relaxed);
        let key = obj.key.clone();
        if !root.insert(obj) {
            ctx.warn(format!("object {key:?} in {} has a key that cannot be a path; skipped", src.url));
        }
    }
    let threads = src.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gumvault-s3-{i}"))
        .build()
        .map_err(|e| Error::SourceFailed(format!("cannot start download threads: {e}")))?;
    pool.install(|| save_dir(ctx, &op, &src.url, &root, parent))
}

fn save_dir(
    ctx: &BackupContext<'_, '_>,
    op: &opendal::blocking::Operator,
    url: &str,
    dir: &Dir,
    parent: Option<&Tree>,
) -> Result<Id> {
    let nodes: Vec<Option<Node>> = dir
        .children
        .par_iter()
        .map(|(name, child)| {
            let old = parent.and_then(|t| t.find(name.as_bytes()));
            match child {
                Child::Dir(d) => {
                    let old_tree = match old.filter(|n| n.kind == NodeKind::Dir).and_then(|n| n.subtree) {
                        Some(id) => Some(ctx.loader.load(&id)?),
                        None => None,
                    };
                    let id = save_dir(ctx, op, url, d, old_tree.as_ref())?;
                    ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
                    let mut node = synthetic_dir(name, id);
                    node.mode = 0o755;
                    Ok(Some(node))
                }
                Child::Object(obj) => save_object(ctx, op, url, name, obj, old),
            }
        })
        .collect::<Result<_>>()?;
    save_tree_nodes(ctx, nodes.into_iter().flatten().collect())
}

/// One object: from the parent snapshot when unchanged, else downloaded (streamed through the chunker).
fn save_object(
    ctx: &BackupContext<'_, '_>,
    op: &opendal::blocking::Operator,
    url: &str,
    name: &str,
    obj: &Object,
    old: Option<&Node>,
) -> Result<Option<Node>> {
    let mut node = object_node(name, obj.size, obj.mtime_ns, obj.etag.clone(), None);
    if let Some(old) = old.filter(|o| {
        o.kind == NodeKind::File
            && o.size == obj.size
            && o.mtime_ns == obj.mtime_ns
            && obj.mtime_ns != 0
            && obj.etag.as_ref().is_none_or(|e| o.etag.as_ref() == Some(e))
    }) && old.content.iter().all(|id| ctx.saver.has(id))
    {
        node.content = old.content.clone();
        node.content_type = old.content_type.clone();
        ctx.progress.files_unchanged.fetch_add(1, Ordering::Relaxed);
        ctx.progress.bytes_skipped.fetch_add(node.size, Ordering::Relaxed);
        ctx.progress.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        return Ok(Some(node));
    }
    let what = format!("{url} object {}", obj.key);
    // Stat first: the node describes exactly the version that is read (if-match pins it).
    let meta = match op.stat(&obj.key) {
        Ok(m) => m,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
            ctx.notice(format!("{what} was deleted while the bucket was read; left out"));
            return Ok(None);
        }
        Err(e) => {
            ctx.warn(format!("cannot read {what}: {e}"));
            return Ok(None);
        }
    };
    // The node keeps the listing's ETag and time (what the next listing compares with); the read is pinned to
    // the version just stat'ed, so a concurrent overwrite fails the read instead of mixing versions.
    let size = meta.content_length();
    let pinned = meta.etag().map(str::to_string);
    node.size = size;
    node.content_type = meta.content_type().map(str::to_string);
    match &obj.etag {
        None => node.etag = pinned.clone(),
        Some(listed) if pinned.as_ref() != Some(listed) => node.etag = None,
        Some(_) => {}
    }
    let reader = op
        .reader_options(&obj.key, opendal::options::ReaderOptions { if_match: pinned, ..Default::default() })
        .and_then(|r| r.into_std_read(0..size));
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            ctx.warn(format!("cannot read {what}: {e}"));
            return Ok(None);
        }
    };
    let content = match save_stream(ctx.saver, reader, ctx.params, ctx.repo.gear(), ctx.progress, &what, Some(size)) {
        Ok(c) => c,
        Err(Error::Io { source, .. }) => {
            ctx.warn(format!("cannot read {what}: {source}"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if content.size != size {
        ctx.warn(format!("{what} changed while it was read ({} of {size} bytes); skipped", content.size));
        return Ok(None);
    }
    node.content = content.blobs;
    let counter = if old.is_some() { &ctx.progress.files_changed } else { &ctx.progress.files_new };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.progress.bytes_read.fetch_add(size, Ordering::Relaxed);
    ctx.progress.total_bytes.fetch_add(size, Ordering::Relaxed);
    Ok(Some(node))
}

fn object_node(name: &str, size: u64, mtime_ns: i64, etag: Option<String>, content_type: Option<String>) -> Node {
    Node {
        name: RawName(name.as_bytes().to_vec()),
        kind: NodeKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns,
        ctime_ns: 0,
        inode: 0,
        dev: 0,
        size,
        content: Vec::new(),
        subtree: None,
        target: None,
        rdev: None,
        etag,
        content_type,
    }
}

fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(0)
}

/// What a restore into a bucket did.
#[derive(Debug, Default, serde::Serialize)]
pub struct BucketRestore {
    pub objects: u64,
    pub bytes: u64,
}

/// Writes the files of `entries` (paths relative to the source's directory) as objects below the URL's prefix,
/// with their Content-Type. Refuses to replace existing objects unless `overwrite`.
pub fn restore_to_bucket(
    reader: &BlobReader<'_>,
    entries: &[Entry],
    url: &str,
    overwrite: bool,
    concurrency: usize,
    progress: &AtomicU64,
) -> Result<BucketRestore> {
    let op = open_bucket(url, None)?;
    let storage_err = |op_name: &'static str, key: &str, e: opendal::Error| Error::Storage {
        op: op_name,
        path: key.to_string(),
        region: url.to_string(),
        message: e.to_string(),
        not_found: e.kind() == opendal::ErrorKind::NotFound,
    };
    let files: Vec<(&Entry, String)> = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File)
        .map(|e| (e, e.path.to_string_lossy().trim_start_matches('/').to_string()))
        .collect();
    if !overwrite {
        let existing: HashSet<String> =
            match op.list_options("", opendal::options::ListOptions { recursive: true, ..Default::default() }) {
                Ok(list) => list.into_iter().map(|e| e.path().trim_start_matches('/').to_string()).collect(),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => HashSet::new(),
                Err(e) => return Err(storage_err("list", url, e)),
            };
        let clashes: Vec<&str> =
            files.iter().filter(|(_, k)| existing.contains(k)).map(|(_, k)| k.as_str()).take(5).collect();
        if !clashes.is_empty() {
            return Err(Error::InvalidInput(format!(
                "refusing to replace objects that already exist in {url} (e.g. {}); pass --overwrite to replace them",
                clashes.join(", ")
            )));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start upload threads: {e}")))?;
    let done = pool.install(|| {
        files
            .par_iter()
            .map(|(entry, key)| -> Result<u64> {
                let opts = opendal::options::WriteOptions {
                    content_type: entry.node.content_type.clone(),
                    chunk: Some(WRITE_CHUNK),
                    ..Default::default()
                };
                let mut w = op.writer_options(key, opts).map_err(|e| storage_err("write", key, e))?;
                let mut n = 0u64;
                for id in &entry.node.content {
                    let data = reader.read(id)?;
                    n += data.len() as u64;
                    progress.fetch_add(data.len() as u64, Ordering::Relaxed);
                    w.write(data).map_err(|e| storage_err("write", key, e))?;
                }
                w.close().map_err(|e| storage_err("write", key, e))?;
                Ok(n)
            })
            .collect::<Result<Vec<u64>>>()
    })?;
    Ok(BucketRestore { objects: done.len() as u64, bytes: done.iter().sum() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude_globs() {
        let g = |v: &[&str]| v.iter().map(|s| Glob(s.to_string())).collect::<Vec<_>>();
        let f = KeyFilter::new(&g(&["*.jpg", "*.png", "*.pdf"]), &g(&["tmp/*"])).unwrap();
        assert!(f.keep("a.jpg"));
        assert!(f.keep("users/42/avatar.png"));
        assert!(!f.keep("users/42/notes.tmp"));
        assert!(!f.keep("tmp/x.jpg"));
        assert!(!f.keep("x.jpeg"));
        let all = KeyFilter::new(&[], &g(&["*.tmp"])).unwrap();
        assert!(all.keep("anything/at/all"));
        assert!(!all.keep("a/b.tmp"));
    }

    #[test]
    fn keys_become_paths_unless_they_cannot() {
        let obj = |k: &str| Object { key: k.into(), size: 0, mtime_ns: 0, etag: None };
        let mut d = Dir::default();
        assert!(d.insert(obj("a/b/c.jpg")));
        assert!(d.insert(obj("a/d.jpg")));
        assert!(!d.insert(obj("a//e.jpg")));
        assert!(!d.insert(obj("../x")));
        assert!(!d.insert(obj("a/b")), "a/b is already a directory");
    }
}

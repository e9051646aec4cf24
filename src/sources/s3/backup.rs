//! The S3 source: objects below a prefix, filtered by include/exclude patterns, saved as files (key → path) with
//! their size, last-modified time, ETag, Content-Type and the headers restored with them (user metadata,
//! Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires), read by one HeadObject per
//! object that is downloaded. Objects whose size and last-modified time (and ETag, when the listing carries one)
//! match the parent snapshot are not downloaded again; S3 sets a new last-modified time on every write (a change
//! of metadata is a copy, so a new time too). Many objects are fetched at once; each one streams through the chunker.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::bucket::{DEFAULT_CONCURRENCY, SourceBucket, kept_headers, open_source};
use crate::config::S3Source;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::backup::context::{BackupContext, synthetic_dir};
use crate::ops::backup::source::{JobSource, Profile};
use crate::ops::backup::stream::StreamContent;
use crate::ops::globs::PathGlobs;

impl JobSource for S3Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "s3"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Files
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, parent: Option<&Tree>) -> Result<Id> {
        save(ctx, self, parent)
    }
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
fn save(ctx: &BackupContext<'_, '_>, src: &S3Source, parent: Option<&Tree>) -> Result<Id> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::SourceFailed(format!("{what} {}: {e}", src.url));
    let bucket = open_source(&src.url, Some(src)).map_err(|e| failed("cannot open", &e))?;
    let root = list(ctx, &bucket.op, src)?;
    let threads = src.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gumvault-s3-{i}"))
        .build()
        .map_err(|e| Error::SourceFailed(format!("cannot start download threads: {e}")))?;
    pool.install(|| save_dir(ctx, &bucket, &src.url, &root, parent))
}

/// Lists the bucket's objects that the source's patterns keep, as a directory structure.
fn list(ctx: &BackupContext<'_, '_>, op: &opendal::blocking::Operator, src: &S3Source) -> Result<Dir> {
    let include = PathGlobs::new(&src.include, "include")?;
    let exclude = PathGlobs::new(&src.exclude, "exclude")?;
    let keep = |key: &str| (include.is_empty() || include.matches_key(key)) && !exclude.matches_key(key);
    let entries = op
        .list_options("", opendal::options::ListOptions { recursive: true, ..Default::default() })
        .map_err(|e| Error::SourceFailed(format!("cannot list {}: {e}", src.url)))?;
    let mut root = Dir::default();
    for entry in entries {
        let key = entry.path().trim_start_matches('/');
        let meta = entry.metadata();
        if key.is_empty() || key.ends_with('/') || !meta.is_file() || !keep(key) {
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
            ctx.warn(
                format!("{} object {key}", src.url),
                format!("object {key:?} in {} has a key that cannot be a path; skipped", src.url),
            );
        }
    }
    Ok(root)
}

fn save_dir(ctx: &BackupContext<'_, '_>, b: &SourceBucket, url: &str, dir: &Dir, parent: Option<&Tree>) -> Result<Id> {
    let nodes: Vec<Option<Node>> = dir
        .children
        .par_iter()
        .map(|(name, child)| {
            let old = parent.and_then(|t| t.find(name.as_bytes()));
            match child {
                Child::Dir(d) => {
                    let old_tree = ctx.parent_subtree(old)?;
                    let id = save_dir(ctx, b, url, d, old_tree.as_ref())?;
                    ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
                    Ok(Some(synthetic_dir(name, 0o755, id)))
                }
                Child::Object(obj) => save_object(ctx, b, url, name, obj, old),
            }
        })
        .collect::<Result<_>>()?;
    ctx.save_tree(nodes.into_iter().flatten().collect())
}

/// One object: from the parent snapshot when unchanged, else downloaded (streamed through the chunker).
fn save_object(
    ctx: &BackupContext<'_, '_>,
    b: &SourceBucket,
    url: &str,
    name: &str,
    obj: &Object,
    old: Option<&Node>,
) -> Result<Option<Node>> {
    let mut node = Node {
        mtime_ns: obj.mtime_ns,
        etag: obj.etag.clone(),
        ..Node::file(RawName(name.as_bytes().to_vec()), 0o644, obj.size, Vec::new())
    };
    if let Some(old) = old.filter(|o| unchanged(o, obj))
        && ctx.has_all(old)?
    {
        ctx.reuse_content(old, &mut node)?;
        node.content_type = old.content_type.clone();
        node.s3_headers = old.s3_headers.clone();
        ctx.progress.files_unchanged.fetch_add(1, Ordering::Relaxed);
        ctx.progress.bytes_skipped.fetch_add(node.size, Ordering::Relaxed);
        ctx.progress.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        return Ok(Some(node));
    }
    download(ctx, b, url, obj, node, old.is_some())
}

/// The listing says the object is the one the parent snapshot holds.
fn unchanged(old: &Node, obj: &Object) -> bool {
    old.kind == NodeKind::File
        && old.size == obj.size
        && old.mtime_ns == obj.mtime_ns
        && obj.mtime_ns != 0
        && obj.etag.as_ref().is_none_or(|e| old.etag.as_ref() == Some(e))
}

/// Downloads an object through the chunker into `node`; `None` (with a warning or note) when it cannot be read
/// whole.
fn download(
    ctx: &BackupContext<'_, '_>,
    b: &SourceBucket,
    url: &str,
    obj: &Object,
    mut node: Node,
    changed: bool,
) -> Result<Option<Node>> {
    let what = format!("{url} object {}", obj.key);
    let Some(pinned) = pin_version(ctx, b, obj, &what, &mut node) else { return Ok(None) };
    let size = node.size;
    let reader =
        b.op.reader_options(&obj.key, opendal::options::ReaderOptions { if_match: pinned, ..Default::default() })
            .and_then(|r| r.into_std_read(0..size));
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            ctx.warn(what.as_str(), format!("cannot read {what}: {e}"));
            return Ok(None);
        }
    };
    let mut content = StreamContent::default();
    match ctx.save_stream(&mut content, reader, &what, Some(size)) {
        Ok(()) => {}
        Err(Error::Io { source, .. }) => {
            ctx.warn(what.as_str(), format!("cannot read {what}: {source}"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if content.size != size {
        ctx.warn(
            what.as_str(),
            format!("{what} changed while it was read ({} of {size} bytes); skipped", content.size),
        );
        return Ok(None);
    }
    ctx.finish_content(content, &mut node)?;
    let counter = if changed { &ctx.progress.files_changed } else { &ctx.progress.files_new };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.progress.bytes_read.fetch_add(size, Ordering::Relaxed);
    ctx.progress.total_bytes.fetch_add(size, Ordering::Relaxed);
    Ok(Some(node))
}

/// Stats the object so the node describes exactly the version that is read: its size, Content-Type and the other
/// headers restored with it (user metadata, Cache-Control, …), and the ETag reads are pinned to (`if-match`), so
/// a concurrent overwrite fails the read instead of mixing versions.
/// The node keeps the listing's ETag and time (what the next listing compares with). `None` (with a note or a
/// warning) when the object cannot be stat'ed.
fn pin_version(
    ctx: &BackupContext<'_, '_>,
    b: &SourceBucket,
    obj: &Object,
    what: &str,
    node: &mut Node,
) -> Option<Option<String>> {
    let headers = match b.api.head(&obj.key, None) {
        Ok(Some(h)) => h,
        Ok(None) => {
            ctx.notice(format!("{what} was deleted while the bucket was read; left out"));
            return None;
        }
        Err(e) => {
            ctx.warn(what, format!("cannot read {what}: {e}"));
            return None;
        }
    };
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let pinned = get("etag");
    let Some(size) = get("content-length").and_then(|n| n.parse::<u64>().ok()) else {
        ctx.warn(what, format!("cannot read {what}: HeadObject answered without a Content-Length"));
        return None;
    };
    node.size = size;
    node.content_type = get("content-type");
    node.s3_headers = kept_headers(&headers);
    match &obj.etag {
        None => node.etag = pinned.clone(),
        Some(listed) if pinned.as_ref() != Some(listed) => node.etag = None,
        Some(_) => {}
    }
    Some(pinned)
}

fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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

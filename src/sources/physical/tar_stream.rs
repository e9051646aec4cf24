//! A tar stream (pg_basebackup's `-Ft -D -`) read member by member, straight into the source's directory tree:
//! each member becomes a file, directory or symlink node with its mode, owner and time, and a file's content is
//! cut as it streams past, so unchanged pages dedup against the previous base backup. Nothing is staged on disk;
//! memory holds the nodes (not the content) until the trees are saved. The few members recovery needs to know
//! about (`backup_label`, `backup_manifest`, `global/pg_control`, `PG_VERSION`) are also kept, within bounds.
//!
//! The `tar` crate decodes each 512-byte header; the reading is done here, on the pipe itself, because a
//! `tar::Entry` cannot move between the threads that cut and save a stream.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::Ordering;

use tar::EntryType;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::stream::StreamContent;

/// Bytes kept of a small member recovery reads (backup_label, pg_control, PG_VERSION).
const KEEP_HEAD: usize = 64 << 10;
/// Bytes kept of the manifest's end, where its WAL ranges are.
const KEEP_TAIL: usize = 64 << 10;

/// The members of a base backup that say what it is, as far as they were in the stream.
#[derive(Debug, Default)]
pub struct Kept {
    /// `backup_label`.
    pub label: Option<Vec<u8>>,
    /// The last bytes of `backup_manifest`.
    pub manifest_tail: Option<Vec<u8>>,
    /// `global/pg_control`.
    pub control: Option<Vec<u8>>,
    /// `PG_VERSION`.
    pub pg_version: Option<Vec<u8>>,
    /// Regular files saved.
    pub files: u64,
}

/// A directory being collected: its own node (once its member came) and its entries.
#[derive(Default)]
struct DirBuild {
    node: Option<Node>,
    children: Vec<Node>,
}

/// Parent trees cached at once while files are compared with the previous base backup (members come directory
/// by directory, so a few suffice).
const PARENT_DIRS_CACHED: usize = 16;

/// The previous base backup's directories, loaded on demand, to tell new, changed and unchanged files apart.
struct Parent<'t> {
    root: Option<&'t Tree>,
    dirs: HashMap<Vec<u8>, Option<Tree>>,
}

impl Parent<'_> {
    /// The previous base backup's node at `dir`/`name`, if it had one.
    fn node(&mut self, ctx: &BackupContext<'_, '_>, dir: &[u8], name: &[u8]) -> Option<Node> {
        if dir.is_empty() {
            return self.root?.find(name).cloned();
        }
        if !self.dirs.contains_key(dir) {
            let (up, last) = split(dir);
            let tree = self.node(ctx, &up, &last).and_then(|n| ctx.parent_subtree(Some(&n)).ok().flatten());
            if self.dirs.len() >= PARENT_DIRS_CACHED {
                self.dirs.clear();
            }
            self.dirs.insert(dir.to_vec(), tree);
        }
        self.dirs.get(dir)?.as_ref()?.find(name).cloned()
    }
}

/// A path's directory and last component.
fn split(path: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
        None => (Vec::new(), path.to_vec()),
    }
}

/// Reads the tar stream to its end marker (and the stream to its end); returns the root tree and what was kept.
/// `parent` is the source's directory in the previous snapshot: files are counted new, changed or unchanged
/// against it (all are read: a base backup has no other way to tell).
pub fn save_tar(
    ctx: &BackupContext<'_, '_>,
    mut input: impl Read + Send,
    what: &str,
    parent: Option<&Tree>,
) -> Result<(Id, Kept)> {
    let mut dirs: BTreeMap<Vec<u8>, DirBuild> = BTreeMap::new();
    dirs.insert(Vec::new(), DirBuild::default());
    let mut kept = Kept::default();
    let mut parent = Parent { root: parent, dirs: HashMap::new() };
    let mut block = [0u8; 512];
    loop {
        read_block(&mut input, &mut block, what)?;
        if block.iter().all(|&b| b == 0) {
            // The end marker; what follows (a second zero block, padding) is read so the writer never blocks.
            std::io::copy(&mut input, &mut std::io::sink()).map_err(|e| Error::io("read", what, e))?;
            break;
        }
        let header = tar::Header::from_byte_slice(&block).clone();
        check_sum(&header, what)?;
        member(ctx, &mut input, &header, (&mut dirs, &mut parent), &mut kept, what)?;
    }
    Ok((save_dirs(ctx, dirs)?, kept))
}

/// One member: its node goes into its directory.
fn member(
    ctx: &BackupContext<'_, '_>,
    input: &mut (impl Read + Send),
    header: &tar::Header,
    (dirs, parent): (&mut BTreeMap<Vec<u8>, DirBuild>, &mut Parent<'_>),
    kept: &mut Kept,
    what: &str,
) -> Result<()> {
    let bad = |why: String| Error::SourceFailed(format!("{what}: {why}"));
    let path = clean_path(&header.path_bytes()).ok_or_else(|| {
        bad(format!("a member has the unsafe path {:?}", String::from_utf8_lossy(&header.path_bytes())))
    })?;
    let size = header.entry_size().map_err(|e| bad(format!("bad size: {e}")))?;
    let (dir, name) = split(&path);
    let mut node = Node::new(RawName(name), NodeKind::File, header.mode().unwrap_or(0o600) & 0o7777);
    node.uid = header.uid().unwrap_or(0) as u32;
    node.gid = header.gid().unwrap_or(0) as u32;
    node.mtime_ns = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0).saturating_mul(1_000_000_000);
    match header.entry_type() {
        EntryType::Regular | EntryType::Continuous => {
            file_content(ctx, input, &mut node, size, &path, kept, what)?;
            let before = parent.node(ctx, &dir, &node.name.0);
            let counter = match before {
                None => &ctx.progress.files_new,
                Some(b) if b.kind == NodeKind::File && b.same_content(&node) => &ctx.progress.files_unchanged,
                Some(_) => &ctx.progress.files_changed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        EntryType::Directory if path.is_empty() => return skip(input, size, what),
        EntryType::Directory => {
            node.kind = NodeKind::Dir;
            ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
            dir_of(dirs, &path).node = Some(node);
            return skip(input, size, what);
        }
        EntryType::Symlink => {
            node.kind = NodeKind::Symlink;
            node.target = Some(RawName(header.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default()));
            skip(input, size, what)?;
        }
        other => return Err(bad(format!("member {} is of a kind not supported ({other:?})", lossy(&path)))),
    }
    dir_of(dirs, &dir).children.push(node);
    Ok(())
}

/// Saves a regular member's content (keeping it, or its end, when recovery needs to read it).
fn file_content(
    ctx: &BackupContext<'_, '_>,
    input: &mut (impl Read + Send),
    node: &mut Node,
    size: u64,
    path: &[u8],
    kept: &mut Kept,
    what: &str,
) -> Result<()> {
    let keep = match path {
        b"backup_label" | b"global/pg_control" | b"PG_VERSION" => Keep::Head(KEEP_HEAD),
        b"backup_manifest" => Keep::Tail(KEEP_TAIL),
        _ => Keep::Nothing,
    };
    let mut tee = Tee { inner: (&mut *input).take(size), keep, buf: Vec::new() };
    let mut content = StreamContent::default();
    ctx.save_stream(&mut content, &mut tee, &format!("{what}: {}", lossy(path)), Some(size))?;
    if content.size != size {
        return Err(Error::SourceFailed(format!("{what} ended inside member {}", lossy(path))));
    }
    let buf = Some(tee.buf);
    pad(input, size, what)?;
    match path {
        b"backup_label" => kept.label = buf,
        b"global/pg_control" => kept.control = buf,
        b"PG_VERSION" => kept.pg_version = buf,
        b"backup_manifest" => kept.manifest_tail = buf,
        _ => {}
    }
    kept.files += 1;
    ctx.progress.bytes_read.fetch_add(size, Ordering::Relaxed);
    ctx.progress.total_bytes.fetch_add(size, Ordering::Relaxed);
    ctx.finish_content(content, node)
}

/// The directory at `path`, made (with its parents) when no member named it yet.
fn dir_of<'d>(dirs: &'d mut BTreeMap<Vec<u8>, DirBuild>, path: &[u8]) -> &'d mut DirBuild {
    let mut at = 0;
    while let Some(i) = path[at..].iter().position(|&b| b == b'/') {
        dirs.entry(path[..at + i].to_vec()).or_default();
        at += i + 1;
    }
    dirs.entry(path.to_vec()).or_default()
}

/// Saves every directory, deepest first, each into its parent; returns the root's tree.
fn save_dirs(ctx: &BackupContext<'_, '_>, mut dirs: BTreeMap<Vec<u8>, DirBuild>) -> Result<Id> {
    let mut paths: Vec<Vec<u8>> = dirs.keys().filter(|p| !p.is_empty()).cloned().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count()));
    for path in paths {
        let built = dirs.remove(&path).expect("listed");
        let (parent, name) = split(&path);
        let mut node = built.node.unwrap_or_else(|| Node::new(RawName(name), NodeKind::Dir, 0o700));
        node.subtree = Some(ctx.save_tree(dedup(built.children))?);
        dir_of(&mut dirs, &parent).children.push(node);
    }
    let root = dirs.remove(&Vec::new()).unwrap_or_default();
    ctx.save_tree(dedup(root.children))
}

/// A name given twice keeps its last member, as tar extracts it.
fn dedup(mut nodes: Vec<Node>) -> Vec<Node> {
    let mut seen = std::collections::HashSet::new();
    nodes.reverse();
    nodes.retain(|n| seen.insert(n.name.clone()));
    nodes
}

/// A member's path made relative and plain: `./` and trailing `/` dropped; `None` for `..`, or an absolute path.
fn clean_path(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.starts_with(b"/") {
        return None;
    }
    let parts: Vec<&[u8]> = raw.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
    if parts.iter().any(|p| *p == b"..") {
        return None;
    }
    Some(parts.join(&b'/'))
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn read_block(input: &mut impl Read, block: &mut [u8; 512], what: &str) -> Result<()> {
    input.read_exact(block).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::SourceFailed(format!("{what} ended before its tar end marker")),
        _ => Error::io("read", what, e),
    })
}

/// Verifies a header's checksum (the sum of its bytes with the checksum field read as spaces).
fn check_sum(header: &tar::Header, what: &str) -> Result<()> {
    let bytes = header.as_bytes();
    let sum: u32 =
        bytes.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
    match header.cksum() {
        Ok(stored) if stored == sum => Ok(()),
        _ => Err(Error::SourceFailed(format!("{what}: a tar header's checksum does not match (not a tar stream?)"))),
    }
}

/// Reads and drops a member's content (directories and links have none) and its padding.
fn skip(input: &mut impl Read, size: u64, what: &str) -> Result<()> {
    let n =
        std::io::copy(&mut (&mut *input).take(size), &mut std::io::sink()).map_err(|e| Error::io("read", what, e))?;
    if n != size {
        return Err(Error::SourceFailed(format!("{what} ended inside a member")));
    }
    pad(input, size, what)
}

/// Reads the zeros that fill a member of `size` bytes up to a whole block.
fn pad(input: &mut impl Read, size: u64, what: &str) -> Result<()> {
    let rest = (512 - size % 512) % 512;
    let n =
        std::io::copy(&mut (&mut *input).take(rest), &mut std::io::sink()).map_err(|e| Error::io("read", what, e))?;
    if n != rest {
        return Err(Error::SourceFailed(format!("{what} ended inside a member's padding")));
    }
    Ok(())
}

/// Which bytes of a member are kept while it streams into the backup.
#[derive(Clone, Copy)]
enum Keep {
    Nothing,
    Head(usize),
    Tail(usize),
}

/// A reader that keeps a copy of some of what passes through it.
struct Tee<R> {
    inner: R,
    keep: Keep,
    buf: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        match self.keep {
            Keep::Nothing => {}
            Keep::Head(limit) => {
                let room = limit.saturating_sub(self.buf.len()).min(n);
                self.buf.extend_from_slice(&out[..room]);
            }
            Keep::Tail(limit) => {
                self.buf.extend_from_slice(&out[..n]);
                if self.buf.len() > 2 * limit {
                    self.buf.drain(..self.buf.len() - limit);
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside_the_source() {
        assert_eq!(clean_path(b"./pg_wal/archive_status/"), Some(b"pg_wal/archive_status".to_vec()));
        assert_eq!(clean_path(b"global/pg_control"), Some(b"global/pg_control".to_vec()));
        assert_eq!(clean_path(b"./"), Some(Vec::new()));
        assert_eq!(clean_path(b"../etc/passwd"), None);
        assert_eq!(clean_path(b"base/../../x"), None);
        assert_eq!(clean_path(b"/etc/passwd"), None);
    }

    #[test]
    fn a_tail_tee_keeps_the_end() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut t = Tee { inner: &data[..], keep: Keep::Tail(1000), buf: Vec::new() };
        std::io::copy(&mut t, &mut std::io::sink()).unwrap();
        assert!(t.buf.ends_with(&data[data.len() - 1000..]));
        let mut h = Tee { inner: &data[..], keep: Keep::Head(10), buf: Vec::new() };
        std::io::copy(&mut h, &mut std::io::sink()).unwrap();
        assert_eq!(h.buf, &data[..10]);
    }
}

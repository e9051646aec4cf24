//! Reading one regular file into blobs. Large holes of a sparse file are not read: they become zero blobs of the
//! maximum chunk size (one blob, stored once), so a 5 GiB file with a few MiB of data backs up in moments and
//! restores sparse. A file that changes while it is read (its size, mtime or ctime differ before and after) is
//! read again once; when it changes again, the second read is kept and the file is reported, which makes the
//! snapshot incomplete.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use rustix::fs::SeekFrom;

use super::context::BackupContext;
use super::stream::StreamContent;
use crate::error::{Error, Result};

/// Holes smaller than this are read like data: skipping them would cut the file into more pieces than it saves.
const MIN_HOLE: u64 = 1 << 20;

/// What reading a file came to.
pub(super) enum FileRead {
    /// The content, the file's metadata when it was read, and whether it kept changing.
    Read {
        /// `fstat` of the open file just before the (last) read.
        meta: Metadata,
        /// Its blobs (boxed: it is much larger than the other variant).
        content: Box<StreamContent>,
        /// It changed during both reads.
        torn: bool,
    },
    /// It could not be opened or read (why, in words).
    Unreadable(String),
}

/// Reads `path`, again once if it changed while it was read.
pub(super) fn read_stable(ctx: &BackupContext<'_, '_>, path: &Path) -> Result<FileRead> {
    let mut last = None;
    for _ in 0..2 {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return Ok(FileRead::Unreadable(e.to_string())),
        };
        let (before, content, after) = match read_once(ctx, &file, path) {
            Ok(r) => r,
            Err(Error::Io { source, .. }) => return Ok(FileRead::Unreadable(source.to_string())),
            Err(e) => return Err(e),
        };
        if same_version(&before, &after) && content.size == before.size() {
            return Ok(FileRead::Read { meta: before, content: Box::new(content), torn: false });
        }
        last = Some((after, content));
    }
    let (meta, content) = last.expect("two reads happened");
    Ok(FileRead::Read { meta, content: Box::new(content), torn: true })
}

/// One read: the metadata before, the content, the metadata after.
fn read_once(ctx: &BackupContext<'_, '_>, file: &File, path: &Path) -> Result<(Metadata, StreamContent, Metadata)> {
    let stat = |f: &File| f.metadata().map_err(|e| Error::io("read", path, e));
    let before = stat(file)?;
    let what = path.to_string_lossy();
    let mut content = StreamContent::default();
    let mut pos = 0;
    for (start, end) in data_segments(file, before.size()) {
        if start > pos {
            ctx.save_zeros(&mut content, start - pos)?;
        }
        ctx.save_stream(&mut content, Range { file, pos: start, end }, &what, Some(end - start))?;
        pos = end;
    }
    if pos < before.size() && content.size == pos {
        ctx.save_zeros(&mut content, before.size() - pos)?;
    }
    let after = stat(file)?;
    Ok((before, content, after))
}

/// Size, mtime and ctime (the kernel moves ctime on every write) are the same.
fn same_version(a: &Metadata, b: &Metadata) -> bool {
    (a.size(), a.mtime(), a.mtime_nsec(), a.ctime(), a.ctime_nsec())
        == (b.size(), b.mtime(), b.mtime_nsec(), b.ctime(), b.ctime_nsec())
}

/// The parts of the first `size` bytes that hold data, as `SEEK_DATA`/`SEEK_HOLE` tell, holes under
/// [`MIN_HOLE`] merged into the data around them. A file system without hole support reports one part.
fn data_segments(file: &File, size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) if d < size => d,
            Ok(_) | Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        let hole = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(_) => return vec![(0, size)],
        };
        let gap_from = out.last().map_or(0, |last| last.1);
        match out.last_mut() {
            Some(last) if data - gap_from < MIN_HOLE => last.1 = hole,
            None if data < MIN_HOLE => out.push((0, hole)),
            _ => out.push((data, hole)),
        }
        pos = hole.max(data + 1);
    }
    if let Some(last) = out.last_mut()
        && size - last.1 < MIN_HOLE
    {
        last.1 = size;
    }
    out
}

/// Reads a byte range of a file with positioned reads (the file's offset is not shared state).
struct Range<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

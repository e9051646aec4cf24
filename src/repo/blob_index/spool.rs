//! The spool: every pack entry of the index, as read, in a private unnamed scratch file, so that the passes
//! after marking (prune's new index and repacking, check's pack verification) get each pack's full blob list
//! back in one sequential read instead of holding it in memory or downloading the index again.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::scratch::error as io;
use crate::error::{Error, Result};
use crate::format::index::{PackEntry, decode_one_pack, encode_pack};

/// Writes pack entries one after another, each as its length and the index segment's layout.
pub struct SpoolWriter {
    w: BufWriter<File>,
    buf: Vec<u8>,
    dir: PathBuf,
}

/// The written spool.
pub struct Spool {
    file: File,
    dir: PathBuf,
}

impl SpoolWriter {
    /// An empty spool in `dir` (created 0600 and unlinked at once by the system).
    pub fn new(dir: &Path) -> Result<SpoolWriter> {
        let file = tempfile::tempfile_in(dir).map_err(io("create a scratch file in", dir))?;
        Ok(SpoolWriter { w: BufWriter::with_capacity(1 << 16, file), buf: Vec::new(), dir: dir.to_path_buf() })
    }

    /// Appends one pack's entry.
    pub fn push(&mut self, p: &PackEntry) -> Result<()> {
        self.buf.clear();
        encode_pack(&mut self.buf, p);
        let len = u32::try_from(self.buf.len())
            .map_err(|_| Error::InvalidInput(format!("pack {} lists too many blobs", p.id.short())))?;
        self.w.write_all(&len.to_le_bytes()).map_err(io("write a scratch file in", &self.dir))?;
        self.w.write_all(&self.buf).map_err(io("write a scratch file in", &self.dir))
    }

    /// Flushes and hands the spool over for reading.
    pub fn finish(self) -> Result<Spool> {
        let dir = self.dir;
        let file = self.w.into_inner().map_err(|e| io("write a scratch file in", &dir)(e.into_error()))?;
        Ok(Spool { file, dir })
    }
}

impl Spool {
    /// Calls `f` with every pack entry, in the order they were written.
    pub fn for_each(&self, mut f: impl FnMut(PackEntry) -> Result<()>) -> Result<()> {
        let mut handle = self.file.try_clone().map_err(io("reopen a scratch file in", &self.dir))?;
        handle.rewind().map_err(io("rewind a scratch file in", &self.dir))?;
        let mut r = BufReader::with_capacity(1 << 16, handle);
        let mut buf = Vec::new();
        loop {
            let mut len = [0u8; 4];
            match r.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(io("read a scratch file in", &self.dir)(e)),
            }
            buf.resize(u32::from_le_bytes(len) as usize, 0);
            r.read_exact(&mut buf).map_err(io("read a scratch file in", &self.dir))?;
            let entry = decode_one_pack(&buf).map_err(|e| Error::corrupt("prune's scratch spool", e))?;
            f(entry)?;
        }
    }
}

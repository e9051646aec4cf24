//! The sorted blob table: every indexed blob as a 40-byte record (id, pack number, stored length) sorted by id.
//! It stays in memory while it fits the budget; beyond it, sorted runs go to private scratch files and are merged
//! into one sorted file that is searched through a table of block fences (one id per 100 records, under a byte
//! per blob), so memory no longer grows with the repository.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::scratch::error as io;
use crate::error::Result;
use crate::format::id::Id;

/// Bytes of one record on disk and in memory.
pub const RECORD_LEN: usize = 40;
/// Records per block of the merged file; one fence (an id) per block stays in memory.
const BLOCK_RECORDS: usize = 100;
/// The smallest run, whatever the budget: runs of a few records would only multiply files.
const MIN_RUN: usize = 1024;

/// One indexed blob: which pack (a number into the pack table) and how many bytes it takes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobRecord {
    /// The blob's id.
    pub id: Id,
    /// Number of its pack in the pack table.
    pub pack: u32,
    /// Bytes it takes in the pack.
    pub stored_len: u32,
}

impl BlobRecord {
    fn to_bytes(self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[..32].copy_from_slice(&self.id.0);
        b[32..36].copy_from_slice(&self.pack.to_le_bytes());
        b[36..].copy_from_slice(&self.stored_len.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> BlobRecord {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        let word = |r: std::ops::Range<usize>| u32::from_le_bytes(b[r].try_into().expect("4 bytes"));
        BlobRecord { id: Id(id), pack: word(32..36), stored_len: word(36..40) }
    }
}

/// The table once built.
pub enum SortedBlobs {
    /// Every record in memory.
    Memory(Vec<BlobRecord>),
    /// Records in one sorted scratch file; `fences[i]` is the id of block `i`'s first record.
    Disk {
        /// The merged file (unnamed, removed when dropped).
        file: File,
        /// Where it lives, for messages.
        dir: PathBuf,
        /// Records in the file.
        len: u64,
        /// The first id of every block.
        fences: Vec<Id>,
    },
}

/// Collects records, spilling sorted runs to scratch files once `run_len` are held.
pub struct Builder {
    run_len: usize,
    buf: Vec<BlobRecord>,
    runs: Vec<File>,
    dir: PathBuf,
}

impl Builder {
    /// A builder that keeps at most `run_len` records in memory (the whole table if it fits) and spills to `dir`.
    /// `expected` (an upper estimate of the records) sizes the buffer once, so it never doubles past the budget.
    pub fn new(run_len: usize, expected: usize, dir: &Path) -> Builder {
        let run_len = run_len.max(MIN_RUN);
        Builder { run_len, buf: Vec::with_capacity(expected.min(run_len)), runs: Vec::new(), dir: dir.to_path_buf() }
    }

    /// Adds one record.
    pub fn push(&mut self, r: BlobRecord) -> Result<()> {
        if self.buf.len() == self.buf.capacity() {
            // Doubling, but never past the run: the buffer stays within the budget when `expected` was low.
            let more = self.buf.capacity().max(MIN_RUN).min(self.run_len - self.buf.len());
            self.buf.reserve_exact(more);
        }
        self.buf.push(r);
        if self.buf.len() >= self.run_len { self.spill() } else { Ok(()) }
    }

    /// Whether records went to disk.
    pub fn spilled(&self) -> bool {
        !self.runs.is_empty()
    }

    fn spill(&mut self) -> Result<()> {
        self.buf.sort_unstable();
        let file = tempfile::tempfile_in(&self.dir).map_err(io("create a scratch file in", &self.dir))?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        for r in self.buf.drain(..) {
            w.write_all(&r.to_bytes()).map_err(io("write a scratch file in", &self.dir))?;
        }
        let mut file = w.into_inner().map_err(|e| io("write a scratch file in", &self.dir)(e.into_error()))?;
        file.rewind().map_err(io("rewind a scratch file in", &self.dir))?;
        self.runs.push(file);
        Ok(())
    }

    /// Sorts what is held, or merges the runs into one file.
    pub fn finish(mut self) -> Result<SortedBlobs> {
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            self.buf.shrink_to_fit();
            return Ok(SortedBlobs::Memory(self.buf));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        merge(std::mem::take(&mut self.runs), &self.dir)
    }
}

/// Reads one record from a run; `None` at its end.
fn next_record(r: &mut impl Read, dir: &Path) -> Result<Option<BlobRecord>> {
    let mut b = [0u8; RECORD_LEN];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(BlobRecord::from_bytes(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(io("read a scratch file in", dir)(e)),
    }
}

/// Merges sorted runs into one sorted file, noting a fence at every block.
fn merge(runs: Vec<File>, dir: &Path) -> Result<SortedBlobs> {
    let mut readers: Vec<BufReader<File>> = runs.into_iter().map(BufReader::new).collect();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(rec) = next_record(r, dir)? {
            heap.push(Reverse((rec, i)));
        }
    }
    let file = tempfile::tempfile_in(dir).map_err(io("create a scratch file in", dir))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let (mut len, mut fences) = (0u64, Vec::new());
    while let Some(Reverse((rec, i))) = heap.pop() {
        if len % BLOCK_RECORDS as u64 == 0 {
            fences.push(rec.id);
        }
        w.write_all(&rec.to_bytes()).map_err(io("write a scratch file in", dir))?;
        len += 1;
        if let Some(next) = next_record(&mut readers[i], dir)? {
            heap.push(Reverse((next, i)));
        }
    }
    let file = w.into_inner().map_err(|e| io("write a scratch file in", dir)(e.into_error()))?;
    Ok(SortedBlobs::Disk { file, dir: dir.to_path_buf(), len, fences })
}

impl SortedBlobs {
    /// Records held.
    pub fn len(&self) -> u64 {
        match self {
            SortedBlobs::Memory(v) => v.len() as u64,
            SortedBlobs::Disk { len, .. } => *len,
        }
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table lives on disk.
    pub fn on_disk(&self) -> bool {
        matches!(self, SortedBlobs::Disk { .. })
    }

    /// The first record with this id and its position, if any (a blob stored in several packs has a record
    /// per pack; they follow each other, lowest pack number first).
    pub fn find(&self, id: &Id) -> Result<Option<(u64, BlobRecord)>> {
        match self {
            SortedBlobs::Memory(v) => {
                let i = v.partition_point(|r| r.id < *id);
                Ok(v.get(i).filter(|r| r.id == *id).map(|r| (i as u64, *r)))
            }
            SortedBlobs::Disk { file, dir, len, fences } => {
                let b = fences.partition_point(|f| f < id).saturating_sub(1);
                for block in [b, b + 1].into_iter().filter(|k| *k < fences.len()) {
                    let recs = read_block(file, dir, *len, block)?;
                    let i = recs.partition_point(|r| r.id < *id);
                    if let Some(r) = recs.get(i) {
                        let pos = (block * BLOCK_RECORDS + i) as u64;
                        return Ok((r.id == *id).then_some((pos, *r)));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Calls `f` with every record and its position, in id order.
    pub fn for_each(&self, mut f: impl FnMut(u64, &BlobRecord)) -> Result<()> {
        match self {
            SortedBlobs::Memory(v) => v.iter().enumerate().for_each(|(i, r)| f(i as u64, r)),
            SortedBlobs::Disk { file, dir, len, .. } => {
                let mut handle = file.try_clone().map_err(io("reopen a scratch file in", dir))?;
                handle.rewind().map_err(io("rewind a scratch file in", dir))?;
                let mut r = BufReader::with_capacity(1 << 16, handle);
                for pos in 0..*len {
                    let rec = next_record(&mut r, dir)?
                        .ok_or_else(|| io("read a scratch file in", dir)(std::io::ErrorKind::UnexpectedEof.into()))?;
                    f(pos, &rec);
                }
            }
        }
        Ok(())
    }
}

/// Reads block `block` of the merged file.
fn read_block(file: &File, dir: &Path, len: u64, block: usize) -> Result<Vec<BlobRecord>> {
    let start = (block * BLOCK_RECORDS) as u64;
    let n = (len - start).min(BLOCK_RECORDS as u64) as usize;
    let mut buf = vec![0u8; n * RECORD_LEN];
    file.read_exact_at(&mut buf, start * RECORD_LEN as u64).map_err(io("read a scratch file in", dir))?;
    Ok(buf.chunks_exact(RECORD_LEN).map(BlobRecord::from_bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32, pack: u32) -> BlobRecord {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&blake3::hash(&i.to_le_bytes()).as_bytes()[..4]);
        id[4..8].copy_from_slice(&i.to_be_bytes());
        BlobRecord { id: Id(id), pack, stored_len: i }
    }

    fn build(run_len: usize, records: &[BlobRecord], dir: &Path) -> SortedBlobs {
        let mut b = Builder::new(run_len, records.len(), dir);
        records.iter().for_each(|r| b.push(*r).unwrap());
        b.finish().unwrap()
    }

    fn all(t: &SortedBlobs) -> Vec<(u64, BlobRecord)> {
        let mut out = Vec::new();
        t.for_each(|p, r| out.push((p, *r))).unwrap();
        out
    }

    #[test]
    fn the_spilled_table_answers_exactly_as_the_one_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // 10,000 blobs, every seventh also in a second pack: duplicates straddle blocks and runs.
        let mut records: Vec<BlobRecord> = (0..10_000).map(|i| rec(i, i % 13)).collect();
        records.extend((0..10_000).step_by(7).map(|i| rec(i, 20 + i % 3)));
        let memory = build(1 << 20, &records, dir.path());
        let disk = build(1500, &records, dir.path());
        assert!(!memory.on_disk() && disk.on_disk());
        assert_eq!(all(&memory), all(&disk));
        for r in &records {
            let found = memory.find(&r.id).unwrap().unwrap();
            assert_eq!(disk.find(&r.id).unwrap(), Some(found));
            assert_eq!(found.1.id, r.id);
            assert!(found.1.pack <= r.pack, "the first record of a blob has the lowest pack number");
        }
        for missing in [rec(10_001, 0), rec(99_999, 0), BlobRecord { id: Id([0xff; 32]), pack: 0, stored_len: 0 }] {
            assert_eq!(memory.find(&missing.id).unwrap(), None);
            assert_eq!(disk.find(&missing.id).unwrap(), None);
        }
        assert_eq!(disk.find(&Id([0; 32])).unwrap(), None);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = build(10, &[], dir.path());
        assert!(t.is_empty());
        assert_eq!(t.find(&Id([1; 32])).unwrap(), None);
    }
}

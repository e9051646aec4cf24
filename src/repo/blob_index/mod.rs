//! The whole index as prune and check need it, in memory that stays small however large the repository:
//! - a pack table (one row per pack; blobs refer to packs by number, not by a 32-byte id),
//! - the sorted blob table ([`sorted`]): 40 bytes per blob, spilled to scratch files beyond the memory budget,
//! - the trees' full locations (trees are read while marking; there are far fewer trees than blobs),
//! - the spool ([`spool`]): every pack entry as read, on local disk, for the passes that need whole packs.
//!
//! What a command marks (the blobs snapshots use) is a [`BitSet`] over positions in the sorted table: one bit
//! per blob instead of a set of ids.

mod scratch;
pub mod sorted;
pub mod spool;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::pack::PackedBlob;
use crate::repo::Repository;
pub use sorted::{BlobRecord, SortedBlobs};
use spool::{Spool, SpoolWriter};

/// Index segments downloaded at once (each is held sealed, opened and decoded until it has been taken in: about
/// 16 MiB for a segment of 100,000 blobs).
const IN_FLIGHT: usize = 4;
/// What the budget keeps aside for what is not the blob table: segments in flight (4 × 16 MiB), trees being
/// read (16 MiB), the pack table and the fences.
const ALLOWANCE: u64 = 96 << 20;

/// How much memory the index may take, and where it spills beyond that.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    /// Bytes for the index as a whole.
    pub bytes: u64,
    /// A private directory for scratch files (the cache directory).
    pub scratch: PathBuf,
}

impl MemoryBudget {
    /// The default budget: 1 GiB, enough to hold 25 million blobs without touching the disk.
    pub const DEFAULT_BYTES: u64 = 1 << 30;

    /// Records of the blob table held in memory before it spills.
    fn records(&self) -> usize {
        (self.bytes.saturating_sub(ALLOWANCE) / sorted::RECORD_LEN as u64) as usize
    }

    /// A sorter of blob records within this budget, spilling into the scratch directory; `expected` (an upper
    /// estimate, 0 when unknown) sizes its buffer once.
    pub fn sorter(&self, expected: usize) -> Result<sorted::Builder> {
        // Made when missing (0700), never re-moded: the default is the system's temporary directory, and the
        // scratch files are private on their own (0600, unlinked at once).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.scratch)
            .map_err(|e| Error::io("create the scratch directory", &self.scratch, e))?;
        Ok(sorted::Builder::new(self.records(), expected, &self.scratch))
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget { bytes: Self::DEFAULT_BYTES, scratch: std::env::temp_dir() }
    }
}

/// One pack the index knows.
#[derive(Clone, Debug)]
pub struct PackRow {
    /// The pack's id.
    pub id: Id,
    /// The kind of its blobs.
    pub kind: BlobKind,
    /// Its size in bytes, as the index says.
    pub size: u64,
}

/// The loaded index.
pub struct BlobIndex {
    /// The segments read.
    pub segments: Vec<Id>,
    packs: Vec<PackRow>,
    numbers: HashMap<Id, u32>,
    blobs: SortedBlobs,
    distinct: u64,
    trees: HashMap<Id, (u32, PackedBlob)>,
    spool: Spool,
}

/// Takes segments in as they arrive.
struct Loader {
    packs: Vec<PackRow>,
    numbers: HashMap<Id, u32>,
    trees: HashMap<Id, (u32, PackedBlob)>,
    blobs: sorted::Builder,
    spool: SpoolWriter,
}

impl Loader {
    /// Adds a segment's packs; a pack already seen in another segment is taken once.
    fn add(&mut self, entries: Vec<PackEntry>) -> Result<()> {
        for p in entries {
            if self.numbers.contains_key(&p.id) {
                continue;
            }
            let n = u32::try_from(self.packs.len()).map_err(|_| Error::InvalidInput("more than 2^32 packs".into()))?;
            self.numbers.insert(p.id, n);
            self.packs.push(PackRow { id: p.id, kind: p.kind, size: p.size });
            for b in &p.blobs {
                if p.kind == BlobKind::Tree {
                    self.trees.entry(b.info.id).or_insert((n, *b));
                }
                self.blobs.push(BlobRecord { id: b.info.id, pack: n, stored_len: b.info.stored_len })?;
            }
            self.spool.push(&p)?;
        }
        Ok(())
    }
}

impl BlobIndex {
    /// Reads every index segment. A segment that cannot be read goes to `on_bad`, which either notes it (check)
    /// or returns the error (prune, which must not decide on part of the index).
    pub fn load(
        repo: &Repository,
        budget: &MemoryBudget,
        on_bad: impl FnMut(&Id, Error) -> Result<()>,
    ) -> Result<BlobIndex> {
        BlobIndex::load_listed(repo, budget, repo.list_indexes_sized()?, on_bad)
    }

    /// [`BlobIndex::load`] of the segments listed (with their sizes) by the caller.
    pub fn load_listed(
        repo: &Repository,
        budget: &MemoryBudget,
        listed: Vec<(Id, u64)>,
        mut on_bad: impl FnMut(&Id, Error) -> Result<()>,
    ) -> Result<BlobIndex> {
        let bytes: u64 = listed.iter().map(|(_, size)| *size).sum();
        let expected = (bytes / (crate::format::pack::ENTRY_LEN as u64 + 8)) as usize;
        let mut loader = Loader {
            packs: Vec::new(),
            numbers: HashMap::new(),
            trees: HashMap::new(),
            blobs: budget.sorter(expected)?,
            spool: SpoolWriter::new(&budget.scratch)?,
        };
        let names: Vec<Id> = listed.into_iter().map(|(id, _)| id).collect();
        let mut segments = Vec::new();
        repo.for_each_index(&names, IN_FLIGHT, |id, loaded| match loaded {
            Ok(entries) => {
                segments.push(*id);
                loader.add(entries)
            }
            Err(e) => on_bad(id, e),
        })?;
        let blobs = loader.blobs.finish()?;
        let mut distinct = 0;
        let mut last: Option<Id> = None;
        blobs.for_each(|_, r| {
            distinct += u64::from(last != Some(r.id));
            last = Some(r.id);
        })?;
        let (packs, numbers, trees) = (loader.packs, loader.numbers, loader.trees);
        Ok(BlobIndex { segments, packs, numbers, blobs, distinct, trees, spool: loader.spool.finish()? })
    }

    /// Every pack the index knows, by number.
    pub fn packs(&self) -> &[PackRow] {
        &self.packs
    }

    /// The number of a pack the index knows.
    pub fn pack_number(&self, id: &Id) -> Option<u32> {
        self.numbers.get(id).copied()
    }

    /// The row of pack number `n`.
    pub fn pack(&self, n: u32) -> &PackRow {
        &self.packs[n as usize]
    }

    /// Where a tree blob lies: its pack's id and its place there.
    pub fn tree(&self, id: &Id) -> Option<(Id, PackedBlob)> {
        self.trees.get(id).map(|(n, b)| (self.packs[*n as usize].id, *b))
    }

    /// The first record of a blob and its position in the sorted table.
    pub fn find(&self, id: &Id) -> Result<Option<(u64, BlobRecord)>> {
        self.blobs.find(id)
    }

    /// The sorted blob table.
    pub fn blobs(&self) -> &SortedBlobs {
        &self.blobs
    }

    /// Distinct blobs the index lists.
    pub fn distinct_blobs(&self) -> u64 {
        self.distinct
    }

    /// Calls `f` with every pack's full entry, each pack once, in the order the index was read.
    pub fn for_each_pack(&self, f: impl FnMut(PackEntry) -> Result<()>) -> Result<()> {
        self.spool.for_each(f)
    }
}

/// One bit per position in the sorted blob table.
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// All clear, for `len` positions.
    pub fn new(len: u64) -> BitSet {
        BitSet { words: vec![0; len.div_ceil(64) as usize] }
    }

    /// Sets a bit; true if it was clear.
    pub fn insert(&mut self, pos: u64) -> bool {
        let (w, bit) = ((pos / 64) as usize, 1u64 << (pos % 64));
        let was_clear = self.words[w] & bit == 0;
        self.words[w] |= bit;
        was_clear
    }

    /// Whether a bit is set.
    pub fn contains(&self, pos: u64) -> bool {
        self.words[(pos / 64) as usize] & (1u64 << (pos % 64)) != 0
    }

    /// Bits set.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

//! The write half of the blob pipeline: hash → dedup → compress → encrypt → pack → upload → index. Shared by
//! every source and safe to call from many threads at once; the expensive steps run on the calling thread, so
//! rayon's workers compress and encrypt in parallel.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::blob::{self, BlobKind};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::id::Id;
use crate::index::PackEntry;
use crate::pack::{FinishedPack, PackWriter};
use crate::repo::{self, Repository};
use crate::storage;

/// Index segments are written when this many blobs are waiting, which bounds the memory of long backups.
const INDEX_FLUSH_BLOBS: usize = 100_000;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Counters of what a backup added.
#[derive(Default)]
pub struct SaverStats {
    pub blobs_added: AtomicU64,
    pub bytes_added: AtomicU64,
    pub stored_bytes_added: AtomicU64,
}

/// Saves blobs into packs; see the module docs.
pub struct BlobSaver<'r> {
    repo: &'r Repository,
    known: Mutex<HashSet<Id>>,
    data_pack: Mutex<PackWriter>,
    tree_pack: Mutex<PackWriter>,
    /// Packs uploaded but not yet in an index segment.
    unindexed: Mutex<Vec<PackEntry>>,
    /// Index segments written by this saver (the caller records them in the catalog).
    written_indexes: Mutex<Vec<(Id, Vec<PackEntry>)>>,
    pub stats: SaverStats,
}

impl<'r> BlobSaver<'r> {
    /// A saver that skips every blob the catalog already knows.
    pub fn new(repo: &'r Repository, catalog: &Catalog) -> Result<Self> {
        Ok(BlobSaver {
            repo,
            known: Mutex::new(catalog.blob_ids()?),
            data_pack: Mutex::new(PackWriter::new(BlobKind::Data)),
            tree_pack: Mutex::new(PackWriter::new(BlobKind::Tree)),
            unindexed: Mutex::new(Vec::new()),
            written_indexes: Mutex::new(Vec::new()),
            stats: SaverStats::default(),
        })
    }

    /// True if the repository (or this backup) already holds the blob.
    pub fn has(&self, id: &Id) -> bool {
        self.known.lock().expect("saver lock").contains(id)
    }

    /// Stores one blob unless it is already known; returns its id.
    pub fn save(&self, kind: BlobKind, data: &[u8]) -> Result<Id> {
        let id = self.repo.key.blob_id(data);
        if !self.known.lock().expect("saver lock").insert(id) {
            return Ok(id);
        }
        let level = self.repo.config.compression_level;
        let (info, sealed) = COMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if level <= 0 {
                return blob::encode(&self.repo.key, kind, id, data, None);
            }
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
            }
            blob::encode(&self.repo.key, kind, id, data, slot.as_mut().map(|(_, c)| c))
        });
        self.stats.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_added.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stats.stored_bytes_added.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        let full = {
            let mut pack = self.pack_for(kind).lock().expect("saver lock");
            pack.add(info, &sealed);
            if pack.len() >= repo::pack_target(&self.repo.config, kind) {
                Some(std::mem::replace(&mut *pack, PackWriter::new(kind)))
            } else {
                None
            }
        };
        if let Some(pack) = full {
            self.upload(pack)?;
        }
        Ok(id)
    }

    fn pack_for(&self, kind: BlobKind) -> &Mutex<PackWriter> {
        match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        }
    }

    /// Seals and uploads one pack; writes an index segment when enough blobs wait for one.
    fn upload(&self, pack: PackWriter) -> Result<()> {
        let FinishedPack { id, kind, bytes, blobs } = pack.finish(&self.repo.key);
        let size = bytes.len() as u64;
        self.repo.storage.write(&storage::pack_path(&id), bytes)?;
        let batch = {
            let mut waiting = self.unindexed.lock().expect("saver lock");
            waiting.push(PackEntry { id, kind, size, blobs });
            let n: usize = waiting.iter().map(|p| p.blobs.len()).sum();
            if n >= INDEX_FLUSH_BLOBS { std::mem::take(&mut *waiting) } else { Vec::new() }
        };
        self.write_index(batch)
    }

    fn write_index(&self, packs: Vec<PackEntry>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let id = self.repo.save_index(&packs)?;
        self.written_indexes.lock().expect("saver lock").push((id, packs));
        Ok(())
    }

    /// Uploads the partial packs and writes the last index segment. After this returns, every blob saved so
    /// far is durable and indexed, so a snapshot may reference it.
    pub fn flush(&self) -> Result<()> {
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let pack = std::mem::replace(&mut *self.pack_for(kind).lock().expect("saver lock"), PackWriter::new(kind));
            if !pack.is_empty() {
                self.upload(pack)?;
            }
        }
        let rest = std::mem::take(&mut *self.unindexed.lock().expect("saver lock"));
        self.write_index(rest)
    }

    /// Records the index segments written so far in the catalog.
    pub fn record_in(&self, catalog: &mut Catalog) -> Result<()> {
        let written = std::mem::take(&mut *self.written_indexes.lock().expect("saver lock"));
        for (id, packs) in written {
            catalog.add_index(&id, &packs)?;
        }
        Ok(())
    }
}

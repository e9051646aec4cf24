//! The write half of the blob pipeline: hash → dedup → compress → encrypt → pack → upload → index. Shared by
//! every source and safe to call from many threads at once. Hashing, compression and encryption run on the
//! calling thread (rayon's workers, in parallel); full packs go through a small bounded queue to upload threads,
//! so a slow write or fsync never stalls the CPU work, and memory stays bounded by the queue.

use super::known::KnownBlobs;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::PackWriter;
use crate::repo::Repository;
use crate::repo::catalog::Catalog;

/// Index segments are written when this many blobs are waiting, which bounds the memory of long backups.
const INDEX_FLUSH_BLOBS: usize = 100_000;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Counters of what a backup added.
#[derive(Default)]
pub struct SaverStats {
    /// New blobs.
    pub blobs_added: AtomicU64,
    /// Their plaintext bytes.
    pub bytes_added: AtomicU64,
    /// Their bytes as stored (compressed and sealed).
    pub stored_bytes_added: AtomicU64,
}

impl SaverStats {
    /// A copy of the counters as they are now.
    pub fn snapshot(&self) -> SaverStats {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        SaverStats {
            blobs_added: copy(&self.blobs_added),
            bytes_added: copy(&self.bytes_added),
            stored_bytes_added: copy(&self.stored_bytes_added),
        }
    }
}

/// What the upload threads produce; lives outside the thread scope so the caller can read it afterwards.
#[derive(Default)]
pub struct UploadState {
    /// Packs uploaded but not yet in an index segment.
    unindexed: Mutex<Vec<PackEntry>>,
    /// Index segments written that no recorder took (the caller records them in the catalog).
    written_indexes: Mutex<Vec<(Id, Vec<PackEntry>)>>,
    /// A connection of its own to the catalog, which records each index segment as soon as it is written: the
    /// segments do not wait in memory for the commit, and the blobs they list need no longer be remembered
    /// here ([`KnownBlobs::forget_recorded`]). A backup of ten million new files would otherwise hold about
    /// 100 bytes per blob until its end.
    recorder: Mutex<Option<Catalog>>,
    /// Every pack and index segment this backup wrote, for [`UploadState::discard`].
    written: Mutex<Vec<(ObjectKind, Id)>>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl UploadState {
    /// Records the index segments written so far in the catalog.
    pub fn record_in(&self, catalog: &mut Catalog) -> Result<()> {
        let written = std::mem::take(&mut *self.written_indexes.lock().expect("upload lock"));
        for (id, packs) in written {
            catalog.add_index(&id, &packs)?;
        }
        Ok(())
    }

    /// Removes every index segment and then every pack this backup wrote, because it failed and no snapshot
    /// refers to them: a backup that fails (a full disk, above all) leaves nothing behind. Best effort: what
    /// cannot be removed now is left to prune, which collects unreferenced packs.
    pub fn discard(&self, repo: &Repository) {
        let mut written = std::mem::take(&mut *self.written.lock().expect("upload lock"));
        // Index segments first, so no moment exists where an index names a deleted pack.
        written.sort_by_key(|(kind, _)| *kind != ObjectKind::Index);
        for (kind, id) in written {
            let _ = repo.delete_object(kind, &id);
        }
        // The catalog keeps the segments recorded so far: the next command finds them gone from the repository
        // and rebuilds its blob tables, so no later backup takes their blobs for stored.
        self.written_indexes.lock().expect("upload lock").clear();
    }

    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().expect("upload lock");
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    /// The first upload error, if any (taken once; later callers get a short reference to it).
    fn take_error(&self) -> Option<Error> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.error.lock().expect("upload lock").take().unwrap_or_else(|| {
            Error::InvalidInput("the backup stopped because writing to the repository failed (see above)".into())
        }))
    }

    /// Records every index segment in `catalog` (a connection of its own) as soon as it is written.
    fn record_as_written(&self, catalog: Catalog) {
        *self.recorder.lock().expect("upload lock") = Some(catalog);
    }

    /// Seals and writes one pack; writes an index segment when enough blobs wait for one.
    fn upload(&self, repo: &Repository, pack: PackWriter, known: &KnownBlobs) -> Result<()> {
        let entry = repo.write_pack(pack)?;
        self.written.lock().expect("upload lock").push((ObjectKind::Pack, entry.id));
        let batch = {
            let mut waiting = self.unindexed.lock().expect("upload lock");
            waiting.push(entry);
            let n: usize = waiting.iter().map(|p| p.blobs.len()).sum();
            if n >= INDEX_FLUSH_BLOBS { std::mem::take(&mut *waiting) } else { Vec::new() }
        };
        self.write_index(repo, batch, known)
    }

    fn write_index(&self, repo: &Repository, packs: Vec<PackEntry>, known: &KnownBlobs) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let id = repo.save_index(&packs)?;
        self.written.lock().expect("upload lock").push((ObjectKind::Index, id));
        let mut recorder = self.recorder.lock().expect("upload lock");
        match recorder.as_mut() {
            Some(catalog) => {
                catalog.add_index(&id, &packs)?;
                drop(recorder);
                known.forget_recorded(packs.iter().flat_map(|p| p.blobs.iter().map(|b| b.info.id)));
            }
            None => self.written_indexes.lock().expect("upload lock").push((id, packs)),
        }
        Ok(())
    }
}

/// Saves blobs into packs; see the module docs. Lives inside a thread scope that runs its upload threads.
pub struct BlobSaver<'a> {
    repo: &'a Repository,
    known: Arc<KnownBlobs>,
    /// Ids of the zero blobs saved so far, by length.
    zero_ids: Mutex<std::collections::HashMap<usize, Id>>,
    data_pack: Mutex<PackWriter>,
    tree_pack: Mutex<PackWriter>,
    queue: Mutex<Option<SyncSender<PackWriter>>>,
    workers: Mutex<Vec<ScopedJoinHandle<'a, ()>>>,
    state: &'a UploadState,
    /// Counts of the new blobs this saver has stored so far.
    pub stats: SaverStats,
}

impl<'a> BlobSaver<'a> {
    /// A saver that skips every blob the catalog already knows (holding their ids in memory up to `in_memory`
    /// bytes, else asking the catalog on disk); its upload threads run in `scope`.
    pub fn new<'env>(
        repo: &'a Repository,
        catalog: &Catalog,
        in_memory: u64,
        state: &'a UploadState,
        scope: &'a Scope<'a, 'env>,
    ) -> Result<Self> {
        let (tx, rx) = sync_channel::<PackWriter>(0);
        let rx = Arc::new(Mutex::new(rx));
        let known = Arc::new(KnownBlobs::load(catalog, in_memory)?);
        state.record_as_written(catalog.another_connection()?);
        // A pack is handed over only to an idle upload thread, so at most this many are in flight.
        let uploaders = repo.upload_concurrency()?;
        let workers = (0..uploaders)
            .map(|_| {
                let (rx, known) = (rx.clone(), known.clone());
                scope.spawn(move || upload_loop(repo, state, &rx, &known))
            })
            .collect();
        Ok(BlobSaver {
            repo,
            known,
            zero_ids: Mutex::default(),
            data_pack: Mutex::new(repo.new_pack(BlobKind::Data)),
            tree_pack: Mutex::new(repo.new_pack(BlobKind::Tree)),
            queue: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            state,
            stats: SaverStats::default(),
        })
    }

    /// True if the repository (or this backup) already holds the blob.
    pub fn has(&self, id: &Id) -> Result<bool> {
        self.known.contains(id)
    }

    /// Whether the known blobs are looked up in the catalog on disk rather than held in memory.
    pub fn known_on_disk(&self) -> bool {
        self.known.on_disk()
    }

    /// Stores a blob of `len` zero bytes (once per length and backup: a hole of a sparse file costs one blob,
    /// and no hashing after the first); returns its id.
    pub fn save_zeros(&self, len: usize) -> Result<Id> {
        if let Some(id) = self.zero_ids.lock().expect("saver lock").get(&len) {
            return Ok(*id);
        }
        let id = self.save(BlobKind::Data, &vec![0u8; len])?;
        self.zero_ids.lock().expect("saver lock").insert(len, id);
        Ok(id)
    }

    /// Stores one blob unless it is already known; returns its id.
    pub fn save(&self, kind: BlobKind, data: &[u8]) -> Result<Id> {
        if let Some(e) = self.state.take_error() {
            return Err(e);
        }
        let id = self.repo.blob_id(data);
        if !self.known.claim(&id)? {
            return Ok(id);
        }
        let level = self.repo.config().compression_level;
        let (info, sealed) = COMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if level <= 0 {
                return self.repo.seal_blob(kind, id, data, None);
            }
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
            }
            self.repo.seal_blob(kind, id, data, slot.as_mut().map(|(_, c)| c))
        });
        self.stats.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_added.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stats.stored_bytes_added.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        let full = {
            let mut pack = self.pack_for(kind).lock().expect("saver lock");
            pack.add(info, &sealed);
            if pack.len() >= self.repo.pack_target(kind) {
                Some(std::mem::replace(&mut *pack, self.repo.new_pack(kind)))
            } else {
                None
            }
        };
        if let Some(pack) = full {
            self.enqueue(pack)?;
        }
        Ok(id)
    }

    fn pack_for(&self, kind: BlobKind) -> &Mutex<PackWriter> {
        match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        }
    }

    /// Hands a full pack to the upload threads (blocks while the queue is full).
    fn enqueue(&self, pack: PackWriter) -> Result<()> {
        let tx = self.queue.lock().expect("saver lock").clone();
        match tx {
            Some(tx) if tx.send(pack).is_ok() => Ok(()),
            _ => {
                Err(self.state.take_error().unwrap_or_else(|| Error::InvalidInput("the upload queue is closed".into())))
            }
        }
    }

    /// Uploads the partial packs, waits for every upload, and writes the last index segment. After this
    /// returns `Ok`, every blob saved so far is durable and indexed, so a snapshot may reference it.
    pub fn flush(&self) -> Result<()> {
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let pack = std::mem::replace(&mut *self.pack_for(kind).lock().expect("saver lock"), PackWriter::new(kind));
            if !pack.is_empty() {
                self.enqueue(pack)?;
            }
        }
        drop(self.queue.lock().expect("saver lock").take());
        for w in std::mem::take(&mut *self.workers.lock().expect("saver lock")) {
            if w.join().is_err() {
                self.state.fail(Error::InvalidInput("an upload thread panicked".into()));
            }
        }
        if let Some(e) = self.state.take_error() {
            return Err(e);
        }
        let rest = std::mem::take(&mut *self.state.unindexed.lock().expect("upload lock"));
        self.state.write_index(self.repo, rest, &self.known)
    }
}

/// One upload thread: takes packs off the queue until it closes. After a failure it keeps draining (so senders
/// never block forever) but writes nothing more.
fn upload_loop(repo: &Repository, state: &UploadState, rx: &Mutex<Receiver<PackWriter>>, known: &KnownBlobs) {
    loop {
        let next = rx.lock().expect("queue lock").recv();
        let Ok(pack) = next else { return };
        if state.failed.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = state.upload(repo, pack, known) {
            state.fail(e);
        }
    }
}

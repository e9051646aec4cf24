//! The blobs a backup need not store again: those the repository holds when it starts, and those it stored
//! itself. The first set is a sorted vector of ids (32 bytes per blob) while it fits the backup's share of the
//! memory budget; beyond that it stays in the catalog on disk and each lookup asks SQLite, so a backup's memory
//! does not grow with the repository.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::Result;
use crate::format::id::Id;
use crate::repo::catalog::Catalog;
use crate::repo::catalog_lookup::BlobLookup;

/// Bytes the known ids may take in memory unless the caller says otherwise (4 million blobs).
pub const DEFAULT_IN_MEMORY: u64 = 128 << 20;

/// Where the repository's blobs are looked up.
enum Stored {
    /// Sorted ids.
    Memory(Vec<Id>),
    /// The catalog on disk.
    Catalog(BlobLookup),
}

/// The known blobs.
pub struct KnownBlobs {
    stored: Stored,
    /// New blobs this backup claimed whose index segment is not yet in the catalog (and, below
    /// `forget_above`, those whose segment is).
    added: Mutex<HashSet<Id>>,
    /// Beyond this many new blobs, those whose segment the catalog has recorded are let go of and looked up
    /// there: a first backup of millions of files keeps its memory.
    forget_above: usize,
    /// The catalog, for blobs let go of while the stored ones are held in memory.
    recorded: Option<BlobLookup>,
    /// Set once a blob was let go of: from then on a miss asks the catalog too.
    forgot: std::sync::atomic::AtomicBool,
}

/// Bytes a new blob's id takes in the set of [`KnownBlobs`] (the id, the hash table's control byte and its
/// spare room).
const ADDED_ENTRY_BYTES: u64 = 48;

impl KnownBlobs {
    /// Takes the catalog's blobs into memory if their ids fit in `in_memory` bytes, else looks them up in it.
    pub fn load(catalog: &Catalog, in_memory: u64) -> Result<KnownBlobs> {
        let count = catalog.blob_count()?;
        let stored = if count.saturating_mul(std::mem::size_of::<Id>() as u64) <= in_memory {
            Stored::Memory(catalog.sorted_blob_ids()?)
        } else {
            Stored::Catalog(catalog.blob_lookup(rayon::current_num_threads() + 1)?)
        };
        let recorded = match stored {
            Stored::Memory(_) => Some(catalog.blob_lookup(rayon::current_num_threads() + 1)?),
            // The lookup on disk sees what the backup records, too.
            Stored::Catalog(_) => None,
        };
        Ok(KnownBlobs {
            stored,
            added: Mutex::new(HashSet::new()),
            forget_above: usize::try_from(in_memory / 2 / ADDED_ENTRY_BYTES).unwrap_or(usize::MAX),
            recorded,
            forgot: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Lets go of new blobs whose index segment the catalog has just recorded, once there are more than
    /// `forget_above`; later lookups of them ask the catalog.
    pub fn forget_recorded(&self, ids: impl Iterator<Item = Id>) {
        let mut added = self.added.lock().expect("known lock");
        if added.len() <= self.forget_above {
            return;
        }
        self.forgot.store(true, std::sync::atomic::Ordering::SeqCst);
        for id in ids {
            added.remove(&id);
        }
        if added.len() * 4 < added.capacity() {
            added.shrink_to_fit();
        }
    }

    /// Whether the catalog lists a blob this backup let go of.
    fn recorded(&self, id: &Id) -> Result<bool> {
        match &self.recorded {
            Some(lookup) if self.forgot.load(std::sync::atomic::Ordering::SeqCst) => lookup.contains(id),
            _ => Ok(false),
        }
    }

    /// Whether the ids are looked up on disk.
    pub fn on_disk(&self) -> bool {
        matches!(self.stored, Stored::Catalog(_))
    }

    fn stored(&self, id: &Id) -> Result<bool> {
        match &self.stored {
            Stored::Memory(ids) => Ok(ids.binary_search(id).is_ok()),
            Stored::Catalog(lookup) => lookup.contains(id),
        }
    }

    /// Whether the repository or this backup holds the blob.
    pub fn contains(&self, id: &Id) -> Result<bool> {
        Ok(self.added.lock().expect("known lock").contains(id) || self.stored(id)? || self.recorded(id)?)
    }

    /// True when the caller is the first to meet a blob that is not stored: it must store it. Of two threads that
    /// meet the same new blob at once, exactly one is told to.
    pub fn claim(&self, id: &Id) -> Result<bool> {
        // In this order: a blob leaves `added` only after the catalog has it.
        if self.added.lock().expect("known lock").contains(id) || self.stored(id)? || self.recorded(id)? {
            return Ok(false);
        }
        Ok(self.added.lock().expect("known lock").insert(*id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::{BlobInfo, BlobKind, Compression};
    use crate::format::crypto::KdfParams;
    use crate::format::index::PackEntry;
    use crate::format::pack::PackedBlob;
    use crate::repo::{InitOptions, Repository};
    use crate::storage::Storage;

    fn entry(pack: u8, ids: &[Id]) -> PackEntry {
        let blobs = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackedBlob {
                info: BlobInfo {
                    id: *id,
                    kind: BlobKind::Data,
                    compression: Compression::None,
                    stored_len: 10,
                    raw_len: 10,
                },
                offset: i as u64 * 10,
            })
            .collect();
        PackEntry { id: Id([pack; 32]), kind: BlobKind::Data, size: 1000, blobs }
    }

    /// Past the threshold, new blobs whose segment the catalog recorded leave memory and are found there; none
    /// is ever taken for new twice.
    #[test]
    fn recorded_blobs_leave_memory_and_are_still_known() {
        let dir = tempfile::tempdir().unwrap();
        let opts =
            InitOptions { kdf: KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }, ..Default::default() };
        let repo =
            Repository::init(Storage::create_url(dir.path().join("repo").to_str().unwrap()).unwrap(), b"pw", &opts)
                .unwrap();
        let catalog = Catalog::open(&dir.path().join("cache"), &repo).unwrap();
        // Room for three new ids in memory.
        let known = KnownBlobs::load(&catalog, 3 * 2 * ADDED_ENTRY_BYTES).unwrap();
        let ids: Vec<Id> = (1..=5u8).map(|i| Id([i; 32])).collect();
        for id in &ids {
            assert!(known.claim(id).unwrap(), "a new blob is claimed once");
        }
        let (first, rest) = ids.split_at(4);
        let mut recorder = catalog.another_connection().unwrap();
        recorder.add_index(&Id([100; 32]), &[entry(200, first)]).unwrap();
        known.forget_recorded(first.iter().copied());
        assert_eq!(known.added.lock().unwrap().len(), 1, "the recorded ids left memory");
        for id in &ids {
            assert!(known.contains(id).unwrap());
            assert!(!known.claim(id).unwrap(), "a blob recorded or in memory is not new again");
        }
        assert!(rest.iter().all(|id| known.added.lock().unwrap().contains(id)), "the unrecorded one stays");
        assert!(known.claim(&Id([9; 32])).unwrap());

        // Below the threshold nothing leaves memory (and the catalog is not asked).
        let small = KnownBlobs::load(&catalog, 100 * 2 * ADDED_ENTRY_BYTES).unwrap();
        let fresh = Id([42; 32]);
        assert!(small.claim(&fresh).unwrap());
        small.forget_recorded(std::iter::once(fresh));
        assert!(small.added.lock().unwrap().contains(&fresh));
    }
}

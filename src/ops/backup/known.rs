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
    added: Mutex<HashSet<Id>>,
}

impl KnownBlobs {
    /// Takes the catalog's blobs into memory if their ids fit in `in_memory` bytes, else looks them up in it.
    pub fn load(catalog: &Catalog, in_memory: u64) -> Result<KnownBlobs> {
        let count = catalog.blob_count()?;
        let stored = if count.saturating_mul(std::mem::size_of::<Id>() as u64) <= in_memory {
            Stored::Memory(catalog.sorted_blob_ids()?)
        } else {
            Stored::Catalog(catalog.blob_lookup(rayon::current_num_threads() + 1)?)
        };
        Ok(KnownBlobs { stored, added: Mutex::new(HashSet::new()) })
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
        Ok(self.added.lock().expect("known lock").contains(id) || self.stored(id)?)
    }

    /// True when the caller is the first to meet a blob that is not stored: it must store it. Of two threads that
    /// meet the same new blob at once, exactly one is told to.
    pub fn claim(&self, id: &Id) -> Result<bool> {
        if self.added.lock().expect("known lock").contains(id) || self.stored(id)? {
            return Ok(false);
        }
        Ok(self.added.lock().expect("known lock").insert(*id))
    }
}

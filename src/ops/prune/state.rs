//! What prune reads before it decides anything: the index, the obsolete lists, and the packs stored.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::error::Result;
use crate::format::id::Id;
use crate::repo::Repository;
use crate::repo::blob_index::{BlobIndex, MemoryBudget};

/// Everything the plan needs to know about the repository.
pub(super) struct State {
    /// The index: every segment read (all are replaced), its packs and blobs.
    pub index: BlobIndex,
    /// The obsolete lists read (all are replaced).
    pub obsolete_lists: Vec<Id>,
    /// Packs marked obsolete, and since when.
    pub obsolete: BTreeMap<Id, Timestamp>,
    /// Packs stored, with their sizes.
    pub stored: HashMap<Id, u64>,
}

impl State {
    /// Whether the index knows this pack.
    pub fn indexed(&self, id: &Id) -> bool {
        self.index.pack_number(id).is_some()
    }
}

/// Reads the index (within `budget`), the obsolete lists and the list of packs. A segment that cannot be read
/// stops prune: it must not decide what is unused from part of the index.
pub(super) fn load(repo: &Repository, budget: &MemoryBudget) -> Result<State> {
    let index = BlobIndex::load(repo, budget, |_, e| Err(e))?;
    let obsolete = repo.load_obsolete()?;
    let stored = repo.list_packs()?.into_iter().collect();
    Ok(State { index, obsolete_lists: obsolete.lists, obsolete: obsolete.packs, stored })
}

//! What prune reads before it decides anything: the index, the obsolete lists, and the packs stored.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::error::Result;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::pack::PackedBlob;
use crate::repo::Repository;

/// Everything the plan needs to know about the repository.
pub(super) struct State {
    /// The index segments read (all are replaced).
    pub index_names: Vec<Id>,
    /// Packs the index knows.
    pub live: HashMap<Id, PackEntry>,
    /// Where each indexed blob is.
    pub blob_pack: HashMap<Id, (Id, PackedBlob)>,
    /// The obsolete lists read (all are replaced).
    pub obsolete_lists: Vec<Id>,
    /// Packs marked obsolete, and since when.
    pub obsolete: BTreeMap<Id, Timestamp>,
    /// Packs stored, with their sizes.
    pub stored: HashMap<Id, u64>,
}

/// Reads the index, the obsolete lists and the list of packs.
pub(super) fn load(repo: &Repository) -> Result<State> {
    let index_names = repo.list_indexes()?;
    let mut live = HashMap::new();
    let mut blob_pack = HashMap::new();
    for idx in &index_names {
        for p in repo.load_index(idx)? {
            for b in &p.blobs {
                blob_pack.entry(b.info.id).or_insert((p.id, *b));
            }
            live.insert(p.id, p);
        }
    }
    let obsolete = repo.load_obsolete()?;
    let stored = repo.list_packs()?.into_iter().collect();
    Ok(State { index_names, live, blob_pack, obsolete_lists: obsolete.lists, obsolete: obsolete.packs, stored })
}

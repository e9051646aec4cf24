//! Obsolete lists: the packs prune marked for deletion and when, read and written for prune.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::format::obsolete::{OBSOLETE_VERSION, ObsoleteList, ObsoletePack};

/// Every obsolete list and the packs they mark (the earliest mark of a pack wins).
#[derive(Debug, Default)]
pub struct Obsolete {
    /// The list objects read.
    pub lists: Vec<Id>,
    /// Each marked pack and when it was first marked.
    pub packs: BTreeMap<Id, Timestamp>,
}

impl Repository {
    /// Reads every obsolete list.
    pub fn load_obsolete(&self) -> Result<Obsolete> {
        let mut out = Obsolete::default();
        for id in self.list_ids(ObjectKind::Obsolete)? {
            let path = ObjectKind::Obsolete.path_of(&id);
            let plain = self.load_sealed(ObjectKind::Obsolete, &id)?;
            let list: ObsoleteList =
                serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&path, e.to_string()))?;
            if list.version != OBSOLETE_VERSION {
                return Err(Error::UnsupportedVersion { what: path, found: list.version, supported: OBSOLETE_VERSION });
            }
            for p in list.packs {
                let e = out.packs.entry(p.id).or_insert(p.marked);
                *e = (*e).min(p.marked);
            }
            out.lists.push(id);
        }
        Ok(out)
    }

    /// Writes one list of `packs` (nothing when empty); returns its id.
    pub fn save_obsolete(&self, packs: &BTreeMap<Id, Timestamp>) -> Result<Option<Id>> {
        if packs.is_empty() {
            return Ok(None);
        }
        let list = ObsoleteList {
            version: OBSOLETE_VERSION,
            packs: packs.iter().map(|(id, marked)| ObsoletePack { id: *id, marked: *marked }).collect(),
        };
        self.save_sealed(ObjectKind::Obsolete, serde_json::to_vec(&list).expect("list serializes")).map(Some)
    }
}

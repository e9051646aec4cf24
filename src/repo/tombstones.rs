//! Tombstones: lists of objects a prune or forget deleted while some region could not, so that region's stale
//! copies are neither listed as live nor kept forever (`sync` and the next prune finish the deletes).

use std::collections::BTreeSet;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::objects::ObjectKind;

impl Repository {
    /// Every path listed in a tombstone.
    pub fn tombstoned(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for id in self.list_ids(ObjectKind::Tombstone)? {
            out.extend(self.read_tombstone(&id)?);
        }
        Ok(out)
    }

    /// The paths one tombstone lists.
    pub fn read_tombstone(&self, id: &Id) -> Result<Vec<String>> {
        let plain = self.load_sealed(ObjectKind::Tombstone, id)?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(ObjectKind::Tombstone.path_of(id), e.to_string()))
    }

    /// Writes a tombstone for objects whose delete failed in some region during this command; returns its id.
    pub fn write_tombstone(&self) -> Result<Option<Id>> {
        let mut paths: Vec<String> = self.storage.undeleted().into_iter().map(|(_, p)| p).collect();
        if paths.is_empty() {
            return Ok(None);
        }
        paths.sort();
        paths.dedup();
        self.save_sealed(ObjectKind::Tombstone, serde_json::to_vec(&paths).expect("paths serialize")).map(Some)
    }
}

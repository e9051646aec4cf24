//! Obsolete lists (`obsolete/<id>`): packs prune marked for deletion and when, so a later prune deletes them only
//! after the grace period. See repo-format.md, "Prune".

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::format::id::Id;

/// Version of the list schema.
pub const OBSOLETE_VERSION: u32 = 1;

/// One pack waiting for deletion.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObsoletePack {
    /// The pack.
    pub id: Id,
    /// When a prune first found it unneeded.
    pub marked: Timestamp,
}

/// The plaintext of an obsolete list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObsoleteList {
    /// Always [`OBSOLETE_VERSION`] for lists this build writes.
    pub version: u32,
    /// The packs, each with the time it was marked.
    pub packs: Vec<ObsoletePack>,
}

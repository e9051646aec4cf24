//! Lag markers (`lagging/<id>`): a region missed objects of a degraded write and has not been synced since. One
//! small object per region and command, so any later command knows which regions lag by listing one prefix,
//! without comparing listings blob by blob. `sync` removes them once the region has everything again.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Version of the marker schema.
pub const LAG_VERSION: u32 = 1;

/// The plaintext of a lag marker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LagMarker {
    /// Always [`LAG_VERSION`] for markers this build writes.
    pub version: u32,
    /// The region that lacks objects.
    pub region: String,
    /// When the write it missed happened.
    pub since: Timestamp,
    /// How many objects it missed in that command.
    pub objects: u64,
}

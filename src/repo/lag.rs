//! Which regions lag behind: lag markers written after a degraded write, read by every later backup, removed by
//! `sync` (see [`crate::format::lag`]).

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::lag::{LAG_VERSION, LagMarker};
use crate::format::objects::ObjectKind;

impl Repository {
    /// Writes one lag marker for every region that missed an object in this command (into the regions that
    /// took the writes).
    pub fn record_lag(&self, now: Timestamp) -> Result<()> {
        let mut per_region: BTreeMap<String, u64> = BTreeMap::new();
        for (region, _) in self.storage.missing() {
            *per_region.entry(region).or_insert(0) += 1;
        }
        for (region, objects) in per_region {
            let marker = LagMarker { version: LAG_VERSION, region, since: now, objects };
            self.save_sealed(ObjectKind::Lag, serde_json::to_vec(&marker).expect("markers serialize"))?;
        }
        Ok(())
    }

    /// Every region some marker names, with the time of its oldest missed write; empty with a single region.
    pub fn lagging_regions(&self) -> Result<BTreeMap<String, Timestamp>> {
        let mut out: BTreeMap<String, Timestamp> = BTreeMap::new();
        if self.storage.regions().len() < 2 {
            return Ok(out);
        }
        for (_, marker) in self.lag_markers()? {
            let since = out.entry(marker.region).or_insert(marker.since);
            *since = (*since).min(marker.since);
        }
        Ok(out)
    }

    /// Removes the markers of `regions` (they have everything again) from every region that holds this
    /// repository or is being made a copy of it — also one that `sync` has just filled, which this command still
    /// treats as empty.
    pub fn clear_lag(&self, regions: &[String]) -> Result<usize> {
        let mut cleared = 0;
        for (id, marker) in self.lag_markers()? {
            if !regions.contains(&marker.region) {
                continue;
            }
            let path = ObjectKind::Lag.path_of(&id);
            for r in self.storage.regions().iter().filter(|r| !r.is_foreign()) {
                r.backend.delete(&path)?;
            }
            cleared += 1;
        }
        Ok(cleared)
    }

    fn lag_markers(&self) -> Result<Vec<(Id, LagMarker)>> {
        let mut out = Vec::new();
        for id in self.list_ids(ObjectKind::Lag)? {
            let path = ObjectKind::Lag.path_of(&id);
            let plain = match self.load_sealed(ObjectKind::Lag, &id) {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue, // removed meanwhile by a sync
                Err(e) => return Err(e),
            };
            let marker: LagMarker = serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&path, e.to_string()))?;
            out.push((id, marker));
        }
        Ok(out)
    }
}

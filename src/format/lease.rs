//! Lease objects (`locks/<id>`): who holds the maintenance lease, and until when. The rules that use them are in
//! [`crate::repo::lease`] and repo-format.md, "Leases".

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Clock difference between machines that is tolerated before a lease counts as expired.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(5 * 60);

/// What a lease object says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeaseInfo {
    /// Version of the lease format; 1.
    pub version: u32,
    /// Random hex id, also the object's name (`locks/<id>`); breaks ties between leases created at the same time.
    pub id: String,
    /// The host of the process that holds it.
    pub host: String,
    /// The process id of the holder on that host.
    pub pid: u32,
    /// What the holder is doing, e.g. `prune` or `forget`.
    pub operation: String,
    /// When the lease was taken; the oldest live lease wins.
    pub created: Timestamp,
    /// Until when it holds unless refreshed; the holder moves this forward as it works.
    pub expires: Timestamp,
}

impl LeaseInfo {
    /// True if the lease still holds at `now`: not past `expires` plus [`CLOCK_SKEW`].
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires.checked_add(CLOCK_SKEW).unwrap_or(Timestamp::MAX)
    }

    /// One line for people: operation, host, pid, and when it was taken and expires.
    pub fn describe(&self) -> String {
        format!(
            "{} on {} (pid {}, since {}, expires {})",
            self.operation, self.host, self.pid, self.created, self.expires
        )
    }
}

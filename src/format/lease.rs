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
    pub version: u32,
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub created: Timestamp,
    pub expires: Timestamp,
}

impl LeaseInfo {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires.checked_add(CLOCK_SKEW).unwrap_or(Timestamp::MAX)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} on {} (pid {}, since {}, expires {})",
            self.operation, self.host, self.pid, self.created, self.expires
        )
    }
}

//! The time that leases, prune grace periods and retention use. Real time, shifted by
//! `GUMVAULT_TEST_CLOCK_OFFSET` (a duration such as `25h`, tests only) so end-to-end tests can step past a
//! grace period without sleeping.

use jiff::{SignedDuration, Timestamp};

/// Now, as gumvault's maintenance logic sees it.
pub fn now() -> Timestamp {
    let offset = std::env::var("GUMVAULT_TEST_CLOCK_OFFSET")
        .ok()
        .and_then(|s| crate::retention::parse_duration(&s).ok())
        .unwrap_or(SignedDuration::ZERO);
    Timestamp::now().checked_add(offset).unwrap_or(Timestamp::MAX)
}

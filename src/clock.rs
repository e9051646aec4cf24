//! The time that leases, prune grace periods and retention use. Real time, shifted by
//! `GUMVAULT_TEST_CLOCK_OFFSET` (a duration such as `25h` or `-3600s`, tests only) so end-to-end tests can step past a
//! grace period without sleeping.

use jiff::{SignedDuration, Timestamp};

/// Now, as gumvault's maintenance logic sees it.
pub fn now() -> Timestamp {
    let offset = std::env::var("GUMVAULT_TEST_CLOCK_OFFSET").ok().and_then(|s| parse_offset(&s)).unwrap_or_default();
    Timestamp::now().checked_add(offset).unwrap_or(Timestamp::MAX)
}

/// `25h` or `-86399s`: a simulated day that is already past needs a negative offset.
fn parse_offset(s: &str) -> Option<SignedDuration> {
    match s.trim().strip_prefix('-') {
        Some(rest) => crate::retention::parse_duration(rest).ok().map(|d| -d),
        None => crate::retention::parse_duration(s.trim()).ok(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_may_point_into_the_past() {
        assert_eq!(super::parse_offset("25h"), Some(jiff::SignedDuration::from_hours(25)));
        assert_eq!(super::parse_offset("-86399s"), Some(jiff::SignedDuration::from_secs(-86399)));
        assert_eq!(super::parse_offset("soon"), None);
    }
}

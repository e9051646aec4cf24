//! Picking snapshots: by id prefix, `latest`, and the host/tag/path filters shared by every command.

use crate::catalog::{Catalog, SnapshotEntry};
use crate::error::{Error, Result};

/// Filters that narrow the snapshots a command considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl Filter {
    /// True if the snapshot passes every given filter (a snapshot needs all given tags; any given host; all paths).
    pub fn matches(&self, s: &SnapshotEntry) -> bool {
        let snap = &s.snapshot;
        (self.hosts.is_empty() || self.hosts.contains(&snap.host))
            && self.tags.iter().all(|t| snap.tags.contains(t))
            && self.paths.iter().all(|p| snap.paths.iter().any(|sp| sp == p.trim_end_matches('/')))
    }

    /// The matching snapshots, oldest first.
    pub fn apply(&self, catalog: &Catalog) -> Result<Vec<SnapshotEntry>> {
        Ok(catalog.snapshots()?.into_iter().filter(|s| self.matches(s)).collect())
    }
}

/// Resolves `latest`, a full id or a unique prefix of at least 8 hex characters.
pub fn resolve(catalog: &Catalog, selector: &str, filter: &Filter) -> Result<SnapshotEntry> {
    let candidates = filter.apply(catalog)?;
    if selector == "latest" {
        return candidates.into_iter().last().ok_or_else(|| {
            Error::SnapshotNotFound(
                "no snapshot matches (none yet, or the --host/--tag/--path filters exclude all)".into(),
            )
        });
    }
    let sel = selector.to_ascii_lowercase();
    if sel.len() < 8 || !sel.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!(
            "{selector:?} is not a snapshot id: give `latest` or at least 8 hex characters of an id (see `gumvault snapshots`)"
        )));
    }
    let mut hits = candidates.into_iter().filter(|s| s.id.to_hex().starts_with(&sel));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(Error::SnapshotNotFound(format!("no snapshot with id {selector} (see `gumvault snapshots`)"))),
        (Some(_), Some(_)) => {
            Err(Error::InvalidInput(format!("snapshot id prefix {selector} is ambiguous; give more characters")))
        }
    }
}

/// Parses a point in time: RFC 3339 (`2026-11-20T14:00:00Z`), a local date and time (`2026-11-20 14:00`,
/// `2026-11-20`, meaning its end), or a relative time (`2 days ago`, `6h ago`, `yesterday`, `now`).
pub fn parse_time(s: &str, now: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp> {
    let t = s.trim();
    let bad = || {
        Error::InvalidInput(format!(
            "cannot read the time {s:?}: use RFC 3339 (2026-11-20T14:00:00Z), a local time (2026-11-20 14:00), or '2 days ago'"
        ))
    };
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    match t {
        "now" => return Ok(now),
        "yesterday" => return now.checked_sub(jiff::SignedDuration::from_hours(24)).map_err(|_| bad()),
        _ => {}
    }
    if let Some(rel) = t.strip_suffix("ago").map(str::trim) {
        let compact: String = rel
            .split_whitespace()
            .map(|w| match w.trim_end_matches('s') {
                "minute" | "min" => "m".to_string(),
                "hour" => "h".to_string(),
                "day" => "d".to_string(),
                "week" => "w".to_string(),
                "month" => "mo".to_string(),
                "year" => "y".to_string(),
                other => other.to_string(),
            })
            .collect();
        let d = crate::retention::parse_duration(&compact).map_err(|_| bad())?;
        return now.checked_sub(d).map_err(|_| bad());
    }
    let date_only = t.len() == 10;
    let civil = if date_only {
        t.parse::<jiff::civil::Date>().ok().map(|d| d.at(23, 59, 59, 999_999_999))
    } else {
        t.parse::<jiff::civil::DateTime>().ok()
    }
    .ok_or_else(bad)?;
    civil.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|_| bad())
}

/// The newest matching snapshot taken at or before `at`.
pub fn at(catalog: &Catalog, at: jiff::Timestamp, filter: &Filter) -> Result<SnapshotEntry> {
    filter.apply(catalog)?.into_iter().rev().find(|s| s.snapshot.time <= at).ok_or_else(|| {
        Error::SnapshotNotFound(format!("no snapshot matches at or before {at} (the filters or the time exclude all)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        let p = |s| parse_time(s, now, &utc).unwrap().to_string();
        assert_eq!(p("2026-11-20T14:00:00Z"), "2026-11-20T14:00:00Z");
        assert_eq!(p("2 days ago"), "2026-11-23T12:00:00Z");
        assert_eq!(p("6h ago"), "2026-11-25T06:00:00Z");
        assert_eq!(p("1 week ago"), "2026-11-18T12:00:00Z");
        assert_eq!(p("2026-11-20 14:00"), "2026-11-20T14:00:00Z");
        assert_eq!(p("2026-11-20"), "2026-11-20T23:59:59.999999999Z");
        for bad in ["soon", "2026-13-01", "two days ago", ""] {
            let e = parse_time(bad, now, &utc).unwrap_err().to_string();
            assert!(e.contains("cannot read the time"), "{e}");
        }
    }
}

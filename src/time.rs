//! Time as gumvault sees it, and the ways people write times and durations. `now()` is real time shifted by
//! `GUMVAULT_TEST_CLOCK_OFFSET` (a duration such as `25h` or `-3600s`, tests only), so end-to-end tests can step
//! past a grace period without sleeping.

use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result};

/// Now, as gumvault's maintenance logic sees it.
pub fn now() -> Timestamp {
    let offset = std::env::var("GUMVAULT_TEST_CLOCK_OFFSET").ok().and_then(|s| parse_offset(&s)).unwrap_or_default();
    Timestamp::now().checked_add(offset).unwrap_or(Timestamp::MAX)
}

/// `25h` or `-86399s`: a simulated day that is already past needs a negative offset.
fn parse_offset(s: &str) -> Option<SignedDuration> {
    match s.trim().strip_prefix('-') {
        Some(rest) => parse_duration(rest).ok().map(|d| -d),
        None => parse_duration(s.trim()).ok(),
    }
}

/// A duration that [`parse_duration`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use e.g. 30d, 12h, 2w, 6mo, 1y")]
pub struct InvalidDuration(pub String);

/// Parses durations such as `30d`, `12h`, `2w`, `1y6m`, `90m` (m is minutes after h or alone, months after y).
pub fn parse_duration(s: &str) -> Result<SignedDuration, InvalidDuration> {
    let bad = || InvalidDuration(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            num.push(c);
            i += 1;
            continue;
        }
        let mut unit = String::from(c);
        while i + 1 < chars.len() && chars[i + 1].is_ascii_alphabetic() {
            i += 1;
            unit.push(chars[i]);
        }
        i += 1;
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let secs = match unit.as_str() {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "mo" => 30 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(bad()),
        };
        total = total.checked_add(n.checked_mul(secs).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(SignedDuration::from_secs(total))
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
        let d = parse_duration(&compact).map_err(|_| bad())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_may_point_into_the_past() {
        assert_eq!(super::parse_offset("25h"), Some(jiff::SignedDuration::from_hours(25)));
        assert_eq!(super::parse_offset("-86399s"), Some(jiff::SignedDuration::from_secs(-86399)));
        assert_eq!(super::parse_offset("soon"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), SignedDuration::from_hours(720));
        assert_eq!(parse_duration("1d12h").unwrap(), SignedDuration::from_hours(36));
        assert_eq!(parse_duration("90m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_duration("2w").unwrap(), SignedDuration::from_hours(336));
        for bad in ["", "d", "30", "3x", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

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

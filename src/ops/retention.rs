//! Retention: which snapshots `forget` keeps. A pure function of the snapshot list, the policy, `now` and the
//! time zone that calendar buckets use, so it is tested with tables and never deletes anything itself.
//!
//! Rules (any rule that selects a snapshot keeps it):
//! - `keep_last N`: the N newest of the group.
//! - `keep_hourly/daily/weekly/monthly/yearly N`: walking from newest to oldest, the newest snapshot of each of
//!   the N most recent hours/days/ISO weeks/months/years that have snapshots.
//! - `keep_within D`: every snapshot taken after `now - D`, and, so that every moment of that window can be
//!   restored to, the newest snapshot holding PostgreSQL base backups that are consistent at or before the
//!   window's start (`within (base backup for the window's start)`): a point-in-time restore to a moment before
//!   the first base backup inside the window starts from it, and prune keeps the WAL from it on.
//! - `keep_tags`: every snapshot carrying one of the tags.
//! - The newest snapshot of each group is always kept unless `allow_remove_newest` is set.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::error::Error;
use crate::format::id::Id;

/// What the policy needs to know about a snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    /// The snapshot's id.
    pub id: Id,
    /// When the snapshot was taken; calendar rules and `keep_within` go by this.
    pub time: Timestamp,
    /// The host it was taken on (a grouping key).
    pub host: String,
    /// The paths it backs up (a grouping key).
    pub paths: Vec<String>,
    /// Its tags (a grouping key, and what `keep_tags` matches).
    pub tags: Vec<String>,
    /// For a snapshot holding PostgreSQL base backups: the earliest moment a point-in-time restore from it can
    /// reach (the newest `stop_time` of its base backups). `None` for other snapshots.
    pub restorable_from: Option<Timestamp>,
}

/// How snapshots are grouped; each group is judged on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// Snapshots from different hosts go in different groups.
    pub host: bool,
    /// Snapshots of different path sets go in different groups.
    pub paths: bool,
    /// Snapshots with different tag sets go in different groups (tag order does not matter).
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl GroupBy {
    /// Parses `host,paths`, `host,tags`, `` (one group) …
    pub fn parse(s: &str) -> Result<GroupBy, Error> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                other => {
                    return Err(Error::InvalidInput(format!(
                        "unknown --group-by field {other:?} (use host, paths, tags)"
                    )));
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &SnapshotInfo) -> String {
        let mut k = Vec::new();
        if self.host {
            k.push(format!("host={}", s.host));
        }
        if self.paths {
            k.push(format!("paths={}", s.paths.join(":")));
        }
        if self.tags {
            let mut t = s.tags.clone();
            t.sort();
            k.push(format!("tags={}", t.join(",")));
        }
        k.join(" ")
    }
}

/// Names the calendar bucket (hour, day, week, …) a time falls in.
type BucketFn = fn(&jiff::Zoned) -> String;

/// A retention policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Keep the N newest snapshots of each group.
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    pub keep_hourly: usize,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    pub keep_daily: usize,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one.
    pub keep_weekly: usize,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    pub keep_monthly: usize,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    pub keep_yearly: usize,
    /// Keep every snapshot taken after `now` minus this duration.
    pub keep_within: Option<SignedDuration>,
    /// Keep every snapshot that carries any of these tags.
    pub keep_tags: Vec<String>,
    /// Let the newest snapshot of a group go when no rule keeps it (normally it is always kept).
    pub allow_remove_newest: bool,
}

impl Policy {
    /// True when no rule is set (forget refuses to run then).
    pub fn is_empty(&self) -> bool {
        self.keep_last + self.keep_hourly + self.keep_daily + self.keep_weekly + self.keep_monthly + self.keep_yearly
            == 0
            && self.keep_within.is_none()
            && self.keep_tags.is_empty()
    }
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot judged.
    pub id: Id,
    /// The group it was judged in, e.g. `host=web paths=/srv` (empty with no grouping).
    pub group: String,
    /// True if it is kept, false if `forget` removes it.
    pub keep: bool,
    /// The rules that keep it (empty when it is removed).
    pub reasons: Vec<String>,
}

/// Applies `policy` to `snapshots` as of `now`; calendar buckets are taken in `tz`.
/// Decisions come back grouped, each group newest first.
pub fn apply(
    snapshots: &[SnapshotInfo],
    policy: &Policy,
    group_by: GroupBy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Decision> {
    let mut groups: BTreeMap<String, Vec<&SnapshotInfo>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_by.key(s)).or_default().push(s);
    }
    let mut out = Vec::with_capacity(snapshots.len());
    for (key, mut group) in groups {
        group.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let reasons = reasons(&group, policy, now, tz);
        for (s, r) in group.iter().zip(reasons) {
            out.push(Decision { id: s.id, group: key.clone(), keep: !r.is_empty(), reasons: r });
        }
    }
    out
}

/// The rules that keep each snapshot of one group (newest first); an empty list means it goes.
fn reasons(group: &[&SnapshotInfo], policy: &Policy, now: Timestamp, tz: &TimeZone) -> Vec<Vec<String>> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); group.len()];
    for (i, r) in reasons.iter_mut().enumerate().take(policy.keep_last) {
        r.push(format!("last {}", i + 1));
    }
    keep_calendar(group, policy, tz, &mut reasons);
    if let Some(within) = policy.keep_within {
        let cutoff = now.checked_sub(within).unwrap_or(Timestamp::MIN);
        for (i, s) in group.iter().enumerate() {
            if s.time > cutoff {
                reasons[i].push("within".to_string());
            }
        }
        // Newest first: the first base backup consistent by the window's start anchors the window.
        if let Some(i) = group.iter().position(|s| s.restorable_from.is_some_and(|t| t <= cutoff)) {
            reasons[i].push("within (base backup for the window's start)".to_string());
        }
    }
    for (i, s) in group.iter().enumerate() {
        for t in policy.keep_tags.iter().filter(|t| s.tags.contains(t)) {
            reasons[i].push(format!("tag {t}"));
        }
    }
    if !policy.allow_remove_newest && !group.is_empty() && reasons[0].is_empty() {
        reasons[0].push("newest of its group".to_string());
    }
    reasons
}

/// The hourly, daily, weekly, monthly and yearly rules: walking from newest to oldest, the newest snapshot of
/// each of the N most recent buckets that have snapshots.
fn keep_calendar(group: &[&SnapshotInfo], policy: &Policy, tz: &TimeZone, reasons: &mut [Vec<String>]) {
    let buckets: [(&str, usize, BucketFn); 5] = [
        ("hourly", policy.keep_hourly, |z| z.strftime("%Y-%m-%d %H").to_string()),
        ("daily", policy.keep_daily, |z| z.strftime("%Y-%m-%d").to_string()),
        ("weekly", policy.keep_weekly, |z| {
            let w = z.date().iso_week_date();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.keep_monthly, |z| z.strftime("%Y-%m").to_string()),
        ("yearly", policy.keep_yearly, |z| z.strftime("%Y").to_string()),
    ];
    for (name, n, bucket_of) in buckets {
        let mut last: Option<String> = None;
        let mut kept = 0;
        for (i, s) in group.iter().enumerate() {
            if kept >= n {
                break;
            }
            let b = bucket_of(&s.time.to_zoned(tz.clone()));
            if last.as_ref() != Some(&b) {
                kept += 1;
                reasons[i].push(format!("{name} {kept} ({b})"));
                last = Some(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(start: &str, every_hours: i64, count: usize) -> Vec<SnapshotInfo> {
        let t0: Timestamp = start.parse().unwrap();
        (0..count)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                SnapshotInfo {
                    id: Id(id),
                    time: t0 + SignedDuration::from_hours(every_hours * i as i64),
                    host: "web".into(),
                    paths: vec!["/srv".into()],
                    tags: vec![],
                    restorable_from: None,
                }
            })
            .collect()
    }

    fn kept_times(d: &[Decision], snaps: &[SnapshotInfo]) -> Vec<String> {
        let mut v: Vec<String> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| snaps.iter().find(|s| s.id == d.id).unwrap().time.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn thirty_days_of_six_hourly_snapshots_with_daily_weekly_monthly() {
        // 2026-10-01T00:00Z .. 2026-10-30T18:00Z, every 6 h: 120 snapshots. Now = the last one.
        let snaps = series("2026-10-01T00:00:00Z", 6, 120);
        let policy = Policy { keep_daily: 7, keep_weekly: 4, keep_monthly: 12, ..Default::default() };
        let now: Timestamp = "2026-10-30T18:00:00Z".parse().unwrap();
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        // Hand-computed: daily = the 18:00 snapshot of Oct 24..30; weekly (ISO weeks, Monday start) = the newest
        // of weeks 44 (Oct 26-30 -> Oct 30 18:00), 43 (Oct 19-25 -> Oct 25 18:00), 42 (Oct 12-18 -> Oct 18 18:00),
        // 41 (Oct 5-11 -> Oct 11 18:00); monthly = Oct 30 18:00 (only one month).
        let expected: Vec<String> = [
            "2026-10-11T18:00:00Z",
            "2026-10-18T18:00:00Z",
            "2026-10-24T18:00:00Z",
            "2026-10-25T18:00:00Z",
            "2026-10-26T18:00:00Z",
            "2026-10-27T18:00:00Z",
            "2026-10-28T18:00:00Z",
            "2026-10-29T18:00:00Z",
            "2026-10-30T18:00:00Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(kept_times(&d, &snaps), expected);
        let newest = d.iter().find(|x| x.id == snaps[119].id).unwrap();
        assert_eq!(newest.reasons, vec!["daily 1 (2026-10-30)", "weekly 1 (2026-W44)", "monthly 1 (2026-10)"]);
    }

    #[test]
    fn a_year_of_six_hourly_snapshots_with_keep_within_30d() {
        // 2025-11-26T00:00Z + 6 h steps for 365 days: 1460 snapshots; now = one hour after the last.
        let snaps = series("2025-11-26T00:00:00Z", 6, 1460);
        let now = snaps[1459].time + SignedDuration::from_hours(1);
        let policy = Policy { keep_within: Some(crate::time::parse_duration("30d").unwrap()), ..Default::default() };
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        // Strictly after now - 30 d = 30 * 4 = 120 snapshots; 23 h of slack before the oldest kept one.
        assert_eq!(d.iter().filter(|x| x.keep).count(), 120);
        assert!(d.iter().filter(|x| x.keep).all(|x| x.reasons == vec!["within"] || x.reasons.len() > 1));

        let policy = Policy { keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_yearly: 3, ..Default::default() };
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        let kept = kept_times(&d, &snaps);
        // Last snapshot: Wed 2026-11-25 18:00. Daily: Nov 19..25 (7). Weekly (ISO): W48 -> Nov 25 and W47 -> Nov 22
        // are already kept, W46 -> Nov 15 and W45 -> Nov 8 are new (2). Monthly: Nov is kept, Oct 31 back to
        // Dec 31 2025 are new (11). Yearly: 2026 and 2025 (Dec 31) are already kept. 7 + 2 + 11 = 20.
        assert_eq!(kept.len(), 20, "{kept:?}");
        assert!(kept.contains(&"2026-11-08T18:00:00Z".to_string()));
        assert!(kept.contains(&"2025-12-31T18:00:00Z".to_string()));
        assert!(kept.contains(&"2026-11-25T18:00:00Z".to_string()));
        assert!(
            !kept.contains(&"2025-11-26T00:00:00Z".to_string()),
            "the oldest goes: 12 months reach back to Dec 2025"
        );
    }

    #[test]
    fn the_newest_of_each_group_survives_unless_told() {
        let mut snaps = series("2026-01-01T00:00:00Z", 24, 3);
        snaps[2].host = "db".into();
        let policy = Policy { keep_tags: vec!["never-matches".into()], ..Default::default() };
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        assert_eq!(d.iter().filter(|x| x.keep).count(), 2, "one per group");
        let p = Policy { allow_remove_newest: true, ..policy };
        assert_eq!(apply(&snaps, &p, GroupBy::default(), now, &TimeZone::UTC).iter().filter(|x| x.keep).count(), 0);
        let one_group = GroupBy::parse("").unwrap();
        let d = apply(&snaps, &Policy { keep_last: 1, ..Default::default() }, one_group, now, &TimeZone::UTC);
        assert_eq!(d.iter().filter(|x| x.keep).count(), 1);
    }

    #[test]
    fn keep_within_keeps_the_base_backup_the_window_starts_from() {
        // Daily base backups at 00:00 that are consistent 30 minutes later; now = day 10, 12:00; window 3 days.
        let mut snaps = series("2026-01-01T00:00:00Z", 24, 10);
        for s in &mut snaps {
            s.restorable_from = Some(s.time + SignedDuration::from_mins(30));
        }
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().unwrap();
        let policy = Policy { keep_within: Some(SignedDuration::from_hours(72)), ..Default::default() };
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        // The window starts Jan 7 12:00: snapshots of Jan 8, 9, 10 are inside; Jan 7 00:00 covers Jan 7 12:00..
        let kept = kept_times(&d, &snaps);
        assert_eq!(
            kept,
            ["2026-01-07T00:00:00Z", "2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z"]
        );
        let anchor = d.iter().find(|x| x.id == snaps[6].id).unwrap();
        assert_eq!(anchor.reasons, vec!["within (base backup for the window's start)"]);
        // A base backup that started before the window but was consistent only after its start is no anchor: the
        // one before it is (and WAL from it covers the whole window, so the other goes).
        snaps[6].restorable_from = Some("2026-01-07T13:00:00Z".parse().unwrap());
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        assert_eq!(
            kept_times(&d, &snaps),
            ["2026-01-06T00:00:00Z", "2026-01-08T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z"]
        );
        // Snapshots without base backups keep the plain rule.
        for s in &mut snaps {
            s.restorable_from = None;
        }
        let d = apply(&snaps, &policy, GroupBy::default(), now, &TimeZone::UTC);
        assert_eq!(kept_times(&d, &snaps).len(), 3);
    }

    #[test]
    fn tags_and_last() {
        let mut snaps = series("2026-01-01T00:00:00Z", 1, 10);
        snaps[0].tags.push("pre-upgrade".into());
        let policy = Policy { keep_last: 3, keep_tags: vec!["pre-upgrade".into()], ..Default::default() };
        let d = apply(&snaps, &policy, GroupBy::default(), snaps[9].time, &TimeZone::UTC);
        assert_eq!(d.iter().filter(|x| x.keep).count(), 4);
        assert!(d.iter().any(|x| x.id == snaps[0].id && x.reasons == vec!["tag pre-upgrade"]));
    }
}

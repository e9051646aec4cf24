//! `forget` and `prune`: the only commands that delete, and the only ones that take the maintenance lease.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use crate::exit;
use crate::format::id::Id;
use crate::ops::forget;
use crate::ops::prune::{self, PruneOptions, PruneReport};
use crate::ops::retention::{Decision, GroupBy, Policy};
use crate::repo::Repository;
use crate::repo::catalog::SnapshotEntry;

#[derive(Args, Debug, Clone)]
pub(crate) struct LockArgs {
    /// Wait this long for another maintenance run to finish (e.g. 5m) instead of failing at once
    #[arg(long, value_name = "DURATION", value_parser = parse_std_duration)]
    pub retry_lock: Option<Duration>,
}

fn parse_std_duration(s: &str) -> Result<Duration, crate::time::InvalidDuration> {
    let d = crate::time::parse_duration(s)?;
    Ok(Duration::from_secs(d.as_secs().max(0) as u64))
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  gumvault forget --keep-within 30d --prune
  gumvault forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  gumvault forget 1a2b3c4d            # remove one snapshot by id

Snapshots are judged per group (host and paths by default). The newest snapshot of each group is kept unless
--allow-remove-newest is given. --dry-run prints every decision and the rule behind it.")]
pub(crate) struct ForgetArgs {
    /// Snapshots to remove by id (instead of a policy)
    pub ids: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: usize,
    /// … of the last N days
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    /// … of the last N ISO weeks
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// … of the last N months
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// … of the last N years
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: usize,
    /// Keep every snapshot newer than this (e.g. 30d, 12h, 2w)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable)
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Group by these fields: any of host, paths, tags (comma separated; empty = one group)
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Allow removing the newest snapshot of a group
    #[arg(long)]
    pub allow_remove_newest: bool,
    /// Show what would be removed, remove nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub prune_opts: PruneArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct PruneArgs {
    /// Repack partly used packs until unused space is at most this share of used space
    #[arg(long, default_value = "5%", value_parser = parse_percent)]
    pub max_unused: f64,
    /// How long packs stay marked for deletion before a later prune deletes them
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub grace: String,
    #[command(flatten)]
    pub lock: LockArgs,
}

fn parse_percent(s: &str) -> crate::Result<f64> {
    let usage = |m: String| crate::Error::InvalidInput(m);
    let v: f64 = s.trim_end_matches('%').trim().parse().map_err(|_| usage(format!("invalid percentage {s:?}")))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(usage(format!("percentage {s:?} is not between 0% and 100%")));
    }
    Ok(v / 100.0)
}

impl PruneArgs {
    fn options(&self, g: &Context, dry_run: bool) -> anyhow::Result<PruneOptions> {
        Ok(PruneOptions {
            max_unused: self.max_unused,
            grace: crate::time::parse_duration(&self.grace)?,
            dry_run,
            memory: g.memory_budget(),
        })
    }
}

pub(crate) fn forget(g: &Context, a: &ForgetArgs) -> anyhow::Result<i32> {
    let mut s = g.open_for_snapshots()?;
    let policy = a.policy()?;
    let candidates = a.filter.filter().apply(&s.catalog)?;
    let remove: Vec<Id> = if !a.ids.is_empty() {
        if !policy.is_empty() {
            anyhow::bail!("give snapshot ids or a policy (--keep-…), not both");
        }
        a.ids.iter().map(|id| Ok(a.filter.pick(&s.catalog, id)?.id)).collect::<anyhow::Result<_>>()?
    } else {
        if policy.is_empty() {
            anyhow::bail!(
                "no policy given: pass at least one --keep-… option (e.g. --keep-within 30d), or snapshot ids"
            );
        }
        let group_by = GroupBy::parse(&a.group_by)?;
        let decisions =
            forget::decide(&candidates, &policy, group_by, crate::time::now(), &jiff::tz::TimeZone::system());
        print_decisions(g, &decisions, &candidates)?;
        decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect()
    };
    if a.dry_run {
        if !g.json {
            println!("dry run: would remove {} of {} snapshots", remove.len(), candidates.len());
        }
        return Ok(exit::OK);
    }
    let notes = forget::remove(&s.repo, &mut s.catalog, &remove, a.prune_opts.lock.retry_lock.unwrap_or_default())?;
    report_takeovers(&notes);
    if !g.json && !g.quiet {
        println!("removed {} snapshots", remove.len());
    }
    if a.prune {
        return run_prune(g, &s.repo, &a.prune_opts, false);
    }
    Ok(exit::OK)
}

impl ForgetArgs {
    /// The retention policy the flags describe.
    fn policy(&self) -> anyhow::Result<Policy> {
        Ok(Policy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.as_deref().map(crate::time::parse_duration).transpose()?,
            keep_tags: self.keep_tags.clone(),
            allow_remove_newest: self.allow_remove_newest,
        })
    }
}

/// Every decision and the rule behind it, by group (or as JSON).
fn print_decisions(g: &Context, decisions: &[Decision], candidates: &[SnapshotEntry]) -> anyhow::Result<()> {
    if g.json {
        let list: Vec<_> = decisions
            .iter()
            .map(|d| json!({"id": d.id.to_hex(), "group": d.group, "keep": d.keep, "reasons": d.reasons}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if !g.quiet {
        let mut group = None;
        for d in decisions {
            if group.as_ref() != Some(&d.group) {
                println!("group {}:", if d.group.is_empty() { "(all)" } else { &d.group });
                group = Some(d.group.clone());
            }
            let time = candidates.iter().find(|e| e.id == d.id).map(|e| format::local_time(&e.snapshot.time));
            let verdict = if d.keep { format!("keep    {}", d.reasons.join(", ")) } else { "remove".to_string() };
            println!("  {} {}  {verdict}", d.id.short(), time.unwrap_or_default());
        }
    }
    Ok(())
}

fn report_takeovers(msgs: &[String]) {
    for m in msgs {
        eprintln!("gumvault: note: {m}");
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Prune works in two phases, so it is safe while backups run:
  1. packs no snapshot needs are marked for deletion and dropped from the index;
  2. a later prune deletes packs that have been marked for longer than --grace (default 24h),
     unless a snapshot committed meanwhile needs them, which brings them back.
With S3 Object Lock (init --object-lock) it then extends the locks of everything still needed, and
  3. deletes old object versions once their lock has run out (locked ones wait for a later prune).
Run it regularly (e.g. after `forget`, or daily); each run reports what it freed and what waits.")]
pub(crate) struct PruneCmd {
    /// Show what would happen, change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub opts: PruneArgs,
}

pub(crate) fn prune_cmd(g: &Context, a: &PruneCmd) -> anyhow::Result<i32> {
    let repo = g.open_repo()?;
    run_prune(g, &repo, &a.opts, a.dry_run)
}

fn run_prune(g: &Context, repo: &Repository, a: &PruneArgs, dry_run: bool) -> anyhow::Result<i32> {
    let opts = a.options(g, dry_run)?;
    let (report, notes) = prune::prune_locked(repo, &opts, crate::time::now(), a.lock.retry_lock.unwrap_or_default())?;
    report_takeovers(&notes);
    print_prune(g, &report, dry_run);
    Ok(exit::OK)
}

fn print_prune(g: &Context, r: &PruneReport, dry_run: bool) {
    if g.json {
        println!("{}", json!({ "dry_run": dry_run, "report": r }));
        return;
    }
    if g.quiet {
        return;
    }
    let verb = if dry_run { "would" } else { "did" };
    println!("{} snapshots need {} blobs in {} packs", r.snapshots, r.used_blobs, r.packs);
    println!(
        "{verb}: delete {} packs ({}), repack {} ({}), mark {} for deletion, restore {} to the index",
        r.packs_deleted,
        format::bytes(r.bytes_freed),
        r.packs_repacked,
        format::bytes(r.bytes_repacked),
        r.packs_marked,
        r.packs_restored
    );
    println!("waiting for the grace period: {} packs ({})", r.packs_waiting, format::bytes(r.bytes_waiting));
    if r.wal.files_deleted + r.wal.files_kept > 0 {
        println!(
            "WAL archive: {verb} delete {} files ({}) older than the oldest kept base backup, keep {}",
            r.wal.files_deleted,
            format::bytes(r.wal.bytes_freed),
            r.wal.files_kept
        );
    }
    if let Some(n) = r.locks_extended {
        println!("Object Lock: extended the lock of {n} objects still needed");
    }
    if let Some(p) = &r.purge {
        let next = p.next_unlock.map(|t| format!(", the next on {}", format::local_time(&t))).unwrap_or_default();
        println!(
            "old versions: {verb} delete {}; {} still locked{next} (a later prune deletes them)",
            p.versions_deleted, p.versions_locked
        );
    }
}

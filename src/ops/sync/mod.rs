//! Keeping regions in agreement: copy what is missing or damaged (`sync`) and finish deletes a region missed
//! (tombstones). The comparison itself is in [`compare`](mod@compare).

pub mod compare;
pub mod copy;

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::repo::Repository;
pub use compare::{Difference, RegionHealth, RegionListing, compare, health, list_regions, load_tombstones};

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// (region, path) copies written.
    pub copied: Vec<(String, String)>,
    /// Total bytes of those copies.
    pub bytes_copied: u64,
    /// (region, path) objects removed because a prune had deleted them elsewhere.
    pub removed: Vec<(String, String)>,
    /// Tombstones no longer needed, removed everywhere.
    pub tombstones_cleared: Vec<String>,
    /// Objects that could not be copied: no region had a good copy, or the target failed.
    pub failed: Vec<String>,
    /// Lag markers removed because their regions have everything again.
    #[serde(default)]
    pub lag_cleared: usize,
}

/// Options of `sync`.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Copy only from these regions (default: any).
    pub from: Vec<String>,
    /// Copy only to these regions (default: every region).
    pub to: Vec<String>,
    /// Also read and verify every copy, replacing damaged ones.
    pub read_data: bool,
    /// Objects known to be bad somewhere (region, path), e.g. reported by a restore: always verified.
    pub suspects: Vec<(String, String)>,
    /// Only report what would be copied and removed; change nothing.
    pub dry_run: bool,
}

/// Copies missing and damaged objects between regions until they agree, and finishes deletes recorded in
/// tombstones. Each copy is read from a region whose copy verifies, then written to the target; running it again
/// after an interruption continues where it stopped (nothing is copied twice once it is in place).
pub fn sync(repo: &Repository, opts: &SyncOptions) -> Result<SyncReport> {
    check_region_names(repo, opts)?;
    if !opts.dry_run {
        // Sync removes what tombstones list and lag markers: with append-only credentials, say so now.
        repo.check_can_delete()?;
    }
    let listings = list_regions(repo);
    let mut diffs = compare(repo, &listings, opts.read_data)?;
    diffs.extend(bad_suspects(repo, opts, &diffs));
    if let Some(unreachable) =
        diffs.iter().find(|d| d.kind == "unreachable" && (opts.to.is_empty() || opts.to.contains(&d.region)))
    {
        let message =
            format!("{}; sync needs every target region reachable (or pick others with --to)", unreachable.detail);
        return Err(StorageError::new("list", "", &unreachable.region, StorageErrorKind::Other, message).into());
    }
    let tombstones = load_tombstones(repo, &listings)?;
    let mut report = SyncReport::default();
    for d in diffs.iter().filter(|d| d.kind == "conflict") {
        report.failed.push(format!("{} in region {}: {}", d.path, d.region, d.detail));
    }
    copy_missing(repo, &listings, &diffs, opts, &mut report);
    finish_deletes(repo, &listings, &tombstones, opts, &mut report)?;
    if !opts.dry_run && report.failed.is_empty() {
        // Every targeted region has everything now: they no longer lag.
        let targets: Vec<String> =
            if opts.to.is_empty() { listings.iter().map(|l| l.name.clone()).collect() } else { opts.to.clone() };
        report.lag_cleared = repo.clear_lag(&targets)?;
    }
    Ok(report)
}

/// Every region named in `--from` and `--to` must exist.
fn check_region_names(repo: &Repository, opts: &SyncOptions) -> Result<()> {
    let regions = repo.regions();
    let known: Vec<&str> = regions.iter().map(|r| r.name()).collect();
    match opts.from.iter().chain(&opts.to).find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(Error::InvalidInput(format!("no region {name:?} (regions: {})", known.join(", ")))),
        None => Ok(()),
    }
}

/// Copies a restore or read found bad, verified now even without `--read-data`: those that fail.
fn bad_suspects(repo: &Repository, opts: &SyncOptions, known: &[Difference]) -> Vec<Difference> {
    let regions = repo.regions();
    let mut out = Vec::new();
    for (region, path) in &opts.suspects {
        let Some(r) = regions.iter().find(|r| r.name() == region) else { continue };
        if known.iter().any(|d| &d.region == region && &d.path == path) {
            continue;
        }
        if let Err(e) = r.read_verified(path) {
            out.push(Difference { region: region.clone(), path: path.clone(), kind: "corrupt", detail: e.to_string() });
        }
    }
    out
}

/// Runs `f` on threads for `in_flight` copies at once (rayon's own when that is no more than the cores).
pub(crate) fn with_copy_threads<T: Send>(in_flight: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(match crate::runtime::io_pool_beyond_cores(in_flight, "copies")? {
        Some(pool) => pool.install(f),
        None => f(),
    })
}

/// Copies what is missing or bad into every targeted region, several objects in parallel.
fn copy_missing(
    repo: &Repository,
    listings: &[RegionListing],
    diffs: &[Difference],
    opts: &SyncOptions,
    report: &mut SyncReport,
) {
    let targeted = |region: &str| opts.to.is_empty() || opts.to.iter().any(|t| t == region);
    let bad: BTreeSet<(&str, &str)> =
        diffs.iter().filter(|d| d.kind == "corrupt").map(|d| (d.region.as_str(), d.path.as_str())).collect();
    let work: Vec<&Difference> =
        diffs.iter().filter(|d| matches!(d.kind, "missing" | "size" | "corrupt") && targeted(&d.region)).collect();
    let copy_all = || -> Vec<(String, String, Result<u64>)> {
        work.par_iter()
            .with_max_len(1)
            .map(|d| {
                let outcome = copy_one(repo, listings, &bad, opts, &d.path, &d.region);
                (d.region.clone(), d.path.clone(), outcome)
            })
            .collect()
    };
    let results = match repo.copy_concurrency(false, false).and_then(|n| with_copy_threads(n, copy_all)) {
        Ok(results) => results,
        Err(e) => return report.failed.push(format!("cannot start the copies: {e}")),
    };
    for (region, path, outcome) in results {
        match outcome {
            Ok(n) => {
                report.bytes_copied += n;
                report.copied.push((region, path));
            }
            Err(e) => report.failed.push(format!("{path} → region {region}: {e}")),
        }
    }
}

/// Deletes, in every (targeted) region, what tombstones list; then removes tombstones no region needs any more.
fn finish_deletes(
    repo: &Repository,
    listings: &[RegionListing],
    tombstones: &BTreeMap<String, BTreeSet<String>>,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    let regions = repo.regions();
    let targeted = |region: &str| opts.to.is_empty() || opts.to.iter().any(|t| t == region);
    for (tomb, paths) in tombstones {
        let mut all_gone = true;
        for (l, r) in listings.iter().zip(&regions) {
            let Some(objects) = &l.objects else {
                all_gone = false;
                continue;
            };
            for p in paths.iter().filter(|p| objects.contains_key(*p)) {
                if !targeted(r.name()) {
                    all_gone = false;
                    continue;
                }
                if !opts.dry_run
                    && let Err(e) = r.delete(p)
                {
                    report.failed.push(format!("delete {p} in region {}: {e}", r.name()));
                    all_gone = false;
                    continue;
                }
                report.removed.push((r.name().to_string(), p.clone()));
            }
        }
        if all_gone && opts.to.is_empty() {
            if !opts.dry_run {
                for r in &regions {
                    r.delete(tomb)?;
                }
            }
            report.tombstones_cleared.push(tomb.clone());
        }
    }
    Ok(())
}

/// Finishes deletes an earlier prune or forget could not do in every region (prune calls this first).
pub fn finish_pending_deletes(repo: &Repository) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    if repo.region_count() < 2 {
        return Ok(report);
    }
    let listings = list_regions(repo);
    let tombstones = load_tombstones(repo, &listings)?;
    finish_deletes(repo, &listings, &tombstones, &SyncOptions::default(), &mut report)?;
    Ok(report)
}

/// False for objects that are never overwritten (WAL files); content-addressed objects, the config and key files
/// may be written over by a verified copy.
fn may_overwrite(path: &str) -> bool {
    !matches!(crate::format::objects::ObjectKind::parse_path(path), Some((crate::format::objects::ObjectKind::Wal, _)))
}

/// Copies one object into one region from the first other region (allowed by `--from`) whose copy verifies.
fn copy_one(
    repo: &Repository,
    listings: &[RegionListing],
    bad: &BTreeSet<(&str, &str)>,
    opts: &SyncOptions,
    path: &str,
    target: &str,
) -> Result<u64> {
    let regions = repo.regions();
    let mut tried = Vec::new();
    for (l, r) in listings.iter().zip(&regions) {
        let Some(&size) = l.objects.as_ref().and_then(|o| o.get(path)) else { continue };
        if r.name() == target || bad.contains(&(r.name(), path)) {
            continue;
        }
        if !opts.from.is_empty() && !opts.from.iter().any(|f| f == r.name()) {
            continue;
        }
        let dest = regions.iter().find(|r| r.name() == target).expect("target region exists");
        if !opts.dry_run && dest.takes_streamed(path) {
            // As it streams in (a few MiB held); only a damaged source moves on, anything else goes whole.
            match r.copy_streamed_to(path, size, dest) {
                Ok(()) => return Ok(size),
                Err(e @ Error::Corrupt { .. }) => {
                    tried.push(format!("{}: {e}", r.name()));
                    continue;
                }
                Err(_) => {}
            }
        }
        let bytes = match r.read_verified_sized(path, size) {
            Ok(b) => b,
            Err(e) => {
                tried.push(format!("{}: {e}", r.name()));
                continue;
            }
        };
        let n = bytes.len() as u64;
        if !opts.dry_run {
            // A WAL file is never overwritten, except a damaged copy by a good one: a copy that appeared since
            // the listing (a push) stays.
            let never_overwrite = !may_overwrite(path) && !bad.contains(&(target, path));
            if never_overwrite {
                dest.write_new(path, bytes)?;
            } else {
                dest.write(path, bytes)?;
            }
        }
        return Ok(n);
    }
    Err(Error::corrupt(
        path,
        if tried.is_empty() {
            "no other region holds it".to_string()
        } else {
            format!("no good copy ({})", tried.join("; "))
        },
    ))
}

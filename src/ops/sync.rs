//! Keeping regions in agreement: compare what each region holds (`check --regions`), copy what is missing or
//! damaged (`sync`), finish deletes a region missed (tombstones), and summarise each region's health.
//!
//! Every object a region should hold is under `config`, `keys/`, `data/`, `index/`, `snapshots/`, `obsolete/`
//! or `deleted/`; leases (`locks/`) are short-lived and not compared. Content-addressed objects (everything but
//! `config` and `keys/`) are verified by hashing them against their names; `config` by decrypting it, key files
//! by parsing them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::repo::{KeyFile, Repository};
use crate::storage::Region;

/// Where tombstones live: lists of objects a prune or forget deleted while some region could not delete them.
pub const TOMBSTONE_PREFIX: &str = "deleted/";
const TOMBSTONE_AAD: &[u8] = b"gumvault tombstone v1";

const PREFIXES: [&str; 6] = ["keys/", "data/", "index/", "snapshots/", "obsolete/", TOMBSTONE_PREFIX];

/// What one region holds.
pub struct RegionListing {
    pub name: String,
    /// `None` when the region could not be listed.
    pub objects: Option<BTreeMap<String, u64>>,
    pub error: Option<String>,
}

/// Lists every region (in parallel).
pub fn list_regions(repo: &Repository) -> Vec<RegionListing> {
    repo.storage
        .regions()
        .par_iter()
        .map(|r| match list_region(r) {
            Ok(objects) => RegionListing { name: r.name.clone(), objects: Some(objects), error: None },
            Err(e) => RegionListing { name: r.name.clone(), objects: None, error: Some(e.to_string()) },
        })
        .collect()
}

fn list_region(r: &Region) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    if let Some(size) = r.backend.stat("config")? {
        out.insert("config".to_string(), size);
    }
    for prefix in PREFIXES {
        out.extend(r.backend.list(prefix)?);
    }
    Ok(out)
}

/// A disagreement between regions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub region: String,
    pub path: String,
    /// `missing`, `size`, `corrupt`, `deleted-elsewhere`, `unreachable`.
    pub kind: &'static str,
    pub detail: String,
}

/// Objects deleted by a prune or forget that some region may still hold, from every tombstone.
pub fn load_tombstones(repo: &Repository, listings: &[RegionListing]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let names: BTreeSet<&String> = listings
        .iter()
        .filter_map(|l| l.objects.as_ref())
        .flat_map(|o| o.keys())
        .filter(|p| p.starts_with(TOMBSTONE_PREFIX))
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        out.insert(name.clone(), read_tombstone(repo, name)?.into_iter().collect());
    }
    Ok(out)
}

/// The paths one tombstone lists.
pub fn read_tombstone(repo: &Repository, name: &str) -> Result<Vec<String>> {
    repo.storage.read_with(name, |sealed| {
        verify_content(repo, name, &sealed)?;
        let plain =
            repo.key.open(TOMBSTONE_AAD, &sealed).ok_or_else(|| Error::corrupt(name, "authentication failed"))?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(name, e.to_string()))
    })
}

/// Writes a tombstone for objects whose delete failed in some region, so `sync` (or the next prune) finishes it.
pub fn write_tombstone(repo: &Repository) -> Result<Option<String>> {
    let mut paths: Vec<String> = repo.storage.undeleted().into_iter().map(|(_, p)| p).collect();
    if paths.is_empty() {
        return Ok(None);
    }
    paths.sort();
    paths.dedup();
    let sealed = repo.key.seal(TOMBSTONE_AAD, serde_json::to_vec(&paths).expect("paths serialize"));
    let name = format!("{TOMBSTONE_PREFIX}{}", Id::of_object(&sealed).to_hex());
    repo.storage.write(&name, sealed)?;
    Ok(Some(name))
}

/// Checks one copy of an object.
pub fn verify_content(repo: &Repository, path: &str, bytes: &[u8]) -> Result<()> {
    if path == "config" {
        return repo
            .key
            .open(b"gumvault config v1", bytes)
            .map(drop)
            .ok_or_else(|| Error::corrupt(path, "authentication failed"));
    }
    if path.starts_with("keys/") {
        return KeyFile::parse(path, bytes).map(drop);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let id = Id::from_hex(name).ok_or_else(|| Error::corrupt(path, "the name is not an object id"))?;
    crate::repo::verify_name(path, &id, bytes)
}

/// Compares regions object by object: presence and size, and with `read_data` the content of every copy.
pub fn compare(repo: &Repository, listings: &[RegionListing], read_data: bool) -> Result<Vec<Difference>> {
    let tombstones = load_tombstones(repo, listings)?;
    let deleted: BTreeSet<&String> = tombstones.values().flatten().collect();
    let mut diffs = Vec::new();
    let mut union: BTreeMap<&String, u64> = BTreeMap::new();
    for l in listings {
        match &l.objects {
            Some(objects) => {
                for (p, size) in objects {
                    union.entry(p).or_insert(*size);
                }
            }
            None => diffs.push(Difference {
                region: l.name.clone(),
                path: String::new(),
                kind: "unreachable",
                detail: l.error.clone().unwrap_or_default(),
            }),
        }
    }
    for l in listings {
        let Some(objects) = &l.objects else { continue };
        for (path, size) in &union {
            let here = objects.get(*path);
            if deleted.contains(path) {
                if here.is_some() {
                    diffs.push(Difference {
                        region: l.name.clone(),
                        path: (*path).clone(),
                        kind: "deleted-elsewhere",
                        detail: "a prune deleted it; sync removes it here".into(),
                    });
                }
                continue;
            }
            match here {
                None => diffs.push(Difference {
                    region: l.name.clone(),
                    path: (*path).clone(),
                    kind: "missing",
                    detail: String::new(),
                }),
                Some(s) if s != size && path.as_str() != "config" && !path.starts_with("keys/") => {
                    diffs.push(Difference {
                        region: l.name.clone(),
                        path: (*path).clone(),
                        kind: "size",
                        detail: format!("{s} bytes here, {size} elsewhere"),
                    })
                }
                Some(_) => {}
            }
        }
    }
    if read_data {
        diffs.extend(verify_copies(repo, listings, &deleted));
    }
    diffs.sort_by(|a, b| (&a.path, &a.region).cmp(&(&b.path, &b.region)));
    Ok(diffs)
}

/// Reads and verifies every copy in every region.
fn verify_copies(repo: &Repository, listings: &[RegionListing], deleted: &BTreeSet<&String>) -> Vec<Difference> {
    let jobs: Vec<(&Region, &String)> = listings
        .iter()
        .zip(repo.storage.regions())
        .filter_map(|(l, r)| l.objects.as_ref().map(|o| (r, o)))
        .flat_map(|(r, o)| o.keys().filter(|p| !deleted.contains(p)).map(move |p| (r, p)))
        .collect();
    jobs.par_iter()
        .filter_map(|(r, path)| {
            let outcome = r.backend.read(path).and_then(|b| verify_content(repo, path, &b));
            outcome.err().map(|e| Difference {
                region: r.name.clone(),
                path: (*path).clone(),
                kind: "corrupt",
                detail: e.to_string(),
            })
        })
        .collect()
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// (region, path) copies written.
    pub copied: Vec<(String, String)>,
    pub bytes_copied: u64,
    /// (region, path) objects removed because a prune had deleted them elsewhere.
    pub removed: Vec<(String, String)>,
    /// Tombstones no longer needed, removed everywhere.
    pub tombstones_cleared: Vec<String>,
    /// Objects that could not be copied: no region had a good copy, or the target failed.
    pub failed: Vec<String>,
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
    pub dry_run: bool,
}

/// Copies missing and damaged objects between regions until they agree, and finishes deletes recorded in
/// tombstones. Each copy is read from a region whose copy verifies, then written to the target; running it again
/// after an interruption continues where it stopped (nothing is copied twice once it is in place).
pub fn sync(repo: &Repository, opts: &SyncOptions) -> Result<SyncReport> {
    let regions = repo.storage.regions();
    for name in opts.from.iter().chain(&opts.to) {
        if !regions.iter().any(|r| &r.name == name) {
            let known: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            return Err(Error::InvalidInput(format!("no region {name:?} (regions: {})", known.join(", "))));
        }
    }
    let listings = list_regions(repo);
    let mut diffs = compare(repo, &listings, opts.read_data)?;
    // Copies a restore or read found bad: verify them now even without --read-data.
    for (region, path) in &opts.suspects {
        let Some(r) = regions.iter().find(|r| &r.name == region) else { continue };
        if diffs.iter().any(|d| &d.region == region && &d.path == path) {
            continue;
        }
        if let Err(e) = r.backend.read(path).and_then(|b| verify_content(repo, path, &b)) {
            diffs.push(Difference {
                region: region.clone(),
                path: path.clone(),
                kind: "corrupt",
                detail: e.to_string(),
            });
        }
    }
    if let Some(unreachable) =
        diffs.iter().find(|d| d.kind == "unreachable" && (opts.to.is_empty() || opts.to.contains(&d.region)))
    {
        return Err(Error::Storage {
            op: "list",
            path: String::new(),
            region: unreachable.region.clone(),
            message: format!(
                "{}; sync needs every target region reachable (or pick others with --to)",
                unreachable.detail
            ),
            not_found: false,
        });
    }
    let tombstones = load_tombstones(repo, &listings)?;
    let mut report = SyncReport::default();
    let targeted = |region: &str| opts.to.is_empty() || opts.to.iter().any(|t| t == region);

    // Copy what is missing or bad, one object at a time per target, several in parallel.
    let bad: BTreeSet<(&str, &str)> =
        diffs.iter().filter(|d| d.kind == "corrupt").map(|d| (d.region.as_str(), d.path.as_str())).collect();
    let work: Vec<&Difference> =
        diffs.iter().filter(|d| matches!(d.kind, "missing" | "size" | "corrupt") && targeted(&d.region)).collect();
    let results: Vec<(String, String, Result<u64>)> = work
        .par_iter()
        .map(|d| {
            let outcome = copy_one(repo, &listings, &bad, opts, &d.path, &d.region);
            (d.region.clone(), d.path.clone(), outcome)
        })
        .collect();
    for (region, path, outcome) in results {
        match outcome {
            Ok(n) => {
                report.bytes_copied += n;
                report.copied.push((region, path));
            }
            Err(e) => report.failed.push(format!("{path} → region {region}: {e}")),
        }
    }

    finish_deletes(repo, &listings, &tombstones, opts, &mut report)?;
    Ok(report)
}

/// Deletes, in every (targeted) region, what tombstones list; then removes tombstones no region needs any more.
fn finish_deletes(
    repo: &Repository,
    listings: &[RegionListing],
    tombstones: &BTreeMap<String, BTreeSet<String>>,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    let regions = repo.storage.regions();
    let targeted = |region: &str| opts.to.is_empty() || opts.to.iter().any(|t| t == region);
    for (tomb, paths) in tombstones {
        let mut all_gone = true;
        for (l, r) in listings.iter().zip(regions) {
            let Some(objects) = &l.objects else {
                all_gone = false;
                continue;
            };
            for p in paths.iter().filter(|p| objects.contains_key(*p)) {
                if !targeted(&r.name) {
                    all_gone = false;
                    continue;
                }
                if !opts.dry_run
                    && let Err(e) = r.backend.delete(p)
                {
                    report.failed.push(format!("delete {p} in region {}: {e}", r.name));
                    all_gone = false;
                    continue;
                }
                report.removed.push((r.name.clone(), p.clone()));
            }
        }
        if all_gone && opts.to.is_empty() {
            if !opts.dry_run {
                for r in regions {
                    r.backend.delete(tomb)?;
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
    if repo.storage.regions().len() < 2 {
        return Ok(report);
    }
    let listings = list_regions(repo);
    let tombstones = load_tombstones(repo, &listings)?;
    finish_deletes(repo, &listings, &tombstones, &SyncOptions::default(), &mut report)?;
    Ok(report)
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
    let regions = repo.storage.regions();
    let mut tried = Vec::new();
    for (l, r) in listings.iter().zip(regions) {
        let has = l.objects.as_ref().is_some_and(|o| o.contains_key(path));
        if r.name == target || !has || bad.contains(&(r.name.as_str(), path)) {
            continue;
        }
        if !opts.from.is_empty() && !opts.from.contains(&r.name) {
            continue;
        }
        let bytes: Bytes = match r.backend.read(path).and_then(|b| verify_content(repo, path, &b).map(|_| b)) {
            Ok(b) => b,
            Err(e) => {
                tried.push(format!("{}: {e}", r.name));
                continue;
            }
        };
        let n = bytes.len() as u64;
        if !opts.dry_run {
            let dest = regions.iter().find(|r| r.name == target).expect("target region exists");
            dest.backend.write(path, bytes)?;
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

/// One region's health for `gumvault regions`.
#[derive(Clone, Debug, Serialize)]
pub struct RegionHealth {
    pub name: String,
    pub url: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub objects: u64,
    pub bytes: u64,
    /// Objects other regions have that this one lacks.
    pub missing: u64,
    pub missing_bytes: u64,
    /// Objects a prune deleted elsewhere that this one still holds.
    pub to_remove: u64,
}

/// Health of every region.
pub fn health(repo: &Repository) -> Result<Vec<RegionHealth>> {
    let listings = list_regions(repo);
    let diffs = compare(repo, &listings, false)?;
    let union: BTreeMap<&String, u64> =
        listings.iter().filter_map(|l| l.objects.as_ref()).flat_map(|o| o.iter()).map(|(p, s)| (p, *s)).collect();
    Ok(listings
        .iter()
        .zip(repo.storage.regions())
        .map(|(l, r)| {
            let mine: Vec<&Difference> = diffs.iter().filter(|d| d.region == l.name).collect();
            let missing: Vec<&&Difference> = mine.iter().filter(|d| d.kind == "missing").collect();
            RegionHealth {
                name: l.name.clone(),
                url: r.url.clone(),
                reachable: l.objects.is_some(),
                error: l.error.clone(),
                objects: l.objects.as_ref().map(|o| o.len() as u64).unwrap_or(0),
                bytes: l.objects.as_ref().map(|o| o.values().sum()).unwrap_or(0),
                missing: missing.len() as u64,
                missing_bytes: missing.iter().map(|d| union.get(&d.path).copied().unwrap_or(0)).sum(),
                to_remove: mine.iter().filter(|d| d.kind == "deleted-elsewhere").count() as u64,
            }
        })
        .collect())
}

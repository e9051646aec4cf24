//! Comparing regions: what each holds, how they differ (`check --regions`), and each region's health.
//!
//! Every object a region should hold is compared; leases are short-lived and not. Content-addressed objects are
//! verified by hashing them against their names, the config by decrypting it, key files by parsing them (see
//! [`Repository::verify_copy`]).

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::format::objects::ObjectKind;
use crate::repo::Repository;
use crate::repo::regions::RegionView;

/// What one region holds.
pub struct RegionListing {
    /// The region.
    pub name: String,
    /// `None` when the region could not be listed.
    pub objects: Option<BTreeMap<String, u64>>,
    /// Why it could not be listed.
    pub error: Option<String>,
}

/// Lists every region (in parallel).
pub fn list_regions(repo: &Repository) -> Vec<RegionListing> {
    repo.regions()
        .par_iter()
        .map(|r| match listing_of(r) {
            Ok(objects) => RegionListing { name: r.name().to_string(), objects: Some(objects), error: None },
            Err(crate::Error::Storage(e)) => {
                RegionListing { name: r.name().to_string(), objects: None, error: Some(e.message) }
            }
            Err(e) => RegionListing { name: r.name().to_string(), objects: None, error: Some(e.to_string()) },
        })
        .collect()
}

/// What a region holds; a region with another repository in it is not looked into (it is reported as
/// unreachable, so nothing is copied into or out of it).
fn listing_of(r: &RegionView<'_>) -> Result<BTreeMap<String, u64>> {
    if r.is_foreign() {
        return Err(crate::Error::InvalidInput("it holds another repository; it is left alone".into()));
    }
    r.list_all()
}

/// A disagreement between regions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The region where the object is missing, differs or is damaged.
    pub region: String,
    /// The object's path in the repository (empty for an unreachable region).
    pub path: String,
    /// `missing`, `size`, `corrupt`, `conflict` (WAL files whose copies hold different files), `deleted-elsewhere`,
    /// `unreachable`.
    pub kind: &'static str,
    /// What is wrong, for people (the error, or the sizes that differ); may be empty.
    pub detail: String,
}

/// Objects deleted by a prune or forget that some region may still hold, from every tombstone.
pub fn load_tombstones(repo: &Repository, listings: &[RegionListing]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let names: BTreeSet<&String> = listings
        .iter()
        .filter_map(|l| l.objects.as_ref())
        .flat_map(|o| o.keys())
        .filter(|p| matches!(ObjectKind::parse_path(p), Some((ObjectKind::Tombstone, _))))
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let Some(id) = ObjectKind::id_of_path(name) else { continue };
        out.insert(name.clone(), repo.read_tombstone(&id)?.into_iter().collect());
    }
    Ok(out)
}

/// True for objects whose copies must have equal sizes (the config and key files may differ per region).
fn is_content_addressed(path: &str) -> bool {
    ObjectKind::parse_path(path).is_some_and(|(kind, _)| kind.is_content_addressed())
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
                Some(s) if s != size && is_content_addressed(path) => diffs.push(Difference {
                    region: l.name.clone(),
                    path: (*path).clone(),
                    kind: "size",
                    detail: format!("{s} bytes here, {size} elsewhere"),
                }),
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

/// One copy verified: its region, its path, and for a WAL file the hash of the file it holds.
type CopyCheck<'a> = (&'a str, &'a String, Result<Option<[u8; 32]>>);

/// Reads and verifies every copy in every region. WAL files are not content-addressed, so their copies are also
/// compared by the file they hold: two regions holding different files under one name is a conflict (never
/// overwritten by `sync`, shown for a person to judge).
fn verify_copies(repo: &Repository, listings: &[RegionListing], deleted: &BTreeSet<&String>) -> Vec<Difference> {
    let regions = repo.regions();
    let jobs: Vec<(&RegionView<'_>, &String)> = listings
        .iter()
        .zip(&regions)
        .filter_map(|(l, r)| l.objects.as_ref().map(|o| (r, o)))
        .flat_map(|(r, o)| o.keys().filter(|p| !deleted.contains(p)).map(move |p| (r, p)))
        .collect();
    let outcomes: Vec<CopyCheck<'_>> =
        jobs.par_iter().map(|(r, path)| (r.name(), *path, r.read_verified_content(path).map(|(_, h)| h))).collect();
    let mut diffs = Vec::new();
    let mut hashes: BTreeMap<&String, Vec<(&str, [u8; 32])>> = BTreeMap::new();
    for (region, path, outcome) in outcomes {
        match outcome {
            Err(e) => diffs.push(Difference {
                region: region.to_string(),
                path: path.clone(),
                kind: "corrupt",
                detail: e.to_string(),
            }),
            Ok(Some(hash)) => hashes.entry(path).or_default().push((region, hash)),
            Ok(None) => {}
        }
    }
    for (path, copies) in hashes {
        let Some((first_region, first)) = copies.first().copied() else { continue };
        for (region, hash) in copies.iter().filter(|(_, h)| *h != first) {
            diffs.push(Difference {
                region: region.to_string(),
                path: path.clone(),
                kind: "conflict",
                detail: format!(
                    "this region's copy holds another file than region {first_region}'s ({} vs {}); left alone",
                    hex::encode(&hash[..8]),
                    hex::encode(&first[..8])
                ),
            });
        }
    }
    diffs
}

/// One region's health for `gumvault regions`.
#[derive(Clone, Debug, Serialize)]
pub struct RegionHealth {
    /// The region's name.
    pub name: String,
    /// The region's storage URL.
    pub url: String,
    /// True if the region could be listed.
    pub reachable: bool,
    /// Why it could not be listed, when it could not.
    pub error: Option<String>,
    /// Objects the region holds (0 when unreachable).
    pub objects: u64,
    /// Bytes the region holds (0 when unreachable).
    pub bytes: u64,
    /// Objects other regions have that this one lacks.
    pub missing: u64,
    /// Bytes of those missing objects.
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
        .zip(repo.regions())
        .map(|(l, r)| {
            let mine: Vec<&Difference> = diffs.iter().filter(|d| d.region == l.name).collect();
            let missing: Vec<&&Difference> = mine.iter().filter(|d| d.kind == "missing").collect();
            RegionHealth {
                name: l.name.clone(),
                url: r.url().to_string(),
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

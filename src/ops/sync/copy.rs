//! `sync --into URL`: the whole repository, as this command sees it, copied into a fresh location — above all
//! a view `--as-of` a time before an attack, copied into a new bucket (or region) to recover. Every object is
//! verified before it is copied; the key files and the config come last, so an interrupted copy is not yet a
//! repository (run it again into an emptied location).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use rayon::prelude::*;

use super::SyncReport;
use crate::error::{Error, Result};
use crate::format::objects::ObjectKind;
use crate::repo::Repository;
use crate::repo::regions::{CopyTarget, RegionView, free_location, is_remote, list_location};
use crate::repo::session::OpenOptions;

/// Copies every object of the repository `open` opens into the empty location at `url`. Meanwhile, against object
/// storage, the target is asked whether it is free and the repository's location (`source`, as of its time) is
/// listed: neither needs the key, and against a distant region each is a round trip or two the unlocking would
/// otherwise be followed by. The early listing is used only when the repository is that one location.
pub fn copy_into(
    open: impl FnOnce() -> Result<Repository> + Send,
    source: &OpenOptions,
    url: &str,
    dry_run: bool,
) -> Result<SyncReport> {
    let (repo, free, early) = std::thread::scope(|scope| {
        // A directory is looked at only after the password opened the key: looking creates it.
        let free = scope.spawn(|| is_remote(url).then(|| free_location(url)));
        let early = scope.spawn(|| list_location(&source.url, source.as_of));
        let repo = open();
        (repo, free.join().expect("checking the target does not panic"), early.join().ok().flatten())
    });
    let repo = repo?;
    let target = repo.copy_target_in(free.unwrap_or_else(|| free_location(url))?)?;
    let regions = repo.regions();
    let sources = match early {
        Some(listing) if matches!(regions.as_slice(), [only] if only.url() == source.url) => {
            listing?.into_iter().map(|(p, size)| (p, (0, size))).collect()
        }
        _ => list_sources(&regions)?,
    };
    copy_listed(&repo, &regions, target, sources, dry_run)
}

/// Copies the objects `sources` lists (path → region index, size) into `target`.
fn copy_listed(
    repo: &Repository,
    regions: &[RegionView<'_>],
    target: CopyTarget<'_>,
    sources: BTreeMap<String, (usize, u64)>,
    dry_run: bool,
) -> Result<SyncReport> {
    // Key files and the config last: until they are there, the copy is not a repository.
    let last = |p: &str| matches!(ObjectKind::parse_path(p), Some((ObjectKind::Key | ObjectKind::Config, _)));
    let (tail, mut body): (Vec<_>, Vec<_>) = sources.into_iter().partition(|(p, _)| last(p));
    // The largest first, so the copy does not end waiting on one big object started last.
    body.sort_by_key(|(_, (_, size))| std::cmp::Reverse(*size));
    let mut report = SyncReport::default();
    // The largest object stands for the body: when it streams, so do (nearly) all.
    let streamed = !dry_run && body.first().is_some_and(|(p, _)| target.streams(p));
    let in_flight = repo.copy_concurrency(target.is_remote(), streamed)?;
    let read = |path: &str, (i, size): (usize, u64)| regions[i].read_verified_sized(path, size);
    let copy_body = |path: &str, at: (usize, u64)| copy_one(regions, path, at, &target, dry_run);
    // The tail is read and verified beside the body's copies, and written once they are all in place.
    let (copied, tail_read) = std::thread::scope(|scope| {
        let tail_read = scope.spawn(|| {
            let read: HashMap<String, Result<Bytes>> = tail.iter().map(|(p, at)| (p.clone(), read(p, *at))).collect();
            Mutex::new(read)
        });
        let copied = super::with_copy_threads(in_flight, || copy_all(&body, copy_body));
        (copied, tail_read.join().expect("reading the key files does not panic"))
    });
    tally(copied?, &target, &mut report)?;
    let write_tail = |path: &str, _: (usize, u64)| {
        let bytes = tail_read.lock().expect("tail lock").remove(path);
        let bytes = bytes.unwrap_or_else(|| Err(Error::corrupt(path, "not read")))?;
        write_whole(&target, path, bytes, dry_run)
    };
    let copied = super::with_copy_threads(in_flight, || copy_all(&tail, write_tail));
    tally(copied?, &target, &mut report)?;
    Ok(report)
}

/// Copies one object of the body from region `i`: as it streams in when the target takes it so (most objects:
/// no more than a few MiB of each is held), else read whole and verified, then written. A streamed copy that
/// fails other than on a damaged source is tried once more the whole way, whose reads and writes are retried.
fn copy_one(
    regions: &[RegionView<'_>],
    path: &str,
    (i, size): (usize, u64),
    target: &CopyTarget<'_>,
    dry_run: bool,
) -> Result<u64> {
    if !dry_run && target.streams(path) {
        match regions[i].copy_streamed(path, size, target) {
            Ok(()) => return Ok(size),
            Err(e @ Error::Corrupt { .. }) => return Err(e),
            Err(_) => {}
        }
    }
    let bytes = regions[i].read_verified_sized(path, size)?;
    write_whole(target, path, bytes, dry_run)
}

/// Writes an object read whole (unless `dry_run`); its size.
fn write_whole(target: &CopyTarget<'_>, path: &str, bytes: Bytes, dry_run: bool) -> Result<u64> {
    let n = bytes.len() as u64;
    if !dry_run {
        target.write(path, bytes)?;
    }
    Ok(n)
}

/// Each object from the first region (in read order) that lists it, with its size there; the regions are listed
/// at once.
fn list_sources(regions: &[RegionView<'_>]) -> Result<BTreeMap<String, (usize, u64)>> {
    let listings: Vec<(usize, Result<BTreeMap<String, u64>>)> = std::thread::scope(|scope| {
        let running: Vec<_> = regions
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_foreign())
            .map(|(i, r)| (i, scope.spawn(move || r.list_all())))
            .collect();
        running.into_iter().map(|(i, h)| (i, h.join().expect("a listing does not panic"))).collect()
    });
    let mut sources: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (i, listing) in listings {
        match listing {
            Ok(listing) => listing.into_iter().for_each(|(p, size)| {
                sources.entry(p).or_insert((i, size));
            }),
            Err(e) if regions.len() == 1 => return Err(e),
            Err(_) => {}
        }
    }
    Ok(sources)
}

/// Copies every object with `copy`, several at once; each path with the bytes copied or the error.
fn copy_all(
    items: &[(String, (usize, u64))],
    copy: impl Fn(&str, (usize, u64)) -> Result<u64> + Sync,
) -> Vec<(String, Result<u64>)> {
    items.par_iter().with_max_len(1).map(|(path, at)| (path.clone(), copy(path, *at))).collect()
}

/// Counts what was copied; any failure stops the copy before the next batch.
fn tally(copied: Vec<(String, Result<u64>)>, target: &CopyTarget<'_>, report: &mut SyncReport) -> Result<()> {
    for (path, outcome) in copied {
        match outcome {
            Ok(n) => {
                report.bytes_copied += n;
                report.copied.push(("into".to_string(), path));
            }
            Err(e) => report.failed.push(format!("{path}: {e}")),
        }
    }
    if !report.failed.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} objects could not be copied into {} (e.g. {}); the copy is incomplete and has no config yet",
            report.failed.len(),
            target.url(),
            report.failed[0]
        )));
    }
    Ok(())
}

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
use crate::repo::regions::{CopyTarget, RegionView};

/// Copies every object into the empty location at `url`.
pub fn copy_into(repo: &Repository, url: &str, dry_run: bool) -> Result<SyncReport> {
    let regions = repo.regions();
    // The target is checked while the source regions are listed: each is a round trip or two away.
    let (target, sources) = std::thread::scope(|scope| {
        let target = scope.spawn(|| repo.copy_target(url));
        let sources = list_sources(&regions);
        (target.join().expect("checking the target does not panic"), sources)
    });
    let (target, sources) = (target?, sources?);
    // Key files and the config last: until they are there, the copy is not a repository.
    let last = |p: &str| matches!(ObjectKind::parse_path(p), Some((ObjectKind::Key | ObjectKind::Config, _)));
    let (tail, body): (Vec<_>, Vec<_>) = sources.into_iter().partition(|(p, _)| last(p));
    let mut report = SyncReport::default();
    let in_flight = repo.copy_concurrency(target.is_remote())?;
    let read = |path: &str, (i, size): (usize, u64)| regions[i].read_verified_sized(path, size);
    // The tail is read and verified beside the body's copies, and written once they are all in place.
    let (copied, tail_read) = std::thread::scope(|scope| {
        let tail_read = scope.spawn(|| {
            let read: HashMap<String, Result<Bytes>> = tail.iter().map(|(p, at)| (p.clone(), read(p, *at))).collect();
            Mutex::new(read)
        });
        let copied = super::with_copy_threads(in_flight, || copy_all(&body, read, &target, dry_run));
        (copied, tail_read.join().expect("reading the key files does not panic"))
    });
    tally(copied?, &target, &mut report)?;
    let take_read = |path: &str, _: (usize, u64)| {
        tail_read.lock().expect("tail lock").remove(path).unwrap_or_else(|| Err(Error::corrupt(path, "not read")))
    };
    let copied = super::with_copy_threads(in_flight, || copy_all(&tail, take_read, &target, dry_run));
    tally(copied?, &target, &mut report)?;
    Ok(report)
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

/// Reads (with `read`) and writes every object, several at once; each path with the bytes copied or the error.
fn copy_all(
    items: &[(String, (usize, u64))],
    read: impl Fn(&str, (usize, u64)) -> Result<Bytes> + Sync,
    target: &CopyTarget<'_>,
    dry_run: bool,
) -> Vec<(String, Result<u64>)> {
    items
        .par_iter()
        .with_max_len(1)
        .map(|(path, at)| {
            let outcome = read(path, *at).and_then(|bytes| {
                let n = bytes.len() as u64;
                if !dry_run {
                    target.write(path, bytes)?;
                }
                Ok(n)
            });
            (path.clone(), outcome)
        })
        .collect()
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

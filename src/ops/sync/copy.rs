//! `sync --into URL`: the whole repository, as this command sees it, copied into a fresh location — above all
//! a view `--as-of` a time before an attack, copied into a new bucket (or region) to recover. Every object is
//! verified before it is copied; the key files and the config come last, so an interrupted copy is not yet a
//! repository (run it again into an emptied location).

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::SyncReport;
use crate::error::{Error, Result};
use crate::format::objects::ObjectKind;
use crate::repo::Repository;

/// Copies every object into the empty location at `url`.
pub fn copy_into(repo: &Repository, url: &str, dry_run: bool) -> Result<SyncReport> {
    let target = repo.copy_target(url)?;
    let regions = repo.regions();
    // Each object from the first region (in read order) that lists it.
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in regions.iter().enumerate().filter(|(_, r)| !r.is_foreign()) {
        match r.list_all() {
            Ok(listing) => listing.into_keys().for_each(|p| {
                sources.entry(p).or_insert(i);
            }),
            Err(e) if regions.len() == 1 => return Err(e),
            Err(_) => {}
        }
    }
    // Key files and the config last: until they are there, the copy is not a repository.
    let last = |p: &str| matches!(ObjectKind::parse_path(p), Some((ObjectKind::Key | ObjectKind::Config, _)));
    let (tail, body): (Vec<_>, Vec<_>) = sources.into_iter().partition(|(p, _)| last(p));
    let mut report = SyncReport::default();
    let in_flight = repo.copy_concurrency(target.is_remote())?;
    for batch in [body, tail] {
        let copied: Vec<(String, Result<u64>)> = super::with_copy_threads(in_flight, || {
            batch
                .par_iter()
                .with_max_len(1)
                .map(|(path, i)| {
                    let outcome = regions[*i].read_verified(path).and_then(|bytes| {
                        let n = bytes.len() as u64;
                        if !dry_run {
                            target.write(path, bytes)?;
                        }
                        Ok(n)
                    });
                    (path.clone(), outcome)
                })
                .collect()
        })?;
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
    }
    Ok(report)
}

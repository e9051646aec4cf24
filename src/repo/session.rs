//! A repository opened the way a command opens it: from a URL (or the first region given), with every region its
//! config lists, and its catalog brought up to date.

use std::path::PathBuf;

use super::Repository;
use super::catalog::{Catalog, Listing, Needs};
use super::key_hint;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::format::repo_config::RegionSpec;
use crate::storage::Storage;

/// An open repository and its synced catalog.
pub struct Session {
    /// The repository.
    pub repo: Repository,
    /// Its local catalog.
    pub catalog: Catalog,
    /// The URL it was opened at (local state such as the WAL push outcome is kept by URL).
    pub url: String,
    /// The local cache directory (the catalog's, and `wal-push`'s state).
    pub cache_dir: PathBuf,
}

/// Where a repository is and which of its regions to use.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The URL opened first (its config names the other regions).
    pub url: String,
    /// Regions whose stored URL is replaced for this command, by name.
    pub regions: Vec<RegionSpec>,
    /// Regions a write must reach (default: the stored value).
    pub min_regions: Option<usize>,
    /// Regions reads try first, in this order.
    pub prefer: Vec<String>,
    /// Use only `url`, not the other regions (recovery).
    pub single_region: bool,
    /// Where the catalog lives.
    pub cache_dir: PathBuf,
    /// Regions whose directory is created when missing (`sync --rebuild NAME`): nothing else ever creates one.
    pub rebuild: Vec<String>,
    /// Open every region read-only as it was at this time, from object versions (`--as-of`).
    pub as_of: Option<jiff::Timestamp>,
}

impl Repository {
    /// Opens the repository at `opts.url` with `password`, then every region its config lists (or, with
    /// `single_region`, only that one).
    pub fn open_with(opts: &OpenOptions, password: &[u8]) -> Result<Repository> {
        let mut storage = Storage::open_url(&opts.url)?;
        if let Some(at) = opts.as_of {
            storage = storage.as_of(at);
        }
        let mut repo = open_remembering_key(storage, opts, password)?;
        if opts.single_region {
            if let Some(n) = opts.min_regions.filter(|n| *n > 1) {
                return Err(Error::InvalidInput(format!("--min-regions {n} cannot be met with --single-region")));
            }
            repo.use_single_region()?;
        } else {
            let rebuild: Vec<&str> = opts.rebuild.iter().map(String::as_str).collect();
            repo.connect_regions_creating(&opts.regions, opts.min_regions, &opts.prefer, &rebuild)?;
        }
        Ok(repo)
    }
}

/// Opens the repository in `storage`, against object storage with the key file this machine opened it with last
/// time as a head start (see [`super::key_hint`]), which is kept for next time when it changed.
fn open_remembering_key(storage: Storage, opts: &OpenOptions, password: &[u8]) -> Result<Repository> {
    let hints = storage.has_remote_region() && !opts.cache_dir.as_os_str().is_empty();
    let hint = hints.then(|| key_hint::load(&opts.cache_dir, &opts.url)).flatten();
    let (repo, used) = match Repository::open_hinted(storage, password, hint.as_ref()) {
        Ok(opened) => opened,
        Err(e) => {
            // Perhaps the key was removed elsewhere: its copy does not stay here. A location that did not answer
            // says nothing about the key, and the copy stays for when it does.
            let unreachable = matches!(&e, Error::Storage(s) if super::keys::unreachable(s.kind));
            if hint.is_some() && !unreachable {
                key_hint::forget(&opts.cache_dir, &opts.url);
            }
            return Err(e);
        }
    };
    // A view of the past may open with a key file since replaced: the everyday hint stays.
    if hints && opts.as_of.is_none() && hint.as_ref() != Some(&used) {
        key_hint::store(&opts.cache_dir, &opts.url, &used);
    }
    Ok(repo)
}

impl Session {
    /// Opens the repository and brings its catalog up to date.
    pub fn open(opts: &OpenOptions, password: &[u8]) -> Result<Session> {
        Session::open_syncing(opts, password, Needs::Everything)
    }

    /// Opens the repository and brings only the catalog's snapshots up to date (listing, forget).
    pub fn open_for_snapshots(opts: &OpenOptions, password: &[u8]) -> Result<Session> {
        Session::open_syncing(opts, password, Needs::Snapshots)
    }

    fn open_syncing(opts: &OpenOptions, password: &[u8], needs: Needs) -> Result<Session> {
        let (opened, listed) = open_listing(opts, password, needs);
        let mut repo = opened?;
        // Packs never change under their names, so a view of the past shares the everyday tree cache.
        repo.cache_trees_in(opts.cache_dir.join(repo.id()).join("trees"));
        // A view of the past has a catalog of its own, so the everyday one is not rebuilt back and forth.
        let catalog_dir = match opts.as_of {
            Some(at) => opts.cache_dir.join("as-of").join(at.as_second().to_string()),
            None => opts.cache_dir.clone(),
        };
        // The early listings describe the repository only when it is that one location.
        let listed = listed.filter(|_| matches!(repo.storage.regions(), [only] if only.url == opts.url));
        let catalog = Catalog::open_listed(&catalog_dir, &repo, needs, listed)?;
        if catalog.index_was_rewritten() && opts.as_of.is_none() {
            // A prune (maybe another machine's) deleted packs: the tree cache lets go of the ones it held.
            repo.sweep_tree_cache(|id| catalog.knows_pack(id).unwrap_or(true));
        }
        Ok(Session { repo, catalog, url: opts.url.clone(), cache_dir: opts.cache_dir.clone() })
    }
}

/// Opens the repository while, against object storage, the catalog's listings are taken beside it: the listing
/// needs no key, and a distant region makes each of the opening's requests and each listing a round trip. The
/// listings are `None` when not taken or when one failed (the catalog then lists again, and says why).
fn open_listing(opts: &OpenOptions, password: &[u8], needs: Needs) -> (Result<Repository>, Option<Listing>) {
    let early = match Storage::open_url(&opts.url) {
        Ok(s) if s.has_remote_region() && opts.as_of.is_none() && opts.rebuild.is_empty() => Some(s),
        _ => None,
    };
    let Some(early) = early else { return (Repository::open_with(opts, password), None) };
    std::thread::scope(|scope| {
        let listing = scope.spawn(|| list_early(&early, needs));
        let opened = Repository::open_with(opts, password);
        (opened, listing.join().ok().and_then(|l| l.ok()))
    })
}

/// The snapshots, then (after them, see [`Catalog::sync`]) the index segments when `needs` wants them.
fn list_early(storage: &Storage, needs: Needs) -> Result<Listing> {
    let ids = |kind: ObjectKind| -> Result<Vec<Id>> {
        Ok(storage.list(kind.prefix())?.into_iter().filter_map(|(p, _)| ObjectKind::id_of_path(&p)).collect())
    };
    let snapshots = ids(ObjectKind::Snapshot)?;
    let index = match needs {
        Needs::Everything => Some(ids(ObjectKind::Index)?),
        Needs::Snapshots => None,
    };
    Ok(Listing { snapshots, index })
}

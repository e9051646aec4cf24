//! Creating and opening a repository, and connecting every region its config lists.

use super::key_hint::KeyHint;
use super::{InitOptions, Repository, keys};
use crate::error::{Error, Result};
use crate::format::chunker::Gear;
use crate::format::crypto::{self, MasterKey};
use crate::format::objects::ObjectKind;
use crate::format::repo_config::{REPO_VERSION, RegionSpec, RepoConfig, parse_config};
use crate::storage::Storage;

impl Repository {
    /// Creates a repository at `url`, or, when `opts` names regions, in every one of them (`url` unused).
    pub fn create(url: &str, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        let storage = if opts.regions.is_empty() {
            Storage::create_url(url)?
        } else {
            let names: Vec<&str> = opts.regions.iter().map(|r| r.name.as_str()).collect();
            Storage::open_regions_creating(&opts.regions, opts.min_regions.map(|n| n as usize), &names)?
        };
        Repository::init(storage, password, opts)
    }

    /// Creates a repository: a master key, a key file for `password`, the config. Refuses a non-empty location.
    pub fn init(storage: Storage, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        refuse_existing(&storage)?;
        for (name, p) in &opts.chunker_profiles {
            p.validate().map_err(|e| Error::InvalidInput(format!("chunker profile {name}: {e}")))?;
        }
        let key = MasterKey::generate();
        let config = RepoConfig {
            version: REPO_VERSION,
            id: hex::encode(crypto::random_bytes::<16>()),
            chunker_profiles: opts.chunker_profiles.clone(),
            compression_level: opts.compression_level,
            pack_size: opts.pack_size,
            tree_pack_size: (opts.pack_size / 4).max(1 << 20),
            regions: opts.regions.clone(),
            min_regions: opts.min_regions,
            object_lock: opts.object_lock,
            storage_class: opts.storage_class.clone(),
        };
        super::lock::check_bucket_settings(&storage, &config)?;
        let gear = Gear::new(key.gear_table());
        let repo = Repository { storage, key, config, gear, key_id: String::new(), tree_cache: None };
        let key_id = keys::write_key_file(&repo, &repo.key, password, opts.kdf)?;
        repo.put(
            ObjectKind::Config,
            &ObjectKind::Config.path(""),
            repo.key.seal(ObjectKind::Config.aad(), repo.config.to_bytes()),
        )?;
        repo.storage.restore_reserve();
        Ok(Repository { key_id, ..repo })
    }

    /// Opens a repository with a password. The config is fetched while the key files are listed and unlocked,
    /// so against a distant region opening costs the key's round trips and not one more.
    pub fn open(storage: Storage, password: &[u8]) -> Result<Repository> {
        Ok(Repository::open_hinted(storage, password, None)?.0)
    }

    /// [`Repository::open`], unlocking the key file of `hint` (see [`super::key_hint`]) while the repository is
    /// asked whether it still holds it; also the key file that opened it, to keep as the next hint.
    pub fn open_hinted(storage: Storage, password: &[u8], hint: Option<&KeyHint>) -> Result<(Repository, KeyHint)> {
        let config_path = ObjectKind::Config.path("");
        let (unlocked, early_config) = std::thread::scope(|scope| {
            let early = scope.spawn(|| storage.read(&config_path));
            let unlocked = keys::unlock(&storage, password, hint);
            (unlocked, early.join().ok().and_then(|r| r.ok()))
        });
        let keys::Unlocked { key, file } = unlocked?;
        let open_config = |sealed: &[u8]| {
            key.open(ObjectKind::Config.aad(), sealed).ok_or_else(|| Error::corrupt("config", "authentication failed"))
        };
        // The early copy is taken only when it opens; otherwise every region is tried in turn, as for any read.
        let plain = match early_config.as_deref().map(open_config) {
            Some(Ok(plain)) => plain,
            _ => match storage.read_with(&config_path, |sealed| open_config(&sealed)) {
                Ok(p) => p,
                Err(e) if e.is_not_found() => {
                    return Err(Error::corrupt("config", "the repository has keys but no config object"));
                }
                Err(e) => return Err(e),
            },
        };
        let config = parse_config(&plain)?;
        let gear = Gear::new(key.gear_table());
        let key_id = file.name.clone();
        Ok((Repository { storage, key, config, gear, key_id, tree_cache: None }, file))
    }

    /// Opens every region the config lists (URLs replaced by `overrides` of the same name), in place of the
    /// single location the repository was opened from. `min_regions` overrides the stored value.
    pub fn connect_regions(
        &mut self,
        overrides: &[RegionSpec],
        min_regions: Option<usize>,
        prefer: &[String],
    ) -> Result<()> {
        self.connect_regions_creating(overrides, min_regions, prefer, &[])
    }

    /// [`Repository::connect_regions`], creating the directories of the regions named in `create` when they are
    /// missing (`sync --rebuild NAME`).
    pub fn connect_regions_creating(
        &mut self,
        overrides: &[RegionSpec],
        min_regions: Option<usize>,
        prefer: &[String],
        create: &[&str],
    ) -> Result<()> {
        if self.config.regions.is_empty() {
            if let Some(name) = overrides.first().map(|o| &o.name).or(prefer.first()) {
                return Err(Error::InvalidInput(format!(
                    "region {name}: this repository has no named regions (it was created without --region)"
                )));
            }
            return match min_regions {
                Some(n) => self.storage.set_min_regions(n),
                None => Ok(()),
            };
        }
        self.check_region_names(overrides, prefer)?;
        let mut specs: Vec<RegionSpec> = self
            .config
            .regions
            .iter()
            .map(|r| overrides.iter().find(|o| o.name == r.name).cloned().unwrap_or_else(|| r.clone()))
            .collect();
        // Reads try preferred regions first, in the order given, then the rest in configured order.
        specs.sort_by_key(|r| prefer.iter().position(|p| p == &r.name).unwrap_or(usize::MAX));
        let min = min_regions.or(self.config.min_regions.map(|n| n as usize));
        let storage = Storage::open_regions_creating(&specs, min, create)?;
        self.storage = match self.storage.as_of_time() {
            Some(at) => storage.as_of(at),
            None => storage,
        };
        self.verify_regions();
        Ok(())
    }

    /// Sets aside every region that is not this repository: its `config` must be there, open with this key and
    /// carry this repository's id. Done once, when the regions are opened, so no write ever counts a region that
    /// would lack everything it deduplicates against (a disk not mounted, a bucket of another repository).
    fn verify_regions(&self) {
        let path = ObjectKind::Config.path("");
        // Every region's config at once: against distant regions each read is a round trip of its own.
        let copies: Vec<Result<bytes::Bytes>> = std::thread::scope(|scope| {
            let reads: Vec<_> = self.storage.regions().iter().map(|r| scope.spawn(|| r.backend.read(&path))).collect();
            reads.into_iter().map(|h| h.join().expect("a config read does not panic")).collect()
        });
        for (r, copy) in self.storage.regions().iter().zip(copies) {
            let verdict = match copy {
                Ok(sealed) => match self.key.open(ObjectKind::Config.aad(), &sealed).map(|p| parse_config(&p)) {
                    Some(Ok(c)) if c.id == self.config.id => None,
                    Some(Ok(c)) => {
                        Some((format!("it holds another repository (id {})", &c.id[..8.min(c.id.len())]), true))
                    }
                    _ => {
                        Some(("it holds another repository (its config does not open with this key)".to_string(), true))
                    }
                },
                Err(e) if e.is_not_found() => Some((
                    format!(
                        "it holds no repository (no config); `gumvault sync --to {}` makes it a copy again",
                        r.name
                    ),
                    false,
                )),
                Err(Error::Storage(e)) if e.kind == crate::error::StorageErrorKind::Unavailable => {
                    Some((e.message, false))
                }
                Err(_) => None, // unreachable now: the region's failures are handled as they come
            };
            if let Some((why, foreign)) = verdict {
                self.storage.set_unusable(&r.name, why, foreign);
            }
        }
    }

    /// Every name in `overrides` and `prefer` must be a region of the repository.
    fn check_region_names(&self, overrides: &[RegionSpec], prefer: &[String]) -> Result<()> {
        let known: Vec<&str> = self.config.regions.iter().map(|r| r.name.as_str()).collect();
        if let Some(o) = overrides.iter().find(|o| !known.contains(&o.name.as_str())) {
            return Err(Error::InvalidInput(format!(
                "--region {}: no such region (the repository's regions: {})",
                o.name,
                known.join(", ")
            )));
        }
        if let Some(p) = prefer.iter().find(|p| !known.contains(&p.as_str())) {
            return Err(Error::InvalidInput(format!("--prefer-region {p}: no such region")));
        }
        Ok(())
    }
}

/// Every region must answer, and hold no repository, before anything is written: a repository is created whole
/// or not at all. Every region's config and key listing are asked for at once (two round trips each to a distant
/// region).
pub(super) fn refuse_existing(storage: &Storage) -> Result<()> {
    let config = ObjectKind::Config.path("");
    let keys = ObjectKind::Key.prefix();
    let answers: Vec<Result<bool>> = std::thread::scope(|scope| {
        let asked: Vec<_> = storage
            .regions()
            .iter()
            .map(|r| (scope.spawn(|| r.backend.stat(&config)), scope.spawn(|| r.backend.list(keys))))
            .collect();
        asked
            .into_iter()
            .map(|(stat, list)| {
                let config = stat.join().expect("a stat does not panic");
                let keys = list.join().expect("a listing does not panic");
                Ok(config?.is_some() || !keys?.is_empty())
            })
            .collect()
    });
    for (r, holds_one) in storage.regions().iter().zip(answers) {
        if holds_one? {
            return Err(Error::RepoExists { url: r.url.clone() });
        }
    }
    Ok(())
}

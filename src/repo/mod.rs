//! A repository: its storage, its master key and its config. Opening needs a password that unlocks one of the key
//! files; everything else (config, index, snapshots, packs) is sealed under the master key.

pub mod catalog;
pub mod lease;
pub mod reader;

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::blob::{self, BlobInfo, BlobKind};
use crate::format::chunker::{ChunkerParams, Gear};
use crate::format::crypto::{self, KdfParams, MasterKey};
use crate::format::id::Id;
use crate::format::index::{self, PackEntry};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::storage::{self, RegionSpec, Storage};

/// Version of the repository format this build writes and reads.
pub const REPO_VERSION: u32 = 1;
const CONFIG_AAD: &[u8] = b"gumvault config v1";
const KEY_AAD: &[u8] = b"gumvault key v1";
const SNAPSHOT_AAD: &[u8] = b"gumvault snapshot v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The repository config, sealed in the `config` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub version: u32,
    /// Random id; names the local catalog.
    pub id: String,
    /// Named chunker profiles; `files` and `stream` always exist.
    pub chunker_profiles: BTreeMap<String, ChunkerParams>,
    /// zstd level (0 disables compression).
    pub compression_level: i32,
    /// Target size of data packs in bytes.
    pub pack_size: u32,
    /// Target size of tree packs in bytes.
    pub tree_pack_size: u32,
    /// The regions that each hold the whole repository (empty: just the location it was opened from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionSpec>,
    /// Regions that must hold an object before a write counts as done (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_regions: Option<u32>,
}

/// Options for `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub chunker_profiles: BTreeMap<String, ChunkerParams>,
    /// Regions to record (the storage passed to `init` must be opened on exactly these).
    pub regions: Vec<RegionSpec>,
    pub min_regions: Option<u32>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            compression_level: 3,
            pack_size: 16 << 20,
            chunker_profiles: default_profiles(),
            regions: Vec::new(),
            min_regions: None,
        }
    }
}

/// The built-in chunker profiles (measured in docs/benchmarks.md).
pub fn default_profiles() -> BTreeMap<String, ChunkerParams> {
    BTreeMap::from([("files".to_string(), ChunkerParams::FILES), ("stream".to_string(), ChunkerParams::STREAM)])
}

/// A key file: the master key sealed under one password. Stored as plaintext JSON in `keys/<id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub created: jiff::Timestamp,
    pub host: String,
    pub username: String,
    pub kdf: String,
    pub kdf_params: KdfParams,
    /// Base64 of the 16-byte salt.
    pub salt: String,
    /// Base64 of the sealed master key.
    pub master_key: String,
}

impl KeyFile {
    /// Seals `key` under `password`.
    pub fn create(key: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<KeyFile> {
        let salt: [u8; 16] = crypto::random_bytes();
        let wrap = kdf.derive(password, &salt).map_err(Error::InvalidInput)?;
        let sealed = crypto::seal_with_key(&wrap, KEY_AAD, key.bytes().to_vec());
        Ok(KeyFile {
            version: REPO_VERSION,
            created: jiff::Timestamp::now(),
            host: crate::hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            kdf: "argon2id".into(),
            kdf_params: kdf,
            salt: B64.encode(salt),
            master_key: B64.encode(sealed),
        })
    }

    /// Parses a key file, refusing unknown versions.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<KeyFile> {
        let kf: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name, format!("bad key file: {e}")))?;
        if kf.version != REPO_VERSION {
            return Err(Error::UnsupportedVersion {
                what: format!("key {name}"),
                found: kf.version,
                supported: REPO_VERSION,
            });
        }
        if kf.kdf != "argon2id" {
            return Err(Error::corrupt(name, format!("unknown key derivation {:?}", kf.kdf)));
        }
        Ok(kf)
    }

    /// The master key, if `password` is the right one.
    pub fn unlock(&self, name: &str, password: &[u8]) -> Result<Option<MasterKey>> {
        let salt = B64.decode(&self.salt).map_err(|e| Error::corrupt(name, format!("bad salt: {e}")))?;
        let sealed = B64.decode(&self.master_key).map_err(|e| Error::corrupt(name, format!("bad key: {e}")))?;
        let wrap = self.kdf_params.derive(password, &salt).map_err(|e| Error::corrupt(name, e))?;
        match crypto::open_with_key(&wrap, KEY_AAD, &sealed) {
            Some(bytes) => {
                let arr: [u8; 32] =
                    bytes.try_into().map_err(|_| Error::corrupt(name, "master key has the wrong length"))?;
                Ok(Some(MasterKey::from_bytes(arr)))
            }
            None => Ok(None),
        }
    }
}

/// One key slot as `key list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: jiff::Timestamp,
    pub host: String,
    pub username: String,
    pub current: bool,
}

/// An open repository.
pub struct Repository {
    pub storage: Storage,
    pub key: MasterKey,
    pub config: RepoConfig,
    gear: Gear,
    /// The key file this session opened with.
    key_id: String,
}

impl Repository {
    /// Creates a repository: a master key, a key file for `password`, the config. Refuses a non-empty location.
    pub fn init(storage: Storage, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        // Every region must answer before anything is written: a repository is created whole or not at all.
        for r in storage.regions() {
            if r.backend.stat("config")?.is_some() || !r.backend.list("keys/")?.is_empty() {
                return Err(Error::RepoExists { url: r.url.clone() });
            }
        }
        if storage.stat("config")?.is_some() || !storage.list("keys/")?.is_empty() {
            return Err(Error::RepoExists { url: storage.url().to_string() });
        }
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
        };
        let key_id = write_key_file(&storage, &key, password, opts.kdf)?;
        let sealed = key.seal(CONFIG_AAD, serde_json::to_vec(&config).expect("config serializes"));
        storage.write("config", sealed)?;
        let gear = Gear::new(key.gear_table());
        Ok(Repository { storage, key, config, gear, key_id })
    }

    /// Opens a repository with a password.
    pub fn open(storage: Storage, password: &[u8]) -> Result<Repository> {
        let keys = storage.list("keys/")?;
        if keys.is_empty() {
            return Err(Error::RepoNotFound { url: storage.url().to_string() });
        }
        let mut found = None;
        for (path, _) in &keys {
            let kf = KeyFile::parse(path, &storage.read(path)?)?;
            if let Some(key) = kf.unlock(path, password)? {
                found = Some((key, key_name(path)));
                break;
            }
        }
        let (key, key_id) = found.ok_or_else(|| Error::WrongPassword { repo: storage.url().to_string() })?;
        let plain = match storage.read_with("config", |sealed| {
            key.open(CONFIG_AAD, &sealed).ok_or_else(|| Error::corrupt("config", "authentication failed"))
        }) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => {
                return Err(Error::corrupt("config", "the repository has keys but no config object"));
            }
            Err(e) => return Err(e),
        };
        let config = parse_config(&plain)?;
        let gear = Gear::new(key.gear_table());
        Ok(Repository { storage, key, config, gear, key_id })
    }

    /// Opens every region the config lists (URLs replaced by `overrides` of the same name), in place of the
    /// single location the repository was opened from. `min_regions` overrides the stored value.
    pub fn connect_regions(
        &mut self,
        overrides: &[RegionSpec],
        min_regions: Option<usize>,
        prefer: &[String],
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
        for o in overrides {
            if !self.config.regions.iter().any(|r| r.name == o.name) {
                let known: Vec<&str> = self.config.regions.iter().map(|r| r.name.as_str()).collect();
                return Err(Error::InvalidInput(format!(
                    "--region {}: no such region (the repository's regions: {})",
                    o.name,
                    known.join(", ")
                )));
            }
        }
        for p in prefer {
            if !self.config.regions.iter().any(|r| &r.name == p) {
                return Err(Error::InvalidInput(format!("--prefer-region {p}: no such region")));
            }
        }
        let mut specs: Vec<RegionSpec> = self
            .config
            .regions
            .iter()
            .map(|r| overrides.iter().find(|o| o.name == r.name).cloned().unwrap_or_else(|| r.clone()))
            .collect();
        // Reads try preferred regions first, in the order given, then the rest in configured order.
        specs.sort_by_key(|r| prefer.iter().position(|p| p == &r.name).unwrap_or(usize::MAX));
        let min = min_regions.or(self.config.min_regions.map(|n| n as usize));
        self.storage = Storage::open_regions(&specs, min)?;
        Ok(())
    }

    /// The chunker's secret gear table.
    pub fn gear(&self) -> &Gear {
        &self.gear
    }

    /// A named chunker profile.
    pub fn chunker_profile(&self, name: &str) -> Result<ChunkerParams> {
        self.config.chunker_profiles.get(name).copied().ok_or_else(|| {
            let known: Vec<&str> = self.config.chunker_profiles.keys().map(String::as_str).collect();
            Error::InvalidInput(format!("no chunker profile {name:?} in this repository (known: {})", known.join(", ")))
        })
    }

    /// Seals and stores a snapshot manifest; returns its id. Call only after its packs and index are durable.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let sealed = self.key.seal(SNAPSHOT_AAD, snap.to_bytes());
        let id = Id::of_object(&sealed);
        self.storage.write(&storage::snapshot_path(&id), sealed)?;
        Ok(id)
    }

    /// Loads and verifies a snapshot manifest.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let path = storage::snapshot_path(id);
        let plain = self.storage.read_with(&path, |sealed| {
            verify_name(&path, id, &sealed)?;
            self.key.open(SNAPSHOT_AAD, &sealed).ok_or_else(|| Error::corrupt(&path, "authentication failed"))
        })?;
        Snapshot::from_bytes(&plain).map_err(|e| Error::corrupt(&path, e))
    }

    /// Ids of every snapshot in the repository.
    pub fn list_snapshots(&self) -> Result<Vec<Id>> {
        self.live_ids("snapshots/")
    }

    /// Seals and stores an index segment; returns its id.
    pub fn save_index(&self, packs: &[PackEntry]) -> Result<Id> {
        let sealed = index::encode(&self.key, packs);
        let id = Id::of_object(&sealed);
        self.storage.write(&storage::index_path(&id), sealed)?;
        Ok(id)
    }

    /// Loads and verifies an index segment.
    pub fn load_index(&self, id: &Id) -> Result<Vec<PackEntry>> {
        let path = storage::index_path(id);
        self.storage.read_with(&path, |sealed| {
            verify_name(&path, id, &sealed)?;
            index::decode(&self.key, &sealed).map_err(|e| Error::corrupt(&path, e))
        })
    }

    /// Ids of every index segment.
    pub fn list_indexes(&self) -> Result<Vec<Id>> {
        self.live_ids("index/")
    }

    /// Ids under a prefix, less what a prune or forget deleted while some region could not (tombstones): a
    /// region that lagged behind must not bring deleted index segments or snapshots back.
    fn live_ids(&self, prefix: &str) -> Result<Vec<Id>> {
        let listed = self.storage.list(prefix)?;
        let dead = if self.storage.regions().len() > 1 { self.tombstoned()? } else { Default::default() };
        Ok(listed
            .iter()
            .filter(|(p, _)| !dead.contains(p))
            .filter_map(|(p, _)| Id::from_hex(p.rsplit('/').next()?))
            .collect())
    }

    /// Every path listed in a tombstone.
    pub fn tombstoned(&self) -> Result<std::collections::BTreeSet<String>> {
        let mut out = std::collections::BTreeSet::new();
        for (name, _) in self.storage.list(crate::ops::sync::TOMBSTONE_PREFIX)? {
            out.extend(crate::ops::sync::read_tombstone(self, &name)?);
        }
        Ok(out)
    }

    /// Reads, decrypts and verifies one blob from its pack with a range read.
    pub fn read_blob(&self, pack: &Id, offset: u64, info: &BlobInfo) -> Result<Vec<u8>> {
        let path = storage::pack_path(pack);
        self.storage.read_range_with(&path, offset, info.stored_len as u64, |sealed| {
            blob::decode(&self.key, info, &sealed)
                .map_err(|e| Error::corrupt(format!("{path} (blob {} at offset {offset})", info.id.short()), e))
        })
    }

    /// Decodes a tree blob's plaintext.
    pub fn parse_tree(&self, id: &Id, plain: &[u8]) -> Result<Tree> {
        Tree::from_bytes(plain).map_err(|e| Error::corrupt(format!("tree {}", id.short()), e))
    }

    /// Every key slot.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (path, _) in self.storage.list("keys/")? {
            let kf = KeyFile::parse(&path, &self.storage.read(&path)?)?;
            let id = key_name(&path);
            out.push(KeyInfo {
                current: id == self.key_id,
                id,
                created: kf.created,
                host: kf.host,
                username: kf.username,
            });
        }
        out.sort_by_key(|k| k.created);
        Ok(out)
    }

    /// Adds a key slot for another password; returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        write_key_file(&self.storage, &self.key, password, kdf)
    }

    /// Removes a key slot. The slot this session opened with cannot be removed (use `passwd` to change it).
    pub fn remove_key(&self, id_prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> = keys.iter().filter(|k| k.id.starts_with(id_prefix)).collect();
        let key = match matches.as_slice() {
            [one] => *one,
            [] => return Err(Error::InvalidInput(format!("no key with id {id_prefix:?} (see `gumvault key list`)"))),
            _ => return Err(Error::InvalidInput(format!("key id prefix {id_prefix:?} is ambiguous"))),
        };
        if key.current {
            return Err(Error::InvalidInput(
                "refusing to remove the key this command was opened with; open with another password, or use `key passwd`".into(),
            ));
        }
        self.storage.delete(&format!("keys/{}", key.id))?;
        Ok(key.id.clone())
    }

    /// Replaces the current key slot with one for a new password (the new slot is written first).
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<String> {
        let new_id = write_key_file(&self.storage, &self.key, new_password, kdf)?;
        self.storage.delete(&format!("keys/{}", self.key_id))?;
        self.key_id = new_id.clone();
        Ok(new_id)
    }
}

/// Parses and validates the config's plaintext, refusing unknown versions.
pub fn parse_config(plain: &[u8]) -> Result<RepoConfig> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let v: VersionOnly = serde_json::from_slice(plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
    if v.version != REPO_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "the repository".into(),
            found: v.version,
            supported: REPO_VERSION,
        });
    }
    let config: RepoConfig = serde_json::from_slice(plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
    for (name, p) in &config.chunker_profiles {
        p.validate().map_err(|e| Error::corrupt("config", format!("chunker profile {name}: {e}")))?;
    }
    Ok(config)
}

fn write_key_file(storage: &Storage, key: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<String> {
    let kf = KeyFile::create(key, password, kdf)?;
    let id = hex::encode(crypto::random_bytes::<16>());
    storage.write(&format!("keys/{id}"), serde_json::to_vec_pretty(&kf).expect("key files serialize"))?;
    Ok(id)
}

fn key_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Checks that an object's bytes hash to its name.
pub fn verify_name(path: &str, id: &Id, bytes: &[u8]) -> Result<()> {
    if Id::of_object(bytes) != *id {
        return Err(Error::corrupt(path, "content does not match its name (damaged or truncated)"));
    }
    Ok(())
}

/// Blob kinds' pack size targets.
pub fn pack_target(config: &RepoConfig, kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => config.pack_size as usize,
        BlobKind::Tree => config.tree_pack_size as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> InitOptions {
        InitOptions { kdf: KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }, ..Default::default() }
    }

    #[test]
    fn init_open_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let repo = Repository::init(Storage::open_url(url).unwrap(), b"pw1", &fast()).unwrap();
        assert!(matches!(
            Repository::init(Storage::open_url(url).unwrap(), b"pw1", &fast()),
            Err(Error::RepoExists { .. })
        ));
        assert!(matches!(Repository::open(Storage::open_url(url).unwrap(), b"nope"), Err(Error::WrongPassword { .. })));
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            Repository::open(Storage::open_url(other.path().to_str().unwrap()).unwrap(), b"pw1"),
            Err(Error::RepoNotFound { .. })
        ));
        let second = repo.add_key(b"pw2", fast().kdf).unwrap();
        let mut reopened = Repository::open(Storage::open_url(url).unwrap(), b"pw2").unwrap();
        assert_eq!(reopened.config, repo.config);
        assert_eq!(reopened.key.bytes(), repo.key.bytes());
        assert!(reopened.remove_key(&second).is_err(), "the current key cannot be removed");
        reopened.change_password(b"pw3", fast().kdf).unwrap();
        assert!(Repository::open(Storage::open_url(url).unwrap(), b"pw2").is_err());
        assert!(Repository::open(Storage::open_url(url).unwrap(), b"pw3").is_ok());
        assert_eq!(repo.list_keys().unwrap().len(), 2);
    }

    #[test]
    fn unknown_versions_are_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let repo = Repository::init(Storage::open_url(url).unwrap(), b"pw", &fast()).unwrap();
        let mut config = repo.config.clone();
        config.version = 2;
        let sealed = repo.key.seal(CONFIG_AAD, serde_json::to_vec(&config).unwrap());
        repo.storage.write("config", sealed).unwrap();
        let err = Repository::open(Storage::open_url(url).unwrap(), b"pw").err().unwrap();
        assert!(matches!(err, Error::UnsupportedVersion { found: 2, .. }), "{err}");
        assert!(err.to_string().contains("upgrade gumvault"));

        let (path, _) = repo.storage.list("keys/").unwrap().remove(0);
        let text = String::from_utf8(repo.storage.read(&path).unwrap().to_vec())
            .unwrap()
            .replace("\"version\": 1", "\"version\": 7");
        repo.storage.write(&path, text.into_bytes()).unwrap();
        let err = Repository::open(Storage::open_url(url).unwrap(), b"pw").err().unwrap();
        assert!(matches!(err, Error::UnsupportedVersion { found: 7, .. }), "{err}");
    }

    #[test]
    fn a_damaged_key_file_or_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let repo = Repository::init(Storage::open_url(url).unwrap(), b"pw", &fast()).unwrap();
        let mut sealed = repo.storage.read("config").unwrap().to_vec();
        sealed[30] ^= 1;
        repo.storage.write("config", sealed).unwrap();
        let err = Repository::open(Storage::open_url(url).unwrap(), b"pw").err().unwrap();
        assert!(matches!(err, Error::Corrupt { ref object, .. } if object == "config"), "{err}");
        let (path, _) = repo.storage.list("keys/").unwrap().remove(0);
        repo.storage.write(&path, b"{not json".to_vec()).unwrap();
        let err = Repository::open(Storage::open_url(url).unwrap(), b"pw").err().unwrap();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}

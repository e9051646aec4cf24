//! A repository: its storage, its master key and its config, behind one type whose fields nobody else sees.
//! Opening needs a password that unlocks one of the key files; everything else (config, index, snapshots,
//! packs, the WAL archive) is sealed under the master key. The rest of gumvault asks a [`Repository`] for objects by kind
//! ([`ObjectKind`](crate::format::objects::ObjectKind)) and for blobs by location, and never learns how they are named, sealed or fetched.

pub mod blob_index;
pub mod catalog;
pub mod catalog_lookup;
mod checked_read;
pub mod key_hint;
pub mod keys;
mod lag;
pub mod lease;
pub mod lock;
mod objects;
pub mod obsolete;
mod open;
mod pack_verify;
mod packs;
mod private;
pub mod reader;
pub mod regions;
pub mod session;
mod tombstones;
mod tree_cache;
pub mod wal;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::chunker::{ChunkerParams, Gear};
pub use crate::format::crypto::KdfParams;
use crate::format::crypto::MasterKey;
use crate::format::id::Id;
#[cfg(test)]
use crate::format::objects::ObjectKind;
pub use crate::format::repo_config::{REPO_VERSION, RegionSpec, RepoConfig, default_profiles};
use crate::storage::Storage;
/// Bytes a local repository keeps free for maintenance (see [`Repository::release_reserve`]).
pub use crate::storage::local::RESERVE_BYTES;

/// Options for `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id cost of the first key.
    pub kdf: KdfParams,
    /// zstd level of new blobs (0 disables compression).
    pub compression_level: i32,
    /// Target size of data packs in bytes (tree packs get a quarter, at least 1 MiB).
    pub pack_size: u32,
    /// Chunker profiles by name.
    pub chunker_profiles: BTreeMap<String, ChunkerParams>,
    /// Regions to record (the storage passed to `init` must be opened on exactly these).
    pub regions: Vec<RegionSpec>,
    /// Regions a write must reach (default: all).
    pub min_regions: Option<u32>,
    /// S3 Object Lock for every object (checked against each bucket's setting).
    pub object_lock: Option<crate::format::repo_config::ObjectLock>,
    /// S3 storage class of data packs.
    pub storage_class: Option<String>,
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
            object_lock: None,
            storage_class: None,
        }
    }
}

/// An open repository.
pub struct Repository {
    storage: Storage,
    key: MasterKey,
    config: RepoConfig,
    gear: Gear,
    /// The key file this session opened with.
    key_id: String,
    /// Whole tree packs on local disk, for repositories in object storage ([`Repository::cache_trees_in`]).
    tree_cache: Option<tree_cache::TreeCache>,
}

impl Repository {
    /// Uses only the location the repository was opened from (`--single-region`): writes need just it.
    pub fn use_single_region(&self) -> Result<()> {
        self.storage.set_min_regions(1)
    }

    /// The repository's config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The repository's random id (names its local catalog).
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The URL of the first region, for messages.
    pub fn url(&self) -> &str {
        self.storage.url()
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

    /// The size at which a pack of this kind of blob is full.
    pub fn pack_target(&self, kind: BlobKind) -> usize {
        match kind {
            BlobKind::Data => self.config.pack_size as usize,
            BlobKind::Tree => self.config.tree_pack_size as usize,
        }
    }

    /// Objects copied at once by `sync`, into this repository's regions or (`remote_target`: in object
    /// storage) elsewhere; more when the copies stream (`streamed`: a few MiB each) than when each holds its
    /// object (never fewer than one per core: below that, rayon's own threads copy).
    pub fn copy_concurrency(&self, remote_target: bool, streamed: bool) -> Result<usize> {
        self.storage.copy_concurrency_to(remote_target, streamed)
    }

    /// Packs uploaded at once: `GUMVAULT_STORAGE_UPLOADS`, else more for remote regions than for disks.
    pub fn upload_concurrency(&self) -> Result<usize> {
        self.storage.upload_concurrency()
    }

    /// Keeps whole tree packs in `dir` when a region is in object storage, so that walking a snapshot costs a
    /// request per tree pack, not per directory (see `tree_cache`). A repository on local disks reads its trees
    /// directly: a copy beside them would only double them.
    pub fn cache_trees_in(&mut self, dir: std::path::PathBuf) {
        self.tree_cache = self.has_remote_region().then(|| tree_cache::TreeCache::new(dir));
    }

    /// Removes from the tree cache the packs `still_stored` denies and old temporary files; how many went.
    pub fn sweep_tree_cache(&self, still_stored: impl FnMut(&Id) -> bool) -> usize {
        self.tree_cache.as_ref().map_or(0, |c| c.sweep(still_stored))
    }

    /// Whether a region is in object storage, where every request waits a round trip.
    pub fn has_remote_region(&self) -> bool {
        self.storage.has_remote_region()
    }

    /// Range reads a restore keeps in flight (`GUMVAULT_STORAGE_READS`, else more for remote regions).
    pub fn read_concurrency(&self) -> Result<usize> {
        self.storage.read_concurrency()
    }

    /// How many regions the repository is written to.
    pub fn region_count(&self) -> usize {
        self.storage.regions().len()
    }

    /// True while no region has failed in this run. A region that failed is tried last or skipped, so what only
    /// it holds may have gone unseen: work that removes what it could not see again (`repair index`) asks this.
    pub fn all_regions_healthy(&self) -> bool {
        self.storage.regions().iter().all(|r| r.is_healthy())
    }

    /// How many regions must hold an object for a write to succeed.
    pub fn min_regions(&self) -> usize {
        self.storage.min_regions()
    }

    /// Failovers and region failures seen so far (drained), for the command to print.
    pub fn take_events(&self) -> Vec<String> {
        self.storage.take_events()
    }

    /// Objects that some region lacks because a write there failed: (region, path).
    pub fn missing(&self) -> Vec<(String, String)> {
        self.storage.missing()
    }

    /// Frees the space reserve a local repository keeps for maintenance (see [`crate::storage::local`]): `forget`
    /// and `prune` call it first, so their lease and new index fit on a disk that backups have filled.
    pub fn release_reserve(&self) {
        self.storage.release_reserve();
    }

    /// Makes the space reserve again at the end of maintenance; returns the regions without room for it.
    pub fn restore_reserve(&self) -> Vec<String> {
        self.storage.restore_reserve()
    }

    /// Copies found damaged while reading (another region may have served a good one): (region, path).
    pub fn bad_copies(&self) -> Vec<(String, String)> {
        self.storage.bad_copies()
    }
}

/// Checks that an object's bytes hash to its name.
fn verify_name(path: &str, id: &crate::format::id::Id, bytes: &[u8]) -> Result<()> {
    if crate::format::id::Id::of_object(bytes) != *id {
        return Err(Error::corrupt(path, "content does not match its name (damaged or truncated)"));
    }
    Ok(())
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
        let sealed = repo.key.seal(ObjectKind::Config.aad(), serde_json::to_vec(&config).unwrap());
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

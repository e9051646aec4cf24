//! Each region on its own, for the work that compares and heals them (`sync`, `check --regions`, `regions`):
//! what one region holds, and reading, writing and deleting there without the failover the rest of gumvault gets.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Repository;
use super::checked_read::CheckedRead;
use crate::error::Result;
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::storage::{Region, Storage, WriteOptions};

/// One region of an open repository.
pub struct RegionView<'r> {
    repo: &'r Repository,
    region: &'r Region,
}

impl Repository {
    /// Every region, in the order reads try them.
    pub fn regions(&self) -> Vec<RegionView<'_>> {
        self.storage.regions().iter().map(|region| RegionView { repo: self, region }).collect()
    }
}

impl RegionView<'_> {
    /// The region's name.
    pub fn name(&self) -> &str {
        &self.region.name
    }

    /// Where the region lives.
    pub fn url(&self) -> &str {
        &self.region.url
    }

    /// True when the region holds another repository (or one this key does not open): left alone, even by
    /// `sync`.
    pub fn is_foreign(&self) -> bool {
        self.region.is_foreign()
    }

    /// Every object the region holds that every region should hold (leases are left out), with its size.
    pub fn list_all(&self) -> Result<BTreeMap<String, u64>> {
        list_region(self.region)
    }

    /// This region's copy of an object, checked on its own (see [`Repository::verify_copy`]).
    pub fn read_verified(&self, path: &str) -> Result<Bytes> {
        let bytes = self.region.backend.read(path)?;
        self.repo.verify_copy(path, &bytes)?;
        Ok(bytes)
    }

    /// [`RegionView::read_verified`] of an object whose size a listing gave, read into one buffer of that size
    /// ([`crate::storage::Region::read_sized`]).
    pub fn read_verified_sized(&self, path: &str, size: u64) -> Result<Bytes> {
        let bytes = self.region.read_sized(path, size)?;
        self.repo.verify_copy(path, &bytes)?;
        Ok(bytes)
    }

    /// Copies the object at `path` (`size` bytes by the listing) into `target` as it streams in, never holding
    /// it whole, for an object [`CopyTarget::streams`] takes. It is checked against its name on the way and
    /// refused before its last bytes when damaged, so the target never stores a bad copy; the error is then the
    /// read's (a [`crate::Error::Corrupt`] for a damaged copy), not the write's.
    pub fn copy_streamed(&self, path: &str, size: u64, target: &CopyTarget<'_>) -> Result<()> {
        self.stream_into(path, size, |body, opts| target.storage.write_streamed(path, size, body, opts))
    }

    /// [`RegionView::copy_streamed`] into another region of the repository, for an object
    /// [`RegionView::takes_streamed`] says it takes so.
    pub fn copy_streamed_to(&self, path: &str, size: u64, dest: &RegionView<'_>) -> Result<()> {
        self.stream_into(path, size, |body, opts| dest.region.backend.write_streamed(path, size, body, opts))
    }

    /// Whether this region takes a copy of the object at `path` as it streams in (see [`CopyTarget::streams`]).
    pub fn takes_streamed(&self, path: &str) -> bool {
        streamable(&self.repo.config, path) && self.region.backend.streams_writes()
    }

    /// The object at `path`, checked on the way, handed to `write` with the repository's write options for it.
    fn stream_into(
        &self,
        path: &str,
        size: u64,
        write: impl FnOnce(&mut (dyn std::io::Read + Send), &WriteOptions) -> Result<()>,
    ) -> Result<()> {
        let Some((kind, name)) = ObjectKind::parse_path(path).and_then(|(k, n)| Some((k, Id::from_hex(n)?))) else {
            return Err(crate::Error::corrupt(path, "the name is not an object id"));
        };
        let stream = self.region.backend.read_range_stream(path, 0, size)?;
        let mut checked = CheckedRead::new(stream, name, size, path, &self.region.name);
        let written = write(&mut checked, &self.repo.write_options(kind, false));
        match checked.failure {
            Some(read_failed) => Err(read_failed),
            None => written,
        }
    }

    /// This region's copy of an object, checked on its own; for a WAL file also BLAKE3 of the file it holds, so
    /// copies sealed apart (byte for byte different) can be compared.
    pub fn read_verified_content(&self, path: &str) -> Result<(Bytes, Option<[u8; 32]>)> {
        let bytes = self.region.backend.read(path)?;
        if matches!(ObjectKind::parse_path(path), Some((ObjectKind::Wal, _))) {
            let hash = self.repo.verify_wal_copy(path, &bytes)?;
            return Ok((bytes, Some(hash)));
        }
        self.repo.verify_copy(path, &bytes)?;
        Ok((bytes, None))
    }

    /// Stores a copy (already verified elsewhere) in this region unless the name is taken there: for objects that
    /// are never overwritten (WAL files), locked as the repository writes them. False when a copy was already
    /// there.
    pub fn write_new(&self, path: &str, bytes: Bytes) -> Result<bool> {
        self.region.backend.write_new_with(path, bytes.clone(), &self.repo.copy_options(path, &bytes))
    }

    /// Stores a copy (already verified elsewhere) in this region, locked and in the storage class the
    /// repository writes such an object with.
    pub fn write(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.region.backend.write_with(path, bytes.clone(), &self.repo.copy_options(path, &bytes))
    }

    /// Removes this region's copy.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.region.backend.delete(path)
    }
}

/// Every object `region` holds that every region should hold (leases are left out), with its size. It needs no
/// key, so it can be taken while the repository is being opened.
fn list_region(region: &Region) -> Result<BTreeMap<String, u64>> {
    let config = ObjectKind::Config.path("");
    let kinds: Vec<ObjectKind> =
        ObjectKind::ALL.into_iter().filter(|k| k.is_replicated() && *k != ObjectKind::Config).collect();
    // One listing per kind, all at once: against a distant region each is a round trip of its own.
    let (config_size, listings) = std::thread::scope(|scope| {
        let listings: Vec<_> =
            kinds.iter().map(|kind| scope.spawn(move || region.backend.list(kind.prefix()))).collect();
        let config_size = region.backend.stat(&config);
        (config_size, listings.into_iter().map(|h| h.join().expect("a listing does not panic")).collect::<Vec<_>>())
    });
    let mut out = BTreeMap::new();
    if let Some(size) = config_size? {
        out.insert(config, size);
    }
    for listing in listings {
        out.extend(listing?);
    }
    Ok(out)
}

/// [`list_region`] of the location at `url` (as it was at `as_of`), when it is object storage; else `None`
/// (listing a disk costs little, and is left until the repository's regions are known).
pub fn list_location(url: &str, as_of: Option<jiff::Timestamp>) -> Option<Result<BTreeMap<String, u64>>> {
    let mut storage = Storage::open_url(url).ok().filter(Storage::has_remote_region)?;
    if let Some(at) = as_of {
        storage = storage.as_of(at);
    }
    let [region] = storage.regions() else { return None };
    Some(list_region(region))
}

impl Repository {
    /// How a copy of the object at `path` is written: locked, and a data pack in the storage class.
    fn copy_options(&self, path: &str, bytes: &[u8]) -> WriteOptions {
        let Some((kind, _)) = ObjectKind::parse_path(path) else { return WriteOptions::default() };
        let data_pack = kind == ObjectKind::Pack
            && self.config.storage_class.is_some()
            && crate::format::pack::parse_pack(&self.key, bytes)
                .is_ok_and(|b| b.first().is_some_and(|b| b.info.kind == crate::format::blob::BlobKind::Data));
        self.write_options(kind, data_pack)
    }

    /// A fresh, empty location to copy the whole repository into (`sync --into URL`: recovery into a new bucket
    /// after an attack, from a view `--as-of` before it). It must hold no repository, and be able to keep the
    /// repository's Object Lock and storage class.
    pub fn copy_target(&self, url: &str) -> Result<CopyTarget<'_>> {
        self.copy_target_in(free_location(url)?)
    }

    /// [`Repository::copy_target`] of a location [`free_location`] found free.
    pub fn copy_target_in(&self, free: FreeLocation) -> Result<CopyTarget<'_>> {
        super::lock::check_bucket_settings(&free.0, &self.config)?;
        Ok(CopyTarget { repo: self, storage: free.0 })
    }
}

/// Whether a copy of the object at `path` can be written as it streams in, whatever the location: an object named
/// by its content whose write needs nothing it holds (see [`CopyTarget::streams`]).
fn streamable(config: &crate::format::repo_config::RepoConfig, path: &str) -> bool {
    match ObjectKind::parse_path(path) {
        _ if config.object_lock.is_some() => false,
        Some((ObjectKind::Pack, _)) => config.storage_class.is_none(),
        Some((kind, _)) => kind.is_content_addressed(),
        None => false,
    }
}

/// Whether `url` names object storage (where asking costs round trips, and creates nothing).
pub fn is_remote(url: &str) -> bool {
    matches!(crate::storage::Location::parse(url), Ok(crate::storage::Location::S3 { .. }))
}

/// A location found to hold no repository (see [`free_location`]).
pub struct FreeLocation(Storage);

/// The location at `url`, if it holds no repository: the first half of [`Repository::copy_target`], which needs no
/// key, so it can be asked while the repository is being opened.
pub fn free_location(url: &str) -> Result<FreeLocation> {
    let storage = Storage::create_url(url)?;
    super::open::refuse_existing(&storage)?;
    Ok(FreeLocation(storage))
}

/// A fresh location receiving a copy of the repository.
pub struct CopyTarget<'r> {
    repo: &'r Repository,
    storage: Storage,
}

impl CopyTarget<'_> {
    /// Stores a copy (already verified) of the object at `path`.
    pub fn write(&self, path: &str, bytes: Bytes) -> Result<()> {
        let opts = self.repo.copy_options(path, &bytes);
        self.storage.write_with(path, bytes, &opts)
    }

    /// Whether the object at `path` can be copied as it streams in ([`RegionView::copy_streamed`]): an object
    /// named by its content whose write needs nothing it holds, into a location that takes it piece by piece. A
    /// locked copy needs its MD5 before it is sent (S3's rule for Object Lock), and a data pack its first blob's
    /// kind when data has a storage class of its own; S3 without credentials in the environment (a profile, web
    /// identity) is written through opendal, whole.
    pub fn streams(&self, path: &str) -> bool {
        streamable(&self.repo.config, path) && self.storage.streams_writes()
    }

    /// Where the copy goes.
    pub fn url(&self) -> &str {
        self.storage.url()
    }

    /// Whether the copy goes into object storage.
    pub fn is_remote(&self) -> bool {
        self.storage.has_remote_region()
    }
}

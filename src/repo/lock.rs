//! What the repository locks, and how: with an Object Lock rule in the config every object written carries a
//! retention of `now + period`; [`Repository::extend_lock`] pushes a still-needed object's retention out again
//! (which objects are needed is the business of `ops/lock`); data packs get the configured storage class. Also
//! the checks that the bucket can do what the config asks (at `init`), and whether these credentials may delete
//! (before maintenance writes anything).

use jiff::{SignedDuration, Timestamp};

use super::Repository;
use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::format::objects::ObjectKind;
use crate::format::repo_config::{ObjectLock, RepoConfig, check_storage_class};
pub use crate::storage::ObjectVersion;
use crate::storage::{Retention, Storage, WriteOptions};

/// The retention a write or an extension at `now` sets: `now + period`, rounded up to a whole second.
pub fn retention_at(lock: &ObjectLock, now: Timestamp) -> Retention {
    let until = now.checked_add(lock.period()).unwrap_or(Timestamp::MAX);
    let until = until.checked_add(SignedDuration::from_millis(999)).unwrap_or(until);
    Retention { mode: lock.mode, until }
}

impl Repository {
    /// How an object of `kind` is written: locked when the repository has an Object Lock rule; data packs in
    /// the configured storage class.
    pub(super) fn write_options(&self, kind: ObjectKind, data_pack: bool) -> WriteOptions {
        write_options(&self.config, kind, data_pack)
    }

    /// Stores an object of `kind` at `path` in every region, with the repository's write options.
    pub(super) fn put(&self, kind: ObjectKind, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.storage.write_with(path, bytes, &self.write_options(kind, false))
    }

    /// The repository's Object Lock rule, if it has one.
    pub fn object_lock(&self) -> Option<ObjectLock> {
        self.config.object_lock
    }

    /// The time the repository is shown as of (`--as-of`), when it is a view of the past.
    pub fn as_of(&self) -> Option<Timestamp> {
        self.storage.as_of_time()
    }

    /// Extends the retention of the object of `kind` named `name` (hex; ignored for the config) in every region
    /// to `now + period`; returns how many regions hold it. A region without it is skipped (`sync` and `check`
    /// report what a region lacks).
    pub fn extend_lock(&self, kind: ObjectKind, name: &str, now: Timestamp) -> Result<usize> {
        let path = kind.path(name);
        let path = path.as_str();
        let Some(lock) = self.config.object_lock else { return Ok(0) };
        let r = retention_at(&lock, now);
        let mut done = 0;
        for region in self.storage.regions().iter().filter(|r| r.unusable().is_none()) {
            let Some(bucket) = region.backend.bucket() else { continue };
            match bucket.extend_retention(path, r) {
                Ok(()) => done += 1,
                Err(e) if e.is_not_found() => {}
                // S3 refuses to shorten a lock: one that already runs longer (set by a clock ahead) is fine.
                Err(_) if bucket.retention(path, None).ok().flatten().is_some_and(|cur| cur.until >= r.until) => {
                    done += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The retention of the current version of the object of `kind` named `name`, from the first region that
    /// has one.
    pub fn lock_of(&self, kind: ObjectKind, name: &str) -> Result<Option<Retention>> {
        let path = kind.path(name);
        let path = path.as_str();
        for region in self.storage.regions().iter().filter(|r| r.unusable().is_none()) {
            if let Some(bucket) = region.backend.bucket()
                && let Some(r) = bucket.retention(path, None)?
            {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Every version under the repository root in each versioned region: (region name, versions).
    pub fn versions(&self) -> Result<Vec<(String, Vec<ObjectVersion>)>> {
        let mut out = Vec::new();
        for region in self.storage.regions().iter().filter(|r| r.unusable().is_none()) {
            if let Some(bucket) = region.backend.bucket() {
                out.push((region.name.clone(), bucket.list_versions("")?));
            }
        }
        Ok(out)
    }

    /// Deletes one version for good in region `region` (refused by S3 while it is locked).
    pub fn delete_version(&self, region: &str, path: &str, version: &str) -> Result<()> {
        let r = self.storage.regions().iter().find(|r| r.name == region);
        match r.and_then(|r| r.backend.bucket()) {
            Some(bucket) => bucket.delete_version(path, version),
            None => Err(Error::InvalidInput(format!("region {region} is not a versioned bucket"))),
        }
    }

    /// Fails, naming the missing permission, when these credentials may not delete in some region: asked
    /// before maintenance (forget, prune, sync) writes anything, by deleting a lease name nobody uses (in a
    /// versioned bucket that leaves a delete marker, which prune removes with old versions).
    pub fn check_can_delete(&self) -> Result<()> {
        if self.as_of().is_some() {
            return Err(StorageError::new("delete", "", "all", StorageErrorKind::ReadOnly, read_only_message()).into());
        }
        let probe =
            ObjectKind::Lock.path(&format!("{}-probe", hex::encode(crate::format::crypto::random_bytes::<8>())));
        for region in self.storage.regions().iter().filter(|r| r.unusable().is_none()) {
            // A region that does not answer is the business of the deletes themselves (tombstones, §14).
            if let Err(e @ Error::Storage(StorageError { kind: StorageErrorKind::PermissionDenied, .. })) =
                region.backend.delete(&probe)
            {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Why a command cannot write under `--as-of`.
pub fn read_only_message() -> String {
    "the repository is open read-only as it was in the past (--as-of); run this command without --as-of, or copy the view into a fresh bucket with `gumvault --as-of TIME sync --into URL`".to_string()
}

/// [`Repository::write_options`] for a config. Leases are not locked: they are deleted when done, and a lock
/// would only keep each of their refreshes as an old version for a whole period.
pub(super) fn write_options(config: &RepoConfig, kind: ObjectKind, data_pack: bool) -> WriteOptions {
    WriteOptions {
        retention: config
            .object_lock
            .filter(|_| kind != ObjectKind::Lock)
            .map(|l| retention_at(&l, crate::time::now())),
        storage_class: config.storage_class.clone().filter(|_| data_pack && kind == ObjectKind::Pack),
    }
}

/// At `init`: every region must be an S3 bucket that can keep the config's promises — Object Lock enabled on the
/// bucket for a lock rule, a storage class S3 reads without a retrieval request.
pub(super) fn check_bucket_settings(storage: &Storage, config: &RepoConfig) -> Result<()> {
    if let Some(class) = &config.storage_class {
        check_storage_class(class).map_err(Error::InvalidInput)?;
    }
    let needs_s3 = config.object_lock.is_some() || config.storage_class.is_some();
    for region in storage.regions().iter().filter(|_| needs_s3) {
        let Some(bucket) = region.backend.bucket() else {
            return Err(Error::InvalidInput(format!(
                "region {} ({}) is not an S3 bucket: --object-lock and --storage-class need S3",
                region.name, region.url
            )));
        };
        let Some(lock) = config.object_lock else { continue };
        let settings = bucket.lock_configuration()?;
        if !settings.enabled {
            return Err(Error::InvalidInput(format!(
                "region {} ({}): the bucket does not have Object Lock enabled (its setting ObjectLockEnabled is not \"Enabled\"). Object Lock can be turned on only for a versioned bucket: create the bucket with `aws s3api create-bucket --object-lock-enabled-for-bucket …`, or enable it on an existing one with `aws s3api put-object-lock-configuration --object-lock-configuration ObjectLockEnabled=Enabled` after enabling versioning; then run init again (asked: {lock})",
                region.name, region.url
            )));
        }
    }
    Ok(())
}

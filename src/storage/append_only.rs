//! A region whose credentials may not delete, as S3 answers a role without `s3:DeleteObject`: every delete
//! (of an object or of a version) is refused, everything else passes through. Tests turn it on with
//! `GUMVAULT_TEST_APPEND_ONLY=1`, to prove that backups, runs and checks never delete and that maintenance
//! fails with a message naming the permission.

use bytes::Bytes;

use super::backend::{Backend, Bucket, Listed, ObjectVersion, WriteOptions, delete_denied};
use super::s3ops::{BucketLock, Retention};
use crate::error::{Result, StorageError, StorageErrorKind};

/// A backend that refuses deletes.
pub struct AppendOnly {
    /// The backend everything else goes to.
    pub inner: Box<dyn Backend>,
    /// The region's name, for messages.
    pub region: String,
}

const DENIED: &str = "AccessDenied (GUMVAULT_TEST_APPEND_ONLY)";

impl Backend for AppendOnly {
    fn read(&self, path: &str) -> Result<Bytes> {
        self.inner.read(path)
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.inner.read_range(path, offset, len)
    }

    fn read_range_stream(&self, path: &str, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send + '_>> {
        self.inner.read_range_stream(path, offset, len)
    }

    fn write(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.write(path, data)
    }

    fn write_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<()> {
        self.inner.write_with(path, data, opts)
    }

    fn write_streamed(
        &self,
        path: &str,
        len: u64,
        body: &mut (dyn std::io::Read + Send),
        opts: &WriteOptions,
    ) -> Result<()> {
        self.inner.write_streamed(path, len, body, opts)
    }

    fn streams_writes(&self) -> bool {
        self.inner.streams_writes()
    }

    fn write_new(&self, path: &str, data: Bytes) -> Result<bool> {
        self.inner.write_new(path, data)
    }

    fn write_new_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<bool> {
        self.inner.write_new_with(path, data, opts)
    }

    fn bucket(&self) -> Option<&dyn Bucket> {
        self.inner.bucket().map(|_| self as &dyn Bucket)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.inner.list(prefix)
    }

    fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.inner.list_modified(prefix)
    }

    fn stat(&self, path: &str) -> Result<Option<u64>> {
        self.inner.stat(path)
    }

    fn delete(&self, path: &str) -> Result<()> {
        Err(delete_denied(path, &self.region, DENIED))
    }

    fn release_reserve(&self) {
        self.inner.release_reserve()
    }

    fn restore_reserve(&self) -> bool {
        self.inner.restore_reserve()
    }
}

impl AppendOnly {
    fn inner_bucket(&self) -> Result<&dyn Bucket> {
        self.inner
            .bucket()
            .ok_or_else(|| StorageError::new("open", "", &self.region, StorageErrorKind::Config, "not a bucket").into())
    }
}

impl Bucket for AppendOnly {
    fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        self.inner_bucket()?.list_versions(prefix)
    }

    fn read_version(&self, path: &str, version: &str, range: Option<(u64, u64)>) -> Result<Bytes> {
        self.inner_bucket()?.read_version(path, version, range)
    }

    fn delete_version(&self, path: &str, _version: &str) -> Result<()> {
        Err(delete_denied(path, &self.region, DENIED))
    }

    fn retention(&self, path: &str, version: Option<&str>) -> Result<Option<Retention>> {
        self.inner_bucket()?.retention(path, version)
    }

    fn extend_retention(&self, path: &str, r: Retention) -> Result<()> {
        self.inner_bucket()?.extend_retention(path, r)
    }

    fn lock_configuration(&self) -> Result<BucketLock> {
        self.inner_bucket()?.lock_configuration()
    }

    fn versioning(&self) -> Result<Option<String>> {
        self.inner_bucket()?.versioning()
    }
}

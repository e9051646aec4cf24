//! [`Bucket`] for an S3 region: versions through opendal (ListObjectVersions, GET and DELETE with a
//! `versionId`), retention and the bucket's settings through [`S3Api`](super::s3api::S3Api).

use bytes::Bytes;
use opendal::ErrorKind;

use super::backend::{Bucket, ObjectVersion, OpendalBackend};
use super::s3ops::{BucketLock, Retention};
use crate::error::{Result, StorageError, StorageErrorKind};

impl OpendalBackend {
    fn api(&self, op: &'static str, path: &str) -> Result<&super::s3api::S3Api> {
        self.s3.as_ref().ok_or_else(|| {
            StorageError::new(op, path, &self.region, StorageErrorKind::Config, "not an S3 bucket").into()
        })
    }

    fn opendal_err(&self, op: &'static str, path: &str, e: opendal::Error) -> crate::error::Error {
        StorageError::from_opendal(op, path, &self.region, &e).into()
    }
}

impl Bucket for OpendalBackend {
    fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let opts =
            opendal::options::ListOptions { recursive: true, versions: true, deleted: true, ..Default::default() };
        let entries = match self.op.list_options(prefix, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.opendal_err("list", prefix, e)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let m = entry.metadata();
            let path = entry.path().trim_start_matches('/');
            if path.is_empty() || path.ends_with('/') {
                continue;
            }
            let (Some(version), Some(modified)) = (m.version(), m.last_modified()) else { continue };
            out.push(ObjectVersion {
                path: path.to_string(),
                version: version.to_string(),
                modified: modified.into(),
                size: m.content_length(),
                deleted: m.is_deleted(),
                current: m.is_current().unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn read_version(&self, path: &str, version: &str, range: Option<(u64, u64)>) -> Result<Bytes> {
        let mut opts = opendal::options::ReadOptions { version: Some(version.to_string()), ..Default::default() };
        if let Some((offset, len)) = range {
            opts.range = (offset..offset + len).into();
        }
        let buf = self.op.read_options(path, opts).map_err(|e| self.opendal_err("read", path, e))?;
        if let Some((offset, len)) = range
            && buf.len() as u64 != len
        {
            let message = format!("short read: {} of {len} bytes at offset {offset}", buf.len());
            return Err(StorageError::new("read", path, &self.region, StorageErrorKind::ShortRead, message).into());
        }
        Ok(buf.to_bytes())
    }

    fn delete_version(&self, path: &str, version: &str) -> Result<()> {
        let opts = opendal::options::DeleteOptions { version: Some(version.to_string()), ..Default::default() };
        match self.op.delete_options(path, opts) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                let message = format!(
                    "version {version}: {e}: it is still locked (S3 Object Lock), or these credentials lack s3:DeleteObjectVersion"
                );
                Err(StorageError::new("delete", path, &self.region, StorageErrorKind::PermissionDenied, message).into())
            }
            Err(e) => Err(self.opendal_err("delete", path, e)),
        }
    }

    fn retention(&self, path: &str, version: Option<&str>) -> Result<Option<Retention>> {
        self.api("stat", path)?.retention(path, version)
    }

    fn extend_retention(&self, path: &str, r: Retention) -> Result<()> {
        self.api("retain", path)?.put_retention(path, None, r)
    }

    fn lock_configuration(&self) -> Result<BucketLock> {
        self.api("open", "")?.bucket_lock()
    }

    fn versioning(&self) -> Result<Option<String>> {
        self.api("open", "")?.bucket_versioning()
    }
}

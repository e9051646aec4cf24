//! The storage trait every region implements, and the one implementation there is: an opendal blocking operator,
//! with durable renames on local disks.

use std::path::PathBuf;

use bytes::Bytes;
use opendal::ErrorKind;

use super::s3api::S3Api;
use super::s3ops::{BucketLock, Retention, retention_headers};
use crate::error::{Error, Result, StorageError, StorageErrorKind};

/// How an object is written beyond its bytes: a retention (S3 Object Lock) and a storage class. Only S3 regions
/// take either; elsewhere a write that asks for one fails.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Lock the new version until then.
    pub retention: Option<Retention>,
    /// `x-amz-storage-class` (e.g. `STANDARD_IA`); `None` for the bucket's default.
    pub storage_class: Option<String>,
}

impl WriteOptions {
    /// True when nothing beyond the bytes is asked for.
    pub fn is_plain(&self) -> bool {
        self.retention.is_none() && self.storage_class.is_none()
    }

    /// The S3 headers these options need.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = self.retention.map(retention_headers).unwrap_or_default();
        if let Some(class) = &self.storage_class {
            h.push(("x-amz-storage-class".into(), class.clone()));
        }
        h
    }
}

/// One version of an object in a versioned bucket (a delete marker is a version too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The object's path, relative to the repository root.
    pub path: String,
    /// The version's id.
    pub version: String,
    /// When it was written.
    pub modified: jiff::Timestamp,
    /// Its size (0 for a delete marker).
    pub size: u64,
    /// True for a delete marker.
    pub deleted: bool,
    /// True for the newest version.
    pub current: bool,
}

/// What an S3 bucket offers beyond plain objects: versions, retention, and its own settings.
pub trait Bucket: Send + Sync {
    /// Every version (and delete marker) of every object under `prefix`.
    fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>>;
    /// One version of an object, whole or `(offset, len)` of it.
    fn read_version(&self, path: &str, version: &str, range: Option<(u64, u64)>) -> Result<Bytes>;
    /// Deletes one version for good (refused by S3 while it is locked).
    fn delete_version(&self, path: &str, version: &str) -> Result<()>;
    /// The retention of the current version, or of `version`.
    fn retention(&self, path: &str, version: Option<&str>) -> Result<Option<Retention>>;
    /// Sets a (longer) retention on the current version.
    fn extend_retention(&self, path: &str, r: Retention) -> Result<()>;
    /// The bucket's Object Lock configuration.
    fn lock_configuration(&self) -> Result<BucketLock>;
    /// The bucket's versioning status (`Enabled`, `Suspended`, or `None`).
    fn versioning(&self) -> Result<Option<String>>;
}

/// One storage location: an opendal operator and its name.
pub trait Backend: Send + Sync {
    /// Whole object.
    fn read(&self, path: &str) -> Result<Bytes>;
    /// `len` bytes at `offset`.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes>;
    /// `len` bytes at `offset` as a stream, so a long range is not held whole (a reader that ends early or fails
    /// mid-way is the caller's to notice). By default the range is read in range reads of at most 4 MiB.
    fn read_range_stream(&self, path: &str, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send + '_>> {
        Ok(Box::new(RangeChunks {
            backend: self,
            path: path.to_string(),
            at: offset,
            end: offset + len,
            buf: Default::default(),
        }))
    }
    /// Stores a whole object durably.
    fn write(&self, path: &str, data: Bytes) -> Result<()>;
    /// Stores a whole object with a retention or storage class (S3 only; elsewhere only plain options).
    fn write_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<()> {
        if opts.is_plain() {
            return self.write(path, data);
        }
        let message = "Object Lock and storage classes need an S3 region";
        Err(StorageError::new("write", path, "", StorageErrorKind::Config, message).into())
    }
    /// Stores an object of exactly `len` bytes read from `body`, with `opts`, durably. What a `body` that fails,
    /// ends short or holds more has sent is never stored under `path`; a checking reader can so refuse an object
    /// by failing before its last bytes. Backends that can take it piece by piece (a local directory, S3 without
    /// a lock) never hold it whole; by default it is read whole, then written.
    fn write_streamed(
        &self,
        path: &str,
        len: u64,
        body: &mut (dyn std::io::Read + Send),
        opts: &WriteOptions,
    ) -> Result<()> {
        self.write_with(path, read_exactly(path, len, body)?, opts)
    }
    /// Whether [`Backend::write_streamed`] of an object without a lock takes it piece by piece here.
    fn streams_writes(&self) -> bool {
        false
    }
    /// The bucket behind this backend, when it is an S3 bucket.
    fn bucket(&self) -> Option<&dyn Bucket> {
        None
    }
    /// Stores a whole object durably unless the name is taken: an object already there is never overwritten
    /// (`Ok(false)`). Local directories move into place with `RENAME_NOREPLACE`; S3 sends `If-None-Match: *`;
    /// a service with neither is asked first (which a concurrent writer could race).
    fn write_new(&self, path: &str, data: Bytes) -> Result<bool>;
    /// [`Backend::write_new`] with a retention or storage class (S3 only; elsewhere only plain options).
    fn write_new_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<bool> {
        if opts.is_plain() {
            return self.write_new(path, data);
        }
        let message = "Object Lock and storage classes need an S3 region";
        Err(StorageError::new("write", path, "", StorageErrorKind::Config, message).into())
    }
    /// Object names (relative to the repository root) and sizes under `prefix` (a directory, ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>>;
    /// [`Backend::list`] with each object's last-modified time where the service gives one (local directories:
    /// the file's mtime; S3: `LastModified`).
    fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>>;
    /// Size of an object, `None` if absent.
    fn stat(&self, path: &str) -> Result<Option<u64>>;
    /// Removes an object; absent objects are not an error.
    fn delete(&self, path: &str) -> Result<()>;
    /// Frees the space reserve for maintenance (local directories only; see [`super::local`]).
    fn release_reserve(&self) {}
    /// Makes the space reserve again; false when there was no room (local directories only).
    fn restore_reserve(&self) -> bool {
        true
    }
}

/// Exactly `len` bytes of `body`, which must then end (a [`Backend::write_streamed`] that holds the object whole).
pub(super) fn read_exactly(path: &str, len: u64, body: &mut dyn std::io::Read) -> Result<Bytes> {
    use std::io::Read;
    let mut data = Vec::with_capacity(len.min(256 << 20) as usize);
    let failed = |e: std::io::Error| Error::io("read the object to write", path, e);
    body.take(len.saturating_add(1)).read_to_end(&mut data).map_err(failed)?;
    if data.len() as u64 != len {
        let message = format!("the object to write has {} bytes, not {len}", data.len());
        return Err(failed(std::io::Error::new(std::io::ErrorKind::InvalidData, message)));
    }
    Ok(data.into())
}

/// One object of a listing with its last-modified time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The object's path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, if the service says.
    pub modified: Option<jiff::Timestamp>,
}

/// A range of an object read a piece at a time with range reads: the stream of a backend that has no stream.
struct RangeChunks<'b, B: ?Sized> {
    backend: &'b B,
    path: String,
    at: u64,
    end: u64,
    buf: std::io::Cursor<Bytes>,
}

impl<B: Backend + ?Sized> std::io::Read for RangeChunks<'_, B> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.position() as usize >= self.buf.get_ref().len() && self.at < self.end {
            let n = (self.end - self.at).min(4 << 20);
            let piece = self.backend.read_range(&self.path, self.at, n).map_err(std::io::Error::other)?;
            self.at += n;
            self.buf = std::io::Cursor::new(piece);
        }
        std::io::Read::read(&mut self.buf, out)
    }
}

/// A [`Backend`] over an opendal blocking operator.
pub(super) struct OpendalBackend {
    pub(super) op: opendal::blocking::Operator,
    pub(super) region: String,
    /// For local directories: the root, so new directories can be fsynced after a rename.
    pub(super) fs_root: Option<PathBuf>,
    /// For S3: signed calls opendal does not make.
    pub(super) s3: Option<S3Api>,
}

impl OpendalBackend {
    fn err(&self, op: &'static str, path: &str, e: opendal::Error) -> Error {
        StorageError::from_opendal(op, path, &self.region, &e).into()
    }

    /// Makes a rename inside a local directory durable: fsync the object's directory.
    fn sync_parent(&self, path: &str) -> Result<()> {
        if let Some(root) = &self.fs_root {
            let full = root.join(path);
            if let Some(dir) = full.parent() {
                let f = std::fs::File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
                f.sync_all().map_err(|e| Error::io("fsync directory", dir, e))?;
            }
        }
        Ok(())
    }
}

impl Backend for OpendalBackend {
    fn release_reserve(&self) {
        if let Some(root) = &self.fs_root {
            super::local::release_reserve(root);
        }
    }

    fn restore_reserve(&self) -> bool {
        self.fs_root.as_ref().is_none_or(|root| super::local::make_reserve(root))
    }

    fn read(&self, path: &str) -> Result<Bytes> {
        self.op.read(path).map(|b| b.to_bytes()).map_err(|e| self.err("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let buf = self
            .op
            .read_options(
                path,
                opendal::options::ReadOptions { range: (offset..offset + len).into(), ..Default::default() },
            )
            .map_err(|e| self.err("read", path, e))?;
        if buf.len() as u64 != len {
            let message = format!("short read: {} of {len} bytes at offset {offset}", buf.len());
            return Err(StorageError::new("read", path, &self.region, StorageErrorKind::ShortRead, message).into());
        }
        Ok(buf.to_bytes())
    }

    fn read_range_stream(&self, path: &str, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send + '_>> {
        let reader = self.op.reader(path).map_err(|e| self.err("read", path, e))?;
        let stream = reader.into_std_read(offset..offset + len).map_err(|e| self.err("read", path, e))?;
        Ok(Box::new(stream))
    }

    fn write_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<()> {
        match &self.s3 {
            Some(s3) if !opts.is_plain() => s3.put_object(path, data, &opts.headers()).map(drop),
            _ => {
                if opts.is_plain() {
                    return self.write(path, data);
                }
                let message = "Object Lock and storage classes need an S3 region";
                Err(StorageError::new("write", path, &self.region, StorageErrorKind::Config, message).into())
            }
        }
    }

    fn write_new_with(&self, path: &str, data: Bytes, opts: &WriteOptions) -> Result<bool> {
        match &self.s3 {
            Some(s3) if !opts.is_plain() => s3.put_object_new(path, data, &opts.headers()),
            _ if opts.is_plain() => self.write_new(path, data),
            _ => {
                let message = "Object Lock and storage classes need an S3 region";
                Err(StorageError::new("write", path, &self.region, StorageErrorKind::Config, message).into())
            }
        }
    }

    fn bucket(&self) -> Option<&dyn Bucket> {
        self.s3.as_ref().map(|_| self as &dyn Bucket)
    }

    fn streams_writes(&self) -> bool {
        self.fs_root.is_some() || self.s3.as_ref().is_some_and(S3Api::signs)
    }

    fn write_streamed(
        &self,
        path: &str,
        len: u64,
        body: &mut (dyn std::io::Read + Send),
        opts: &WriteOptions,
    ) -> Result<()> {
        match (&self.fs_root, &self.s3) {
            (Some(root), _) if opts.is_plain() => super::local::write_streamed(root, &self.region, path, len, body),
            // Object Lock wants the body's MD5 in the headers, known only at its end: a locked object goes whole.
            (_, Some(s3)) if opts.retention.is_none() && s3.signs() => {
                s3.put_streamed(path, len, body, &opts.headers())
            }
            _ => self.write_with(path, read_exactly(path, len, body)?, opts),
        }
    }

    fn write(&self, path: &str, data: Bytes) -> Result<()> {
        if let Some(root) = &self.fs_root {
            return super::local::write(root, &self.region, path, &data);
        }
        self.op.write(path, data).map_err(|e| self.err("write", path, e))?;
        self.sync_parent(path)
    }

    fn write_new(&self, path: &str, data: Bytes) -> Result<bool> {
        if let Some(root) = &self.fs_root {
            return super::local::write_new(root, &self.region, path, &data);
        }
        if !self.op.info().capability().write_with_if_not_exists {
            if self.stat(path)?.is_some() {
                return Ok(false);
            }
            return self.write(path, data).map(|()| true);
        }
        match self.op.write_options(
            path,
            data,
            opendal::options::WriteOptions { if_not_exists: true, ..Default::default() },
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(self.err("write", path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self.list_modified(prefix)?.into_iter().map(|l| (l.path, l.size)).collect())
    }

    fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>> {
        let entries =
            match self.op.list_options(prefix, opendal::options::ListOptions { recursive: true, ..Default::default() })
            {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(self.err("list", prefix, e)),
            };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let path = entry.path();
            if path.ends_with('/') || !entry.metadata().is_file() {
                continue;
            }
            let meta = entry.metadata();
            out.push(Listed {
                path: path.trim_start_matches('/').to_string(),
                size: meta.content_length(),
                modified: meta.last_modified().map(jiff::Timestamp::from),
            });
        }
        Ok(out)
    }

    fn stat(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied && self.s3.is_some() => {
                Err(delete_denied(path, &self.region, &e.to_string()))
            }
            Err(e) => Err(self.err("delete", path, e)),
        }
    }
}

/// A delete the credentials may not do, in words that say which permission is missing and who has it.
pub fn delete_denied(path: &str, region: &str, why: &str) -> Error {
    let message = format!(
        "{why}: these credentials may not delete (the S3 permission s3:DeleteObject is missing; removing old versions also needs s3:DeleteObjectVersion). That is right for the backup role, which only adds; forget, prune and sync need the maintenance role's credentials (see `gumvault policy print --maintenance`)"
    );
    StorageError::new("delete", path, region, StorageErrorKind::PermissionDenied, message).into()
}

/// A region that is not there (its directory is missing): every operation fails, naming why, so the region is
/// counted out of every write instead of being silently re-created.
pub(super) struct UnavailableBackend {
    pub(super) region: String,
    pub(super) why: String,
}

impl UnavailableBackend {
    fn fail<T>(&self, op: &'static str, path: &str) -> Result<T> {
        Err(StorageError::new(op, path, &self.region, StorageErrorKind::Unavailable, self.why.clone()).into())
    }
}

impl Backend for UnavailableBackend {
    fn read(&self, path: &str) -> Result<Bytes> {
        self.fail("read", path)
    }

    fn read_range(&self, path: &str, _offset: u64, _len: u64) -> Result<Bytes> {
        self.fail("read", path)
    }

    fn write(&self, path: &str, _data: Bytes) -> Result<()> {
        self.fail("write", path)
    }

    fn write_new(&self, path: &str, _data: Bytes) -> Result<bool> {
        self.fail("write", path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.fail("list", prefix)
    }

    fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.fail("list", prefix)
    }

    fn stat(&self, path: &str) -> Result<Option<u64>> {
        self.fail("stat", path)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.fail("delete", path)
    }
}

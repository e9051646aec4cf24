//! The storage trait every region implements, and the one implementation there is: an opendal blocking operator,
//! with durable renames on local disks.

use std::path::PathBuf;

use bytes::Bytes;
use opendal::ErrorKind;

use crate::error::{Error, Result, StorageError, StorageErrorKind};

/// One storage location: an opendal operator and its name.
pub trait Backend: Send + Sync {
    /// Whole object.
    fn read(&self, path: &str) -> Result<Bytes>;
    /// `len` bytes at `offset`.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes>;
    /// Stores a whole object durably.
    fn write(&self, path: &str, data: Bytes) -> Result<()>;
    /// Stores a whole object durably unless the name is taken: an object already there is never overwritten
    /// (`Ok(false)`). Local directories move into place with `RENAME_NOREPLACE`; S3 sends `If-None-Match: *`;
    /// a service with neither is asked first (which a concurrent writer could race).
    fn write_new(&self, path: &str, data: Bytes) -> Result<bool>;
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

/// A [`Backend`] over an opendal blocking operator.
pub(super) struct OpendalBackend {
    pub(super) op: opendal::blocking::Operator,
    pub(super) region: String,
    /// For local directories: the root, so new directories can be fsynced after a rename.
    pub(super) fs_root: Option<PathBuf>,
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
            Err(e) => Err(self.err("delete", path, e)),
        }
    }
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

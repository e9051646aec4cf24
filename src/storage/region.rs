//! One region of a repository: a backend with a name, and whether it has failed in this run.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::backend::Backend;
use crate::error::{Result, StorageError, StorageErrorKind};

/// The most bytes [`Region::read_sized`] allocates before they arrive.
const MAX_PREALLOCATED: u64 = 256 << 20;

/// A read of `path` in `region` that failed in the middle of its stream, as a storage error of the kind it was.
pub fn stream_error(path: &str, region: &str, e: &std::io::Error) -> crate::error::Error {
    let beyond_end = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
        .is_some_and(|o| o.kind() == opendal::ErrorKind::RangeNotSatisfied);
    let kind = match e.kind() {
        _ if beyond_end => StorageErrorKind::ShortRead,
        std::io::ErrorKind::NotFound => StorageErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => StorageErrorKind::PermissionDenied,
        _ => StorageErrorKind::Other,
    };
    StorageError::new("read", path, region, kind, e.to_string()).into()
}

/// A named region of a repository.
pub struct Region {
    /// The region's name (`default` for a repository opened from a single URL).
    pub name: String,
    /// The URL the region was opened from.
    pub url: String,
    /// The storage that holds this region's copy.
    pub backend: Box<dyn Backend>,
    /// Cleared after an operation in this region failed; later operations try it last (reads) or skip it
    /// (writes), so one dead region does not cost a timeout per object.
    healthy: AtomicBool,
    /// Set when the region turned out not to be this repository (see [`Region::set_unusable`]).
    unusable: std::sync::Mutex<Option<String>>,
    /// Set when the region holds another repository: even `sync` leaves it alone.
    foreign: AtomicBool,
}

impl Region {
    /// The whole object at `path`, whose size a listing or the index gave: streamed into one buffer of that
    /// size, so that a pack is not held twice while the pieces of its download are joined (sync and check keep
    /// several in flight). A shorter copy is an error; what a longer one holds past `size` is not read (the
    /// callers verify what they read against its name or tag).
    pub fn read_sized(&self, path: &str, size: u64) -> Result<Bytes> {
        use std::io::Read;
        // The size comes from a listing: what is set aside up front is capped, the rest grows as bytes arrive.
        let mut buf = Vec::with_capacity(usize::try_from(size.min(MAX_PREALLOCATED)).unwrap_or(0));
        let mut stream = self.backend.read_range_stream(path, 0, size)?;
        stream.read_to_end(&mut buf).map_err(|e| stream_error(path, &self.name, &e))?;
        if buf.len() as u64 != size {
            let message = format!("{} bytes where {size} were expected", buf.len());
            return Err(StorageError::new("read", path, &self.name, StorageErrorKind::ShortRead, message).into());
        }
        Ok(Bytes::from(buf))
    }

    /// A region, healthy until an operation in it fails.
    pub fn new(name: impl Into<String>, url: impl Into<String>, backend: Box<dyn Backend>) -> Region {
        Region {
            name: name.into(),
            url: url.into(),
            backend,
            healthy: AtomicBool::new(true),
            unusable: std::sync::Mutex::new(None),
            foreign: AtomicBool::new(false),
        }
    }

    /// False once an operation in this region has failed in this run.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Why the region is not used at all in this run, if it is not: it holds no or another repository. Such a
    /// region is never read, listed or written, and never counts toward `min_regions`.
    pub fn unusable(&self) -> Option<String> {
        self.unusable.lock().expect("region lock").clone()
    }

    /// True when the region holds another repository (or one this key does not open).
    pub fn is_foreign(&self) -> bool {
        self.foreign.load(Ordering::Relaxed)
    }

    /// Sets the region aside for the rest of this run (see [`Region::unusable`]); `foreign` when it holds
    /// another repository.
    pub fn set_unusable(&self, why: String, foreign: bool) {
        self.foreign.store(foreign, Ordering::Relaxed);
        self.mark_failed();
        *self.unusable.lock().expect("region lock") = Some(why);
    }

    pub(super) fn mark_failed(&self) {
        self.healthy.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{Error, StorageErrorKind};
    use crate::storage::Storage;

    /// A listed size that does not match the copy is a short read, however large the size claims to be (nothing
    /// is set aside for a terabyte that never comes).
    #[test]
    fn a_sized_read_of_the_wrong_size_is_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::create_url(dir.path().to_str().unwrap()).unwrap();
        storage.write("snapshots/x", b"ten bytes!".to_vec()).unwrap();
        let region = &storage.regions()[0];
        assert_eq!(&region.read_sized("snapshots/x", 10).unwrap()[..], b"ten bytes!");
        for claimed in [11, 1 << 40] {
            match region.read_sized("snapshots/x", claimed) {
                Err(Error::Storage(e)) => assert_eq!(e.kind, StorageErrorKind::ShortRead, "{e:?}"),
                other => panic!("size {claimed}: {other:?}"),
            }
        }
        assert!(region.read_sized("snapshots/missing", 5).is_err());
    }
}

//! A region as it was at a past time: every object is the newest version written at or before that time (an
//! object whose newest version then is a delete marker, or that did not exist yet, is absent), read by its
//! version id. Nothing can be written or deleted through it. Built from one listing of every version under the
//! repository's root, the first time it is needed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use jiff::Timestamp;

use super::backend::{Backend, Bucket, Listed, ObjectVersion};
use crate::error::{Result, StorageError, StorageErrorKind};

/// A path's version in the view: its id, size and last-modified time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Picked {
    version: String,
    size: u64,
    modified: Timestamp,
}

/// path → its version, or why the listing failed.
type View = std::result::Result<BTreeMap<String, Picked>, String>;

/// A read-only view of a versioned bucket at a point in time.
pub struct AsOfBackend {
    inner: Box<dyn Backend>,
    at: Timestamp,
    region: String,
    /// path → the newest version at or before `at`, unless that is a delete marker.
    view: OnceLock<View>,
}

impl AsOfBackend {
    /// Wraps `inner`, which must be a versioned bucket.
    pub fn new(inner: Box<dyn Backend>, region: &str, at: Timestamp) -> AsOfBackend {
        AsOfBackend { inner, at, region: region.to_string(), view: OnceLock::new() }
    }

    fn bucket(&self, op: &'static str, path: &str) -> Result<&dyn Bucket> {
        self.inner.bucket().ok_or_else(|| {
            let message = "--as-of needs a versioned S3 bucket; this region is not one";
            StorageError::new(op, path, &self.region, StorageErrorKind::Unavailable, message).into()
        })
    }

    fn view(&self, op: &'static str, path: &str) -> Result<&BTreeMap<String, Picked>> {
        let built = self.view.get_or_init(|| {
            let bucket = self.bucket(op, path).map_err(|e| e.to_string())?;
            bucket.list_versions("").map(|v| pick(v, self.at)).map_err(|e| e.to_string())
        });
        built
            .as_ref()
            .map_err(|why| StorageError::new(op, path, &self.region, StorageErrorKind::Other, why.clone()).into())
    }

    fn version_of(&self, op: &'static str, path: &str) -> Result<&Picked> {
        self.view(op, path)?.get(path).ok_or_else(|| {
            let message = format!("no version at or before {} (--as-of)", self.at);
            StorageError::new(op, path, &self.region, StorageErrorKind::NotFound, message).into()
        })
    }

    fn refuse<T>(&self, op: &'static str, path: &str) -> Result<T> {
        let message = format!(
            "the repository is open read-only as it was at {} (--as-of): nothing is written or deleted; run the command without --as-of, or copy the view with `gumvault --as-of … sync --into URL`",
            self.at
        );
        Err(StorageError::new(op, path, &self.region, StorageErrorKind::ReadOnly, message).into())
    }
}

/// For every path, the newest version modified at or before `at`, unless that is a delete marker.
fn pick(versions: Vec<ObjectVersion>, at: Timestamp) -> BTreeMap<String, Picked> {
    let mut newest: BTreeMap<String, ObjectVersion> = BTreeMap::new();
    for v in versions.into_iter().filter(|v| v.modified <= at) {
        // Within one second (S3's resolution) the version S3 marks as the latest wins, else the first listed.
        let newer = match newest.get(&v.path) {
            Some(old) => v.modified > old.modified || (v.modified == old.modified && v.current && !old.current),
            None => true,
        };
        if newer {
            newest.insert(v.path.clone(), v);
        }
    }
    newest
        .into_iter()
        .filter(|(_, v)| !v.deleted)
        .map(|(p, v)| (p, Picked { version: v.version, size: v.size, modified: v.modified }))
        .collect()
}

impl Backend for AsOfBackend {
    fn read(&self, path: &str) -> Result<Bytes> {
        let version = &self.version_of("read", path)?.version;
        self.bucket("read", path)?.read_version(path, version, None)
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let version = &self.version_of("read", path)?.version;
        self.bucket("read", path)?.read_version(path, version, Some((offset, len)))
    }

    fn write(&self, path: &str, _data: Bytes) -> Result<()> {
        self.refuse("write", path)
    }

    fn write_new(&self, path: &str, _data: Bytes) -> Result<bool> {
        self.refuse("write", path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self.list_modified(prefix)?.into_iter().map(|l| (l.path, l.size)).collect())
    }

    fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>> {
        let view = self.view("list", prefix)?;
        Ok(view
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .map(|(p, v)| Listed { path: p.clone(), size: v.size, modified: Some(v.modified) })
            .collect())
    }

    fn stat(&self, path: &str) -> Result<Option<u64>> {
        Ok(self.view("stat", path)?.get(path).map(|v| v.size))
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.refuse("delete", path)
    }

    fn release_reserve(&self) {}

    fn restore_reserve(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, version: &str, secs: i64, deleted: bool) -> ObjectVersion {
        let modified = Timestamp::from_second(secs).unwrap();
        ObjectVersion { path: path.into(), version: version.into(), modified, size: 1, deleted, current: false }
    }

    #[test]
    fn picks_the_newest_version_at_the_time_and_ignores_later_deletes() {
        let versions = vec![
            v("a", "a2", 300, false),
            v("a", "a1", 100, false),
            v("b", "bdel", 250, true),
            v("b", "b1", 100, false),
            v("c", "cdel", 150, true),
            v("c", "c1", 100, false),
            v("d", "d1", 400, false),
        ];
        let view = pick(versions, Timestamp::from_second(200).unwrap());
        let got: Vec<(&str, &str)> = view.iter().map(|(p, v)| (p.as_str(), v.version.as_str())).collect();
        assert_eq!(got, vec![("a", "a1"), ("b", "b1")]);
    }
}

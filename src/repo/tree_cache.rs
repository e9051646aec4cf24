//! Whole tree packs kept on local disk, so that walking snapshots of a distant repository costs one request per
//! tree pack instead of one per directory. A restore, `ls`, `diff` or an incremental backup reads trees one after
//! another, each waiting for the last (a child's id is in its parent): at 100 ms a request, a snapshot of
//! 50,000 directories would spend over an hour in round trips. Tree packs are small (a quarter of a data pack) and
//! few (1–2% of a repository), so they are worth keeping whole, as restic keeps them.
//!
//! The files are the packs' sealed bytes, exactly as stored, so the cache holds nothing readable without the key.
//! A pack enters the cache only after its bytes matched its name, and every blob taken from it is authenticated
//! again when it is opened; a cached pack that fails that is removed and the blob is read from the repository.
//! Files are created 0600 under a temporary name and renamed into place, so a crash leaves no partial pack under a
//! pack's name. The cache is never needed: a pack that cannot be fetched whole, verified or written is given up
//! for the run, and its blobs are read from the repository one by one.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::format::id::Id;

/// How old a temporary file must be before a sweep takes it for a crash's leftover.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A directory of whole tree packs, named by their ids.
pub(crate) struct TreeCache {
    dir: PathBuf,
    /// One lock per pack being fetched, so threads that want the same pack wait for one download.
    fetching: Mutex<HashMap<Id, Arc<Mutex<()>>>>,
    /// Packs that could not be fetched whole, verified or kept in this run: their blobs are read one by one.
    given_up: Mutex<HashSet<Id>>,
}

impl TreeCache {
    /// The cache in `dir` (made 0700 when the first pack is stored).
    pub(crate) fn new(dir: PathBuf) -> Self {
        TreeCache { dir, fetching: Mutex::default(), given_up: Mutex::default() }
    }

    fn path_of(&self, pack: &Id) -> PathBuf {
        self.dir.join(pack.to_string())
    }

    /// The `len` bytes at `offset` of a cached pack, or `None` when the pack is not cached (or is shorter).
    pub(crate) fn read(&self, pack: &Id, offset: u64, len: usize) -> Option<Vec<u8>> {
        let file = File::open(self.path_of(pack)).ok()?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    /// Keeps a verified pack. Failure only means the next read goes to the repository again.
    pub(crate) fn store(&self, pack: &Id, bytes: &[u8]) -> std::io::Result<()> {
        make_private_dir(&self.dir)?;
        let mut tmp =
            tempfile::Builder::new().prefix(".fetching-").permissions(private_file()).tempfile_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(self.path_of(pack)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Remembers that `pack` cannot be cached in this run (unreadable whole, damaged, or the disk refused it).
    pub(crate) fn give_up(&self, pack: &Id) {
        self.given_up.lock().expect("tree cache lock").insert(*pack);
    }

    /// Whether [`TreeCache::give_up`] was called for `pack`.
    pub(crate) fn has_given_up(&self, pack: &Id) -> bool {
        self.given_up.lock().expect("tree cache lock").contains(pack)
    }

    /// Drops a cached pack (damaged, or deleted from the repository).
    pub(crate) fn remove(&self, pack: &Id) {
        let _ = std::fs::remove_file(self.path_of(pack));
    }

    /// Removes the cached packs the repository no longer has (another machine's prune deleted them) and
    /// temporary files a crash left over an hour ago (a younger one may be another process's download). Other
    /// entries are left alone. Returns how many files went.
    pub(crate) fn sweep(&self, mut still_stored: impl FnMut(&Id) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let stale = |e: &std::fs::DirEntry| {
            e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LEFTOVER_AGE))
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let gone = match Id::from_hex(&name) {
                Some(id) => !still_stored(&id),
                None => name.starts_with(".fetching-") && stale(&entry),
            };
            if gone && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Holds the pack's fetch lock while `f` runs, so one thread downloads a pack while the others wait for it.
    pub(crate) fn fetching<T>(&self, pack: &Id, f: impl FnOnce() -> T) -> T {
        let lock = self.fetching.lock().expect("tree cache lock").entry(*pack).or_default().clone();
        let out = {
            let _held = lock.lock().expect("tree pack lock");
            f()
        };
        let mut map = self.fetching.lock().expect("tree cache lock");
        if Arc::strong_count(&lock) == 2 {
            map.remove(pack);
        }
        out
    }
}

fn private_file() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_stored_pack_is_read_back_private_and_a_removed_one_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let cache = TreeCache::new(root.path().join("trees"));
        let id = Id([7; 32]);
        assert_eq!(cache.read(&id, 0, 1), None);
        cache.store(&id, b"sealed bytes").unwrap();
        assert_eq!(cache.read(&id, 7, 5).as_deref(), Some(&b"bytes"[..]));
        assert_eq!(cache.read(&id, 7, 6), None, "a read past the end is a miss, not a short blob");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join("trees")), 0o700);
        assert_eq!(mode(&cache.path_of(&id)), 0o600);
        assert_eq!(std::fs::read_dir(root.path().join("trees")).unwrap().count(), 1, "no temporary file left");
        cache.remove(&id);
        assert_eq!(cache.read(&id, 0, 1), None);
    }

    #[test]
    fn a_sweep_removes_deleted_packs_and_old_leftovers_only() {
        let root = tempfile::tempdir().unwrap();
        let cache = TreeCache::new(root.path().join("trees"));
        let (kept, deleted) = (Id([1; 32]), Id([2; 32]));
        cache.store(&kept, b"kept").unwrap();
        cache.store(&deleted, b"deleted").unwrap();
        let dir = root.path().join("trees");
        let (old, young, other) = (dir.join(".fetching-old"), dir.join(".fetching-young"), dir.join("notes.txt"));
        for p in [&old, &young, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
        assert_eq!(cache.sweep(|id| *id == kept), 2);
        assert!(cache.read(&kept, 0, 4).is_some());
        assert!(cache.read(&deleted, 0, 1).is_none());
        assert!(!old.exists(), "a leftover over an hour old goes");
        assert!(young.exists(), "a young temporary file may be another process's download");
        assert!(other.exists(), "what is not the cache's is left alone");
    }
}

//! What `wal-push` and `wal-fetch` keep on the local disk, under the cache directory, per repository URL (so it
//! is found without opening the repository, and works while the repository is gone):
//!
//! ```text
//! <cache>/wal/<16 hex of BLAKE3(url)>/          0700
//!     push-state.json                           outcomes of wal-push (monitoring)
//!     <system id>/pushed/<file name>            a marker per durable push: BLAKE3 of the file, when, repository id
//!     <system id>/fetched/<file name>           files wal-fetch fetched ahead, verified
//!     <system id>/segment-size                  the cluster's WAL segment size, learned from a fetched segment
//! ```
//!
//! Every directory is 0700 and every file 0600 (they hold WAL in plaintext, as the data directory does); files are
//! written to a temporary name and renamed, so a reader sees a whole file or none.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How long a push marker vouches for a push: long enough for PostgreSQL to reach the files pushed ahead, short
/// enough that a repository replaced at the same URL is not trusted for long.
pub const MARKER_TTL: SignedDuration = SignedDuration::from_hours(1);
/// How long a file fetched ahead is kept for the recovery that asked.
pub const FETCHED_TTL: SignedDuration = SignedDuration::from_hours(1);

/// The local directory of one repository URL.
#[derive(Clone, Debug)]
pub struct LocalDir {
    root: PathBuf,
}

/// A push marker: the file was durable in `min_regions` regions of this repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// BLAKE3 of the file's content, hex.
    pub blake3: String,
    /// When the push was durable.
    pub pushed: Timestamp,
    /// The repository's id.
    pub repository: String,
}

impl LocalDir {
    /// The directory for the repository at `url` under `cache_dir` (not created yet).
    pub fn new(cache_dir: &Path, url: &str) -> LocalDir {
        let key = hex::encode(&blake3::hash(url.as_bytes()).as_bytes()[..8]);
        LocalDir { root: cache_dir.join("wal").join(key) }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The push outcome file.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("push-state.json")
    }

    fn system(&self, system_id: u64, sub: &str) -> PathBuf {
        self.root.join(system_id.to_string()).join(sub)
    }

    /// The marker of a durable push, if one is there, fresh and readable.
    pub fn marker(&self, system_id: u64, file: &str, now: Timestamp) -> Option<Marker> {
        let text = std::fs::read(self.system(system_id, "pushed").join(file)).ok()?;
        let m: Marker = serde_json::from_slice(&text).ok()?;
        let fresh = m.pushed.checked_add(MARKER_TTL).is_ok_and(|until| until > now) && m.pushed <= now;
        fresh.then_some(m)
    }

    /// Records a durable push (call only once the file is durable).
    pub fn write_marker(&self, system_id: u64, file: &str, marker: &Marker) -> Result<()> {
        let json = serde_json::to_vec(marker).expect("markers serialize");
        write_private(&self.system(system_id, "pushed"), file, &json)
    }

    /// Removes markers that no longer vouch for anything (older than [`MARKER_TTL`]).
    pub fn clean_markers(&self, system_id: u64, now: Timestamp) {
        let dir = self.system(system_id, "pushed");
        for name in list_names(&dir) {
            if self.marker(system_id, &name, now).is_none() {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
    }

    /// Where a file fetched ahead is kept.
    pub fn fetched_path(&self, system_id: u64, file: &str) -> PathBuf {
        self.system(system_id, "fetched").join(file)
    }

    /// Keeps a file fetched ahead (already verified).
    pub fn keep_fetched(&self, system_id: u64, file: &str, content: &[u8]) -> Result<()> {
        write_private(&self.system(system_id, "fetched"), file, content)
    }

    /// Removes files fetched ahead: all of them (`None`, recovery ended), or those older than [`FETCHED_TTL`].
    pub fn clean_fetched(&self, system_id: u64, older_than: Option<Timestamp>) {
        let dir = self.system(system_id, "fetched");
        for name in list_names(&dir) {
            let path = dir.join(&name);
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let old = match (older_than, modified.and_then(|m| Timestamp::try_from(m).ok())) {
                (None, _) | (_, None) => true,
                (Some(now), Some(at)) => at.checked_add(FETCHED_TTL).is_ok_and(|until| until <= now),
            };
            if old {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The cluster's WAL segment size, when a fetch has learned it.
    pub fn segment_size(&self, system_id: u64) -> Option<u32> {
        std::fs::read_to_string(self.system(system_id, "segment-size")).ok()?.trim().parse().ok()
    }

    /// Remembers the cluster's WAL segment size.
    pub fn set_segment_size(&self, system_id: u64, size: u32) -> Result<()> {
        write_private(&self.root.join(system_id.to_string()), "segment-size", size.to_string().as_bytes())
    }
}

/// The names of the files in a directory (none when it does not exist).
fn list_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect()
}

/// Writes `dir/name` whole, private (directories 0700, the file 0600), through a temporary file in `dir`.
pub fn write_private(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io("create", dir, e))?;
    let tmp = dir.join(format!(".{name}.{}", hex::encode(rand::random::<[u8; 6]>())));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", dir.join(name), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_expire_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path(), "/srv/repo");
        assert_ne!(local.root(), LocalDir::new(dir.path(), "/srv/other").root());
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let m = Marker { blake3: "ab".into(), pushed: now, repository: "r".into() };
        local.write_marker(7, "000000010000000000000002", &m).unwrap();
        assert_eq!(local.marker(7, "000000010000000000000002", now), Some(m));
        assert_eq!(local.marker(8, "000000010000000000000002", now), None, "per system");
        let later = now + SignedDuration::from_mins(61);
        assert_eq!(local.marker(7, "000000010000000000000002", later), None);
        let path = local.root().join("7/pushed/000000010000000000000002");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(local.root()).unwrap().permissions().mode() & 0o777, 0o700);
        local.clean_markers(7, later);
        assert!(!path.exists());
        local.keep_fetched(7, "x", b"wal").unwrap();
        local.clean_fetched(7, Some(Timestamp::now()));
        assert!(local.fetched_path(7, "x").exists(), "fresh ones stay");
        local.clean_fetched(7, None);
        assert!(!local.fetched_path(7, "x").exists());
        local.set_segment_size(7, 16 << 20).unwrap();
        assert_eq!(local.segment_size(7), Some(16 << 20));
    }
}

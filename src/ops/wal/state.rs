//! The outcomes of `wal-push`, for monitoring: PostgreSQL retries a failing `archive_command` forever and says
//! so only in its log, so every push records what happened in a small private file under the cache directory
//! (see [`super::local`]), written even when the repository cannot be opened. `status` reads it with
//! [`read_push_state`].

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::local::{LocalDir, write_private};
use crate::error::{Error, Result};

/// One push, as the state file remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// When it ended.
    pub time: Timestamp,
    /// The file PostgreSQL asked to archive.
    pub file: String,
    /// Why it failed (the error's message: names and paths, never a secret); absent for a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the pushes to one repository URL did lately.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushState {
    /// The newest successful push.
    pub last_success: Option<PushOutcome>,
    /// The newest failed push.
    pub last_failure: Option<PushOutcome>,
    /// Failed pushes since the last success (0 while archiving works).
    pub consecutive_failures: u64,
}

impl PushState {
    /// True when the newest push failed.
    pub fn failing(&self) -> bool {
        self.consecutive_failures > 0
    }
}

/// Reads the push state of the repository at `url` (`None` when nothing was ever pushed from this machine
/// with this cache directory).
pub fn read_push_state(cache_dir: &Path, url: &str) -> Result<Option<PushState>> {
    read(&LocalDir::new(cache_dir, url).state_file())
}

fn read(path: &Path) -> Result<Option<PushState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::InvalidInput(format!("the WAL push state {} is unreadable: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Records the outcome of one push (under a lock, so concurrent pushes do not lose each other's outcomes).
pub fn record(local: &LocalDir, file: &str, outcome: std::result::Result<(), String>, now: Timestamp) -> Result<()> {
    std::fs::create_dir_all(local.root()).map_err(|e| Error::io("create", local.root(), e))?;
    let lock_path = local.root().join("push-state.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &lock_path, e.into()))?;
    // A damaged state file is replaced rather than blocking every later push.
    let mut state = read(&local.state_file()).ok().flatten().unwrap_or_default();
    match outcome {
        Ok(()) => {
            state.last_success = Some(PushOutcome { time: now, file: file.to_string(), error: None });
            state.consecutive_failures = 0;
        }
        Err(message) => {
            state.last_failure = Some(PushOutcome { time: now, file: file.to_string(), error: Some(message) });
            state.consecutive_failures += 1;
        }
    }
    let json = serde_json::to_vec_pretty(&state).expect("push state serializes");
    write_private(local.root(), "push-state.json", &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_failures_until_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path(), "s3://bucket/x");
        assert_eq!(read_push_state(dir.path(), "s3://bucket/x").unwrap(), None);
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        record(&local, "A", Ok(()), t).unwrap();
        record(&local, "B", Err("no repository at s3://bucket/x".into()), t).unwrap();
        record(&local, "B", Err("again".into()), t).unwrap();
        let s = read_push_state(dir.path(), "s3://bucket/x").unwrap().unwrap();
        assert_eq!((s.consecutive_failures, s.failing()), (2, true));
        assert_eq!(s.last_success.unwrap().file, "A");
        assert_eq!(s.last_failure.unwrap().error.as_deref(), Some("again"));
        record(&local, "B", Ok(()), t).unwrap();
        let s = read_push_state(dir.path(), "s3://bucket/x").unwrap().unwrap();
        assert!(!s.failing());
        assert_eq!(s.last_failure.unwrap().file, "B", "the last failure stays for the record");
    }

    #[test]
    fn a_damaged_state_file_is_named_when_read_and_replaced_by_the_next_push() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path(), "/srv/repo");
        std::fs::create_dir_all(local.root()).unwrap();
        std::fs::write(local.state_file(), b"{not json").unwrap();
        let e = read_push_state(dir.path(), "/srv/repo").unwrap_err().to_string();
        assert!(e.contains("push state") && e.contains("push-state.json"), "{e}");
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        record(&local, "A", Err("region down".into()), t).unwrap();
        let s = read_push_state(dir.path(), "/srv/repo").unwrap().unwrap();
        assert_eq!((s.consecutive_failures, s.last_failure.unwrap().file.as_str()), (1, "A"));
    }
}

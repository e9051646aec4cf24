//! The maintenance lease: prune and forget hold it so two maintenance runs never overlap. Backups, restores and
//! checks never take it and are never blocked by it.
//!
//! A lease is a sealed object `locks/<random id>` with host, pid, operation and an expiry. Rules (repo-format.md):
//! a lease is live until `expires + CLOCK_SKEW`; the holder rewrites it every `TTL / 4` with a new expiry; an
//! expired lease is deleted by whoever finds it (and said so). To acquire: delete expired leases, fail if a live
//! one exists, write ours, list again, and keep ours only if it is the oldest live lease (ties by id) — so two
//! runs that race both see the same winner.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result};
use crate::format::lease::LeaseInfo;
use crate::format::objects::ObjectKind;
use crate::repo::Repository;

/// How long a lease lives without a refresh.
pub const TTL: SignedDuration = SignedDuration::from_secs(10 * 60);

/// A held lease; refreshed in the background and released on drop.
pub struct Lease<'r> {
    repo: &'r Repository,
    path: String,
    stop: Arc<AtomicBool>,
    refresher: Option<JoinHandle<()>>,
    /// Expired leases of others that were taken over (for the caller to report).
    pub taken_over: Vec<String>,
}

fn lock_path(id: &str) -> String {
    ObjectKind::Lock.path(id)
}

fn write(repo: &Repository, info: &LeaseInfo) -> Result<()> {
    let sealed = repo.key.seal(ObjectKind::Lock.aad(), serde_json::to_vec(info).expect("lease serializes"));
    repo.put(ObjectKind::Lock, &lock_path(&info.id), sealed)
}

/// Every lease object (unreadable ones are reported as corrupt).
pub fn list(repo: &Repository) -> Result<Vec<LeaseInfo>> {
    let mut out = Vec::new();
    for (path, _) in repo.storage.list(ObjectKind::Lock.prefix())? {
        let sealed = match repo.storage.read(&path) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue, // released meanwhile
            Err(e) => return Err(e),
        };
        let plain = repo
            .key
            .open(ObjectKind::Lock.aad(), &sealed)
            .ok_or_else(|| Error::corrupt(&path, "authentication failed"))?;
        out.push(serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&path, e.to_string()))?);
    }
    Ok(out)
}

/// Acquires the maintenance lease, waiting up to `wait` for a live one to go away.
///
/// Maintenance deletes, so it first makes sure these credentials may delete at all: with a backup role's
/// (append-only) credentials it fails here, naming the missing permission, before anything is written.
pub fn acquire<'r>(repo: &'r Repository, operation: &str, wait: Duration) -> Result<Lease<'r>> {
    repo.check_can_delete()?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match try_acquire(repo, operation)? {
            Attempt::Acquired(lease) => return Ok(lease),
            Attempt::Held(holder) => {
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Locked(format!(
                        "the repository is busy with maintenance: {holder}; retry later or pass --retry-lock 10m"
                    )));
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// What one attempt to take the lease came to.
enum Attempt<'r> {
    /// It is ours.
    Acquired(Lease<'r>),
    /// Someone else holds a live lease (described for the message).
    Held(String),
}

/// One attempt to take the lease.
fn try_acquire<'r>(repo: &'r Repository, operation: &str) -> Result<Attempt<'r>> {
    let now = crate::time::now();
    let mut taken_over = Vec::new();
    for other in list(repo)? {
        if other.is_live(now) {
            return Ok(Attempt::Held(other.describe()));
        }
        repo.storage.delete(&lock_path(&other.id))?;
        taken_over.push(format!("took over the expired lease of {}", other.describe()));
    }
    let info = LeaseInfo {
        version: 1,
        id: hex::encode(crate::format::crypto::random_bytes::<16>()),
        host: crate::hostname(),
        pid: std::process::id(),
        operation: operation.to_string(),
        created: now,
        expires: now.checked_add(TTL).unwrap_or(Timestamp::MAX),
    };
    write(repo, &info)?;
    let winner = list(repo)?
        .into_iter()
        .filter(|l| l.is_live(now) || l.id == info.id)
        .min_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    if let Some(w) = winner.filter(|w| w.id != info.id) {
        repo.storage.delete(&lock_path(&info.id))?;
        return Ok(Attempt::Held(w.describe()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    Ok(Attempt::Acquired(
        Lease { repo, path: lock_path(&info.id), stop, refresher: None, taken_over }.with_refresher(info),
    ))
}

impl<'r> Lease<'r> {
    /// Starts the refresh thread. It needs only the storage handle and key, which it gets from a second open
    /// of the same objects: to keep lifetimes simple it re-seals with a clone of the key.
    fn with_refresher(mut self, info: LeaseInfo) -> Self {
        let stop = self.stop.clone();
        let key = self.repo.key.clone();
        let config = self.repo.config.clone();
        let url = self.repo.storage.url().to_string();
        self.refresher = Some(std::thread::spawn(move || {
            let Ok(storage) = crate::storage::Storage::open_url(&url) else { return };
            let every = Duration::from_secs((TTL.as_secs() / 4).max(1) as u64);
            let mut waited = Duration::ZERO;
            let mut info = info;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                waited += Duration::from_millis(200);
                if waited >= every {
                    waited = Duration::ZERO;
                    info.expires = crate::time::now().checked_add(TTL).unwrap_or(Timestamp::MAX);
                    let sealed = key.seal(ObjectKind::Lock.aad(), serde_json::to_vec(&info).expect("lease serializes"));
                    let opts = super::lock::write_options(&config, ObjectKind::Lock, false);
                    let _ = storage.write_with(&lock_path(&info.id), sealed, &opts);
                }
            }
        }));
        self
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let _ = self.repo.storage.delete(&self.path);
    }
}

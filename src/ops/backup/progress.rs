//! Live counters of a running backup, for progress bars and the summary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters a progress display reads while a backup runs.
#[derive(Default)]
pub struct Progress {
    /// Files read that the parent snapshot did not have.
    pub files_new: AtomicU64,
    /// Files read again because they changed.
    pub files_changed: AtomicU64,
    /// Files taken from the parent snapshot without reading.
    pub files_unchanged: AtomicU64,
    /// Directories saved.
    pub dirs: AtomicU64,
    /// Bytes read from sources so far.
    pub bytes: AtomicU64,
    /// Bytes of file content read (the summary's figure).
    pub bytes_read: AtomicU64,
    /// Logical size of everything saved so far.
    pub total_bytes: AtomicU64,
    /// Bytes of unchanged files taken from the parent snapshot without reading.
    pub bytes_skipped: AtomicU64,
    /// Inputs that could not be read.
    pub errors: AtomicU64,
    /// Filled in by a scan running beside the backup, for an ETA.
    pub estimate_files: AtomicU64,
    /// Bytes the scan found.
    pub estimate_bytes: AtomicU64,
    /// Set when the scan is done (or should stop).
    pub estimate_done: AtomicBool,
}

impl Progress {
    /// Files finished so far.
    pub fn files(&self) -> u64 {
        self.files_new.load(Ordering::Relaxed)
            + self.files_changed.load(Ordering::Relaxed)
            + self.files_unchanged.load(Ordering::Relaxed)
    }
}

//! One region of a repository: a backend with a name, and whether it has failed in this run.

use std::sync::atomic::{AtomicBool, Ordering};

use super::backend::Backend;

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
}

impl Region {
    /// A region, healthy until an operation in it fails.
    pub fn new(name: impl Into<String>, url: impl Into<String>, backend: Box<dyn Backend>) -> Region {
        Region { name: name.into(), url: url.into(), backend, healthy: AtomicBool::new(true) }
    }

    /// False once an operation in this region has failed in this run.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(super) fn mark_failed(&self) {
        self.healthy.store(false, Ordering::Relaxed);
    }
}

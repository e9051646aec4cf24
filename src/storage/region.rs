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
    /// Set when the region turned out not to be this repository (see [`Region::set_unusable`]).
    unusable: std::sync::Mutex<Option<String>>,
    /// Set when the region holds another repository: even `sync` leaves it alone.
    foreign: AtomicBool,
}

impl Region {
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

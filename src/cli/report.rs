//! What commands print about the storage beside their own output: regions that failed over, damaged copies.

use crate::repo::Repository;
use crate::repo::session::Session;

/// Prints what the storage had to work around: regions that failed, copies that were bad or missing.
pub(crate) fn print_region_events(repo: &Repository) {
    for e in repo.take_events() {
        eprintln!("gumvault: region: {e}");
    }
}

/// Remembers damaged copies in the catalog, so the next `gumvault sync` replaces them even without --read-data.
pub(crate) fn remember_bad_copies(s: &Session) {
    let bad = s.repo.bad_copies();
    if bad.is_empty() {
        return;
    }
    let mut known: Vec<(String, String)> =
        s.catalog.meta(BAD_COPIES_KEY).ok().flatten().and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
    known.extend(bad);
    known.sort();
    known.dedup();
    for (region, path) in &known {
        eprintln!("gumvault: region {region} holds a damaged copy of {path}; `gumvault sync` replaces it");
    }
    if let Ok(v) = serde_json::to_string(&known) {
        let _ = s.catalog.set_meta(BAD_COPIES_KEY, Some(&v));
    }
}

/// Catalog key of the damaged copies seen so far.
pub(crate) const BAD_COPIES_KEY: &str = "bad_copies";

//! The snapshot filters and point in time that snapshots, restore, dump, ls and forget share.

use clap::Args;

use crate::ops::select::Filter;
use crate::repo::catalog::{Catalog, SnapshotEntry};

/// Snapshot filters shared by snapshots, restore, dump and ls.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct FilterArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Point in time: with `latest`, pick the newest matching snapshot taken at or before it
    /// (2026-11-20T14:00:00Z, '2026-11-20 14:00' local time, '2 days ago')
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter { hosts: self.hosts.clone(), tags: self.tags.clone(), paths: self.paths.clone() }
    }

    /// The point in time given with --at, if any.
    pub fn at_time(&self) -> anyhow::Result<Option<jiff::Timestamp>> {
        let tz = jiff::tz::TimeZone::system();
        Ok(self.at.as_deref().map(|t| crate::time::parse_time(t, crate::time::now(), &tz)).transpose()?)
    }

    /// Resolves a snapshot selector (`latest`, an id prefix) under these filters and --at.
    pub fn pick(&self, catalog: &Catalog, selector: &str) -> anyhow::Result<SnapshotEntry> {
        match self.at_time()? {
            Some(at) if selector == "latest" => Ok(crate::ops::select::at(catalog, at, &self.filter())?),
            Some(_) => anyhow::bail!("--at picks a snapshot by time; give `latest` (or nothing) instead of an id"),
            None => Ok(crate::ops::select::resolve(catalog, selector, &self.filter())?),
        }
    }
}

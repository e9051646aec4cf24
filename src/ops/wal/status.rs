//! What `status` needs about the WAL archive: per cluster, the newest archived file and when it was stored
//! (the recovery point of a physical source: a restore can reach the end of the newest archived WAL), from one
//! listing of `wal/` (the storage's last-modified times: a local file's mtime, S3's `LastModified`); and what the
//! pushes from this machine did, from the local state file (see [`super::state`]), which needs no repository.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::error::Result;
use crate::format::wal::WalFileKind;
use crate::repo::Repository;
use crate::repo::wal::WalListing;

/// One cluster's archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArchiveSummary {
    /// The cluster's database system identifier.
    pub system_id: u64,
    /// Files archived (segments, partial segments, backup and timeline history files).
    pub files: usize,
    /// Their bytes as stored.
    pub bytes: u64,
    /// The newest segment (highest position, then timeline), if any.
    pub newest_segment: Option<String>,
    /// The newest timeline with any file.
    pub newest_timeline: u32,
    /// When the newest file was stored: the recovery point. `None` when the storage gives no times.
    pub newest_time: Option<Timestamp>,
}

/// Summarises an archive listing per cluster.
pub fn summarize(listing: &WalListing) -> Vec<ArchiveSummary> {
    let mut out: BTreeMap<u64, ArchiveSummary> = BTreeMap::new();
    for o in &listing.files {
        let s = out.entry(o.system_id).or_insert(ArchiveSummary {
            system_id: o.system_id,
            files: 0,
            bytes: 0,
            newest_segment: None,
            newest_timeline: 0,
            newest_time: None,
        });
        s.files += 1;
        s.bytes += o.size;
        s.newest_timeline = s.newest_timeline.max(o.file.tli);
        s.newest_time = s.newest_time.max(o.modified);
        if o.file.kind == WalFileKind::Segment {
            // The listing is sorted by position, then timeline: the last segment seen is the newest.
            s.newest_segment = Some(o.file.name.clone());
        }
    }
    out.into_values().collect()
}

/// The archive of every cluster in the repository (one listing of `wal/`, no object read).
pub fn archive_status(repo: &Repository) -> Result<Vec<ArchiveSummary>> {
    Ok(summarize(&repo.list_wal()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::wal::WalFile;
    use crate::repo::wal::WalObject;

    #[test]
    fn newest_per_cluster() {
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let o = |system_id, name: &str, modified| WalObject {
            system_id,
            file: WalFile::parse(name).unwrap(),
            size: 100,
            modified,
            path: String::new(),
        };
        let listing = WalListing {
            files: vec![
                o(1, "000000010000000000000001", t("2026-12-01T10:00:00Z")),
                o(1, "00000002.history", t("2026-12-01T10:05:00Z")),
                o(1, "000000020000000000000002", t("2026-12-01T10:06:00Z")),
                o(2, "000000010000000000000009", None),
            ],
            foreign: vec![],
        };
        let s = summarize(&listing);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].files, s[0].bytes, s[0].newest_timeline), (3, 300, 2));
        assert_eq!(s[0].newest_segment.as_deref(), Some("000000020000000000000002"));
        assert_eq!(s[0].newest_time, t("2026-12-01T10:06:00Z"));
        assert_eq!(s[1].newest_time, None);
    }
}

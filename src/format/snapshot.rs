//! Snapshot manifests: what was backed up, when, from where, and the root tree that holds it.

use serde::{Deserialize, Serialize};

use crate::format::id::Id;

/// Version of the manifest schema; readers refuse newer ones.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Statistics of the backup run that made a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Logical size of everything in the snapshot.
    pub total_bytes: u64,
    /// Blobs and bytes (plaintext, then as stored) that this backup added to the repository.
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub stored_bytes_added: u64,
    /// Inputs that could not be read (the snapshot is then incomplete).
    pub errors: u64,
    pub duration_secs: f64,
    /// Optional sources of a job that failed and were left out (each with the reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_sources: Vec<String>,
}

/// A snapshot manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    /// When the backup started.
    pub time: jiff::Timestamp,
    pub host: String,
    /// The absolute paths backed up (or `/NAME` for a stream).
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: Id,
    #[serde(default)]
    pub parent: Option<Id>,
    /// Chunker profile used for content.
    pub chunker: String,
    /// The job (`gumvault run JOB`) that took this snapshot; its top-level directories are the job's sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// True when some inputs could not be read.
    #[serde(default)]
    pub incomplete: bool,
    #[serde(default)]
    pub summary: Summary,
}

impl Snapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshots always serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, String> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(|e| format!("undecodable snapshot: {e}"))?;
        if v.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot format version {} is not supported (this gumvault reads {SNAPSHOT_VERSION}); upgrade gumvault",
                v.version
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("undecodable snapshot: {e}"))
    }
}

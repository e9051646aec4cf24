//! Snapshot manifests: what was backed up, when, from where, and the root tree that holds it.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::format::id::Id;

/// Version of the manifest schema; readers refuse newer ones.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Statistics of the backup run that made a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Files read that the parent snapshot did not have.
    pub files_new: u64,
    /// Files read again because they changed since the parent snapshot.
    pub files_changed: u64,
    /// Files taken from the parent snapshot without reading them.
    pub files_unchanged: u64,
    /// Directories saved.
    pub dirs: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Logical size of everything in the snapshot.
    pub total_bytes: u64,
    /// Blobs and bytes (plaintext, then as stored) that this backup added to the repository.
    pub blobs_added: u64,
    /// Plaintext bytes of those new blobs.
    pub bytes_added: u64,
    /// Bytes of those new blobs as stored (compressed and sealed).
    pub stored_bytes_added: u64,
    /// Inputs that could not be read (the snapshot is then incomplete).
    pub errors: u64,
    /// How long the backup took, in seconds.
    pub duration_secs: f64,
    /// Optional sources of a job that failed and were left out (each with the reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_sources: Vec<String>,
}

/// A snapshot manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Version of the manifest schema ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// The host the backup was taken on.
    pub host: String,
    /// The absolute paths backed up (or `/NAME` for a stream).
    pub paths: Vec<String>,
    /// Tags for finding and grouping snapshots (a job's snapshots carry the job's name).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: Id,
    /// The previous snapshot of the same host, paths and job, if any (for a repaired snapshot, the one it replaced).
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
    /// Statistics of the backup run that made it.
    #[serde(default)]
    pub summary: Summary,
    /// The PostgreSQL base backups it holds (one per `postgres-physical` source), with what recovery needs
    /// from the WAL archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_backups: Vec<BaseBackup>,
}

/// A PostgreSQL base backup in a snapshot: which cluster's WAL archive it belongs to and which WAL makes it
/// consistent. Its data directory is the tree of the source's top-level directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseBackup {
    /// The job source it was taken by (the top-level directory of the snapshot's tree).
    pub source: String,
    /// The cluster's database system identifier (pg_control): the WAL archive the backup belongs to.
    pub system_id: u64,
    /// `server_version_num` of the server, e.g. 150013: a restore needs the same major version.
    pub pg_version: u32,
    /// Timeline the backup started on.
    pub timeline: u32,
    /// WAL location where the backup started (`START WAL LOCATION` of its backup_label), e.g. `0/2000028`.
    pub start_lsn: String,
    /// The WAL segment holding `start_lsn` (on `timeline`): recovery begins here, and WAL before it is
    /// not needed for this backup.
    pub start_wal: String,
    /// WAL location where the backup ended: recovery must replay up to here before the data is consistent.
    pub stop_lsn: String,
    /// The WAL segment holding `stop_lsn`.
    pub stop_wal: String,
    /// When the backup ended: the earliest time a point-in-time restore from it can reach.
    pub stop_time: jiff::Timestamp,
}

impl Snapshot {
    /// The manifest as JSON, as it is stored (before sealing).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshots always serialize")
    }

    /// Parses a manifest, refusing a schema version other than [`SNAPSHOT_VERSION`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let undecodable = |e: serde_json::Error| DecodeError::Invalid(format!("undecodable snapshot: {e}"));
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(undecodable)?;
        if v.version != SNAPSHOT_VERSION {
            return Err(DecodeError::Version {
                what: "snapshot format",
                found: v.version,
                supported: SNAPSHOT_VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(undecodable)
    }
}

//! The repository config (the sealed `config` object): format version, id, chunker profiles, compression, pack
//! sizes and regions. See repo-format.md, "Config".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::chunker::ChunkerParams;

/// Version of the repository format this build writes and reads.
pub const REPO_VERSION: u32 = 1;

/// A region's name and URL, as stored in the repository config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// The name commands use (`--region NAME=URL`, `--prefer-region NAME`).
    pub name: String,
    /// Where the region lives.
    pub url: String,
}

/// The repository config, sealed in the `config` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Version of the repository format ([`REPO_VERSION`]); readers refuse others.
    pub version: u32,
    /// Random id; names the local catalog.
    pub id: String,
    /// Named chunker profiles; `files` and `stream` always exist.
    pub chunker_profiles: BTreeMap<String, ChunkerParams>,
    /// zstd level (0 disables compression).
    pub compression_level: i32,
    /// Target size of data packs in bytes.
    pub pack_size: u32,
    /// Target size of tree packs in bytes.
    pub tree_pack_size: u32,
    /// The regions that each hold the whole repository (empty: just the location it was opened from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionSpec>,
    /// Regions that must hold an object before a write counts as done (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_regions: Option<u32>,
    /// S3 Object Lock: every object written is locked for this long, and what is still needed is kept locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// The S3 storage class of data packs (everything else stays in the bucket's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// Object Lock mode: governance (a user with `s3:BypassGovernanceRetention` may shorten a lock) or compliance
/// (nobody can, not even the account's root user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// `GOVERNANCE`.
    Governance,
    /// `COMPLIANCE`.
    Compliance,
}

/// A repository's Object Lock rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    /// The lock mode.
    pub mode: LockMode,
    /// How long every object stays locked after it is written or its lock is extended, in seconds.
    pub period_secs: u64,
}

impl ObjectLock {
    /// Parses `compliance:35d` or `governance:30d` (a mode, a colon, a duration of at least one second).
    pub fn parse(s: &str) -> std::result::Result<ObjectLock, String> {
        let bad = || {
            format!("invalid object lock {s:?}: use compliance:DURATION or governance:DURATION, e.g. compliance:35d")
        };
        let (mode, period) = s.split_once(':').ok_or_else(bad)?;
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "compliance" => LockMode::Compliance,
            "governance" => LockMode::Governance,
            _ => return Err(bad()),
        };
        let period = crate::time::parse_duration(period).map_err(|_| bad())?;
        let period_secs = u64::try_from(period.as_secs()).ok().filter(|s| *s > 0).ok_or_else(bad)?;
        Ok(ObjectLock { mode, period_secs })
    }

    /// The period as a duration.
    pub fn period(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.period_secs as i64)
    }
}

impl std::fmt::Display for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        };
        match self.period_secs {
            s if s % 86_400 == 0 => write!(f, "{mode}:{}d", s / 86_400),
            s => write!(f, "{mode}:{s}s"),
        }
    }
}

/// Storage classes that read like the default one (no retrieval request): data packs may use them.
pub const STORAGE_CLASSES: [&str; 6] =
    ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"];

/// Checks a storage class name: one of [`STORAGE_CLASSES`]; the archive classes are refused with the reason.
pub fn check_storage_class(class: &str) -> std::result::Result<(), String> {
    match class {
        c if STORAGE_CLASSES.contains(&c) => Ok(()),
        "GLACIER" | "DEEP_ARCHIVE" => Err(format!(
            "storage class {class} is refused: its objects cannot be read until a RestoreObject request has run for hours (minutes at best, at extra cost), so every restore, check --read-data and prune repack would stall on it; use GLACIER_IR (archive prices, read at once) instead"
        )),
        other => Err(format!("unknown storage class {other:?} (use one of {})", STORAGE_CLASSES.join(", "))),
    }
}

impl RepoConfig {
    /// The config as stored (before sealing).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serializes")
    }
}

/// The built-in chunker profiles (measured in docs/benchmarks.md).
pub fn default_profiles() -> BTreeMap<String, ChunkerParams> {
    BTreeMap::from([
        ("files".to_string(), ChunkerParams::FILES),
        ("stream".to_string(), ChunkerParams::STREAM),
        ("pages".to_string(), ChunkerParams::PAGES),
    ])
}

/// Parses and validates the config's plaintext, refusing unknown versions.
pub fn parse_config(plain: &[u8]) -> Result<RepoConfig> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let v: VersionOnly = serde_json::from_slice(plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
    if v.version != REPO_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "the repository".into(),
            found: v.version,
            supported: REPO_VERSION,
        });
    }
    let config: RepoConfig = serde_json::from_slice(plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
    for (name, p) in &config.chunker_profiles {
        p.validate().map_err(|e| Error::corrupt("config", format!("chunker profile {name}: {e}")))?;
    }
    Ok(config)
}

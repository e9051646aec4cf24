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

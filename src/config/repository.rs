//! `[repository]`: where the repository is, where its password comes from, its regions.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::Secret;
use crate::format::repo_config::{ObjectLock, check_storage_class};

/// `[repository]`: every command takes the repository and password from here unless flags or the environment
/// say otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Where the repository is: a local directory or an `s3://` URL (`-r` and `GUMVAULT_REPO` override it).
    pub url: Option<String>,
    /// The password, or a reference to it (`env:NAME`, `file:/path`).
    pub password: Option<Secret>,
    /// A shell command that prints the password.
    pub password_command: Option<String>,
    /// Directory of the local catalog.
    pub cache_dir: Option<PathBuf>,
    /// The regions (each a complete copy): used by `init`, and to override stored URLs by name.
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// Regions that must hold each new object (default: all).
    pub min_regions: Option<u32>,
    /// Regions reads try first, in this order.
    #[serde(default)]
    pub prefer_regions: Vec<String>,
    /// S3 Object Lock for a new repository (`init`): `compliance:35d` or `governance:35d`.
    #[serde(default, deserialize_with = "object_lock")]
    pub object_lock: Option<ObjectLock>,
    /// S3 storage class of data packs for a new repository (`init`), e.g. `STANDARD_IA` or `GLACIER_IR`.
    #[serde(default, deserialize_with = "storage_class")]
    pub storage_class: Option<String>,
}

fn object_lock<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ObjectLock>, D::Error> {
    let s = String::deserialize(d)?;
    ObjectLock::parse(&s).map(Some).map_err(serde::de::Error::custom)
}

fn storage_class<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_storage_class(&s).map(|()| Some(s)).map_err(serde::de::Error::custom)
}

/// `[[repository.regions]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The region's name, as `--region NAME=URL`, `--prefer-region` and `prefer_regions` refer to it.
    pub name: String,
    /// Where this region's copy is: a local directory or an `s3://` URL.
    pub url: String,
}

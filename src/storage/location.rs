//! Where a repository (or a bucket) lives, parsed from a URL, and the opendal operator that reaches it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opendal::Operator;

use std::os::unix::fs::DirBuilderExt;

use super::append_only::AppendOnly;
use super::backend::{Backend, OpendalBackend, UnavailableBackend};
use super::s3api::S3Api;
use super::tuning::StorageTuning;
use crate::error::{Error, Result, StorageError};
use crate::runtime::runtime;

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute).
    Fs(PathBuf),
    /// An S3 bucket with an optional prefix.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The key prefix the repository lives under, without leading or trailing `/` (empty for the whole bucket).
        prefix: String,
        /// The S3 endpoint URL (`?endpoint=`); `None` for AWS itself.
        endpoint: Option<String>,
        /// The bucket's region (`?region=`, else `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`).
        region: String,
    },
    /// Process memory (tests).
    Memory,
}

impl Location {
    /// Parses `PATH`, `file:///abs/path`, `s3://bucket/prefix?endpoint=…&region=…` or `memory://`.
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| Error::InvalidInput(format!("invalid repository URL {url:?}: {why}"));
        if url.is_empty() {
            return Err(bad("empty; give -r/--repo or set GUMVAULT_REPO"));
        }
        if url == "memory://" || url.starts_with("memory://") {
            return Ok(Location::Memory);
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("file:// URLs need an absolute path (file:///abs/path)"));
            }
            return Ok(Location::Fs(PathBuf::from(rest)));
        }
        if url.starts_with("s3://") {
            let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
            let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("no bucket"))?.to_string();
            let prefix = parsed.path().trim_matches('/').to_string();
            let mut endpoint = None;
            let mut region = None;
            for (k, v) in parsed.query_pairs() {
                match k.as_ref() {
                    "endpoint" => endpoint = Some(v.into_owned()),
                    "region" => region = Some(v.into_owned()),
                    other => return Err(bad(&format!("unknown parameter {other:?} (known: endpoint, region)"))),
                }
            }
            let region = region
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .unwrap_or_else(|| "us-east-1".to_string());
            return Ok(Location::S3 { bucket, prefix, endpoint, region });
        }
        if url.contains("://") {
            return Err(bad("unsupported scheme (use a path, file://, s3:// or memory://)"));
        }
        let path = Path::new(url);
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?.join(path)
        };
        Ok(Location::Fs(abs))
    }

    /// Opens the location as a backend.
    ///
    /// A local directory that does not exist is not created (opendal would): the region is unavailable, since a
    /// missing directory is most likely a disk that is not mounted, and filling the root file system instead
    /// would be worse than failing. Only [`Location::create`] makes it.
    pub fn open(&self, name: &str, url: &str) -> Result<Box<dyn Backend>> {
        if let Location::Fs(root) = self
            && !root.is_dir()
        {
            let why = format!(
                "its directory {} does not exist (is its disk mounted?); gumvault does not create it outside `init` and `sync --rebuild {name}`",
                root.display()
            );
            return Ok(Box::new(UnavailableBackend { region: name.to_string(), why }));
        }
        self.open_existing(name, url)
    }

    /// Opens the location, making a local directory (mode 0700) when it does not exist: for `init` and
    /// `sync --rebuild`.
    pub fn create(&self, name: &str, url: &str) -> Result<Box<dyn Backend>> {
        if let Location::Fs(root) = self {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| Error::io("create the repository directory", root, e))?;
        }
        self.open_existing(name, url)
    }

    fn open_existing(&self, name: &str, url: &str) -> Result<Box<dyn Backend>> {
        let op = self.operator(name, url, None)?;
        let fs_root = match self {
            Location::Fs(root) => Some(root.clone()),
            _ => None,
        };
        let s3 = self.s3_api(name, None)?;
        let backend: Box<dyn Backend> = Box::new(OpendalBackend { op, region: name.to_string(), fs_root, s3 });
        if std::env::var_os("GUMVAULT_TEST_APPEND_ONLY").is_some_and(|v| v == "1") {
            return Ok(Box::new(AppendOnly { inner: backend, region: name.to_string() }));
        }
        Ok(backend)
    }

    /// Signed S3 calls for this location (`None` unless it is an S3 bucket), with `credentials` or the
    /// environment's.
    pub fn s3_api(&self, name: &str, credentials: Option<(String, String)>) -> Result<Option<S3Api>> {
        match self {
            Location::S3 { bucket, prefix, endpoint, region } => {
                S3Api::new(name, bucket, prefix, endpoint.as_deref(), region, credentials).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A blocking opendal operator rooted at this location, with retries and timeouts. S3 credentials come from
    /// `credentials` (access key id, secret) or else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub fn operator(
        &self,
        name: &str,
        url: &str,
        credentials: Option<(String, String)>,
    ) -> Result<opendal::blocking::Operator> {
        let rt = runtime()?;
        let _guard = rt.enter();
        let map = |e: opendal::Error| Error::from(StorageError::from_opendal("open", url, name, &e));
        let op = match self {
            Location::Memory => Operator::new(opendal::services::Memory::default()).map_err(map)?,
            Location::Fs(root) => {
                let builder = opendal::services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&root.join(".tmp").to_string_lossy());
                Operator::new(builder).map_err(map)?
            }
            Location::S3 { bucket, prefix, endpoint, region } => {
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .disable_ec2_metadata();
                if let Some(ep) = endpoint {
                    b = b.endpoint(ep);
                }
                let env_keys =
                    || Some((std::env::var("AWS_ACCESS_KEY_ID").ok()?, std::env::var("AWS_SECRET_ACCESS_KEY").ok()?));
                if let Some((k, s)) = credentials.or_else(env_keys) {
                    b = b.access_key_id(&k).secret_access_key(&s);
                }
                Operator::new(b).map_err(map)?
            }
        };
        let t = StorageTuning::from_env()?;
        let op = op
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(t.retries)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter(),
            )
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(t.timeout_secs))
                    .with_io_timeout(Duration::from_secs(t.io_timeout_secs)),
            );
        opendal::blocking::Operator::new(op).map_err(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(Location::parse("/var/x").unwrap(), Location::Fs("/var/x".into()));
        assert_eq!(Location::parse("file:///var/x").unwrap(), Location::Fs("/var/x".into()));
        assert!(Location::parse("file://rel").is_err());
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert_eq!(
            Location::parse("s3://b/p/q?endpoint=http://127.0.0.1:9000&region=eu").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "p/q".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu".into()
            }
        );
        assert!(Location::parse("s3://b?bogus=1").is_err());
        assert!(Location::parse("ftp://x").is_err());
        assert!(Location::parse("").is_err());
    }
}

//! Storage: where repository objects live. A [`Storage`] is a list of regions, each an opendal operator made from
//! a URL. Writes go to every region; reads go to the first region that answers with the object. Nothing here
//! decrypts; callers verify what they read (object names are hashes of content, blobs carry AEAD tags).
//!
//! Contract of [`Backend`]: `write` returns only once the object is durable and appears whole or not at all under
//! its name (fs: written to a temporary file, fsynced, renamed, directory fsynced); `read_range` reads exactly the
//! bytes asked for or fails; `list` returns every object under a prefix with its size; `delete` of a missing
//! object succeeds.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use opendal::{ErrorKind, Operator};

use crate::error::{Error, Result};

/// One storage location: an opendal operator and its name.
pub trait Backend: Send + Sync {
    /// Whole object.
    fn read(&self, path: &str) -> Result<Bytes>;
    /// `len` bytes at `offset`.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes>;
    /// Stores a whole object durably.
    fn write(&self, path: &str, data: Vec<u8>) -> Result<()>;
    /// Object names (relative to the repository root) and sizes under `prefix` (a directory, ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>>;
    /// Size of an object, `None` if absent.
    fn stat(&self, path: &str) -> Result<Option<u64>>;
    /// Removes an object; absent objects are not an error.
    fn delete(&self, path: &str) -> Result<()>;
}

/// The process-wide tokio runtime opendal's blocking operators run on. It must be multi-threaded.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gumvault-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::InvalidInput(format!("cannot start the I/O runtime: {e}")))
}

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute).
    Fs(PathBuf),
    /// An S3 bucket with an optional prefix.
    S3 { bucket: String, prefix: String, endpoint: Option<String>, region: String },
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
    pub fn open(&self, name: &str, url: &str) -> Result<Box<dyn Backend>> {
        let op = self.operator(name, url, None)?;
        let fs_root = match self {
            Location::Fs(root) => Some(root.clone()),
            _ => None,
        };
        Ok(Box::new(OpendalBackend { op, region: name.to_string(), fs_root }))
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
        let map = |e: opendal::Error| Error::Storage {
            op: "open",
            path: url.to_string(),
            region: name.to_string(),
            message: e.to_string(),
            not_found: false,
        };
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
        let op = op
            .layer(opendal::layers::RetryLayer::new().with_max_times(4).with_jitter())
            .layer(opendal::layers::TimeoutLayer::new().with_timeout(Duration::from_secs(120)));
        opendal::blocking::Operator::new(op).map_err(map)
    }
}

/// A [`Backend`] over an opendal blocking operator.
struct OpendalBackend {
    op: opendal::blocking::Operator,
    region: String,
    /// For local directories: the root, so new directories can be fsynced after a rename.
    fs_root: Option<PathBuf>,
}

impl OpendalBackend {
    fn err(&self, op: &'static str, path: &str, e: opendal::Error) -> Error {
        Error::Storage {
            op,
            path: path.to_string(),
            region: self.region.clone(),
            not_found: e.kind() == ErrorKind::NotFound,
            message: e.to_string(),
        }
    }

    /// Makes a rename inside a local directory durable: fsync the object's directory.
    fn sync_parent(&self, path: &str) -> Result<()> {
        if let Some(root) = &self.fs_root {
            let full = root.join(path);
            if let Some(dir) = full.parent() {
                let f = std::fs::File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
                f.sync_all().map_err(|e| Error::io("fsync directory", dir, e))?;
            }
        }
        Ok(())
    }
}

impl Backend for OpendalBackend {
    fn read(&self, path: &str) -> Result<Bytes> {
        self.op.read(path).map(|b| b.to_bytes()).map_err(|e| self.err("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let buf = self
            .op
            .read_options(
                path,
                opendal::options::ReadOptions { range: (offset..offset + len).into(), ..Default::default() },
            )
            .map_err(|e| self.err("read", path, e))?;
        if buf.len() as u64 != len {
            return Err(Error::Storage {
                op: "read",
                path: path.to_string(),
                region: self.region.clone(),
                message: format!("short read: {} of {len} bytes at offset {offset}", buf.len()),
                not_found: false,
            });
        }
        Ok(buf.to_bytes())
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.op.write(path, data).map_err(|e| self.err("write", path, e))?;
        self.sync_parent(path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let entries =
            match self.op.list_options(prefix, opendal::options::ListOptions { recursive: true, ..Default::default() })
            {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(self.err("list", prefix, e)),
            };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let path = entry.path();
            if path.ends_with('/') || !entry.metadata().is_file() {
                continue;
            }
            let size = entry.metadata().content_length();
            out.push((path.trim_start_matches('/').to_string(), size));
        }
        Ok(out)
    }

    fn stat(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", path, e)),
        }
    }
}

/// A named region of a repository.
pub struct Region {
    pub name: String,
    pub url: String,
    pub backend: Box<dyn Backend>,
}

/// All regions of a repository. Today a repository has one region; the type is shaped for several: writes go to
/// all, reads to the first that has the object.
pub struct Storage {
    regions: Vec<Region>,
}

impl Storage {
    /// Opens one region from a URL.
    pub fn open_url(url: &str) -> Result<Storage> {
        let loc = Location::parse(url)?;
        let backend = loc.open("default", url)?;
        Ok(Storage { regions: vec![Region { name: "default".into(), url: url.to_string(), backend }] })
    }

    /// Wraps already opened regions (tests, fault injection).
    pub fn from_regions(regions: Vec<Region>) -> Storage {
        Storage { regions }
    }

    /// The URL of the first region, for messages.
    pub fn url(&self) -> &str {
        self.regions.first().map(|r| r.url.as_str()).unwrap_or("")
    }

    fn first(&self) -> &Region {
        &self.regions[0]
    }

    /// Reads from the first region that has the object.
    pub fn read(&self, path: &str) -> Result<Bytes> {
        self.try_regions(|r| r.backend.read(path))
    }

    /// Reads a range from the first region that has the object.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.try_regions(|r| r.backend.read_range(path, offset, len))
    }

    fn try_regions<T>(&self, f: impl Fn(&Region) -> Result<T>) -> Result<T> {
        let mut last = None;
        for r in &self.regions {
            match f(r) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidInput("the repository has no regions".into())))
    }

    /// Writes to every region; durable everywhere when it returns.
    pub fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let (last, rest) = self.regions.split_last().ok_or_else(|| Error::InvalidInput("no regions".into()))?;
        for r in rest {
            r.backend.write(path, data.clone())?;
        }
        last.backend.write(path, data)
    }

    /// Lists objects under a prefix in the first region.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.first().backend.list(prefix)
    }

    /// Size of an object in the first region.
    pub fn stat(&self, path: &str) -> Result<Option<u64>> {
        self.first().backend.stat(path)
    }

    /// Deletes from every region.
    pub fn delete(&self, path: &str) -> Result<()> {
        for r in &self.regions {
            r.backend.delete(path)?;
        }
        Ok(())
    }
}

/// Object path of a pack: two hex characters of fan-out keep directories small.
pub fn pack_path(id: &crate::id::Id) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// Object path of an index segment.
pub fn index_path(id: &crate::id::Id) -> String {
    format!("index/{}", id.to_hex())
}

/// Object path of a snapshot manifest.
pub fn snapshot_path(id: &crate::id::Id) -> String {
    format!("snapshots/{}", id.to_hex())
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

    #[test]
    fn fs_backend_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let s = Storage::open_url(url).unwrap();
        s.write("data/ab/abc", b"hello world".to_vec()).unwrap();
        assert_eq!(&s.read("data/ab/abc").unwrap()[..], b"hello world");
        assert_eq!(&s.read_range("data/ab/abc", 6, 5).unwrap()[..], b"world");
        assert!(s.read_range("data/ab/abc", 6, 50).is_err());
        assert_eq!(s.list("data/").unwrap(), vec![("data/ab/abc".to_string(), 11)]);
        assert_eq!(s.stat("data/ab/abc").unwrap(), Some(11));
        assert!(s.read("missing").unwrap_err().is_not_found());
        s.delete("data/ab/abc").unwrap();
        s.delete("data/ab/abc").unwrap();
        assert_eq!(s.stat("data/ab/abc").unwrap(), None);
        assert!(s.list("index/").unwrap().is_empty());
    }
}

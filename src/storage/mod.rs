//! Storage: where repository objects live. A [`Storage`] is a list of regions, each an opendal operator made from
//! a URL. Writes go to every region; reads go to the first region that answers with the object. Nothing here
//! decrypts; callers verify what they read (object names are hashes of content, blobs carry AEAD tags).
//!
//! Contract of [`Backend`]: `write` returns only once the object is durable and appears whole or not at all under
//! its name (fs: written to a temporary file, fsynced, renamed, directory fsynced); `read_range` reads exactly the
//! bytes asked for or fails; `list` returns every object under a prefix with its size; `delete` of a missing
//! object succeeds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
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
    fn write(&self, path: &str, data: Bytes) -> Result<()>;
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

/// Retries, timeouts and upload concurrency of storage operations, from `GUMVAULT_STORAGE_RETRIES` (default 4),
/// `GUMVAULT_STORAGE_TIMEOUT` (seconds per operation, default 120), `GUMVAULT_STORAGE_IO_TIMEOUT` (seconds
/// without progress on one read or write, default 10) and `GUMVAULT_STORAGE_UPLOADS` (packs uploaded at once;
/// each holds one pack in memory). A region that keeps failing is then set aside.
#[derive(Clone, Copy, Debug)]
pub struct StorageTuning {
    pub retries: usize,
    pub timeout_secs: u64,
    pub io_timeout_secs: u64,
    /// None: [`StorageTuning::default_uploads`].
    pub uploads: Option<usize>,
}

impl StorageTuning {
    /// Reads the variables; a value that is not a whole number in range is an error, not a silent default.
    pub fn from_env() -> Result<StorageTuning> {
        // None when unset; what is set must be a whole number in range.
        let get = |name: &str, min: u64, max: u64, unit: &str| -> Result<Option<u64>> {
            let bad = |v: &str| {
                Error::InvalidInput(format!("{name}={v:?}: expected a whole number{unit} from {min} to {max}"))
            };
            match std::env::var(name) {
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(v)) => Err(bad(&v.to_string_lossy())),
                Ok(v) => {
                    v.trim().parse::<u64>().ok().filter(|n| (min..=max).contains(n)).map(Some).ok_or_else(|| bad(&v))
                }
            }
        };
        Ok(StorageTuning {
            retries: get("GUMVAULT_STORAGE_RETRIES", 0, 100, "")?.unwrap_or(4) as usize,
            timeout_secs: get("GUMVAULT_STORAGE_TIMEOUT", 1, 86_400, " of seconds")?.unwrap_or(120),
            io_timeout_secs: get("GUMVAULT_STORAGE_IO_TIMEOUT", 1, 86_400, " of seconds")?.unwrap_or(10),
            uploads: get("GUMVAULT_STORAGE_UPLOADS", 1, 64, "")?.map(|n| n as usize),
        })
    }

    /// Packs uploaded at once unless set: 4 when a region is remote (one connection to a distant S3 region
    /// carries far less than the pipeline produces; benches/uploads.sh), 2 for local disks.
    pub fn default_uploads(regions: &[Region]) -> usize {
        let remote = regions.iter().any(|r| matches!(Location::parse(&r.url), Ok(Location::S3 { .. })));
        if remote { 4 } else { 2 }
    }
}

/// Runs a future on the process-wide I/O runtime (for the occasional HTTP call outside storage, e.g. a
/// webhook). Must not be called from inside that runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
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

    fn write(&self, path: &str, data: Bytes) -> Result<()> {
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
    /// Cleared after an operation in this region failed; later operations try it last (reads) or skip it
    /// (writes), so one dead region does not cost a timeout per object.
    healthy: AtomicBool,
}

impl Region {
    pub fn new(name: impl Into<String>, url: impl Into<String>, backend: Box<dyn Backend>) -> Region {
        Region { name: name.into(), url: url.into(), backend, healthy: AtomicBool::new(true) }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn mark_failed(&self) {
        self.healthy.store(false, Ordering::Relaxed);
    }
}

/// A region's name and URL, as stored in the repository config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub name: String,
    pub url: String,
}

/// All regions of a repository. Writes go to every healthy region in parallel and succeed when at least
/// `min_regions` have the object durably; reads go to the regions in order (healthy ones first) and fall back to
/// the next on absence, error or a failed check; lists are the union of every region that answers. What did not
/// go as planned (a region that failed, a copy that was bad) is kept as events and missing objects, for the
/// summary and for `gumvault sync`.
pub struct Storage {
    regions: Vec<Region>,
    min_regions: AtomicUsize,
    events: Mutex<Vec<String>>,
    /// Objects written (or deleted) in fewer than all regions: (region, path).
    missing: Mutex<Vec<(String, String)>>,
    undeleted: Mutex<Vec<(String, String)>>,
    /// Copies that failed their check while another region had a good one: (region, path).
    bad_copies: Mutex<Vec<(String, String)>>,
}

impl Storage {
    /// Opens one region from a URL.
    pub fn open_url(url: &str) -> Result<Storage> {
        Storage::open_regions(&[RegionSpec { name: "default".into(), url: url.to_string() }], None)
    }

    /// Opens several regions; `min_regions` defaults to all of them.
    pub fn open_regions(specs: &[RegionSpec], min_regions: Option<usize>) -> Result<Storage> {
        let mut regions = Vec::with_capacity(specs.len());
        for spec in specs {
            let backend = Location::parse(&spec.url)?.open(&spec.name, &spec.url)?;
            regions.push(Region::new(spec.name.clone(), spec.url.clone(), backend));
        }
        let s = Storage::from_regions(regions);
        if let Some(n) = min_regions {
            s.set_min_regions(n)?;
        }
        Ok(s)
    }

    /// Wraps already opened regions (tests, fault injection); every region is required for a write.
    pub fn from_regions(regions: Vec<Region>) -> Storage {
        let n = regions.len();
        Storage {
            regions,
            min_regions: AtomicUsize::new(n),
            events: Mutex::default(),
            missing: Mutex::default(),
            undeleted: Mutex::default(),
            bad_copies: Mutex::default(),
        }
    }

    /// How many regions must hold an object for a write to succeed (1 to the number of regions).
    pub fn set_min_regions(&self, n: usize) -> Result<()> {
        if n == 0 || n > self.regions.len() {
            return Err(Error::InvalidInput(format!(
                "min_regions {n} is not between 1 and the number of regions ({})",
                self.regions.len()
            )));
        }
        self.min_regions.store(n, Ordering::Relaxed);
        Ok(())
    }

    pub fn min_regions(&self) -> usize {
        self.min_regions.load(Ordering::Relaxed)
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The URL of the first region, for messages.
    pub fn url(&self) -> &str {
        self.regions.first().map(|r| r.url.as_str()).unwrap_or("")
    }

    /// Failovers and region failures seen so far (drained).
    pub fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().expect("events lock"))
    }

    /// Objects that some region lacks because a write there failed: (region, path).
    pub fn missing(&self) -> Vec<(String, String)> {
        self.missing.lock().expect("missing lock").clone()
    }

    fn event(&self, msg: String) {
        let mut ev = self.events.lock().expect("events lock");
        if ev.len() < 1000 && !ev.contains(&msg) {
            ev.push(msg);
        }
    }

    /// Regions in the order reads try them: healthy ones first, each group in configured order.
    fn read_order(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(|r| r.is_healthy()).chain(self.regions.iter().filter(|r| !r.is_healthy()))
    }

    /// Reads from the first region that has the object.
    pub fn read(&self, path: &str) -> Result<Bytes> {
        self.read_with(path, Ok)
    }

    /// Reads a range from the first region that has the object.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.read_range_with(path, offset, len, Ok)
    }

    /// Reads an object and hands it to `check` (which decrypts or verifies it); a region whose copy is absent,
    /// unreadable or fails `check` with [`Error::Corrupt`] is passed over for the next one.
    pub fn read_with<T>(&self, path: &str, check: impl Fn(Bytes) -> Result<T>) -> Result<T> {
        self.try_regions(path, |r| r.backend.read(path), check)
    }

    /// [`Storage::read_with`] for a range of an object.
    pub fn read_range_with<T>(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        check: impl Fn(Bytes) -> Result<T>,
    ) -> Result<T> {
        self.try_regions(path, |r| r.backend.read_range(path, offset, len), check)
    }

    fn try_regions<T>(
        &self,
        path: &str,
        read: impl Fn(&Region) -> Result<Bytes>,
        check: impl Fn(Bytes) -> Result<T>,
    ) -> Result<T> {
        let mut failures: Vec<(String, Error)> = Vec::new();
        for r in self.read_order() {
            let outcome = read(r).and_then(&check);
            match outcome {
                Ok(v) => {
                    if !failures.is_empty() && self.regions.len() > 1 {
                        let why: Vec<String> = failures.iter().map(|(n, e)| format!("{n}: {}", short(e))).collect();
                        self.event(format!("{path}: read from region {} ({})", r.name, why.join("; ")));
                    }
                    return Ok(v);
                }
                Err(e) => {
                    let usable_elsewhere =
                        e.is_not_found() || matches!(e, Error::Storage { .. } | Error::Corrupt { .. });
                    if !usable_elsewhere {
                        return Err(e);
                    }
                    if matches!(e, Error::Storage { not_found: false, .. }) {
                        r.mark_failed();
                    }
                    if matches!(e, Error::Corrupt { .. }) {
                        self.bad_copies.lock().expect("bad copies lock").push((r.name.clone(), path.to_string()));
                    }
                    failures.push((r.name.clone(), e));
                }
            }
        }
        // Prefer the most telling error: a bad copy over an absent one.
        let pos = failures.iter().position(|(_, e)| matches!(e, Error::Corrupt { .. })).unwrap_or(0);
        Err(failures
            .into_iter()
            .nth(pos)
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::InvalidInput("the repository has no regions".into())))
    }

    /// Writes to every healthy region in parallel. Succeeds when at least `min_regions` regions hold the object
    /// durably; regions that failed are reported as events and their copy recorded as missing.
    pub fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let data = Bytes::from(data);
        if let [only] = self.regions.as_slice() {
            return only.backend.write(path, data);
        }
        let results: Vec<(&Region, Option<Result<()>>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .regions
                .iter()
                .map(|r| {
                    let data = data.clone();
                    (r, r.is_healthy().then(|| scope.spawn(move || r.backend.write(path, data))))
                })
                .collect();
            handles
                .into_iter()
                .map(|(r, h)| {
                    (
                        r,
                        h.map(|h| {
                            h.join().unwrap_or_else(|_| Err(Error::InvalidInput("a write thread panicked".into())))
                        }),
                    )
                })
                .collect()
        });
        let mut written = 0;
        let mut first_err = None;
        for (r, outcome) in results {
            match outcome {
                Some(Ok(())) => written += 1,
                Some(Err(e)) => {
                    r.mark_failed();
                    self.event(format!("region {} failed: {}; it is skipped from now on", r.name, short(&e)));
                    self.missing.lock().expect("missing lock").push((r.name.clone(), path.to_string()));
                    first_err.get_or_insert(e);
                }
                None => self.missing.lock().expect("missing lock").push((r.name.clone(), path.to_string())),
            }
        }
        if written >= self.min_regions() {
            return Ok(());
        }
        Err(Error::Storage {
            op: "write",
            path: path.to_string(),
            region: "all".into(),
            message: format!(
                "stored in only {written} of {} regions, {} required{}",
                self.regions.len(),
                self.min_regions(),
                first_err.map(|e| format!(" ({})", short(&e))).unwrap_or_default()
            ),
            not_found: false,
        })
    }

    /// Lists objects under a prefix: the union over every region that answers (a region that lags behind, or is
    /// down, does not hide objects the others have). Sizes come from the first region listing each object.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        if let [only] = self.regions.as_slice() {
            return only.backend.list(prefix);
        }
        let mut all: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        let mut answered = 0;
        let mut last_err = None;
        let any_healthy = self.regions.iter().any(Region::is_healthy);
        for r in self.read_order().filter(|r| r.is_healthy() || !any_healthy) {
            match r.backend.list(prefix) {
                Ok(list) => {
                    answered += 1;
                    for (p, size) in list {
                        all.entry(p).or_insert(size);
                    }
                }
                Err(e) => {
                    r.mark_failed();
                    self.event(format!("region {} could not be listed: {}", r.name, short(&e)));
                    last_err = Some(e);
                }
            }
        }
        match (answered, last_err) {
            (0, Some(e)) => Err(e),
            _ => Ok(all.into_iter().collect()),
        }
    }

    /// Size of an object in the first region that has it.
    pub fn stat(&self, path: &str) -> Result<Option<u64>> {
        let mut last_err = None;
        for r in self.read_order() {
            match r.backend.stat(path) {
                Ok(Some(size)) => return Ok(Some(size)),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) if self.regions.iter().all(|r| !r.is_healthy()) || self.regions.len() == 1 => Err(e),
            _ => Ok(None),
        }
    }

    /// Deletes from every region. A region where the delete fails keeps its copy until `gumvault sync` (or the
    /// next prune) removes it: it is recorded as missing a delete, and the caller writes a tombstone.
    pub fn delete(&self, path: &str) -> Result<()> {
        if let [only] = self.regions.as_slice() {
            return only.backend.delete(path);
        }
        let mut deleted = 0;
        let mut last_err = None;
        for r in &self.regions {
            match r.backend.delete(path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    r.mark_failed();
                    self.event(format!("region {} failed to delete {path}: {}", r.name, short(&e)));
                    self.undeleted.lock().expect("undeleted lock").push((r.name.clone(), path.to_string()));
                    last_err = Some(e);
                }
            }
        }
        match last_err {
            Some(e) if deleted == 0 => Err(e),
            _ => Ok(()),
        }
    }

    /// Copies found damaged while reading (another region may have served a good one): (region, path).
    pub fn bad_copies(&self) -> Vec<(String, String)> {
        self.bad_copies.lock().expect("bad copies lock").clone()
    }

    /// Objects whose delete failed in some region: (region, path).
    pub fn undeleted(&self) -> Vec<(String, String)> {
        self.undeleted.lock().expect("undeleted lock").clone()
    }
}

/// The first line of an error, for compact event messages.
fn short(e: &Error) -> String {
    let s = e.to_string();
    let line = s.lines().next().unwrap_or("").to_string();
    if line.len() > 300 { format!("{}…", &line[..line.floor_char_boundary(300)]) } else { line }
}

/// Object path of a pack: two hex characters of fan-out keep directories small.
pub fn pack_path(id: &crate::format::id::Id) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// Object path of an index segment.
pub fn index_path(id: &crate::format::id::Id) -> String {
    format!("index/{}", id.to_hex())
}

/// Object path of a snapshot manifest.
pub fn snapshot_path(id: &crate::format::id::Id) -> String {
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

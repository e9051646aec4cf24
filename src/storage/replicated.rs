//! [`Storage`]: every region of a repository behind one interface. Writes fan out to every healthy region in
//! parallel; reads fall back region by region; lists are the union; what did not go as planned is remembered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use jiff::Timestamp;

use super::as_of::AsOfBackend;
use super::backend::{Listed, WriteOptions};
use super::location::Location;
use super::region::Region;
use super::tuning::StorageTuning;
use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::format::repo_config::RegionSpec;

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
    /// Set when every region is a view of the past (`--as-of`).
    as_of: Mutex<Option<Timestamp>>,
}

impl Storage {
    /// Opens one region from a URL.
    pub fn open_url(url: &str) -> Result<Storage> {
        Storage::open_regions(&[RegionSpec { name: "default".into(), url: url.to_string() }], None)
    }

    /// Opens one region from a URL, creating its directory when it is a local one that does not exist (`init`).
    pub fn create_url(url: &str) -> Result<Storage> {
        Storage::open_regions_creating(
            &[RegionSpec { name: "default".into(), url: url.to_string() }],
            None,
            &["default"],
        )
    }

    /// Opens several regions; `min_regions` defaults to all of them.
    pub fn open_regions(specs: &[RegionSpec], min_regions: Option<usize>) -> Result<Storage> {
        Storage::open_regions_creating(specs, min_regions, &[])
    }

    /// [`Storage::open_regions`], creating the directories of the regions named in `create` (`init`, and
    /// `sync --rebuild NAME`); no other region's directory is ever created.
    pub fn open_regions_creating(specs: &[RegionSpec], min_regions: Option<usize>, create: &[&str]) -> Result<Storage> {
        let mut regions = Vec::with_capacity(specs.len());
        for spec in specs {
            let location = Location::parse(&spec.url)?;
            let backend = if create.contains(&spec.name.as_str()) {
                location.create(&spec.name, &spec.url)?
            } else {
                location.open(&spec.name, &spec.url)?
            };
            regions.push(Region::new(spec.name.clone(), spec.url.clone(), backend));
        }
        let s = Storage::from_regions(regions);
        if let Some(n) = min_regions {
            s.set_min_regions(n)?;
        }
        Ok(s)
    }

    /// Every region as it was at `at` (see [`AsOfBackend`]): read-only, from object versions.
    pub fn as_of(self, at: Timestamp) -> Storage {
        let min = self.min_regions();
        let regions = self
            .regions
            .into_iter()
            .map(|r| {
                let backend = Box::new(AsOfBackend::new(r.backend, &r.name, at));
                Region::new(r.name, r.url, backend)
            })
            .collect();
        let s = Storage::from_regions(regions);
        s.min_regions.store(min, Ordering::Relaxed);
        *s.as_of.lock().expect("as-of lock") = Some(at);
        s
    }

    /// The time this storage shows the regions as of, when it was opened with [`Storage::as_of`].
    pub fn as_of_time(&self) -> Option<Timestamp> {
        *self.as_of.lock().expect("as-of lock")
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
            as_of: Mutex::default(),
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

    /// How many regions must hold an object for a write to succeed.
    pub fn min_regions(&self) -> usize {
        self.min_regions.load(Ordering::Relaxed)
    }

    /// Every region, in the order reads try them.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The URL of the first region, for messages.
    pub fn url(&self) -> &str {
        self.regions.first().map(|r| r.url.as_str()).unwrap_or("")
    }

    /// Packs uploaded at once: `GUMVAULT_STORAGE_UPLOADS`, else 4 when a region is remote (one connection to a
    /// distant S3 region carries far less than the pipeline produces; benches/uploads.sh), 2 for local disks.
    pub fn upload_concurrency(&self) -> Result<usize> {
        Ok(StorageTuning::from_env()?.uploads.unwrap_or(if self.has_remote_region() { 4 } else { 2 }))
    }

    /// Objects a copy between locations keeps in flight: `GUMVAULT_STORAGE_UPLOADS`, else, when either side is
    /// remote, 16 for copies that stream (each holds a few MiB while it waits its two round trips, its read and its
    /// write) and 8 for copies read whole first (each holds its object, read into one buffer of its listed size);
    /// else 2.
    pub fn copy_concurrency_to(&self, remote_target: bool, streamed: bool) -> Result<usize> {
        let remote = remote_target || self.has_remote_region();
        let default = match (remote, streamed) {
            (true, true) => 16,
            (true, false) => 8,
            (false, _) => 2,
        };
        Ok(StorageTuning::from_env()?.uploads.unwrap_or(default))
    }

    /// Range reads a restore keeps in flight: `GUMVAULT_STORAGE_READS`, else 16 when a region is remote (each read
    /// waits a round trip, so the threads mostly wait), else one per core (local reads wait little).
    pub fn read_concurrency(&self) -> Result<usize> {
        let local = rayon::current_num_threads();
        Ok(StorageTuning::from_env()?.reads.unwrap_or(if self.has_remote_region() { local.max(16) } else { local }))
    }

    /// Whether any region is in object storage (where each request costs a round trip).
    pub fn has_remote_region(&self) -> bool {
        self.regions.iter().any(|r| matches!(Location::parse(&r.url), Ok(Location::S3 { .. })))
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
        let usable = self.regions.iter().filter(|r| r.unusable().is_none());
        usable.clone().filter(|r| r.is_healthy()).chain(usable.filter(|r| !r.is_healthy()))
    }

    /// Frees the space reserve of every local region, for a maintenance run that must write on a full disk.
    pub fn release_reserve(&self) {
        for r in self.regions.iter().filter(|r| r.unusable().is_none()) {
            r.backend.release_reserve();
        }
    }

    /// Makes the space reserve of every local region again; returns the regions without room for it.
    pub fn restore_reserve(&self) -> Vec<String> {
        self.regions
            .iter()
            .filter(|r| r.unusable().is_none() && !r.backend.restore_reserve())
            .map(|r| r.name.clone())
            .collect()
    }

    /// Sets region `name` aside for this run: it is not this repository (`why` says how it differs).
    pub fn set_unusable(&self, name: &str, why: String, foreign: bool) {
        if let Some(r) = self.regions.iter().find(|r| r.name == name) {
            self.event(format!("region {name} is not used: {why}"));
            r.set_unusable(why, foreign);
        }
    }

    /// Reads from the first region that has the object.
    pub fn read(&self, path: &str) -> Result<Bytes> {
        self.read_with(path, Ok)
    }

    /// Reads a range from the first region that has the object.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.read_range_with(path, offset, len, Ok)
    }

    /// A range of an object as a stream from the first region that opens it. Nothing here passes over a copy
    /// that turns out bad mid-way: a caller that finds one reads the rest with [`Storage::read_range_with`].
    pub fn read_range_stream(&self, path: &str, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send + '_>> {
        let mut last = None;
        for r in self.read_order() {
            match r.backend.read_range_stream(path, offset, len) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidInput("the repository has no regions".into())))
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
                    let usable_elsewhere = e.is_not_found() || matches!(e, Error::Storage(_) | Error::Corrupt { .. });
                    if !usable_elsewhere {
                        return Err(e);
                    }
                    if matches!(e, Error::Storage(_)) && !e.is_not_found() {
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
        self.write_with(path, data, &WriteOptions::default())
    }

    /// [`Storage::write`] with a retention and storage class for every region.
    pub fn write_with(&self, path: &str, data: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let data: Bytes = data.into();
        if let [only] = self.regions.as_slice() {
            return only.backend.write_with(path, data, opts);
        }
        let results: Vec<(&Region, Option<Result<()>>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .regions
                .iter()
                .map(|r| {
                    let data = data.clone();
                    (r, r.is_healthy().then(|| scope.spawn(move || r.backend.write_with(path, data, opts))))
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
        let message = format!(
            "stored in only {written} of {} regions, {} required{}",
            self.regions.len(),
            self.min_regions(),
            first_err.map(|e| format!(" ({})", short(&e))).unwrap_or_default()
        );
        Err(StorageError::new("write", path, "all", StorageErrorKind::TooFewRegions, message).into())
    }

    /// Whether [`Storage::write_streamed`] takes an object without a lock piece by piece: one region, whose
    /// backend can.
    pub fn streams_writes(&self) -> bool {
        matches!(self.regions.as_slice(), [only] if only.backend.streams_writes())
    }

    /// [`Backend::write_streamed`] into a storage of one region (`sync --into`'s fresh location); with more
    /// regions the object is read whole and written to each ([`Storage::write_with`]).
    pub fn write_streamed(
        &self,
        path: &str,
        len: u64,
        body: &mut (dyn std::io::Read + Send),
        opts: &WriteOptions,
    ) -> Result<()> {
        match self.regions.as_slice() {
            [only] => only.backend.write_streamed(path, len, body, opts),
            _ => self.write_with(path, super::backend::read_exactly(path, len, body)?, opts),
        }
    }

    /// Writes an object that must never be overwritten (a file of the WAL archive), so that at least
    /// `min_regions` regions hold the same content. First every healthy region is asked for the name; each copy
    /// found is read and `same` says whether it holds this content. A copy that differs is a conflict: nothing is
    /// written anywhere. Then each region without it gets the object, only while the name is still free (a copy
    /// that appeared meanwhile is compared the same way). A damaged copy (`same` fails with [`Error::Corrupt`]) is
    /// left for `sync` to replace and is not counted.
    pub fn write_once(
        &self,
        path: &str,
        data: Vec<u8>,
        same: &(dyn Fn(Bytes) -> Result<bool> + Sync),
    ) -> Result<WriteOnce> {
        self.write_once_with(path, data, same, &WriteOptions::default())
    }

    /// [`Storage::write_once`] with a retention and storage class for every copy written.
    pub fn write_once_with(
        &self,
        path: &str,
        data: Vec<u8>,
        same: &(dyn Fn(Bytes) -> Result<bool> + Sync),
        opts: &WriteOptions,
    ) -> Result<WriteOnce> {
        let data = Bytes::from(data);
        let found = self.in_healthy_regions(|r| probe(r, path, same, None));
        self.refuse_conflict(path, &found)?;
        let done = self.in_healthy_regions(|r| match found.iter().find(|(n, _)| *n == r.name) {
            Some((_, Probe::Absent)) => probe(r, path, same, Some((&data, opts))),
            Some((_, other)) => other.clone(),
            None => Probe::Failed(String::new()),
        });
        self.refuse_conflict(path, &done)?;
        self.count_write_once(path, &done)
    }

    /// Runs `f` in every healthy region in parallel; regions that failed earlier are left out.
    fn in_healthy_regions(&self, f: impl Fn(&Region) -> Probe + Sync) -> Vec<(String, Probe)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .regions
                .iter()
                .filter(|r| r.is_healthy())
                .map(|r| (r.name.clone(), scope.spawn(|| f(r))))
                .collect();
            handles
                .into_iter()
                .map(|(n, h)| (n, h.join().unwrap_or_else(|_| Probe::Failed("a write thread panicked".into()))))
                .collect()
        })
    }

    fn refuse_conflict(&self, path: &str, outcomes: &[(String, Probe)]) -> Result<()> {
        match outcomes.iter().find(|(_, p)| matches!(p, Probe::Different)) {
            Some((region, _)) => Err(Error::Conflict { object: path.to_string(), region: region.clone() }),
            None => Ok(()),
        }
    }

    /// Counts the regions holding the content after [`Storage::write_once`]; the others are recorded as missing.
    fn count_write_once(&self, path: &str, outcomes: &[(String, Probe)]) -> Result<WriteOnce> {
        let mut report = WriteOnce::default();
        let mut why = Vec::new();
        for r in &self.regions {
            match outcomes.iter().find(|(n, _)| *n == r.name).map(|(_, p)| p) {
                Some(Probe::Written) => report.written += 1,
                Some(Probe::Same) => report.present += 1,
                other => {
                    if let Some(Probe::Failed(e) | Probe::Damaged(e)) = other {
                        r.mark_failed();
                        self.event(format!("region {} failed: {e}; it is skipped from now on", r.name));
                        why.push(format!("{}: {e}", r.name));
                    }
                    if let Some(Probe::Damaged(_)) = other {
                        self.bad_copies.lock().expect("bad copies lock").push((r.name.clone(), path.to_string()));
                    }
                    self.missing.lock().expect("missing lock").push((r.name.clone(), path.to_string()));
                }
            }
        }
        if report.written + report.present >= self.min_regions() {
            return Ok(report);
        }
        let message = format!(
            "stored in only {} of {} regions, {} required{}",
            report.written + report.present,
            self.regions.len(),
            self.min_regions(),
            if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) }
        );
        Err(StorageError::new("write", path, "all", StorageErrorKind::TooFewRegions, message).into())
    }

    /// [`Storage::list`] with each object's last-modified time (the newest any region reports).
    pub fn list_modified(&self, prefix: &str) -> Result<Vec<Listed>> {
        if let [only] = self.regions.as_slice() {
            return only.backend.list_modified(prefix);
        }
        let mut all: std::collections::BTreeMap<String, Listed> = std::collections::BTreeMap::new();
        self.list_each(
            |r| r.backend.list_modified(prefix),
            |l| {
                let e = all.entry(l.path.clone()).or_insert_with(|| l.clone());
                e.modified = e.modified.max(l.modified);
            },
        )?;
        Ok(all.into_values().collect())
    }

    /// Lists objects under a prefix: the union over every region that answers (a region that lags behind, or is
    /// down, does not hide objects the others have). Sizes come from the first region listing each object.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        if let [only] = self.regions.as_slice() {
            return only.backend.list(prefix);
        }
        let mut all: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        self.list_each(
            |r| r.backend.list(prefix),
            |(p, size)| {
                all.entry(p).or_insert(size);
            },
        )?;
        Ok(all.into_iter().collect())
    }

    /// Lists every healthy region (every region when none is healthy) with `list`, handing each entry to `add`;
    /// a region that fails is marked failed and said, and the listing fails only when no region answered.
    /// The regions are listed at once (a distant region's listing is a round trip or more each) and their entries
    /// handed over in read order.
    fn list_each<T: Send>(
        &self,
        list: impl Fn(&Region) -> Result<Vec<T>> + Sync,
        mut add: impl FnMut(T),
    ) -> Result<()> {
        let mut answered = 0;
        let mut last_err = None;
        let any_healthy = self.regions.iter().any(Region::is_healthy);
        let listed: Vec<&Region> = self.read_order().filter(|r| r.is_healthy() || !any_healthy).collect();
        let listings: Vec<Result<Vec<T>>> = std::thread::scope(|scope| {
            let list = &list;
            let running: Vec<_> = listed.iter().map(|r| scope.spawn(move || list(r))).collect();
            running.into_iter().map(|h| h.join().expect("a listing does not panic")).collect()
        });
        for (r, listing) in listed.into_iter().zip(listings) {
            match listing {
                Ok(entries) => {
                    answered += 1;
                    entries.into_iter().for_each(&mut add);
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
            _ => Ok(()),
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
            if r.unusable().is_some() {
                // Not this repository: nothing of it is deleted there; the tombstone remembers the delete.
                self.undeleted.lock().expect("undeleted lock").push((r.name.clone(), path.to_string()));
                continue;
            }
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

/// How many regions a [`Storage::write_once`] wrote, and how many already held the same content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOnce {
    /// Regions that took a new copy.
    pub written: usize,
    /// Regions that already held one with the same content.
    pub present: usize,
}

/// What one region holds under a name that must not be overwritten.
#[derive(Clone, Debug)]
enum Probe {
    Absent,
    Written,
    Same,
    Different,
    Damaged(String),
    Failed(String),
}

/// Looks at one region's copy of `path` (and, with `data`, writes it there if the name is free).
fn probe(
    r: &Region,
    path: &str,
    same: &(dyn Fn(Bytes) -> Result<bool> + Sync),
    data: Option<(&Bytes, &WriteOptions)>,
) -> Probe {
    let present = match data {
        Some((d, opts)) => r.backend.write_new_with(path, d.clone(), opts).map(|created| !created),
        None => r.backend.stat(path).map(|s| s.is_some()),
    };
    let compare = |()| match r.backend.read(path).and_then(same) {
        Ok(true) => Probe::Same,
        Ok(false) => Probe::Different,
        Err(e @ Error::Corrupt { .. }) => Probe::Damaged(short(&e)),
        Err(e) => Probe::Failed(short(&e)),
    };
    match present {
        Ok(true) => compare(()),
        Ok(false) if data.is_some() => Probe::Written,
        Ok(false) => Probe::Absent,
        Err(e) => Probe::Failed(short(&e)),
    }
}

/// The first line of an error, for compact event messages.
fn short(e: &Error) -> String {
    let s = e.to_string();
    let line = s.lines().next().unwrap_or("").to_string();
    if line.len() > 300 { format!("{}…", &line[..line.floor_char_boundary(300)]) } else { line }
}

#[cfg(test)]
mod tests {
    use super::*;

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

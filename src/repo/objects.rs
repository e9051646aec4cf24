//! Objects by kind: snapshots, index segments and the small sealed lists, each saved under the hash of its
//! sealed bytes and verified against that name (and its tag) whenever it is read.

use std::collections::BTreeSet;

use super::{Repository, verify_name};
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::index::{self, PackEntry};
use crate::format::key_file::KeyFile;
use crate::format::objects::ObjectKind;
use crate::format::snapshot::Snapshot;

impl Repository {
    /// Seals `plain` as an object of a content-addressed `kind`, stores it, and returns its id.
    pub(super) fn save_sealed(&self, kind: ObjectKind, plain: Vec<u8>) -> Result<Id> {
        let sealed = self.key.seal(kind.aad(), plain);
        let id = Id::of_object(&sealed);
        let path = kind.path_of(&id);
        if let Err(e) = self.put(kind, &path, sealed) {
            // Too few regions took it: the copies that did are removed (best effort), so nothing half-written
            // (a snapshot above all) stays visible.
            let _ = self.storage.delete(&path);
            return Err(e);
        }
        Ok(id)
    }

    /// Reads an object of a content-addressed `kind`, checks it against its name, and opens it.
    pub(super) fn load_sealed(&self, kind: ObjectKind, id: &Id) -> Result<Vec<u8>> {
        let path = kind.path_of(id);
        self.storage.read_with(&path, |sealed| {
            verify_name(&path, id, &sealed)?;
            self.key.open(kind.aad(), &sealed).ok_or_else(|| Error::corrupt(&path, "authentication failed"))
        })
    }

    /// Ids of every object of a kind, less what a prune or forget deleted while some region could not
    /// (tombstones): a region that lagged behind must not bring deleted index segments or snapshots back.
    pub fn list_ids(&self, kind: ObjectKind) -> Result<Vec<Id>> {
        Ok(self.list_sized(kind)?.into_iter().map(|(id, _)| id).collect())
    }

    /// [`Repository::list_ids`] with each object's size.
    pub fn list_sized(&self, kind: ObjectKind) -> Result<Vec<(Id, u64)>> {
        let listed = self.storage.list(kind.prefix())?;
        let dead: BTreeSet<String> = if self.storage.regions().len() > 1 && kind != ObjectKind::Tombstone {
            self.tombstoned()?
        } else {
            BTreeSet::new()
        };
        Ok(listed
            .into_iter()
            .filter(|(p, _)| !dead.contains(p))
            .filter_map(|(p, size)| Some((ObjectKind::id_of_path(&p)?, size)))
            .collect())
    }

    /// Deletes an object in every region; a region that could not is remembered for [`Repository::write_tombstone`].
    pub fn delete_object(&self, kind: ObjectKind, id: &Id) -> Result<()> {
        self.storage.delete(&kind.path_of(id))?;
        if let (ObjectKind::Pack, Some(cache)) = (kind, &self.tree_cache) {
            cache.remove(id);
        }
        Ok(())
    }

    /// The size of an object, `None` when no region has it.
    pub fn stat_object(&self, kind: ObjectKind, id: &Id) -> Result<Option<u64>> {
        self.storage.stat(&kind.path_of(id))
    }

    /// Seals and stores a snapshot manifest; returns its id. Call only after its packs and index are durable.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        self.save_sealed(ObjectKind::Snapshot, snap.to_bytes())
    }

    /// Loads and verifies a snapshot manifest.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let plain = self.load_sealed(ObjectKind::Snapshot, id)?;
        Snapshot::from_bytes(&plain).map_err(|e| Error::corrupt(ObjectKind::Snapshot.path_of(id), e))
    }

    /// Loads snapshot manifests many at once (each is a round trip to a distant region), each with its id, in the
    /// order given.
    pub fn load_snapshots(&self, ids: &[Id]) -> Result<Vec<(Id, Result<Snapshot>)>> {
        use rayon::prelude::*;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pool = crate::runtime::io_pool(self.read_concurrency()?.min(ids.len()), "snapshot downloads")?;
        Ok(pool.install(|| ids.par_iter().map(|id| (*id, self.load_snapshot(id))).collect()))
    }

    /// Ids of every snapshot in the repository.
    pub fn list_snapshots(&self) -> Result<Vec<Id>> {
        self.list_ids(ObjectKind::Snapshot)
    }

    /// Seals and stores an index segment; returns its id.
    pub fn save_index(&self, packs: &[PackEntry]) -> Result<Id> {
        let sealed = index::encode(&self.key, packs);
        let id = Id::of_object(&sealed);
        self.put(ObjectKind::Index, &ObjectKind::Index.path_of(&id), sealed)?;
        Ok(id)
    }

    /// Loads and verifies an index segment.
    pub fn load_index(&self, id: &Id) -> Result<Vec<PackEntry>> {
        let path = ObjectKind::Index.path_of(id);
        self.storage.read_with(&path, |sealed| {
            verify_name(&path, id, &sealed)?;
            index::decode(&self.key, &sealed).map_err(|e| Error::corrupt(&path, e))
        })
    }

    /// Ids of every index segment.
    pub fn list_indexes(&self) -> Result<Vec<Id>> {
        self.list_ids(ObjectKind::Index)
    }

    /// Every index segment with its size in bytes.
    pub fn list_indexes_sized(&self) -> Result<Vec<(Id, u64)>> {
        self.list_sized(ObjectKind::Index)
    }

    /// Loads index segments `in_flight` at a time, each on its own thread so that one request's latency hides
    /// behind the others', and hands each to `f` in the order of `names`: memory holds at most `in_flight`
    /// decoded segments however large the index is. A segment that cannot be read is handed over as its error.
    pub fn for_each_index(
        &self,
        names: &[Id],
        in_flight: usize,
        mut f: impl FnMut(&Id, Result<Vec<PackEntry>>) -> Result<()>,
    ) -> Result<()> {
        use rayon::prelude::*;
        let in_flight = in_flight.max(1);
        let pool = crate::runtime::io_pool(in_flight, "index downloads")?;
        for group in names.chunks(in_flight) {
            let loaded: Vec<Result<Vec<PackEntry>>> =
                pool.install(|| group.par_iter().map(|id| self.load_index(id)).collect());
            for (id, segment) in group.iter().zip(loaded) {
                f(id, segment)?;
            }
        }
        Ok(())
    }

    /// Checks one stored copy of the object at `path` without trusting anything else: content-addressed objects
    /// by their name, the config by its tag, key files by parsing them, WAL files by opening them under their
    /// name.
    pub fn verify_copy(&self, path: &str, bytes: &[u8]) -> Result<()> {
        match ObjectKind::parse_path(path) {
            Some((ObjectKind::Config, _)) => self
                .key
                .open(ObjectKind::Config.aad(), bytes)
                .map(drop)
                .ok_or_else(|| Error::corrupt(path, "authentication failed")),
            Some((ObjectKind::Key, _)) => KeyFile::parse(path, bytes).map(drop),
            Some((ObjectKind::Wal, _)) => self.verify_wal_copy(path, bytes).map(drop),
            Some((kind, name)) if kind.is_content_addressed() => {
                let id = Id::from_hex(name).ok_or_else(|| Error::corrupt(path, "the name is not an object id"))?;
                verify_name(path, &id, bytes)
            }
            _ => Err(Error::corrupt(path, "not an object of this repository")),
        }
    }
}

//! The WAL archive's objects: archiving a file so that it is never overwritten, fetching one with failover,
//! listing what is archived (names decoded with the key, no object read), deleting, verifying a copy.

use std::collections::BTreeSet;

use bytes::Bytes;
use jiff::Timestamp;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::objects::ObjectKind;
use crate::format::wal::WalFile;
use crate::format::wal::object::{self, OpenedContent};
pub use crate::storage::WriteOnce;

/// One archived file, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalObject {
    /// The cluster it belongs to.
    pub system_id: u64,
    /// The file.
    pub file: WalFile,
    /// Bytes stored (sealed and compressed).
    pub size: u64,
    /// When it was stored (the newest copy any region lists), if the storage says.
    pub modified: Option<Timestamp>,
    /// The object's path.
    pub path: String,
}

/// Everything `wal/` holds: the archived files, and names that do not decode with this key.
#[derive(Clone, Debug, Default)]
pub struct WalListing {
    /// Archived files, by system id and position.
    pub files: Vec<WalObject>,
    /// Paths under `wal/` that are not this repository's archived files (another key, or damaged names).
    pub foreign: Vec<String>,
}

/// Where a fetch stands in each region (see [`Repository::fetch_wal`]).
#[derive(Debug)]
pub enum Fetched {
    /// The file, verified.
    Found(Vec<u8>),
    /// Absent from enough regions that it was never archived (or prune removed it): PostgreSQL's end of WAL.
    Absent,
    /// Neither: some region failed, held a damaged copy, or was not usable, so absence is not certain.
    Unknown(Error),
}

impl Repository {
    /// The path of an archived file's object.
    pub fn wal_path(&self, system_id: u64, file: &WalFile) -> String {
        ObjectKind::Wal.path(&object::object_name(&self.key, system_id, file))
    }

    /// Archives `content` as `file` of cluster `system_id`, so that at least `min_regions` regions hold it. A
    /// region that already holds it with the same content counts; one that holds other content is a conflict
    /// ([`Error::Conflict`]) and nothing is written.
    pub fn put_wal(&self, system_id: u64, file: &WalFile, content: &[u8]) -> Result<WriteOnce> {
        let path = self.wal_path(system_id, file);
        let sealed = object::seal_content(&self.key, system_id, file, content, self.config.compression_level);
        let hash = *blake3::hash(content).as_bytes();
        let same = |stored: Bytes| -> Result<bool> {
            let opened =
                object::open_content(&self.key, system_id, file, &stored).map_err(|e| Error::corrupt(&path, e))?;
            Ok(opened.hash == hash && opened.raw_len == content.len() as u64)
        };
        // Locked like every object (Object Lock), in the default storage class: recovery reads WAL at once.
        let opts = self.write_options(ObjectKind::Wal, false);
        self.storage.write_once_with(&path, sealed, &same, &opts).map_err(|e| match e {
            Error::Conflict { region, .. } => {
                Error::Conflict { object: format!("WAL file {file} of database system {system_id}"), region }
            }
            other => other,
        })
    }

    /// Reads and verifies an archived file from the first region with a good copy.
    pub fn get_wal(&self, system_id: u64, file: &WalFile) -> Result<Vec<u8>> {
        let path = self.wal_path(system_id, file);
        self.storage.read_with(&path, |sealed| {
            self.open_wal(&path, system_id, file, &sealed)?.into_file().map_err(|e| Error::corrupt(&path, e))
        })
    }

    /// Fetches an archived file for recovery, telling a file that is certainly not archived from one that could not
    /// be read. A durable push reached `min_regions` regions, so once more than `regions - min_regions` regions
    /// answered that they lack the file, it was never archived (or prune removed it); anything less is uncertain.
    pub fn fetch_wal(&self, system_id: u64, file: &WalFile) -> Fetched {
        let path = self.wal_path(system_id, file);
        let mut absent = 0;
        let mut trouble = None;
        for r in self.storage.regions() {
            if let Some(why) = r.unusable() {
                trouble.get_or_insert(Error::InvalidInput(format!("region {}: {why}", r.name)));
                continue;
            }
            let read = r.backend.read(&path);
            match read.and_then(|sealed| {
                self.open_wal(&path, system_id, file, &sealed)?.into_file().map_err(|e| Error::corrupt(&path, e))
            }) {
                Ok(content) => return Fetched::Found(content),
                Err(e) if e.is_not_found() => absent += 1,
                Err(e) => {
                    trouble.get_or_insert(e);
                }
            }
        }
        let regions = self.storage.regions().len();
        if absent > regions.saturating_sub(self.min_regions()) {
            return Fetched::Absent;
        }
        Fetched::Unknown(trouble.unwrap_or_else(|| Error::InvalidInput(format!("{path}: no region could say"))))
    }

    /// Opens (authenticates) one copy of an archived file.
    fn open_wal(&self, path: &str, system_id: u64, file: &WalFile, sealed: &[u8]) -> Result<OpenedContent> {
        object::open_content(&self.key, system_id, file, sealed).map_err(|e| Error::corrupt(path, e))
    }

    /// Everything archived, decoded from the object names alone (one listing of `wal/`, no object read), less what a
    /// prune deleted while some region could not.
    pub fn list_wal(&self) -> Result<WalListing> {
        let listed = self.storage.list_modified(ObjectKind::Wal.prefix())?;
        let dead: BTreeSet<String> =
            if self.storage.regions().len() > 1 { self.tombstoned()? } else { BTreeSet::new() };
        let mut out = WalListing::default();
        for l in listed.into_iter().filter(|l| !dead.contains(&l.path)) {
            let decoded = ObjectKind::parse_path(&l.path)
                .filter(|(kind, _)| *kind == ObjectKind::Wal)
                .and_then(|(_, name)| object::decode_object_name(&self.key, name));
            match decoded {
                Some((system_id, file)) => {
                    out.files.push(WalObject { system_id, file, size: l.size, modified: l.modified, path: l.path })
                }
                None => out.foreign.push(l.path),
            }
        }
        out.files
            .sort_by(|a, b| (a.system_id, a.file.position(), &a.file).cmp(&(b.system_id, b.file.position(), &b.file)));
        Ok(out)
    }

    /// Deletes an archived file in every region (a region that could not is remembered for a tombstone).
    pub fn delete_wal(&self, object: &WalObject) -> Result<()> {
        self.storage.delete(&object.path)
    }

    /// Checks one stored copy of a WAL object: its name decodes with the key and its content authenticates
    /// under that name. Returns BLAKE3 of the file it holds.
    pub(super) fn verify_wal_copy(&self, path: &str, bytes: &[u8]) -> Result<[u8; 32]> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (system_id, file) = object::decode_object_name(&self.key, name)
            .ok_or_else(|| Error::corrupt(path, "the name does not open with this repository's key"))?;
        Ok(self.open_wal(path, system_id, &file, bytes)?.hash)
    }
}

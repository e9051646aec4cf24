//! Key slots: each password that opens the repository is a key file holding the master key sealed under it.

use serde::Serialize;

use super::Repository;
use super::key_hint::KeyHint;
use crate::error::{Error, Result, StorageErrorKind};
use crate::format::crypto::{self, KdfParams, MasterKey};
use crate::format::key_file::KeyFile;
use crate::format::objects::ObjectKind;
use crate::storage::Storage;

/// One key slot as `key list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    /// The slot's random id (its object name).
    pub id: String,
    /// When the slot was added, and by whom.
    pub created: jiff::Timestamp,
    /// Host the slot was added on.
    pub host: String,
    /// User who added it.
    pub username: String,
    /// True for the slot this command opened the repository with.
    pub current: bool,
}

/// A key file opened with the password: the master key, and the file (its id and bytes, to keep as a hint).
pub(super) struct Unlocked {
    pub key: MasterKey,
    pub file: KeyHint,
}

/// The master key, from the first key file that `password` opens. With a `hint` (the file that opened the
/// repository last time from this machine), that file is unlocked from its kept copy while the repository is
/// asked for it, and taken when the repository still has those bytes; otherwise the key files are listed and
/// tried in turn.
pub(super) fn unlock(storage: &Storage, password: &[u8], hint: Option<&KeyHint>) -> Result<Unlocked> {
    let mut tried = None;
    if let Some(hint) = hint {
        match unlock_hinted(storage, password, hint) {
            Hinted::Opened(unlocked) => return Ok(*unlocked),
            Hinted::WrongPassword => tried = Some(hint),
            Hinted::Unusable => {}
            Hinted::Failed(e) => return Err(e),
        }
    }
    unlock_listed(storage, password, tried)
}

/// What the kept copy of a key file gave.
enum Hinted {
    Opened(Box<Unlocked>),
    /// The repository holds the same file, and the password does not open it.
    WrongPassword,
    /// The repository no longer holds those bytes under that name, or refused to say (S3 answers 403, not 404,
    /// for a missing object to a caller that may list only some prefixes): list the key files.
    Unusable,
    /// The only location could not be reached (refused connections, timeouts, server errors) through all of the
    /// backend's retries: listing it would fail the same way, after as many again.
    Failed(Error),
}

/// The kept copy unlocked while the bucket's file of the same name is read to compare (see [`unlock`]).
fn unlock_hinted(storage: &Storage, password: &[u8], hint: &KeyHint) -> Hinted {
    let path = ObjectKind::Key.path(&hint.name);
    let only = match storage.regions() {
        [only] => Some(only),
        _ => None,
    };
    let (current, opened) = std::thread::scope(|scope| {
        // Straight from the location, not through `Storage::read`: a failed head start must not mark the region
        // failed for the rest of the command. With several regions, the listing that follows is a union of
        // those that answer, so no failure here ends the opening.
        let current = scope.spawn(|| match only {
            Some(only) => only.backend.read(&path),
            None => storage.read(&path),
        });
        let opened = KeyFile::parse(&path, &hint.file).and_then(|kf| kf.unlock(&path, password));
        (current.join().expect("a key read does not panic"), opened)
    });
    match (current, opened) {
        (Ok(bytes), Ok(opened)) if bytes[..] == hint.file[..] => match opened {
            Some(key) => Hinted::Opened(Box::new(Unlocked { key, file: hint.clone() })),
            None => Hinted::WrongPassword,
        },
        (Err(Error::Storage(e)), _) if only.is_some() && unreachable(e.kind) => Hinted::Failed(Error::Storage(e)),
        _ => Hinted::Unusable,
    }
}

/// The kinds of failure the backend retries before it reports them: the location did not answer (or answered
/// that it could not serve), which says nothing about the key files.
pub(super) fn unreachable(kind: StorageErrorKind) -> bool {
    matches!(kind, StorageErrorKind::Other | StorageErrorKind::RateLimited)
}

/// Lists the key files and tries each (but `tried`, the same file the hint already tried).
fn unlock_listed(storage: &Storage, password: &[u8], tried: Option<&KeyHint>) -> Result<Unlocked> {
    let keys = match storage.list(ObjectKind::Key.prefix()) {
        Err(Error::Storage(e)) if e.kind == StorageErrorKind::Unavailable => Vec::new(),
        other => other?,
    };
    if keys.is_empty() {
        return Err(Error::RepoNotFound { url: storage.url().to_string() });
    }
    for (path, _) in &keys {
        let bytes = storage.read(path)?;
        let name = key_name(path);
        if tried.is_some_and(|t| t.name == name && t.file[..] == bytes[..]) {
            continue;
        }
        let kf = KeyFile::parse(path, &bytes)?;
        if let Some(key) = kf.unlock(path, password)? {
            return Ok(Unlocked { key, file: KeyHint { name, file: bytes.to_vec() } });
        }
    }
    Err(Error::WrongPassword { repo: storage.url().to_string() })
}

/// Writes a new key file for `password`; returns its id.
pub(super) fn write_key_file(repo: &Repository, key: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<String> {
    let kf = KeyFile::create(key, password, kdf)?;
    let id = hex::encode(crypto::random_bytes::<16>());
    repo.put(ObjectKind::Key, &ObjectKind::Key.path(&id), kf.to_bytes())?;
    Ok(id)
}

fn key_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

impl Repository {
    /// Every key slot, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (path, _) in self.storage.list(ObjectKind::Key.prefix())? {
            let kf = KeyFile::parse(&path, &self.storage.read(&path)?)?;
            let id = key_name(&path);
            out.push(KeyInfo {
                current: id == self.key_id,
                id,
                created: kf.created,
                host: kf.host,
                username: kf.username,
            });
        }
        out.sort_by_key(|k| k.created);
        Ok(out)
    }

    /// Adds a key slot for another password; returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        write_key_file(self, &self.key, password, kdf)
    }

    /// Removes a key slot. The slot this session opened with cannot be removed (use `passwd` to change it).
    pub fn remove_key(&self, id_prefix: &str) -> Result<String> {
        self.check_can_delete()?;
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> = keys.iter().filter(|k| k.id.starts_with(id_prefix)).collect();
        let key = match matches.as_slice() {
            [one] => *one,
            [] => return Err(Error::InvalidInput(format!("no key with id {id_prefix:?} (see `gumvault key list`)"))),
            _ => return Err(Error::InvalidInput(format!("key id prefix {id_prefix:?} is ambiguous"))),
        };
        if key.current {
            return Err(Error::InvalidInput(
                "refusing to remove the key this command was opened with; open with another password, or use `key passwd`".into(),
            ));
        }
        self.storage.delete(&ObjectKind::Key.path(&key.id))?;
        Ok(key.id.clone())
    }

    /// Replaces the current key slot with one for a new password (the new slot is written first).
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<String> {
        // The old slot is deleted: with credentials that may not, fail before the new one is written.
        self.check_can_delete()?;
        let new_id = write_key_file(self, &self.key, new_password, kdf)?;
        self.storage.delete(&ObjectKind::Key.path(&self.key_id))?;
        self.key_id = new_id.clone();
        Ok(new_id)
    }
}

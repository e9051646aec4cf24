//! The kinds of objects a repository holds, in one place: where each kind lives (its path) and the associated
//! data its sealed bytes are bound to, so an object of one kind can never be passed off as another. See
//! repo-format.md, "Objects".

use crate::format::id::Id;

/// One kind of repository object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// `config`: the sealed repository config (one object, not content-addressed).
    Config,
    /// `keys/<random hex>`: the master key sealed under one password (plaintext JSON around the sealed key).
    Key,
    /// `data/<2 hex>/<id>`: a pack of sealed blobs with its sealed header.
    Pack,
    /// `index/<id>`: an index segment.
    Index,
    /// `snapshots/<id>`: a snapshot manifest.
    Snapshot,
    /// `obsolete/<id>`: packs prune marked for deletion, with when.
    Obsolete,
    /// `locks/<random hex>`: a maintenance lease.
    Lock,
    /// `deleted/<id>`: objects deleted while some region could not delete them.
    Tombstone,
    /// `lagging/<id>`: a region missed writes (a degraded backup) and has not been synced since.
    Lag,
    /// `wal/<sealed name>`: one file of PostgreSQL's continuous WAL archive, named by the deterministic
    /// encryption of its system id and file name (see [`crate::format::wal::object`]).
    Wal,
}

impl ObjectKind {
    /// Every kind, in the order listings and comparisons visit them.
    pub const ALL: [ObjectKind; 10] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::Obsolete,
        ObjectKind::Lock,
        ObjectKind::Tombstone,
        ObjectKind::Lag,
        ObjectKind::Wal,
    ];

    /// The folder of the kind (ending in `/`), or for [`ObjectKind::Config`] its one path.
    pub const fn prefix(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "keys/",
            ObjectKind::Pack => "data/",
            ObjectKind::Index => "index/",
            ObjectKind::Snapshot => "snapshots/",
            ObjectKind::Obsolete => "obsolete/",
            ObjectKind::Lock => "locks/",
            ObjectKind::Tombstone => "deleted/",
            ObjectKind::Lag => "lagging/",
            ObjectKind::Wal => "wal/",
        }
    }

    /// The associated data sealed objects of this kind are bound to. Key files bind the sealed master key;
    /// packs bind their header (each blob has its own, see [`crate::format::blob`]).
    pub const fn aad(self) -> &'static [u8] {
        match self {
            ObjectKind::Config => b"gumvault config v1",
            ObjectKind::Key => b"gumvault key v1",
            ObjectKind::Pack => b"gumvault pack header v1",
            ObjectKind::Index => b"gumvault index v1",
            ObjectKind::Snapshot => b"gumvault snapshot v1",
            ObjectKind::Obsolete => b"gumvault obsolete v1",
            ObjectKind::Lock => b"gumvault lock v1",
            ObjectKind::Tombstone => b"gumvault tombstone v1",
            ObjectKind::Lag => b"gumvault lag v1",
            ObjectKind::Wal => b"gumvault wal v1",
        }
    }

    /// True for kinds named by the BLAKE3 hash of their stored bytes, so any copy can be verified by its name.
    /// WAL files are not: their name says which file they are, and a copy is verified by opening it (its
    /// associated data holds the name); copies in two regions may differ byte for byte (each sealed with its own
    /// nonce) and are never overwritten.
    pub const fn is_content_addressed(self) -> bool {
        !matches!(self, ObjectKind::Config | ObjectKind::Key | ObjectKind::Lock | ObjectKind::Wal)
    }

    /// True for kinds every region must hold (leases are short-lived and each region's own business).
    pub const fn is_replicated(self) -> bool {
        !matches!(self, ObjectKind::Lock)
    }

    /// The path of the object of this kind named `name` (hex); packs fan out by their first two characters
    /// so no directory grows too large.
    pub fn path(self, name: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => format!("data/{}/{name}", name.get(..2).unwrap_or(name)),
            other => format!("{}{name}", other.prefix()),
        }
    }

    /// The path of the object of this kind with this id.
    pub fn path_of(self, id: &Id) -> String {
        self.path(&id.to_hex())
    }

    /// The kind and name of a path, `None` for a path no object has.
    pub fn parse_path(path: &str) -> Option<(ObjectKind, &str)> {
        if path == "config" {
            return Some((ObjectKind::Config, path));
        }
        let kind = ObjectKind::ALL[1..].iter().copied().find(|k| path.starts_with(k.prefix()))?;
        let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
        Some((kind, name))
    }

    /// The id in a content-addressed object's path.
    pub fn id_of_path(path: &str) -> Option<Id> {
        Id::from_hex(ObjectKind::parse_path(path)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_their_properties() {
        use ObjectKind::*;
        let addressed: Vec<ObjectKind> = ObjectKind::ALL.into_iter().filter(|k| k.is_content_addressed()).collect();
        assert_eq!(addressed, vec![Pack, Index, Snapshot, Obsolete, Tombstone, Lag]);
        let replicated: Vec<ObjectKind> = ObjectKind::ALL.into_iter().filter(|k| !k.is_replicated()).collect();
        assert_eq!(replicated, vec![Lock]);
        let prefixes: std::collections::BTreeSet<&str> = ObjectKind::ALL.iter().map(|k| k.prefix()).collect();
        assert_eq!(prefixes.len(), ObjectKind::ALL.len());
        let wal_name = "ab".repeat(72);
        assert_eq!(Wal.path(&wal_name), format!("wal/{wal_name}"));
        assert_eq!(ObjectKind::parse_path(&format!("wal/{wal_name}")), Some((Wal, wal_name.as_str())));
        assert_eq!(ObjectKind::id_of_path(&format!("wal/{wal_name}")), None, "WAL names are no ids");
    }

    #[test]
    fn paths_round_trip_and_aad_differ() {
        let id = Id::of_object(b"x");
        for kind in ObjectKind::ALL {
            let path = kind.path_of(&id);
            let (back, name) = ObjectKind::parse_path(&path).unwrap();
            assert_eq!(back, kind);
            if kind != ObjectKind::Config {
                assert_eq!(name, id.to_hex());
            }
        }
        assert!(ObjectKind::path_of(ObjectKind::Pack, &id).starts_with(&format!("data/{}/", &id.to_hex()[..2])));
        let aads: std::collections::BTreeSet<&[u8]> = ObjectKind::ALL.iter().map(|k| k.aad()).collect();
        assert_eq!(aads.len(), ObjectKind::ALL.len());
        assert_eq!(ObjectKind::parse_path("elsewhere/x"), None);
    }
}

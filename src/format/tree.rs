//! Trees: one per directory, a sorted list of nodes (files, directories, symlinks, special files) with their
//! metadata and the blob ids of their content. Trees are stored as blobs of kind `tree` (JSON, then compressed and
//! sealed like any blob), so they dedup too.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::format::id::Id;

/// A file name or symlink target as raw bytes. Serialized as a JSON string when it is UTF-8, otherwise as
/// `{"b64": "<standard base64>"}`, so non-UTF-8 names survive exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RawName(pub Vec<u8>);

impl RawName {
    /// A lossy form for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl Serialize for RawName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use base64::Engine;
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("b64", &base64::engine::general_purpose::STANDARD.encode(&self.0))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Raw { b64: String },
        }
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(RawName(t.into_bytes())),
            Repr::Raw { b64 } => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(RawName)
                    .map_err(|e| serde::de::Error::custom(format!("bad base64 name: {e}")))
            }
        }
    }
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe (FIFO).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The entry's name within its directory, as raw bytes.
    pub name: RawName,
    /// What the entry is (`type` in the JSON).
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// The owner's numeric user id.
    pub uid: u32,
    /// The owner's numeric group id.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Change time and inode identity: only used to skip unchanged files in the next backup.
    #[serde(default)]
    pub ctime_ns: i64,
    /// Inode number (see `ctime_ns`).
    #[serde(default)]
    pub inode: u64,
    /// Device number of the file system that holds it (see `ctime_ns`).
    #[serde(default)]
    pub dev: u64,
    /// File size in bytes (files only).
    #[serde(default)]
    pub size: u64,
    /// Blob ids of the file's content, in order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// The tree of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RawName>,
    /// Device number of character and block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Objects from an S3 bucket: the object's ETag, used to skip unchanged objects in the next backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Objects from an S3 bucket: the Content-Type to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Objects from an S3 bucket: the other headers to restore, by lowercase name — `cache-control`,
    /// `content-disposition`, `content-encoding`, `content-language`, `expires`, and user metadata
    /// (`x-amz-meta-*`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub s3_headers: std::collections::BTreeMap<String, String>,
}

impl Node {
    /// An entry of `kind` with a name and permission bits; owner, times, identity and content left empty for
    /// the caller to fill in.
    pub fn new(name: RawName, kind: NodeKind, mode: u32) -> Node {
        Node {
            name,
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            rdev: None,
            etag: None,
            content_type: None,
            s3_headers: std::collections::BTreeMap::new(),
        }
    }

    /// A file of `size` bytes whose content is the blobs `content`, in order.
    pub fn file(name: RawName, mode: u32, size: u64, content: Vec<Id>) -> Node {
        Node { size, content, ..Node::new(name, NodeKind::File, mode) }
    }

    /// A directory whose entries are the tree `subtree`.
    pub fn dir(name: RawName, mode: u32, subtree: Id) -> Node {
        Node { subtree: Some(subtree), ..Node::new(name, NodeKind::Dir, mode) }
    }
}

/// A directory's entries, sorted by name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// The entries, sorted by name bytes, each name once.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts nodes by name so equal directories serialize to equal bytes (and dedup).
    pub fn new(mut nodes: Vec<Node>) -> Tree {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree { nodes }
    }

    /// The node with this name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.0.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }

    /// The tree as JSON, the plaintext of its tree blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees always serialize")
    }

    /// Parses a tree blob's plaintext. Refuses entries out of order or repeated, and names that are empty, `.`, `..`
    /// or hold a `/`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tree, DecodeError> {
        let tree: Tree =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid(format!("undecodable tree: {e}")))?;
        if tree.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err("tree entries are not sorted and unique".into());
        }
        if tree
            .nodes
            .iter()
            .any(|n| n.name.0.is_empty() || n.name.0.contains(&b'/') || n.name.0 == b"." || n.name.0 == b"..")
        {
            return Err("tree holds an invalid entry name".into());
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: Vec<u8>) -> Node {
        Node {
            uid: 1,
            gid: 2,
            mtime_ns: 1_700_000_000_123_456_789,
            ..Node::file(RawName(name), 0o644, 3, vec![Id([9; 32])])
        }
    }

    proptest! {
        #[test]
        fn round_trip(names in prop::collection::btree_set(prop::collection::vec(1u8..=255, 1..20), 0..20)) {
            let nodes: Vec<Node> = names.into_iter().filter(|n| !n.contains(&b'/') && n != b"." && n != b"..").map(node).collect();
            let tree = Tree::new(nodes);
            prop_assert_eq!(Tree::from_bytes(&tree.to_bytes()).unwrap(), tree);
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let tree = Tree::new(vec![node(vec![0xff, b'a']), node(b"plain".to_vec())]);
        let json = String::from_utf8(tree.to_bytes()).unwrap();
        assert!(json.contains("\"b64\""));
        assert_eq!(Tree::from_bytes(json.as_bytes()).unwrap(), tree);
        assert!(tree.find(&[0xff, b'a']).is_some());
    }

    #[test]
    fn bad_trees_are_rejected() {
        assert!(Tree::from_bytes(b"{").is_err());
        let t = Tree { nodes: vec![node(b"b".to_vec()), node(b"a".to_vec())] };
        assert!(Tree::from_bytes(&t.to_bytes()).is_err());
        let t = Tree { nodes: vec![node(b"a/b".to_vec())] };
        assert!(Tree::from_bytes(&t.to_bytes()).is_err());
    }
}

//! Trees: one per directory, a sorted list of nodes (files, directories, symlinks, special files) with their
//! metadata and the blob ids of their content. Trees are stored as blobs of kind `tree` (JSON, then compressed and
//! sealed like any blob), so they dedup too.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::format::content_list::MAX_LIST;
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
    /// Blob ids of the file's content, in order (files of at most
    /// [`INLINE_MAX`](crate::format::content_list::INLINE_MAX) blobs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// The content lists of a larger file, in order: their ids, concatenated, are its content
    /// ([`crate::format::content_list`]). A node has `content` or `content_lists`, never both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_lists: Vec<ContentList>,
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
            content_lists: Vec::new(),
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

    /// Blobs of the file's content, however it lists them.
    pub fn blob_count(&self) -> usize {
        self.content.len() + self.content_lists.iter().map(|l| l.blobs as usize).sum::<usize>()
    }

    /// Whether the file has no content blobs (it is empty).
    pub fn has_no_content(&self) -> bool {
        self.content.is_empty() && self.content_lists.is_empty()
    }

    /// Whether two nodes name the same content blobs: lists are cut by their ids alone, so the same content
    /// gives the same lists.
    pub fn same_content(&self, other: &Node) -> bool {
        self.content == other.content && self.content_lists == other.content_lists
    }

    /// Takes the content of `other` (an unchanged file's, from the last snapshot).
    pub fn copy_content_from(&mut self, other: &Node) {
        self.content = other.content.clone();
        self.content_lists = other.content_lists.clone();
    }

    /// Drops the content (a file whose blobs are lost).
    pub fn clear_content(&mut self) {
        self.content = Vec::new();
        self.content_lists = Vec::new();
    }

    /// A directory whose entries are the tree `subtree`.
    pub fn dir(name: RawName, mode: u32, subtree: Id) -> Node {
        Node { subtree: Some(subtree), ..Node::new(name, NodeKind::Dir, mode) }
    }
}

/// One content list of a large file: a blob of kind `tree` holding `blobs` data blob ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentList {
    /// The list's blob id.
    pub id: Id,
    /// How many ids it holds (at least 1): what a reader checks the list against, and what a restore plans
    /// with before it reads the list.
    pub blobs: u32,
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
        if tree.nodes.iter().any(|n| {
            !n.content_lists.is_empty()
                && (!n.content.is_empty()
                    || n.kind != NodeKind::File
                    || n.content_lists.iter().any(|l| l.blobs == 0 || l.blobs as usize > MAX_LIST))
        }) {
            return Err(
                "tree holds a node with both content and content lists, or a content list of no or too many ids".into(),
            );
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
    fn content_lists_round_trip_and_never_stand_beside_content() {
        let list = ContentList { id: Id([5; 32]), blobs: 4000 };
        let mut big = node(b"big".to_vec());
        big.content = Vec::new();
        big.content_lists = vec![list, ContentList { blobs: 7, ..list }];
        let tree = Tree::new(vec![big.clone()]);
        assert_eq!(Tree::from_bytes(&tree.to_bytes()).unwrap(), tree);
        assert_eq!(big.blob_count(), 4007);
        assert!(!big.has_no_content() && !big.same_content(&node(b"big".to_vec())));
        let mut both = big.clone();
        both.content = vec![Id([1; 32])];
        assert!(Tree::from_bytes(&Tree::new(vec![both]).to_bytes()).is_err());
        let mut empty = big.clone();
        empty.content_lists[1].blobs = 0;
        assert!(Tree::from_bytes(&Tree::new(vec![empty]).to_bytes()).is_err());
        let mut huge = big.clone();
        huge.content_lists[1].blobs = MAX_LIST as u32 + 1;
        assert!(Tree::from_bytes(&Tree::new(vec![huge]).to_bytes()).is_err());
        let mut dir = big;
        dir.kind = NodeKind::Dir;
        assert!(Tree::from_bytes(&Tree::new(vec![dir]).to_bytes()).is_err());
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

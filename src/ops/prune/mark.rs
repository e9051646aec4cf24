//! Marking: every blob some snapshot needs, found by walking every snapshot's trees, as one bit per blob of the
//! sorted index. A blob found only in an obsolete pack (a backup reused it after the pack was marked) brings that
//! pack back.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::state::State;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::pack::PackedBlob;
use crate::format::snapshot::BaseBackup;
use crate::format::tree::NodeKind;
use crate::ops::tree_walk::{self, Next, Visit};
use crate::repo::Repository;
use crate::repo::blob_index::BitSet;

/// What snapshots need.
pub(super) struct Marked {
    /// Snapshots walked.
    pub snapshots: usize,
    /// The first record of every needed blob that the index has, by position in the sorted table.
    pub used: BitSet,
    /// Needed blobs found only in obsolete packs.
    pub used_elsewhere: u64,
    /// Obsolete packs that hold needed blobs, to put back into the index.
    pub restore: HashMap<Id, PackEntry>,
    /// The PostgreSQL base backups the snapshots hold (what WAL retention keeps WAL for).
    pub base_backups: Vec<BaseBackup>,
}

impl Marked {
    /// Distinct blobs the snapshots need.
    pub fn used_blobs(&self) -> u64 {
        self.used.count() + self.used_elsewhere
    }
}

/// Marks blobs, looking into obsolete packs' headers only when the index does not have one.
struct Marker<'a> {
    repo: &'a Repository,
    st: &'a State,
    used: BitSet,
    elsewhere: HashSet<Id>,
    obsolete_blobs: Option<HashMap<Id, (Id, PackedBlob)>>,
    restore: HashMap<Id, PackEntry>,
}

impl Marker<'_> {
    /// Marks a blob as needed; true the first time.
    fn mark(&mut self, id: &Id) -> Result<bool> {
        if let Some((pos, _)) = self.st.index.find(id)? {
            return Ok(self.used.insert(pos));
        }
        if self.elsewhere.contains(id) {
            return Ok(false);
        }
        self.in_obsolete_pack(id)?;
        Ok(self.elsewhere.insert(*id))
    }

    /// Where a tree lies: in the index, or in an obsolete pack (which then comes back).
    fn tree_location(&mut self, id: &Id) -> Result<(Id, PackedBlob)> {
        match self.st.index.tree(id) {
            Some(l) => Ok(l),
            None => self.in_obsolete_pack(id),
        }
    }

    /// The obsolete pack that holds a blob the index does not have; that pack is put back into the index.
    fn in_obsolete_pack(&mut self, id: &Id) -> Result<(Id, PackedBlob)> {
        let (pid, b) = *self.obsolete_blobs()?.get(id).ok_or_else(|| {
            Error::corrupt(
                format!("blob {id}"),
                "needed by a snapshot but in no pack; prune stops (run `gumvault check`)",
            )
        })?;
        if !self.restore.contains_key(&pid) {
            let entry = self.repo.pack_entry_from_header(&pid, self.st.stored[&pid])?;
            self.restore.insert(pid, entry);
        }
        Ok((pid, b))
    }

    /// The blobs of every obsolete pack that is still stored (read once, when first needed).
    fn obsolete_blobs(&mut self) -> Result<&HashMap<Id, (Id, PackedBlob)>> {
        if self.obsolete_blobs.is_none() {
            let mut m = HashMap::new();
            for pid in self.st.obsolete.keys() {
                if let Some(size) = self.st.stored.get(pid) {
                    for b in self.repo.read_pack_header(pid, *size)? {
                        m.entry(b.info.id).or_insert((*pid, b));
                    }
                }
            }
            self.obsolete_blobs = Some(m);
        }
        Ok(self.obsolete_blobs.get_or_insert_with(HashMap::new))
    }
}

/// Walks every snapshot's trees, reading many at once ([`crate::ops::tree_walk`]).
pub(super) fn used_blobs(repo: &Repository, st: &State) -> Result<Marked> {
    let snaps = repo.list_snapshots()?;
    let mut roots = Vec::new();
    let mut base_backups = Vec::new();
    for (_, snap) in repo.load_snapshots(&snaps)? {
        let snap = snap?;
        roots.push((snap.tree, ()));
        base_backups.extend(snap.base_backups);
    }
    let m = RefCell::new(Marker {
        repo,
        st,
        used: BitSet::new(st.index.blobs().len()),
        elsewhere: HashSet::new(),
        obsolete_blobs: None,
        restore: HashMap::new(),
    });
    let locate = |id: &Id| {
        let mut m = m.borrow_mut();
        m.mark(id)?;
        m.tree_location(id).map(Some)
    };
    tree_walk::walk(repo, roots, locate, |tree_id, (), visit| {
        let tree = match visit {
            Visit::Tree(t) => t,
            Visit::List(ids) => {
                let mut m = m.borrow_mut();
                for id in &ids {
                    m.mark(id)?;
                }
                return Ok(Vec::new());
            }
            Visit::Failed(e) => return Err(e),
            Visit::NotIndexed => {
                return Err(Error::corrupt(
                    format!("tree or content list {tree_id}"),
                    "in no pack; prune stops (run `gumvault check`)",
                ));
            }
        };
        let mut m = m.borrow_mut();
        let mut next = Vec::new();
        for node in tree.nodes {
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                next.push(Next::Tree(sub, ()));
            }
            for id in node.content {
                m.mark(&id)?;
            }
            next.extend(node.content_lists.into_iter().map(|l| Next::List(l, ())));
        }
        Ok(next)
    })?;
    let m = m.into_inner();
    let used_elsewhere = m.elsewhere.len() as u64;
    Ok(Marked { snapshots: snaps.len(), used: m.used, used_elsewhere, restore: m.restore, base_backups })
}

//! The last check before a snapshot becomes visible: if a prune rewrote the index while this backup ran, a blob
//! the backup reused may now sit in a pack that prune marked obsolete. Such packs are put back into the index
//! before the snapshot is written, so the snapshot never refers to data that a later prune could delete.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::objects::ObjectKind;
use crate::format::tree::NodeKind;
use crate::repo::Repository;
use crate::repo::catalog::Catalog;
use crate::repo::reader::BlobReader;

/// Makes sure every blob reachable from `root` is in the current index. `known_at_start` are the index
/// segments the catalog knew when the backup began. Returns how many packs were put back.
pub fn ensure_indexed(
    repo: &Repository,
    catalog: &mut Catalog,
    root: &Id,
    known_at_start: &HashSet<Id>,
) -> Result<usize> {
    let now: HashSet<Id> = repo.list_indexes()?.into_iter().collect();
    if known_at_start.iter().all(|id| now.contains(id)) {
        return Ok(0); // no prune ran meanwhile
    }
    let mut live: HashSet<Id> = HashSet::new();
    for idx in &now {
        for p in repo.load_index(idx)? {
            live.extend(p.blobs.iter().map(|b| b.info.id));
        }
    }
    let missing_packs = packs_outside(&BlobReader::new(repo, catalog), root, &live)?;
    let mut restored = Vec::new();
    for pack in &missing_packs {
        let size = repo.stat_object(ObjectKind::Pack, pack)?.ok_or_else(|| {
            Error::SourceFailed(format!(
                "a prune deleted pack {} that this backup reuses; no snapshot was written — run the backup again",
                pack.short()
            ))
        })?;
        restored.push(repo.pack_entry_from_header(pack, size)?);
    }
    if !restored.is_empty() {
        let id = repo.save_index(&restored)?;
        catalog.add_index(&id, &restored)?;
    }
    Ok(restored.len())
}

/// The packs that hold blobs reachable from `root` which `live` (the current index) lacks, according to the
/// catalog as it was during the backup.
fn packs_outside(reader: &BlobReader<'_>, root: &Id, live: &HashSet<Id>) -> Result<HashSet<Id>> {
    let mut packs = HashSet::new();
    let mut stack = vec![*root];
    let mut seen = HashSet::new();
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let mut check = |id: &Id| -> Result<()> {
            if !live.contains(id) {
                packs.insert(reader.locate(id)?.pack);
            }
            Ok(())
        };
        check(&t)?;
        for node in reader.load_tree(&t)?.nodes {
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                stack.push(sub);
            }
            for id in &node.content {
                check(id)?;
            }
            for list in &node.content_lists {
                check(&list.id)?;
                for id in reader.load_list(list)? {
                    check(&id)?;
                }
            }
        }
    }
    Ok(packs)
}

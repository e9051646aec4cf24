//! Carrying a plan out, in the order that is safe at every step: new packs → new index → new obsolete list →
//! old index and lists deleted → expired packs deleted → WAL no kept base backup needs deleted. A crash between any two steps leaves a valid repository.

use std::collections::{HashMap, HashSet};

use super::mark::Marked;
use super::plan::Plan;
use super::state::State;
use crate::error::Result;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::PackWriter;
use crate::repo::Repository;
use crate::repo::wal::WalObject;

/// Blobs per index segment written by prune.
const SEGMENT_BLOBS: usize = 100_000;

/// Writes the plan; returns how many index segments the new index has. Archived WAL no kept base backup needs
/// goes last (nothing refers to it).
pub(super) fn execute(
    repo: &Repository,
    st: &State,
    marked: &Marked,
    plan: Plan<'_>,
    wal: &[WalObject],
) -> Result<usize> {
    let mut new_index: Vec<PackEntry> = plan.keep.iter().map(|p| (*p).clone()).collect();
    new_index.extend(marked.restore.values().cloned());
    new_index.extend(repack_packs(repo, &plan.repack, &marked.used)?);
    let segments = write_index(repo, new_index)?;
    let new_list = repo.save_obsolete(&plan.obsolete_next)?;
    for idx in &st.index_names {
        repo.delete_object(ObjectKind::Index, idx)?;
    }
    for list in st.obsolete_lists.iter().filter(|l| Some(**l) != new_list) {
        repo.delete_object(ObjectKind::Obsolete, list)?;
    }
    for id in &plan.delete {
        repo.delete_object(ObjectKind::Pack, id)?;
    }
    for w in wal {
        repo.delete_wal(w)?;
    }
    repo.write_tombstone()?;
    Ok(segments)
}

/// Writes the new index segment by segment; returns the number of segments.
fn write_index(repo: &Repository, packs: Vec<PackEntry>) -> Result<usize> {
    let mut written = 0;
    let mut segment: Vec<PackEntry> = Vec::new();
    let mut blobs = 0;
    for p in packs {
        blobs += p.blobs.len();
        segment.push(p);
        if blobs >= SEGMENT_BLOBS {
            repo.save_index(&std::mem::take(&mut segment))?;
            written += 1;
            blobs = 0;
        }
    }
    if !segment.is_empty() {
        repo.save_index(&segment)?;
        written += 1;
    }
    Ok(written)
}

/// Copies the used blobs of `packs` into new packs, verifying each on the way (sealed bytes are copied as is:
/// associated data binds a blob to its id, not to its pack).
fn repack_packs(repo: &Repository, packs: &[&PackEntry], used: &HashSet<Id>) -> Result<Vec<PackEntry>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut writers: HashMap<u8, PackWriter> = HashMap::new();
    for p in packs {
        let bytes = repo.read_pack(&p.id)?;
        for b in p.blobs.iter().filter(|b| used.contains(&b.info.id)) {
            if !seen.insert(b.info.id) {
                continue;
            }
            let sealed = &bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
            repo.open_blob(&p.id, b, sealed)?;
            let w = writers.entry(b.info.kind as u8).or_insert_with(|| PackWriter::new(b.info.kind));
            w.add(b.info, sealed);
            if w.len() >= repo.pack_target(b.info.kind)
                && let Some(full) = writers.remove(&(b.info.kind as u8))
            {
                out.push(repo.write_pack(full)?);
            }
        }
    }
    for (_, w) in writers {
        if !w.is_empty() {
            out.push(repo.write_pack(w)?);
        }
    }
    Ok(out)
}

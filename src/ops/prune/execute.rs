//! Carrying a plan out, in the order that is safe at every step: new packs → new index → new obsolete list →
//! old index and lists deleted → expired packs deleted → WAL no kept base backup needs deleted. A crash between any two steps leaves a valid repository.

use std::collections::HashMap;

use super::mark::Marked;
use super::plan::{Fate, Plan};
use super::state::State;
use crate::error::Result;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::PackWriter;
use crate::repo::Repository;
use crate::repo::wal::WalObject;

/// Blobs per index segment written by prune.
const SEGMENT_BLOBS: usize = 100_000;

/// Writes the plan; returns how many index segments the new index has. Archived WAL no kept base backup needs
/// goes last (nothing refers to it).
pub(super) fn execute(repo: &Repository, st: &State, marked: &Marked, plan: Plan, wal: &[WalObject]) -> Result<usize> {
    let mut index = IndexWriter::default();
    let mut repacker = Repacker { repo, writers: HashMap::new() };
    st.index.for_each_pack(|entry| {
        let Some(n) = st.index.pack_number(&entry.id) else { return Ok(()) };
        match plan.fate[n as usize] {
            Fate::Keep => index.add(repo, entry),
            Fate::Repack => repacker.repack(st, marked, n, &entry)?.into_iter().try_for_each(|p| index.add(repo, p)),
            Fate::Drop => Ok(()),
        }
    })?;
    for entry in repacker.finish()?.into_iter().chain(marked.restore.values().cloned()) {
        index.add(repo, entry)?;
    }
    let segments = index.finish(repo)?;
    let new_list = repo.save_obsolete(&plan.obsolete_next)?;
    for idx in &st.index.segments {
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

/// The new index, written a segment at a time as packs come.
#[derive(Default)]
struct IndexWriter {
    segment: Vec<PackEntry>,
    blobs: usize,
    written: usize,
}

impl IndexWriter {
    fn add(&mut self, repo: &Repository, p: PackEntry) -> Result<()> {
        self.blobs += p.blobs.len();
        self.segment.push(p);
        if self.blobs >= SEGMENT_BLOBS {
            repo.save_index(&std::mem::take(&mut self.segment))?;
            self.written += 1;
            self.blobs = 0;
        }
        Ok(())
    }

    /// Writes the last segment; returns the number of segments.
    fn finish(self, repo: &Repository) -> Result<usize> {
        if self.segment.is_empty() {
            return Ok(self.written);
        }
        repo.save_index(&self.segment)?;
        Ok(self.written + 1)
    }
}

/// Copies used blobs of partly used packs into new packs, one open pack per blob kind.
struct Repacker<'a> {
    repo: &'a Repository,
    writers: HashMap<u8, PackWriter>,
}

impl Repacker<'_> {
    /// Copies the used blobs of pack number `n`, verifying each on the way (sealed bytes are copied as is:
    /// associated data binds a blob to its id, not to its pack); returns the packs that filled up. A blob is
    /// copied from the pack that holds its first record only, so a blob stored twice is copied once.
    fn repack(&mut self, st: &State, marked: &Marked, n: u32, p: &PackEntry) -> Result<Vec<PackEntry>> {
        let mut full = Vec::new();
        let bytes = self.repo.read_pack(&p.id)?;
        for b in &p.blobs {
            let Some((pos, first)) = st.index.find(&b.info.id)? else { continue };
            if first.pack != n || !marked.used.contains(pos) {
                continue;
            }
            let sealed = &bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
            self.repo.open_blob(&p.id, b, sealed)?;
            let w = self.writers.entry(b.info.kind as u8).or_insert_with(|| PackWriter::new(b.info.kind));
            w.add(b.info, sealed);
            if w.len() >= self.repo.pack_target(b.info.kind)
                && let Some(done) = self.writers.remove(&(b.info.kind as u8))
            {
                full.push(self.repo.write_pack(done)?);
            }
        }
        Ok(full)
    }

    /// Writes the packs still open.
    fn finish(self) -> Result<Vec<PackEntry>> {
        let mut out = Vec::new();
        for (_, w) in self.writers {
            if !w.is_empty() {
                out.push(self.repo.write_pack(w)?);
            }
        }
        Ok(out)
    }
}

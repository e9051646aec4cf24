//! Chunking one byte stream (a file, stdin, a command's stdout) into blobs, with bounded memory: one batch of
//! chunks is compressed and encrypted in parallel while the next batch is read.

use std::io::Read;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::progress::Progress;
use super::saver::BlobSaver;
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::chunker::Chunker;
use crate::format::content_list;
use crate::format::id::Id;
use crate::format::tree::{ContentList, Node};

/// Bytes of chunks read ahead while the previous batch is being saved.
const BATCH_BYTES: usize = 4 << 20;

/// A file's content as it is read: the ids of its blobs, saved a content list at a time once there are more than
/// fit in its node ([`content_list`]), so what is held stays under one list however large the file.
#[derive(Debug, Default)]
pub struct StreamContent {
    /// Ids not yet in a saved list.
    pending: Vec<Id>,
    /// Lists saved so far.
    lists: Vec<ContentList>,
    /// Bytes read from the stream.
    pub size: u64,
    /// Of those, bytes of holes: not read, saved as zero blobs.
    pub holes: u64,
}

impl StreamContent {
    /// Appends the next blob of the file; a list that is complete is saved.
    pub fn push(&mut self, saver: &BlobSaver<'_>, id: Id) -> Result<()> {
        self.pending.push(id);
        if content_list::ends_list(self.pending.len(), &id) {
            self.save_list(saver)?;
        }
        Ok(())
    }

    fn save_list(&mut self, saver: &BlobSaver<'_>) -> Result<()> {
        let blobs = u32::try_from(self.pending.len()).expect("a list holds at most MAX_LIST ids");
        let id = saver.save(BlobKind::Tree, &content_list::encode(&self.pending))?;
        self.lists.push(ContentList { id, blobs });
        self.pending.clear();
        Ok(())
    }

    /// Puts the content into `node` (a file): its ids when they fit, else its lists, the last saved now.
    pub fn finish_into(mut self, saver: &BlobSaver<'_>, node: &mut Node) -> Result<()> {
        node.size = self.size;
        if self.lists.is_empty() && self.pending.len() <= content_list::INLINE_MAX {
            node.content = self.pending;
            node.content_lists = Vec::new();
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.save_list(saver)?;
        }
        node.content = Vec::new();
        node.content_lists = self.lists;
        Ok(())
    }
}

/// Reads `chunker`'s stream to its end, saving every chunk into `out`. `what` names the source in error messages.
pub fn save_stream<R: Read + Send>(
    saver: &BlobSaver<'_>,
    out: &mut StreamContent,
    mut chunker: Chunker<'_, R>,
    progress: &Progress,
    what: &str,
) -> Result<()> {
    let read_err = |e: std::io::Error| Error::io("read", what, e);
    let mut batch = read_batch(&mut chunker).map_err(read_err)?;
    while !batch.is_empty() {
        let (ids, next) = rayon::join(
            || -> Result<Vec<Id>> {
                if batch.len() == 1 {
                    Ok(vec![saver.save(BlobKind::Data, &batch[0])?])
                } else {
                    batch.par_iter().map(|c| saver.save(BlobKind::Data, c)).collect()
                }
            },
            || read_batch(&mut chunker),
        );
        let n: usize = batch.iter().map(Vec::len).sum();
        out.size += n as u64;
        progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        for id in ids? {
            out.push(saver, id)?;
        }
        batch = next.map_err(read_err)?;
    }
    Ok(())
}

fn read_batch<R: Read>(chunker: &mut Chunker<'_, R>) -> std::io::Result<Vec<Vec<u8>>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while bytes < BATCH_BYTES {
        match chunker.next_chunk()? {
            Some(c) => {
                bytes += c.len();
                batch.push(c);
            }
            None => break,
        }
    }
    Ok(batch)
}

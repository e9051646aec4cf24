//! Chunking one byte stream (a file, stdin, a command's stdout) into blobs, with bounded memory: one batch of
//! chunks is compressed and encrypted in parallel while the next batch is read.

use std::io::Read;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::progress::Progress;
use super::saver::BlobSaver;
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::chunker::{Chunker, ChunkerParams, Gear};
use crate::format::id::Id;

/// Bytes of chunks read ahead while the previous batch is being saved.
const BATCH_BYTES: usize = 4 << 20;

/// What reading a stream produced.
#[derive(Debug, Default)]
pub struct StreamContent {
    /// The data blobs the stream was cut into, in order.
    pub blobs: Vec<Id>,
    /// Bytes read from the stream.
    pub size: u64,
    /// Of those, bytes of holes: not read, saved as zero blobs.
    pub holes: u64,
}

impl StreamContent {
    /// Appends what another part of the same file produced.
    pub fn extend(&mut self, other: StreamContent) {
        self.blobs.extend(other.blobs);
        self.size += other.size;
        self.holes += other.holes;
    }
}

/// Reads `reader` to its end, saving every chunk. `what` names the source in error messages.
pub fn save_stream(
    saver: &BlobSaver<'_>,
    reader: impl Read + Send,
    params: ChunkerParams,
    gear: &Gear,
    progress: &Progress,
    what: &str,
    size_hint: Option<u64>,
) -> Result<StreamContent> {
    let mut chunker = Chunker::with_size_hint(reader, params, gear, size_hint);
    let read_err = |e: std::io::Error| Error::io("read", what, e);
    let mut out = StreamContent::default();
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
        out.blobs.extend(ids?);
        batch = next.map_err(read_err)?;
    }
    Ok(out)
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

//! One file of a snapshot to a stream (`gumvault dump`, a database restore), a few blobs fetched ahead in
//! parallel.

use std::io::Write;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::repo::reader::BlobReader;

/// Streams a file's content to `out` (named `dest` in messages), fetching a few blobs ahead in parallel.
pub fn dump(reader: &BlobReader<'_>, node: &Node, path: &str, out: &mut dyn Write, dest: &str) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::InvalidInput(format!(
            "{path} is not a regular file; use `gumvault restore` for directories"
        )));
    }
    let mut written = 0u64;
    for batch in node.content.chunks(16) {
        let blobs: Vec<Vec<u8>> = batch.par_iter().map(|id| reader.read(id)).collect::<Result<_>>()?;
        for b in blobs {
            out.write_all(&b).map_err(|e| Error::io("write to", dest, e))?;
            written += b.len() as u64;
        }
    }
    out.flush().map_err(|e| Error::io("write to", dest, e))?;
    Ok(written)
}

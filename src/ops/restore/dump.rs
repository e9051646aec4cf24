//! One file of a snapshot to a stream (`gumvault dump`, a database restore). Neighbouring blobs of one pack (a
//! stream's chunks are stored in order) are read as one streamed run, several runs in flight, and written in
//! order: a dump of a large database costs a request per run, not per 8 KiB chunk.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{Receiver, sync_channel};

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::pack::PackedBlob;
use crate::format::tree::{Node, NodeKind};
use crate::repo::reader::{BlobReader, ContentIds};

/// Plaintext a run may hold: what waits in memory per run in flight.
const RUN_PLAIN: u64 = 4 << 20;
/// Bytes of other blobs a run may read past between two of its own.
const RUN_GAP: u64 = 64 << 10;

/// Runs in flight, oldest first, each with the channel its plaintexts arrive on (`None`: not delivered).
type InFlight = VecDeque<(Run, Receiver<Vec<Option<Vec<u8>>>>)>;

/// Streams a file's content to `out` (named `dest` in messages).
pub fn dump(reader: &BlobReader<'_>, node: &Node, path: &str, out: &mut dyn Write, dest: &str) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::InvalidInput(format!(
            "{path} is not a regular file; use `gumvault restore` for directories"
        )));
    }
    let repo = reader.repo;
    let in_flight = repo.read_concurrency()?.max(4);
    let pool = crate::runtime::io_pool(in_flight, "dump reads")?;
    let mut pending = InFlight::new();
    let mut written = 0u64;
    pool.in_place_scope(|scope| -> Result<()> {
        let mut runs = Runs { reader, ids: reader.content(node).peekable() };
        while let Some(run) = runs.next_run()? {
            let (tx, rx) = sync_channel(1);
            let blobs = run.blobs.clone();
            let pack = run.pack;
            scope.spawn(move |_| {
                let mut plains: Vec<Option<Vec<u8>>> = vec![None; blobs.len()];
                repo.stream_blob_run(&pack, &blobs, |k, plain| plains[k] = plain.ok());
                let _ = tx.send(plains);
            });
            pending.push_back((run, rx));
            while pending.len() >= in_flight {
                written += write_next(reader, &mut pending, out, dest)?;
            }
        }
        while !pending.is_empty() {
            written += write_next(reader, &mut pending, out, dest)?;
        }
        Ok(())
    })?;
    out.flush().map_err(|e| Error::io("write to", dest, e))?;
    Ok(written)
}

/// Neighbouring blobs of one pack, in the file's order.
struct Run {
    pack: Id,
    blobs: Vec<PackedBlob>,
}

/// Cuts a file's blob ids into runs, locating each in the catalog.
struct Runs<'r, 'a> {
    reader: &'r BlobReader<'a>,
    ids: std::iter::Peekable<ContentIds<'r, 'a>>,
}

impl Runs<'_, '_> {
    fn next_run(&mut self) -> Result<Option<Run>> {
        let Some(first) = self.ids.next() else { return Ok(None) };
        let loc = self.reader.locate(&first?)?;
        let mut run = Run { pack: loc.pack, blobs: vec![PackedBlob { info: loc.info, offset: loc.offset }] };
        let (mut end, mut plain) = (loc.offset + u64::from(loc.info.stored_len), u64::from(loc.info.raw_len));
        // A list that cannot be read ends the run; the next run's first id is then that error.
        while let Some(Ok(id)) = self.ids.peek() {
            let next = self.reader.locate(id)?;
            let fits = next.pack == run.pack
                && next.offset >= end
                && next.offset - end <= RUN_GAP
                && plain + u64::from(next.info.raw_len) <= RUN_PLAIN;
            if !fits {
                break;
            }
            end = next.offset + u64::from(next.info.stored_len);
            plain += u64::from(next.info.raw_len);
            run.blobs.push(PackedBlob { info: next.info, offset: next.offset });
            self.ids.next();
        }
        Ok(Some(run))
    }
}

/// Writes the oldest run in flight once it is in. A blob the run could not deliver is read once more on its
/// own, which names what is wrong with it.
fn write_next(reader: &BlobReader<'_>, pending: &mut InFlight, out: &mut dyn Write, dest: &str) -> Result<u64> {
    let Some((run, rx)) = pending.pop_front() else { return Ok(0) };
    let plains = rx.recv().map_err(|_| Error::InvalidInput("a dump read stopped".into()))?;
    let mut written = 0u64;
    for (b, plain) in run.blobs.iter().zip(plains) {
        let plain = match plain {
            Some(p) => p,
            None => reader.repo.read_blob(&run.pack, b.offset, &b.info)?,
        };
        out.write_all(&plain).map_err(|e| Error::io("write to", dest, e))?;
        written += plain.len() as u64;
    }
    Ok(written)
}

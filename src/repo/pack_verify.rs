//! Verifying a whole pack as it streams in (`check --read-data`): its bytes must hash to its name, its header
//! must list exactly the blobs the index says, and every blob must authenticate. Only one blob and the header are
//! held at a time, however large the pack, so many packs can be in flight to a distant region at the memory of
//! one.

use std::io::Read;

use super::Repository;
use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::{self, PackedBlob};

impl Repository {
    /// Verifies the pack `entry` names from the first region that serves it. The first problem is returned, in
    /// the order a whole read would find them: the name, then the header, then the first blob that fails.
    pub fn verify_pack_streamed(&self, entry: &PackEntry) -> Result<()> {
        let path = ObjectKind::Pack.path_of(&entry.id);
        let mut stream =
            Hashing { inner: self.storage.read_range_stream(&path, 0, entry.size)?, hasher: blake3::Hasher::new() };
        let mut blobs: Vec<&PackedBlob> = entry.blobs.iter().collect();
        blobs.sort_by_key(|b| b.offset);
        let (mut at, mut buf, mut bad_blob) = (0u64, Vec::new(), None);
        for b in blobs {
            if b.offset < at {
                bad_blob.get_or_insert_with(|| Error::corrupt(&path, "the index places two blobs on the same bytes"));
                continue;
            }
            stream.skip(b.offset - at, &mut buf, &path)?;
            stream.take(u64::from(b.info.stored_len), &mut buf, &path)?;
            at = b.offset + u64::from(b.info.stored_len);
            if let Err(e) = self.open_blob(&entry.id, b, &buf) {
                bad_blob.get_or_insert(e);
            }
        }
        let tail_len =
            entry.size.checked_sub(at).ok_or_else(|| Error::corrupt(&path, "the index places blobs past its end"))?;
        stream.take(tail_len, &mut buf, &path)?;
        if stream.hasher.finalize().as_bytes() != &entry.id.0 {
            return Err(Error::corrupt(&path, "content does not match its name (damaged or truncated)"));
        }
        let header = self.header_from_tail(&buf, at, entry.size).map_err(|e| Error::corrupt(&path, e))?;
        if header.len() != entry.blobs.len() || header.iter().zip(&entry.blobs).any(|(a, b)| a != b) {
            return Err(Error::corrupt(&path, "its header disagrees with the index"));
        }
        bad_blob.map_or(Ok(()), Err)
    }

    /// The header of a pack of `size` bytes from its last bytes, `tail`, which begin at `tail_start` (where the
    /// index's last blob ends).
    fn header_from_tail(
        &self,
        tail: &[u8],
        tail_start: u64,
        size: u64,
    ) -> std::result::Result<Vec<PackedBlob>, String> {
        let trailer = tail.len().checked_sub(4).map(|at| &tail[at..]).ok_or("the pack is shorter than its trailer")?;
        let header_len = pack::header_len_from_trailer(trailer, size).map_err(|e| e.to_string())?;
        let header_start = size - 4 - header_len;
        let from = header_start.checked_sub(tail_start).ok_or("its header overlaps the blobs the index places")?;
        let sealed = &tail[from as usize..tail.len() - 4];
        pack::decode_header(&self.key, sealed, header_start).map_err(|e| e.to_string())
    }
}

/// A stream whose every byte goes through the hash of the pack's name.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Hashing<R> {
    /// Reads the next `n` bytes into `buf` (replacing what it held).
    fn take(&mut self, n: u64, buf: &mut Vec<u8>, path: &str) -> Result<()> {
        buf.clear();
        let got = (&mut self.inner)
            .take(n)
            .read_to_end(buf)
            .map_err(|e| failed(path, StorageErrorKind::Other, e.to_string()))?;
        if got as u64 != n {
            let message = format!("the stream ended {} bytes early", n - got as u64);
            return Err(failed(path, StorageErrorKind::ShortRead, message));
        }
        self.hasher.update(buf);
        Ok(())
    }

    /// Reads and hashes `n` bytes no blob of the index covers, a piece at a time.
    fn skip(&mut self, mut n: u64, buf: &mut Vec<u8>, path: &str) -> Result<()> {
        while n > 0 {
            let piece = n.min(1 << 20);
            self.take(piece, buf, path)?;
            n -= piece;
        }
        Ok(())
    }
}

fn failed(path: &str, kind: StorageErrorKind, message: String) -> Error {
    StorageError::new("read", path, "", kind, message).into()
}

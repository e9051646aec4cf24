//! Verifying a whole pack as it streams in (`check --read-data`): its bytes must hash to its name, its header
//! must list exactly the blobs the index says, and every blob must authenticate. Only one blob and the header are
//! held at a time, however large the pack, so many packs can be in flight to a distant region at the memory of
//! one.

use std::io::Read;

use super::Repository;
use super::checked_read::CheckedRead;
use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::{self, PackedBlob};

impl Repository {
    /// Verifies the pack `entry` names from the first region that serves it. The first problem is returned, in
    /// the order a whole read would find them: the name, then the header, then the first blob that fails.
    pub fn verify_pack_streamed(&self, entry: &PackEntry) -> Result<()> {
        let path = ObjectKind::Pack.path_of(&entry.id);
        let inner = self.storage.read_range_stream(&path, 0, entry.size)?;
        let mut stream = Pack(CheckedRead::new(inner, entry.id, entry.size, &path, ""));
        let mut blobs: Vec<&PackedBlob> = entry.blobs.iter().collect();
        blobs.sort_by_key(|b| b.offset);
        let (mut at, mut buf, mut bad_blob) = (0u64, Vec::new(), None);
        for b in blobs {
            if b.offset < at {
                bad_blob.get_or_insert_with(|| Error::corrupt(&path, "the index places two blobs on the same bytes"));
                continue;
            }
            if b.offset + u64::from(b.info.stored_len) > entry.size {
                return Err(Error::corrupt(&path, "the index places blobs past its end"));
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
        // The last read fails unless the whole pack hashes to its name.
        stream.take(tail_len, &mut buf, &path)?;
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

/// A pack as it streams in, checked against its name on the way ([`CheckedRead`]), read in pieces.
struct Pack<R>(CheckedRead<R>);

impl<R: Read> Pack<R> {
    /// Reads the next `n` bytes into `buf` (replacing what it held).
    fn take(&mut self, n: u64, buf: &mut Vec<u8>, path: &str) -> Result<()> {
        buf.clear();
        let read = (&mut self.0).take(n).read_to_end(buf);
        if let Some(e) = self.0.failure.take() {
            return Err(e);
        }
        let got = read.map_err(|e| crate::storage::stream_error(path, "", &e))?;
        if got as u64 != n {
            let message = format!("the stream ended {} bytes early", n - got as u64);
            return Err(StorageError::new("read", path, "", StorageErrorKind::ShortRead, message).into());
        }
        Ok(())
    }

    /// Reads `n` bytes no blob of the index covers, a piece at a time.
    fn skip(&mut self, mut n: u64, buf: &mut Vec<u8>, path: &str) -> Result<()> {
        while n > 0 {
            let piece = n.min(1 << 20);
            self.take(piece, buf, path)?;
            n -= piece;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobKind;
    use crate::format::crypto::KdfParams;
    use crate::repo::InitOptions;
    use crate::storage::Storage;

    /// A repository in a temporary directory with one data pack of three blobs.
    fn repo_with_pack() -> (tempfile::TempDir, Repository, PackEntry) {
        let dir = tempfile::tempdir().unwrap();
        let opts =
            InitOptions { kdf: KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }, ..Default::default() };
        let repo = Repository::init(Storage::open_url(dir.path().to_str().unwrap()).unwrap(), b"pw", &opts).unwrap();
        let mut pack = repo.new_pack(BlobKind::Data);
        for i in 0..3u8 {
            let plain = vec![i; 5000 + usize::from(i)];
            let (info, sealed) = repo.seal_blob(BlobKind::Data, repo.blob_id(&plain), &plain, None);
            pack.add(info, &sealed);
        }
        let entry = repo.write_pack(pack).unwrap();
        (dir, repo, entry)
    }

    /// Rewrites the stored pack with `damage` applied to its bytes.
    fn damage(repo: &Repository, entry: &PackEntry, damage: impl FnOnce(&mut Vec<u8>)) {
        let path = ObjectKind::Pack.path_of(&entry.id);
        let mut bytes = repo.storage.read(&path).unwrap().to_vec();
        damage(&mut bytes);
        repo.storage.write(&path, bytes).unwrap();
    }

    fn message(result: Result<()>) -> String {
        match result {
            Err(e @ Error::Corrupt { .. }) => e.to_string(),
            other => panic!("not reported as damage: {other:?}"),
        }
    }

    #[test]
    fn a_sound_pack_passes_and_each_kind_of_damage_is_named() {
        let (_dir, repo, entry) = repo_with_pack();
        repo.verify_pack_streamed(&entry).unwrap();

        damage(&repo, &entry, |b| b[100] ^= 1);
        assert!(message(repo.verify_pack_streamed(&entry)).contains("does not match its name"));

        // An index that disagrees with a sound pack: another blob order, a blob placed past the end.
        let (_dir, repo, entry) = repo_with_pack();
        let mut swapped = entry.clone();
        swapped.blobs.swap(0, 1);
        assert!(message(repo.verify_pack_streamed(&swapped)).contains("header disagrees with the index"));
        let mut past_end = entry.clone();
        past_end.blobs[2].offset = entry.size;
        assert!(message(repo.verify_pack_streamed(&past_end)).contains("past its end"));

        // A copy cut short is a read error here; check then reads it whole and names the damage.
        damage(&repo, &entry, |b| b.truncate(b.len() - 10));
        assert!(!matches!(repo.verify_pack_streamed(&entry), Ok(()) | Err(Error::Corrupt { .. })));
    }
}

//! Blobs and packs: sealing blobs into packs and uploading them, and every way of reading them back (one blob,
//! a run of neighbouring blobs with one range read, a pack's header, a whole pack), each verified.

use std::io::Read;

use bytes::Bytes;

use super::tree_cache::TreeCache;
use super::{Repository, verify_name};
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobInfo, BlobKind};
use crate::format::content_list;
use crate::format::id::Id;
use crate::format::index::PackEntry;
use crate::format::objects::ObjectKind;
use crate::format::pack::{self, FinishedPack, PackWriter, PackedBlob, SalvagedPack};
use crate::format::tree::{ContentList, Tree};

/// The most bytes of a pack read (and of plaintext decoded) at once when a streamed run has to be read again the
/// careful way.
const RETRY_SPAN: u64 = 4 << 20;

impl Repository {
    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        self.key.blob_id(plaintext)
    }

    /// Compresses (with `compressor`, when given and it pays) and seals one blob for a pack.
    pub fn seal_blob(
        &self,
        kind: BlobKind,
        id: Id,
        plaintext: &[u8],
        compressor: Option<&mut zstd::bulk::Compressor<'_>>,
    ) -> (BlobInfo, Vec<u8>) {
        blob::encode(&self.key, kind, id, plaintext, compressor)
    }

    /// An empty pack for blobs of `kind`, sized for the repository's pack target.
    pub fn new_pack(&self, kind: BlobKind) -> PackWriter {
        PackWriter::with_target(kind, self.pack_target(kind))
    }

    /// Seals the header of a full pack, uploads the pack, and says what the index should record about it.
    pub fn write_pack(&self, pack: PackWriter) -> Result<PackEntry> {
        let FinishedPack { id, kind, bytes, blobs } = pack.finish(&self.key);
        let size = bytes.len() as u64;
        let opts = self.write_options(ObjectKind::Pack, kind == BlobKind::Data);
        if let (BlobKind::Tree, Some(cache)) = (kind, &self.tree_cache) {
            // The next backup reads these trees as its parent's: kept now, they need no download then. Kept
            // before the upload, a pack whose upload fails is in the cache under its true name, which is harmless.
            let _ = cache.store(&id, &bytes);
        }
        self.storage.write_with(&ObjectKind::Pack.path_of(&id), bytes, &opts)?;
        Ok(PackEntry { id, kind, size, blobs })
    }

    /// Every pack stored, with its size.
    pub fn list_packs(&self) -> Result<Vec<(Id, u64)>> {
        self.list_sized(ObjectKind::Pack)
    }

    /// Reads a pack's header (a range read of its tail) to learn its blobs.
    pub fn read_pack_header(&self, id: &Id, size: u64) -> Result<Vec<PackedBlob>> {
        let path = ObjectKind::Pack.path_of(id);
        let bad = |e: crate::error::DecodeError| Error::corrupt(&path, e);
        if size < 4 {
            return Err(Error::corrupt(&path, "pack is shorter than its trailer"));
        }
        let trailer = self.storage.read_range(&path, size - 4, 4)?;
        let hlen = pack::header_len_from_trailer(&trailer, size).map_err(bad)?;
        let sealed = self.storage.read_range(&path, size - 4 - hlen, hlen)?;
        pack::decode_header(&self.key, &sealed, size - 4 - hlen).map_err(bad)
    }

    /// The index entry of a stored pack, from its own header.
    pub fn pack_entry_from_header(&self, id: &Id, size: u64) -> Result<PackEntry> {
        let blobs = self.read_pack_header(id, size)?;
        let kind = blobs.first().map_or(BlobKind::Data, |b| b.info.kind);
        Ok(PackEntry { id: *id, kind, size, blobs })
    }

    /// Reads a pack whose header could not be read as it is, and keeps every blob whose bytes still authenticate.
    /// `described` is what index segments said the pack holds. The whole pack is read (a copy that matches its
    /// name if any region has one, else the first copy that can be read); its header is looked for where the
    /// index implies it ends, at its end, then further back ([`pack::find_header`]); every blob the header or
    /// `described` places is then checked on its own, and one that fails in this copy is tried in every other
    /// region. Storage errors are returned: the caller must then keep what it knew about this pack.
    pub fn salvage_pack(&self, id: &Id, described: &[PackedBlob]) -> Result<SalvagedPack> {
        let path = ObjectKind::Pack.path_of(id);
        let (bytes, name_ok) = match self.read_pack(id) {
            Ok(bytes) => (bytes, true),
            Err(Error::Corrupt { .. }) => (self.storage.read(&path)?, false),
            Err(e) => return Err(e),
        };
        let header = pack::find_header(&self.key, &bytes, pack::expected_end(described));
        let mut candidates: Vec<PackedBlob> = described.to_vec();
        if let Some((_, blobs)) = &header {
            candidates.extend_from_slice(blobs);
        }
        candidates.sort_by_key(|b| (b.offset, b.info.id));
        candidates.dedup();
        let (mut blobs, damaged) = pack::authentic_blobs(&self.key, &bytes, &candidates);
        let (elsewhere, lost): (Vec<PackedBlob>, Vec<PackedBlob>) = if self.region_count() > 1 {
            damaged.into_iter().partition(|b| self.read_blob_range(id, b.offset, &b.info).is_ok())
        } else {
            (Vec::new(), damaged)
        };
        blobs.extend(elsewhere);
        blobs.sort_by_key(|b| b.offset);
        let size = bytes.len() as u64;
        let problem = match header {
            Some((end, _)) if end < size => format!("{} bytes follow the end of the pack", size - end),
            Some(_) if !name_ok => "its bytes do not match its name".to_string(),
            Some(_) => {
                "a copy is damaged, or the old index disagrees with its header; a whole copy was read".to_string()
            }
            None => "its header cannot be read (damaged or cut off)".to_string(),
        };
        Ok(SalvagedPack { size, blobs, lost, header_found: header.is_some(), problem })
    }

    /// A whole pack, checked against its name (from another region if one copy is bad).
    pub fn read_pack(&self, id: &Id) -> Result<Bytes> {
        let path = ObjectKind::Pack.path_of(id);
        self.storage.read_with(&path, |bytes| verify_name(&path, id, &bytes).map(|_| bytes))
    }

    /// The first region's copy of a whole pack, checked against its name. A bad copy is an error, not a reason
    /// to read another region: `check` wants to know.
    pub fn read_pack_copy(&self, id: &Id) -> Result<Bytes> {
        let path = ObjectKind::Pack.path_of(id);
        let bytes = self.storage.read(&path)?;
        verify_name(&path, id, &bytes)?;
        Ok(bytes)
    }

    /// The blobs a whole pack's header lists (the pack as [`Repository::read_pack`] returns it).
    pub fn parse_pack(&self, id: &Id, bytes: &[u8]) -> Result<Vec<PackedBlob>> {
        pack::parse_pack(&self.key, bytes).map_err(|e| Error::corrupt(ObjectKind::Pack.path_of(id), e))
    }

    /// Opens one sealed blob taken from a pack of `pack`'s bytes.
    pub fn open_blob(&self, pack: &Id, b: &PackedBlob, sealed: &[u8]) -> Result<Vec<u8>> {
        blob::decode(&self.key, &b.info, sealed).map_err(|e| {
            Error::corrupt(
                format!("{} (blob {} at offset {})", ObjectKind::Pack.path_of(pack), b.info.id.short(), b.offset),
                e,
            )
        })
    }

    /// Reads, decrypts and verifies one blob from its pack: a tree blob from the tree cache when there is one
    /// (fetching its whole pack the first time), any other with a range read.
    pub fn read_blob(&self, pack: &Id, offset: u64, info: &BlobInfo) -> Result<Vec<u8>> {
        if let (BlobKind::Tree, Some(cache)) = (info.kind, &self.tree_cache) {
            return self.read_cached_tree_blob(cache, pack, offset, info);
        }
        self.read_blob_range(pack, offset, info)
    }

    /// A tree blob from its cached pack. A pack not yet cached is fetched whole (once, however many threads want
    /// it), checked against its name and kept; a cached copy whose blob does not authenticate is dropped. When the
    /// whole pack cannot be had or kept, the blob alone is read, and so is every later blob of that pack in this
    /// run (no pack is downloaded twice), so the cache never makes a readable blob unreadable.
    fn read_cached_tree_blob(&self, cache: &TreeCache, pack: &Id, offset: u64, info: &BlobInfo) -> Result<Vec<u8>> {
        let b = PackedBlob { info: *info, offset };
        let len = info.stored_len as usize;
        let from_cache = || {
            let sealed = cache.read(pack, offset, len)?;
            let opened = self.open_blob(pack, &b, &sealed).ok();
            if opened.is_none() {
                cache.remove(pack);
            }
            opened
        };
        if let Some(plain) = from_cache() {
            return Ok(plain);
        }
        let fetched = cache.fetching(pack, || {
            if let Some(plain) = from_cache() {
                return Some(plain);
            }
            if cache.has_given_up(pack) {
                return None;
            }
            let kept = self.read_pack(pack).ok().and_then(|bytes| {
                let start = usize::try_from(offset).ok()?;
                let plain = self.open_blob(pack, &b, bytes.get(start..start.checked_add(len)?)?).ok()?;
                cache.store(pack, &bytes).ok()?;
                Some(plain)
            });
            if kept.is_none() {
                cache.give_up(pack);
            }
            kept
        });
        match fetched {
            Some(plain) => Ok(plain),
            None => self.read_blob_range(pack, offset, info),
        }
    }

    /// Reads, decrypts and verifies one blob from its pack with a range read, never from the tree cache (what
    /// `check` and salvage ask of the repository itself).
    pub fn read_blob_range(&self, pack: &Id, offset: u64, info: &BlobInfo) -> Result<Vec<u8>> {
        let path = ObjectKind::Pack.path_of(pack);
        self.storage.read_range_with(&path, offset, info.stored_len as u64, |sealed| {
            blob::decode(&self.key, info, &sealed)
                .map_err(|e| Error::corrupt(format!("{path} (blob {} at offset {offset})", info.id.short()), e))
        })
    }

    /// Reads a run of blobs of one pack (sorted by offset) with one streamed range read, handing each blob to
    /// `each` (with its index in `run`) as soon as it is in, so only one blob is held at a time however long the
    /// run. When the stream fails or a blob does not authenticate, the rest of the run is read the careful way
    /// ([`Repository::read_blob_run`]: other regions, then blob by blob) in pieces of at most `RETRY_SPAN` bytes
    /// read and decoded, so every good blob is still delivered and every bad one is an error.
    pub fn stream_blob_run(&self, pack: &Id, run: &[PackedBlob], mut each: impl FnMut(usize, Result<Vec<u8>, &Error>)) {
        let done = self.stream_blobs(pack, run, &mut each);
        let mut start = done;
        while start < run.len() {
            let base = run[start].offset;
            let (mut end, mut plain) = (start + 1, u64::from(run[start].info.raw_len));
            while end < run.len()
                && run[end].offset + u64::from(run[end].info.stored_len) - base <= RETRY_SPAN
                && plain + u64::from(run[end].info.raw_len) <= RETRY_SPAN
            {
                plain += u64::from(run[end].info.raw_len);
                end += 1;
            }
            match self.read_blob_run(pack, &run[start..end]) {
                Ok(plains) => plains.into_iter().enumerate().for_each(|(k, p)| match p {
                    Ok(plain) => each(start + k, Ok(plain)),
                    Err(e) => each(start + k, Err(&e)),
                }),
                Err(e) => (start..end).for_each(|k| each(k, Err(&e))),
            }
            start = end;
        }
    }

    /// The streaming part of [`Repository::stream_blob_run`]: how many blobs, from the first, it delivered.
    fn stream_blobs(
        &self,
        pack: &Id,
        run: &[PackedBlob],
        each: &mut impl FnMut(usize, Result<Vec<u8>, &Error>),
    ) -> usize {
        let Some(first) = run.first() else { return 0 };
        let end = run.iter().map(|b| b.offset + u64::from(b.info.stored_len)).max().unwrap_or(first.offset);
        let path = ObjectKind::Pack.path_of(pack);
        let Ok(mut stream) = self.storage.read_range_stream(&path, first.offset, end - first.offset) else { return 0 };
        let mut at = first.offset;
        let mut sealed = Vec::new();
        for (k, b) in run.iter().enumerate() {
            // A blob overlapping the last (an index that lies) is left to the careful way.
            let Some(gap) = b.offset.checked_sub(at) else { return k };
            let skipped = std::io::copy(&mut (&mut stream).take(gap), &mut std::io::sink());
            if skipped.ok() != Some(gap) {
                return k;
            }
            sealed.resize(b.info.stored_len as usize, 0);
            if stream.read_exact(&mut sealed).is_err() {
                return k;
            }
            at = b.offset + u64::from(b.info.stored_len);
            match self.open_blob(pack, b, &sealed) {
                Ok(plain) => each(k, Ok(plain)),
                Err(_) => return k,
            }
        }
        run.len()
    }

    /// Reads a run of blobs of one pack (sorted by offset) with one range read. A region whose copy of the run
    /// has a bad blob is passed over for the next; when no region has a good copy of the whole run, the blobs are
    /// taken one by one from the first copy that can be read, so every good blob is still returned.
    pub fn read_blob_run(&self, pack: &Id, run: &[PackedBlob]) -> Result<Vec<Result<Vec<u8>>>> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else { return Ok(Vec::new()) };
        let path = ObjectKind::Pack.path_of(pack);
        let base = first.offset;
        let end = run.iter().map(|b| b.offset + b.info.stored_len as u64).max().unwrap_or(last.offset);
        let open_all = |bytes: &Bytes| -> Vec<Result<Vec<u8>>> {
            run.iter()
                .map(|b| {
                    let at = (b.offset - base) as usize;
                    self.open_blob(pack, b, &bytes[at..at + b.info.stored_len as usize])
                })
                .collect()
        };
        let whole = self.storage.read_range_with(&path, base, end - base, |bytes| {
            open_all(&bytes).into_iter().collect::<Result<Vec<Vec<u8>>>>()
        });
        match whole {
            Ok(plains) => Ok(plains.into_iter().map(Ok).collect()),
            Err(Error::Corrupt { .. }) => Ok(open_all(&self.storage.read_range(&path, base, end - base)?)),
            Err(e) => Err(e),
        }
    }

    /// Decodes a content list's plaintext, which must hold as many ids as its node says.
    pub fn parse_list(&self, list: &ContentList, plain: &[u8]) -> Result<Vec<Id>> {
        content_list::decode(plain, list.blobs)
            .map_err(|e| Error::corrupt(format!("content list {}", list.id.short()), e))
    }

    /// Decodes a tree blob's plaintext.
    pub fn parse_tree(&self, id: &Id, plain: &[u8]) -> Result<Tree> {
        Tree::from_bytes(plain).map_err(|e| Error::corrupt(format!("tree {}", id.short()), e))
    }
}

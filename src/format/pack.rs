//! Packs: many sealed blobs in one storage object, followed by a sealed header that lists them, so that one
//! blob can be fetched with a single range read and S3 request counts stay low.
//!
//! Layout (see repo-format.md): `blob_0 .. blob_n-1 | sealed header | header length (u32 LE)`.

use crate::error::DecodeError;
use crate::format::blob::{self, BlobInfo, BlobKind, Compression};
use crate::format::crypto::{MasterKey, OVERHEAD};
use crate::format::id::Id;
use crate::format::wire::Cursor;

const HEADER_MAGIC: &[u8; 4] = b"GVPH";
const HEADER_VERSION: u8 = 1;
const HEADER_AAD: &[u8] = crate::format::objects::ObjectKind::Pack.aad();
/// Bytes of one header entry: kind, compression, id, stored length, raw length.
pub const ENTRY_LEN: usize = 1 + 1 + 32 + 4 + 4;

/// A blob's place in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedBlob {
    /// The blob's id, kind, compression and lengths.
    pub info: BlobInfo,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u64,
}

/// Collects sealed blobs of one kind into a pack in memory.
pub struct PackWriter {
    kind: BlobKind,
    bytes: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

/// A finished pack: its bytes, its name and where each blob lies.
pub struct FinishedPack {
    /// The pack's name: the hash of `bytes`.
    pub id: Id,
    /// The kind of every blob in it.
    pub kind: BlobKind,
    /// The whole pack object as it is uploaded: the sealed blobs, the sealed header and its length.
    pub bytes: Vec<u8>,
    /// The blobs in it and their offsets, in pack order.
    pub blobs: Vec<PackedBlob>,
}

impl PackWriter {
    /// An empty writer for blobs of `kind`.
    pub fn new(kind: BlobKind) -> Self {
        PackWriter { kind, bytes: Vec::new(), blobs: Vec::new() }
    }

    /// A writer whose buffer is allocated once for a pack of `target` bytes, so it never doubles (a doubled
    /// 16 MiB buffer would be 32 MiB) and the header fits without a copy.
    pub fn with_target(kind: BlobKind, target: usize) -> Self {
        // The largest blob (a 16 MiB chunk at most) and a header of a few thousand entries fit in the slack.
        PackWriter { kind, bytes: Vec::with_capacity(target + (4 << 20) + (256 << 10)), blobs: Vec::new() }
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, info: BlobInfo, sealed: &[u8]) {
        self.blobs.push(PackedBlob { info, offset: self.bytes.len() as u64 });
        self.bytes.extend_from_slice(sealed);
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True if no blob has been added yet.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Appends the sealed header and its length, and names the pack by the hash of its bytes.
    pub fn finish(self, key: &MasterKey) -> FinishedPack {
        let mut header = Vec::with_capacity(9 + self.blobs.len() * ENTRY_LEN);
        header.extend_from_slice(HEADER_MAGIC);
        header.push(HEADER_VERSION);
        header.extend_from_slice(&(self.blobs.len() as u32).to_le_bytes());
        for b in &self.blobs {
            encode_entry(&mut header, &b.info);
        }
        let sealed = seal_header(key, header);
        let mut bytes = self.bytes;
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        FinishedPack { id: Id::of_object(&bytes), kind: self.kind, bytes, blobs: self.blobs }
    }
}

/// Seals a pack header's plaintext (magic, version, count, entries).
pub fn seal_header(key: &MasterKey, plain: Vec<u8>) -> Vec<u8> {
    key.seal(HEADER_AAD, plain)
}

/// Writes one blob description (shared with index segments).
pub fn encode_entry(out: &mut Vec<u8>, info: &BlobInfo) {
    out.push(info.kind as u8);
    out.push(info.compression as u8);
    out.extend_from_slice(&info.id.0);
    out.extend_from_slice(&info.stored_len.to_le_bytes());
    out.extend_from_slice(&info.raw_len.to_le_bytes());
}

/// Reads one blob description (shared with index segments).
pub fn decode_entry(c: &mut Cursor<'_>) -> Result<BlobInfo, DecodeError> {
    let kind = c.u8()?;
    let kind = BlobKind::from_u8(kind).ok_or_else(|| DecodeError::Invalid(format!("unknown blob kind {kind}")))?;
    let comp = c.u8()?;
    let compression =
        Compression::from_u8(comp).ok_or_else(|| DecodeError::Invalid(format!("unknown compression {comp}")))?;
    let id = c.id()?;
    let stored_len = c.u32()?;
    let raw_len = c.u32()?;
    if (stored_len as usize) < OVERHEAD {
        return Err(DecodeError::Invalid(format!("blob {} has impossible stored length {stored_len}", id.short())));
    }
    Ok(BlobInfo { id, kind, compression, stored_len, raw_len })
}

/// Length of the sealed header, read from the last 4 bytes of a pack.
pub fn header_len_from_trailer(trailer: &[u8], pack_size: u64) -> Result<u64, DecodeError> {
    let t: [u8; 4] = trailer.try_into().map_err(|_| DecodeError::from("pack trailer is not 4 bytes"))?;
    let len = u32::from_le_bytes(t) as u64;
    if len < OVERHEAD as u64 || len + 4 > pack_size {
        return Err(DecodeError::Invalid(format!("pack header length {len} does not fit a pack of {pack_size} bytes")));
    }
    Ok(len)
}

/// Decrypts and parses a pack header; checks that the blobs exactly tile the data before the header.
pub fn decode_header(key: &MasterKey, sealed: &[u8], data_len: u64) -> Result<Vec<PackedBlob>, DecodeError> {
    let plain = key.open(HEADER_AAD, sealed).ok_or(DecodeError::Authentication("pack header authentication failed"))?;
    let mut c = Cursor::new(&plain);
    if c.take(4)? != HEADER_MAGIC {
        return Err("pack header has a bad magic".into());
    }
    let version = c.u8()?;
    if version != HEADER_VERSION {
        return Err(DecodeError::Version {
            what: "pack header",
            found: version.into(),
            supported: HEADER_VERSION.into(),
        });
    }
    let count = c.u32()? as usize;
    if count.saturating_mul(ENTRY_LEN) != c.remaining() {
        return Err(DecodeError::Invalid(format!(
            "pack header claims {count} entries but holds {} bytes",
            c.remaining()
        )));
    }
    let mut blobs = Vec::with_capacity(count);
    let mut offset = 0u64;
    for _ in 0..count {
        let info = decode_entry(&mut c)?;
        blobs.push(PackedBlob { info, offset });
        offset += info.stored_len as u64;
    }
    if offset != data_len {
        return Err(DecodeError::Invalid(format!(
            "pack header covers {offset} bytes, the pack holds {data_len} bytes of blobs"
        )));
    }
    Ok(blobs)
}

/// Parses a whole pack held in memory (used by check and index repair).
pub fn parse_pack(key: &MasterKey, bytes: &[u8]) -> Result<Vec<PackedBlob>, DecodeError> {
    let size = bytes.len() as u64;
    if size < 4 {
        return Err("pack is shorter than its trailer".into());
    }
    let header_len = header_len_from_trailer(&bytes[bytes.len() - 4..], size)?;
    let header_start = (size - 4 - header_len) as usize;
    decode_header(key, &bytes[header_start..bytes.len() - 4], header_start as u64)
}

/// Bytes of the sealed header of a pack of `n` blobs: magic, version, count and entries, sealed.
pub fn sealed_header_len(n: usize) -> usize {
    9 + n * ENTRY_LEN + OVERHEAD
}

/// Looks for the header of a pack whose trailer is not where it should be (bytes were appended, or the pack was
/// cut and garbage follows): a candidate end of the pack is a place whose preceding four bytes are a plausible
/// header length and whose header then opens and tiles the bytes before it. `expected_end` (what an index segment
/// implies) is tried first, then the object's end, then every earlier place, from the end back. Candidates that
/// fail cost a decryption each, so the search stops once it has tried twice the pack's size in headers.
pub fn find_header(key: &MasterKey, bytes: &[u8], expected_end: Option<u64>) -> Option<(u64, Vec<PackedBlob>)> {
    let budget = 2 * bytes.len() + (1 << 20);
    let mut spent = 0usize;
    let expected = expected_end.and_then(|e| usize::try_from(e).ok());
    for end in expected.into_iter().chain((0..=bytes.len()).rev()) {
        if spent > budget {
            break;
        }
        let Some(len) = plausible_header_len(bytes, end) else { continue };
        spent += len;
        let start = end - 4 - len;
        if let Ok(blobs) = decode_header(key, &bytes[start..end - 4], start as u64) {
            return Some((end as u64, blobs));
        }
    }
    None
}

/// The header length stored in the four bytes before `end`, if it could be one: the size of a sealed header of at
/// least one entry that fits before `end`.
fn plausible_header_len(bytes: &[u8], end: usize) -> Option<usize> {
    let trailer: [u8; 4] = bytes.get(end.checked_sub(4)?..end)?.try_into().ok()?;
    let len = u32::from_le_bytes(trailer) as usize;
    let fixed = sealed_header_len(0);
    (len >= sealed_header_len(1) && (len - fixed).is_multiple_of(ENTRY_LEN) && len + 4 <= end).then_some(len)
}

/// Splits `candidates` (blobs as a header or an index segment places them in the pack `bytes`) into those whose
/// sealed bytes are there and open, decompress and hash to their id, and the rest. Each blob is checked on its
/// own: a blob authenticates with its id, kind and compression as associated data, whatever else is wrong with
/// its pack.
pub fn authentic_blobs(key: &MasterKey, bytes: &[u8], candidates: &[PackedBlob]) -> (Vec<PackedBlob>, Vec<PackedBlob>) {
    candidates.iter().copied().partition(|b| {
        let start = usize::try_from(b.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(b.info.stored_len as usize);
        bytes.get(start..end).is_some_and(|sealed| blob::decode(key, &b.info, sealed).is_ok())
    })
}

/// What could be read back from a damaged pack (by `Repository::salvage_pack`): its blobs that authenticate,
/// and those placed in it that do not.
#[derive(Clone, Debug)]
pub struct SalvagedPack {
    /// Bytes of the stored object (with whatever follows the pack's real end).
    pub size: u64,
    /// Blobs whose bytes authenticate, in pack order.
    pub blobs: Vec<PackedBlob>,
    /// Blobs the header or the index placed in the pack that authenticate in no region's copy.
    pub lost: Vec<PackedBlob>,
    /// Whether the pack's own header was found (else its blobs are known only from index segments).
    pub header_found: bool,
    /// What is wrong with the pack, in a few words.
    pub problem: String,
}

/// Where the pack ends if `described` is every blob in it: after the last blob, its sealed header and trailer.
pub fn expected_end(described: &[PackedBlob]) -> Option<u64> {
    let data = described.iter().map(|b| b.offset + b.info.stored_len as u64).max()?;
    Some(data + sealed_header_len(described.len()) as u64 + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let key = MasterKey::generate();
        let mut w = PackWriter::new(BlobKind::Data);
        let mut plain = Vec::new();
        for i in 0..10u8 {
            let data = vec![i; 1000 + i as usize];
            let (info, sealed) = blob::encode(&key, BlobKind::Data, key.blob_id(&data), &data, None);
            w.add(info, &sealed);
            plain.push(data);
        }
        let pack = w.finish(&key);
        assert_eq!(pack.id, Id::of_object(&pack.bytes));
        let parsed = parse_pack(&key, &pack.bytes).unwrap();
        assert_eq!(parsed, pack.blobs);
        for (b, data) in parsed.iter().zip(&plain) {
            let s = &pack.bytes[b.offset as usize..(b.offset + b.info.stored_len as u64) as usize];
            assert_eq!(&blob::decode(&key, &b.info, s).unwrap(), data);
        }
    }

    #[test]
    fn damaged_packs_fail_cleanly() {
        let key = MasterKey::generate();
        let mut w = PackWriter::new(BlobKind::Data);
        let (info, sealed) = blob::encode(&key, BlobKind::Data, key.blob_id(b"x"), b"x", None);
        w.add(info, &sealed);
        let pack = w.finish(&key);
        for cut in [0, 3, 10, pack.bytes.len() - 1] {
            assert!(parse_pack(&key, &pack.bytes[..cut]).is_err());
        }
        let mut bad = pack.bytes.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert!(parse_pack(&key, &bad).is_err());
        assert!(parse_pack(&MasterKey::generate(), &pack.bytes).is_err());
    }

    fn pack_of(key: &MasterKey, n: u8) -> FinishedPack {
        let mut w = PackWriter::new(BlobKind::Data);
        for i in 0..n {
            let data = vec![i; 500 + i as usize];
            let (info, sealed) = blob::encode(key, BlobKind::Data, key.blob_id(&data), &data, None);
            w.add(info, &sealed);
        }
        w.finish(key)
    }

    #[test]
    fn a_header_is_found_before_trailing_bytes() {
        let key = MasterKey::generate();
        let pack = pack_of(&key, 5);
        let end = pack.bytes.len() as u64;
        assert_eq!(find_header(&key, &pack.bytes, None), Some((end, pack.blobs.clone())));
        let mut longer = pack.bytes.clone();
        longer.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert!(parse_pack(&key, &longer).is_err());
        assert_eq!(find_header(&key, &longer, None), Some((end, pack.blobs.clone())));
        longer.extend(std::iter::repeat_n(0x41, 10_000));
        assert_eq!(find_header(&key, &longer, None), Some((end, pack.blobs.clone())));
        // A damaged header is not found anywhere, and trying costs a bounded amount.
        let mut bad = pack.bytes.clone();
        let at = bad.len() - 20;
        bad[at] ^= 1;
        assert_eq!(find_header(&key, &bad, Some(end)), None);
    }

    #[test]
    fn blobs_authenticate_one_by_one() {
        let key = MasterKey::generate();
        let pack = pack_of(&key, 4);
        let mut bytes = pack.bytes.clone();
        let second = pack.blobs[1];
        bytes[second.offset as usize + 30] ^= 0x10;
        let mut candidates = pack.blobs.clone();
        // An entry pointing past the end, and one at a wrong offset, are no blobs either.
        let mut beyond = pack.blobs[0];
        beyond.offset = bytes.len() as u64 - 10;
        let mut shifted = pack.blobs[2];
        shifted.offset += 1;
        candidates.extend([beyond, shifted]);
        let (good, bad) = authentic_blobs(&key, &bytes, &candidates);
        assert_eq!(good, vec![pack.blobs[0], pack.blobs[2], pack.blobs[3]]);
        assert_eq!(bad, vec![second, beyond, shifted]);
    }
}

//! Packs: many sealed blobs in one storage object, followed by a sealed header that lists them, so that one
//! blob can be fetched with a single range read and S3 request counts stay low.
//!
//! Layout (see repo-format.md): `blob_0 .. blob_n-1 | sealed header | header length (u32 LE)`.

use crate::error::DecodeError;
use crate::format::blob::{BlobInfo, BlobKind, Compression};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob;

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
}

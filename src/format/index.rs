//! Index segments: sealed objects that map every blob to its pack, offset and length, so a reader finds a blob
//! without opening pack headers. Each backup writes new segments; they are never modified.

use crate::error::DecodeError;
use crate::format::blob::BlobKind;
use crate::format::crypto::MasterKey;
use crate::format::id::Id;
use crate::format::pack::{PackedBlob, decode_entry, encode_entry};
use crate::format::wire::Cursor;

const MAGIC: &[u8; 4] = b"GVIX";
const VERSION: u8 = 1;
const AAD: &[u8] = crate::format::objects::ObjectKind::Index.aad();

/// What an index segment says about one pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The pack's id: the hash of its bytes, which names it in storage.
    pub id: Id,
    /// The kind of every blob in the pack (a pack holds one kind only).
    pub kind: BlobKind,
    /// Size of the whole pack object in bytes.
    pub size: u64,
    /// The blobs in the pack and where each lies.
    pub blobs: Vec<PackedBlob>,
}

/// Serializes and seals a segment.
pub fn encode(key: &MasterKey, packs: &[PackEntry]) -> Vec<u8> {
    let blobs: usize = packs.iter().map(|p| p.blobs.len()).sum();
    let mut out = Vec::with_capacity(9 + packs.len() * 49 + blobs * (crate::format::pack::ENTRY_LEN + 8));
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        encode_pack(&mut out, p);
    }
    seal_plain(key, out)
}

/// Appends one pack's entry in the segment's layout (also the layout of prune's and check's local spool).
pub fn encode_pack(out: &mut Vec<u8>, p: &PackEntry) {
    out.extend_from_slice(&p.id.0);
    out.push(p.kind as u8);
    out.extend_from_slice(&p.size.to_le_bytes());
    out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
    for b in &p.blobs {
        out.extend_from_slice(&b.offset.to_le_bytes());
        encode_entry(out, &b.info);
    }
}

/// Seals an index segment's plaintext.
pub fn seal_plain(key: &MasterKey, body: Vec<u8>) -> Vec<u8> {
    key.seal(AAD, body)
}

/// Opens and parses a segment; every blob must lie inside its pack.
pub fn decode(key: &MasterKey, sealed: &[u8]) -> Result<Vec<PackEntry>, DecodeError> {
    let plain = key.open(AAD, sealed).ok_or(DecodeError::Authentication("index authentication failed"))?;
    let mut c = Cursor::new(&plain);
    if c.take(4)? != MAGIC {
        return Err("bad index magic".into());
    }
    let version = c.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version { what: "index", found: version.into(), supported: VERSION.into() });
    }
    let count = c.u32()? as usize;
    let mut packs = Vec::with_capacity(count.min(c.remaining() / 45));
    for _ in 0..count {
        packs.push(decode_pack(&mut c)?);
    }
    c.finish()?;
    Ok(packs)
}

/// Parses a buffer that holds exactly one pack's entry.
pub fn decode_one_pack(bytes: &[u8]) -> Result<PackEntry, DecodeError> {
    let mut c = Cursor::new(bytes);
    let p = decode_pack(&mut c)?;
    c.finish()?;
    Ok(p)
}

/// Parses one pack's entry written by [`encode_pack`]; every blob must lie inside its pack.
pub fn decode_pack(c: &mut Cursor<'_>) -> Result<PackEntry, DecodeError> {
    let id = c.id()?;
    let kind = c.u8()?;
    let kind = BlobKind::from_u8(kind).ok_or_else(|| DecodeError::Invalid(format!("unknown pack kind {kind}")))?;
    let size = c.u64()?;
    let n = c.u32()? as usize;
    let mut blobs = Vec::with_capacity(n.min(c.remaining() / (crate::format::pack::ENTRY_LEN + 8)));
    for _ in 0..n {
        let offset = c.u64()?;
        let info = decode_entry(c)?;
        let end = offset.checked_add(info.stored_len as u64);
        if end.is_none_or(|e| e > size) {
            return Err(DecodeError::Invalid(format!(
                "blob {} lies outside pack {} ({} bytes)",
                info.id.short(),
                id.short(),
                size
            )));
        }
        blobs.push(PackedBlob { info, offset });
    }
    Ok(PackEntry { id, kind, size, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::{BlobInfo, Compression};
    use proptest::prelude::*;

    fn arb_pack() -> impl Strategy<Value = PackEntry> {
        (
            any::<[u8; 32]>(),
            prop::collection::vec((any::<[u8; 32]>(), 40u32..100_000, any::<u32>(), any::<bool>()), 0..20),
        )
            .prop_map(|(id, blobs)| {
                let mut offset = 0;
                let blobs: Vec<PackedBlob> = blobs
                    .into_iter()
                    .map(|(bid, stored, raw, z)| {
                        let info = BlobInfo {
                            id: Id(bid),
                            kind: BlobKind::Data,
                            compression: if z { Compression::Zstd } else { Compression::None },
                            stored_len: stored,
                            raw_len: raw,
                        };
                        let b = PackedBlob { info, offset };
                        offset += stored as u64;
                        b
                    })
                    .collect();
                PackEntry { id: Id(id), kind: BlobKind::Data, size: offset + 100, blobs }
            })
    }

    proptest! {
        #[test]
        fn round_trip(packs in prop::collection::vec(arb_pack(), 0..5)) {
            let key = MasterKey::from_bytes([1; 32]);
            let sealed = encode(&key, &packs);
            prop_assert_eq!(decode(&key, &sealed).unwrap(), packs);
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let key = MasterKey::from_bytes([1; 32]);
            let _ = decode(&key, &data);
        }
    }

    #[test]
    fn truncated_segment_is_rejected() {
        let key = MasterKey::from_bytes([2; 32]);
        let sealed = encode(&key, &[]);
        assert!(decode(&key, &sealed[..sealed.len() - 1]).is_err());
    }
}

//! One blob: a chunk of file data or a serialized tree, compressed with zstd when that helps, then sealed with
//! XChaCha20-Poly1305. Associated data binds the ciphertext to the blob's id, kind and compression, so a blob
//! cannot be swapped for another or relabelled unnoticed.

use crate::error::DecodeError;
use crate::format::crypto::MasterKey;
use crate::format::id::Id;

/// What a blob holds. Stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A serialized directory tree.
    Tree = 1,
}

impl BlobKind {
    /// Decodes the stored byte.
    pub fn from_u8(b: u8) -> Option<BlobKind> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// How a blob's plaintext was transformed before sealing. Stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is (compression did not pay off).
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

impl Compression {
    /// Decodes the stored byte.
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Describes one stored blob: what pack headers and index segments record about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's id: the keyed hash of its plaintext.
    pub id: Id,
    /// Whether it holds file data or a tree.
    pub kind: BlobKind,
    /// How the plaintext was compressed before sealing.
    pub compression: Compression,
    /// Bytes of the sealed form in the pack.
    pub stored_len: u32,
    /// Bytes of the plaintext.
    pub raw_len: u32,
}

/// The associated data of a sealed blob.
fn blob_aad(kind: BlobKind, compression: Compression, id: &Id) -> [u8; 50] {
    let mut aad = [0u8; 50];
    aad[..16].copy_from_slice(b"gumvault blob v1");
    aad[16] = kind as u8;
    aad[17] = compression as u8;
    aad[18..].copy_from_slice(&id.0);
    aad
}

/// Compresses (when it saves at least 1/32 of the size) and seals one blob.
/// `compressor` is reused across calls; `None` disables compression.
pub fn encode(
    key: &MasterKey,
    kind: BlobKind,
    id: Id,
    plaintext: &[u8],
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
) -> (BlobInfo, Vec<u8>) {
    let compressed = compressor.and_then(|c| c.compress(plaintext).ok());
    let (compression, body) = match compressed {
        Some(c) if c.len() + plaintext.len() / 32 < plaintext.len() => (Compression::Zstd, c),
        _ => (Compression::None, plaintext.to_vec()),
    };
    let sealed = key.seal(&blob_aad(kind, compression, &id), body);
    let info = BlobInfo {
        id,
        kind,
        compression,
        stored_len: u32::try_from(sealed.len()).expect("blobs are at most a few MiB"),
        raw_len: u32::try_from(plaintext.len()).expect("blobs are at most a few MiB"),
    };
    (info, sealed)
}

/// Opens, decompresses and verifies one blob: the plaintext must hash to the blob's id.
pub fn decode(key: &MasterKey, info: &BlobInfo, sealed: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let body = key
        .open(&blob_aad(info.kind, info.compression, &info.id), sealed)
        .ok_or(DecodeError::Authentication("authentication failed (data damaged or not this blob)"))?;
    let plain = match info.compression {
        Compression::None => body,
        Compression::Zstd => zstd::bulk::decompress(&body, info.raw_len as usize)
            .map_err(|e| DecodeError::Invalid(format!("zstd decompression failed: {e}")))?,
    };
    if plain.len() != info.raw_len as usize {
        return Err(DecodeError::Invalid(format!("length {} differs from the recorded {}", plain.len(), info.raw_len)));
    }
    if key.blob_id(&plain) != info.id {
        return Err("content does not match the blob id".into());
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_compressed_and_raw() {
        let key = MasterKey::generate();
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let text = b"hello hello hello hello hello hello hello hello".repeat(20);
        let id = key.blob_id(&text);
        let (info, sealed) = encode(&key, BlobKind::Data, id, &text, Some(&mut c));
        assert_eq!(info.compression, Compression::Zstd);
        assert!(sealed.len() < text.len());
        assert_eq!(decode(&key, &info, &sealed).unwrap(), text);

        let noise: Vec<u8> = crate::format::crypto::random_bytes::<4096>().to_vec();
        let nid = key.blob_id(&noise);
        let (ninfo, nsealed) = encode(&key, BlobKind::Data, nid, &noise, Some(&mut c));
        assert_eq!(ninfo.compression, Compression::None);
        assert_eq!(decode(&key, &ninfo, &nsealed).unwrap(), noise);
    }

    #[test]
    fn relabelled_or_damaged_blobs_are_rejected() {
        let key = MasterKey::generate();
        let data = b"some data".to_vec();
        let id = key.blob_id(&data);
        let (info, sealed) = encode(&key, BlobKind::Data, id, &data, None);
        let as_tree = BlobInfo { kind: BlobKind::Tree, ..info };
        assert!(decode(&key, &as_tree, &sealed).is_err());
        let other_id = BlobInfo { id: key.blob_id(b"other"), ..info };
        assert!(decode(&key, &other_id, &sealed).is_err());
        let mut bad = sealed.clone();
        bad[26] ^= 0x40;
        assert!(decode(&key, &info, &bad).is_err());
    }
}

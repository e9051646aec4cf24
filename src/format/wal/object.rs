//! One archived WAL file as an object (repo-format.md §16): its name is the deterministic authenticated
//! encryption of `system id ‖ file name` (so a listing of `wal/` yields every archived file without reading one,
//! and nothing without the key), its content the sealed, compressed file bound to that name.

use crate::error::DecodeError;
use crate::format::crypto::{MasterKey, NAME_TAG_LEN};
use crate::format::objects::ObjectKind;

use super::{MAX_NAME_LEN, WalFile};

/// Bytes of a name's plaintext: the system identifier (8, big-endian) and the file name padded with zero bytes
/// to [`MAX_NAME_LEN`], so every object name has the same length and the kind of file does not show.
pub const NAME_PLAIN_LEN: usize = 8 + MAX_NAME_LEN;

/// Hex characters of an object name.
pub const OBJECT_NAME_LEN: usize = 2 * (NAME_TAG_LEN + NAME_PLAIN_LEN);

/// Bytes of the content header inside the seal: magic, version, compression, raw length, BLAKE3 of the file.
const HEADER_LEN: usize = 4 + 1 + 1 + 8 + 32;
const MAGIC: &[u8; 4] = b"GVWL";
const VERSION: u8 = 1;

/// The plaintext of an object name.
pub fn name_plain(system_id: u64, file: &WalFile) -> [u8; NAME_PLAIN_LEN] {
    let mut out = [0u8; NAME_PLAIN_LEN];
    out[..8].copy_from_slice(&system_id.to_be_bytes());
    let name = file.name.as_bytes();
    debug_assert!(name.len() <= MAX_NAME_LEN, "parsed WAL names are at most 40 bytes");
    out[8..8 + name.len().min(MAX_NAME_LEN)].copy_from_slice(&name[..name.len().min(MAX_NAME_LEN)]);
    out
}

/// The object name (hex) of an archived file.
pub fn object_name(key: &MasterKey, system_id: u64, file: &WalFile) -> String {
    hex::encode(key.seal_name(&name_plain(system_id, file)))
}

/// The system identifier and file of an object name; `None` when the name does not open with this key or does
/// not hold a WAL file name.
pub fn decode_object_name(key: &MasterKey, name: &str) -> Option<(u64, WalFile)> {
    if name.len() != OBJECT_NAME_LEN {
        return None;
    }
    let plain = key.open_name(&hex::decode(name).ok()?)?;
    let system_id = u64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
    let padded = plain.get(8..)?;
    let len = padded.iter().position(|b| *b == 0).unwrap_or(padded.len());
    if padded[len..].iter().any(|b| *b != 0) {
        return None;
    }
    let file = WalFile::parse(std::str::from_utf8(&padded[..len]).ok()?)?;
    Some((system_id, file))
}

/// The associated data of an archived file's content: the kind's and the name's plaintext, so a copy can be
/// neither renamed nor passed off as another file.
fn content_aad(system_id: u64, file: &WalFile) -> Vec<u8> {
    let mut aad = ObjectKind::Wal.aad().to_vec();
    aad.extend_from_slice(&name_plain(system_id, file));
    aad
}

/// An archived file's content, opened (authenticated) but not yet decompressed.
pub struct OpenedContent {
    /// BLAKE3 of the file as PostgreSQL wrote it.
    pub hash: [u8; 32],
    /// Its length.
    pub raw_len: u64,
    compressed: bool,
    body: Vec<u8>,
}

impl OpenedContent {
    /// The file itself, checked against its recorded length and hash.
    pub fn into_file(self) -> Result<Vec<u8>, DecodeError> {
        let plain = if self.compressed {
            let cap =
                usize::try_from(self.raw_len).map_err(|_| DecodeError::from("the recorded length is too large"))?;
            zstd::bulk::decompress(&self.body, cap)
                .map_err(|e| DecodeError::Invalid(format!("zstd decompression failed: {e}")))?
        } else {
            self.body
        };
        if plain.len() as u64 != self.raw_len {
            return Err(DecodeError::Invalid(format!(
                "length {} differs from the recorded {}",
                plain.len(),
                self.raw_len
            )));
        }
        if *blake3::hash(&plain).as_bytes() != self.hash {
            return Err("content does not match its recorded hash".into());
        }
        Ok(plain)
    }
}

/// Compresses (zstd at `level`, when that makes it smaller; 0 never) and seals a file for the archive.
pub fn seal_content(key: &MasterKey, system_id: u64, file: &WalFile, content: &[u8], level: i32) -> Vec<u8> {
    let compressed = (level != 0).then(|| zstd::bulk::compress(content, level).ok()).flatten();
    let (flag, body) = match compressed {
        Some(c) if c.len() < content.len() => (1u8, c),
        _ => (0u8, content.to_vec()),
    };
    let mut plain = Vec::with_capacity(HEADER_LEN + body.len());
    plain.extend_from_slice(MAGIC);
    plain.push(VERSION);
    plain.push(flag);
    plain.extend_from_slice(&(content.len() as u64).to_le_bytes());
    plain.extend_from_slice(blake3::hash(content).as_bytes());
    plain.extend_from_slice(&body);
    key.seal(&content_aad(system_id, file), plain)
}

/// Opens an archived file's sealed content: authenticated against its name, header read.
pub fn open_content(
    key: &MasterKey,
    system_id: u64,
    file: &WalFile,
    sealed: &[u8],
) -> Result<OpenedContent, DecodeError> {
    let plain = key
        .open(&content_aad(system_id, file), sealed)
        .ok_or(DecodeError::Authentication("authentication failed (damaged, renamed, or not this repository's)"))?;
    if plain.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { wanted: HEADER_LEN, at: 0, have: plain.len() });
    }
    if &plain[..4] != MAGIC {
        return Err("not an archived WAL file (bad magic)".into());
    }
    if plain[4] != VERSION {
        return Err(DecodeError::Version {
            what: "archived WAL file",
            found: plain[4].into(),
            supported: VERSION.into(),
        });
    }
    let compressed = match plain[5] {
        0 => false,
        1 => true,
        other => return Err(DecodeError::Invalid(format!("unknown compression {other}"))),
    };
    let raw_len = u64::from_le_bytes(plain[6..14].try_into().expect("8 bytes"));
    let hash: [u8; 32] = plain[14..46].try_into().expect("32 bytes");
    Ok(OpenedContent { hash, raw_len, compressed, body: plain[HEADER_LEN..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_hide_their_kind_and_need_the_key() {
        let key = MasterKey::generate();
        let names = ["000000010000000000000002", "00000002.history", "000000010000000000000002.00000028.backup"];
        let mut sealed = Vec::new();
        for n in names {
            let file = WalFile::parse(n).unwrap();
            let name = object_name(&key, 7_000_000_000_000_000_001, &file);
            assert_eq!(name.len(), OBJECT_NAME_LEN, "every name has the same length");
            assert_eq!(decode_object_name(&key, &name), Some((7_000_000_000_000_000_001, file.clone())));
            assert_eq!(object_name(&key, 7_000_000_000_000_000_001, &file), name);
            assert_ne!(object_name(&key, 7_000_000_000_000_000_002, &file), name, "the system id is in the name");
            assert_eq!(decode_object_name(&MasterKey::generate(), &name), None);
            sealed.push(name);
        }
        assert_eq!(decode_object_name(&key, "abc"), None);
        assert_eq!(decode_object_name(&key, &"0".repeat(OBJECT_NAME_LEN)), None);
    }

    #[test]
    fn content_round_trips_and_is_bound_to_its_name() {
        let key = MasterKey::generate();
        let seg = WalFile::parse("000000010000000000000002").unwrap();
        let other = WalFile::parse("000000010000000000000003").unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for level in [0, 3] {
            let sealed = seal_content(&key, 9, &seg, &data, level);
            assert_eq!(level == 0, sealed.len() > data.len(), "compressed unless level 0");
            let opened = open_content(&key, 9, &seg, &sealed).unwrap();
            assert_eq!(opened.hash, *blake3::hash(&data).as_bytes());
            assert_eq!(opened.into_file().unwrap(), data);
            assert!(matches!(open_content(&key, 9, &other, &sealed), Err(DecodeError::Authentication(_))));
            assert!(matches!(open_content(&key, 8, &seg, &sealed), Err(DecodeError::Authentication(_))));
            let mut bad = sealed.clone();
            bad[100] ^= 1;
            assert!(open_content(&key, 9, &seg, &bad).is_err());
        }
    }
}

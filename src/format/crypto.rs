//! Keys and authenticated encryption.
//!
//! A repository has one random 32-byte master key. Subkeys are derived from it with BLAKE3's key derivation:
//! one for XChaCha20-Poly1305, one for blob ids (keyed BLAKE3), one for the chunker's gear table, two for sealing
//! object names deterministically (the WAL archive's). The master key is stored in key files, each sealed under a
//! key derived from one password with Argon2id.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::format::id::Id;

/// Bytes of the random nonce that starts every sealed message.
pub const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag that ends every sealed message.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message has beyond its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const CONTEXT_ENCRYPTION: &str = "gumvault 2026-11 encryption key v1";
const CONTEXT_BLOB_ID: &str = "gumvault 2026-11 blob id key v1";
const CONTEXT_CHUNKER: &str = "gumvault 2026-11 chunker gear key v1";
const CONTEXT_NAME_MAC: &str = "gumvault 2026-12 wal name mac key v1";
const CONTEXT_NAME_STREAM: &str = "gumvault 2026-12 wal name stream key v1";

/// Bytes of the tag that starts a sealed name (see [`MasterKey::seal_name`]).
pub const NAME_TAG_LEN: usize = 16;

/// The repository's master key and the subkeys derived from it.
#[derive(Clone)]
pub struct MasterKey {
    master: [u8; 32],
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
    chunker_key: [u8; 32],
    name_mac_key: [u8; 32],
    name_stream_key: [u8; 32],
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> MasterKey {
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        MasterKey::from_bytes(master)
    }

    /// Rebuilds the key and its subkeys from the 32 master bytes.
    pub fn from_bytes(master: [u8; 32]) -> MasterKey {
        let enc = blake3::derive_key(CONTEXT_ENCRYPTION, &master);
        MasterKey {
            master,
            cipher: XChaCha20Poly1305::new(&enc.into()),
            id_key: blake3::derive_key(CONTEXT_BLOB_ID, &master),
            chunker_key: blake3::derive_key(CONTEXT_CHUNKER, &master),
            name_mac_key: blake3::derive_key(CONTEXT_NAME_MAC, &master),
            name_stream_key: blake3::derive_key(CONTEXT_NAME_STREAM, &master),
        }
    }

    /// The 32 master bytes (only ever written sealed into key files).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.master
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext, so ids do not reveal known content.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The chunker's secret gear table: 256 words from BLAKE3's extendable output keyed by the chunker key.
    pub fn gear_table(&self) -> [u64; 256] {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&self.chunker_key).finalize_xof().fill(&mut bytes);
        let mut gear = [0u64; 256];
        for (word, chunk) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        gear
    }

    /// Seals a name deterministically (the SIV construction): `tag || ciphertext`, where `tag` is the first 16
    /// bytes of keyed BLAKE3 (name MAC key) of the plaintext and the ciphertext is the plaintext XORed with the
    /// keyed BLAKE3 extendable output (name stream key) of the tag. Equal plaintexts give equal names, so an
    /// object can be found by its name; nothing else about the plaintext shows without the key.
    pub fn seal_name(&self, plain: &[u8]) -> Vec<u8> {
        let full = blake3::keyed_hash(&self.name_mac_key, plain);
        let tag = &full.as_bytes()[..NAME_TAG_LEN];
        let mut out = Vec::with_capacity(NAME_TAG_LEN + plain.len());
        out.extend_from_slice(tag);
        out.extend_from_slice(plain);
        self.name_keystream(tag, &mut out[NAME_TAG_LEN..]);
        out
    }

    /// Opens a name sealed by [`MasterKey::seal_name`]; `None` when its tag does not verify (another key, or
    /// damaged).
    pub fn open_name(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NAME_TAG_LEN {
            return None;
        }
        let (tag, ct) = sealed.split_at(NAME_TAG_LEN);
        let mut plain = ct.to_vec();
        self.name_keystream(tag, &mut plain);
        let full = blake3::keyed_hash(&self.name_mac_key, &plain);
        // Constant time: a forger learns nothing from how long the comparison took.
        let diff = full.as_bytes()[..NAME_TAG_LEN].iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(plain)
    }

    /// XORs `buf` with the name keystream seeded by `tag`.
    fn name_keystream(&self, tag: &[u8], buf: &mut [u8]) {
        let mut stream = vec![0u8; buf.len()];
        blake3::Hasher::new_keyed(&self.name_stream_key).update(tag).finalize_xof().fill(&mut stream);
        for (b, k) in buf.iter_mut().zip(stream) {
            *b ^= k;
        }
    }

    /// Encrypts `plaintext` (consumed, encrypted in place) to `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: Vec<u8>) -> Vec<u8> {
        seal_with(&self.cipher, aad, plaintext)
    }

    /// Decrypts `nonce || ciphertext || tag`; `None` when the tag does not verify.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.cipher, aad, sealed)
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: Vec<u8>) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    let mut body = plaintext;
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), aad, body.as_mut_slice().into())
        .expect("XChaCha20-Poly1305 encrypts any length a Vec can hold");
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let tag = chacha20poly1305::Tag::try_from(tag).ok()?;
    let mut body = ct.to_vec();
    cipher.decrypt_inout_detached(&nonce, aad, body.as_mut_slice().into(), &tag).ok()?;
    Some(body)
}

/// Argon2id cost parameters; stored in each key file so they can be raised later without breaking old keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// Sized for a server: 64 MiB, 3 passes (~0.2 s on one core).
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// Derives the 32-byte key-wrapping key from a password.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32], KdfError> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| KdfError(format!("invalid Argon2id parameters {self:?}: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon.hash_password_into(password, salt, &mut out).map_err(|e| KdfError(format!("Argon2id failed: {e}")))?;
        Ok(out)
    }
}

/// Argon2id refused its parameters or input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KdfError(pub String);

/// Seals data under a key-wrapping key (used for the master key inside key files).
pub fn seal_with_key(key: &[u8; 32], aad: &[u8], plaintext: Vec<u8>) -> Vec<u8> {
    seal_with(&XChaCha20Poly1305::new(&(*key).into()), aad, plaintext)
}

/// Opens data sealed by [`seal_with_key`].
pub fn open_with_key(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    open_with(&XChaCha20Poly1305::new(&(*key).into()), aad, sealed)
}

/// Random bytes for salts and key-file names.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"aad", b"secret data".to_vec());
        assert_eq!(sealed.len(), 11 + OVERHEAD);
        assert_eq!(key.open(b"aad", &sealed).as_deref(), Some(&b"secret data"[..]));
        assert!(key.open(b"other aad", &sealed).is_none());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(key.open(b"aad", &bad).is_none());
        assert!(key.open(b"aad", &sealed[..10]).is_none());
    }

    #[test]
    fn ids_are_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
        assert_eq!(a.blob_id(b"x"), MasterKey::from_bytes(*a.bytes()).blob_id(b"x"));
        assert_ne!(a.gear_table(), b.gear_table());
    }

    #[test]
    fn sealed_names_are_deterministic_authenticated_and_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let name = a.seal_name(b"system and file name");
        assert_eq!(name.len(), NAME_TAG_LEN + 20);
        assert_eq!(a.seal_name(b"system and file name"), name, "deterministic");
        assert_ne!(b.seal_name(b"system and file name"), name, "keyed");
        assert_ne!(a.seal_name(b"system and file namf")[..NAME_TAG_LEN], name[..NAME_TAG_LEN]);
        assert!(!name.windows(6).any(|w| w == b"system"), "the plaintext does not show");
        assert_eq!(a.open_name(&name).as_deref(), Some(&b"system and file name"[..]));
        assert_eq!(b.open_name(&name), None, "another key");
        for i in 0..name.len() {
            let mut bad = name.clone();
            bad[i] ^= 0x40;
            assert_eq!(a.open_name(&bad), None, "a flipped byte at {i}");
        }
        assert_eq!(a.open_name(&name[..10]), None);
    }

    #[test]
    fn kdf_is_deterministic() {
        let p = KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
        assert_eq!(p.derive(b"pw", b"saltsalt").unwrap(), p.derive(b"pw", b"saltsalt").unwrap());
        assert_ne!(p.derive(b"pw", b"saltsalt").unwrap(), p.derive(b"pw2", b"saltsalt").unwrap());
    }
}

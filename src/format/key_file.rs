//! Key files (`keys/<id>`): the master key sealed under a key derived from one password with Argon2id, in
//! plaintext JSON so the derivation parameters can be read before the password is known.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::crypto::{self, KdfParams, MasterKey};
use crate::format::objects::ObjectKind;
use crate::format::repo_config::REPO_VERSION;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A key file: the master key sealed under one password. Stored as plaintext JSON in `keys/<id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The repository format version the key file belongs to ([`REPO_VERSION`]).
    pub version: u32,
    /// When the key was added.
    pub created: jiff::Timestamp,
    /// The host it was added on (for `key list`; not checked).
    pub host: String,
    /// The user (`$USER`) who added it, possibly empty (for `key list`; not checked).
    pub username: String,
    /// The password key derivation; always `argon2id`.
    pub kdf: String,
    /// Argon2id's parameters: memory, iterations, parallelism.
    pub kdf_params: KdfParams,
    /// Base64 of the 16-byte salt.
    pub salt: String,
    /// Base64 of the sealed master key.
    pub master_key: String,
}

impl KeyFile {
    /// Seals `key` under `password`.
    pub fn create(key: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<KeyFile> {
        let salt: [u8; 16] = crypto::random_bytes();
        let wrap = kdf.derive(password, &salt).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let sealed = crypto::seal_with_key(&wrap, ObjectKind::Key.aad(), key.bytes().to_vec());
        Ok(KeyFile {
            version: REPO_VERSION,
            created: jiff::Timestamp::now(),
            host: crate::hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            kdf: "argon2id".into(),
            kdf_params: kdf,
            salt: B64.encode(salt),
            master_key: B64.encode(sealed),
        })
    }

    /// Parses a key file, refusing unknown versions.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<KeyFile> {
        let kf: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name, format!("bad key file: {e}")))?;
        if kf.version != REPO_VERSION {
            return Err(Error::UnsupportedVersion {
                what: format!("key {name}"),
                found: kf.version,
                supported: REPO_VERSION,
            });
        }
        if kf.kdf != "argon2id" {
            return Err(Error::corrupt(name, format!("unknown key derivation {:?}", kf.kdf)));
        }
        Ok(kf)
    }

    /// The master key, if `password` is the right one.
    pub fn unlock(&self, name: &str, password: &[u8]) -> Result<Option<MasterKey>> {
        let salt = B64.decode(&self.salt).map_err(|e| Error::corrupt(name, format!("bad salt: {e}")))?;
        let sealed = B64.decode(&self.master_key).map_err(|e| Error::corrupt(name, format!("bad key: {e}")))?;
        let wrap = self.kdf_params.derive(password, &salt).map_err(|e| Error::corrupt(name, e.to_string()))?;
        match crypto::open_with_key(&wrap, ObjectKind::Key.aad(), &sealed) {
            Some(bytes) => {
                let arr: [u8; 32] =
                    bytes.try_into().map_err(|_| Error::corrupt(name, "master key has the wrong length"))?;
                Ok(Some(MasterKey::from_bytes(arr)))
            }
            None => Ok(None),
        }
    }
}

impl KeyFile {
    /// The file as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key files serialize")
    }
}

//! 32-byte identifiers of blobs, packs, index segments and snapshots, shown as lowercase hex.

use std::fmt;

/// A 32-byte identifier. Blob ids are keyed BLAKE3 hashes of plaintext; object names (packs, index segments,
/// snapshots) are unkeyed BLAKE3 hashes of the stored bytes, so anyone can verify an object against its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Hex form, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the full 64-character hex form.
    pub fn from_hex(s: &str) -> Option<Id> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }

    /// The unkeyed BLAKE3 hash of stored bytes: the name of an immutable object.
    pub fn of_object(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// The first 8 bytes as hex: the short form shown to people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::from_hex(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid id {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::of_object(b"hello");
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id::from_hex("zz"), None);
        assert_eq!(id.short().len(), 8);
    }
}

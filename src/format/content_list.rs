//! Content lists: how a file of many blobs keeps its tree small. A file of at most [`INLINE_MAX`] blobs lists
//! their ids in its node; a larger one lists content lists instead, each a blob of kind `tree` holding up to
//! [`MAX_LIST`] ids as raw bytes. So a 100 GB dump of 12 million 8 KiB chunks costs its directory a few thousand
//! ids, not 12 million, and no command holds a file's whole list at once.
//!
//! Where a list ends depends only on the ids (content-defined, like the chunker's cuts): once it holds more than
//! [`INLINE_MAX`] ids, a list ends after an id whose first four bytes, little-endian, are 0 modulo
//! [`CUT_MODULUS`], and at the latest after [`MAX_LIST`]. A file of at most [`INLINE_MAX`] blobs therefore never
//! has a cut, and lists its ids in its node. Ids are keyed hashes, so cuts fall at random but the
//! same run of content gives the same lists, and a dump that changed in a few places stores a few new lists.

use crate::error::DecodeError;
use crate::format::id::Id;

/// A file of at most this many blobs lists them in its node; a list holds more, unless it is a file's last.
pub const INLINE_MAX: usize = 1024;
/// A list holds at most this many ids (512 KiB).
pub const MAX_LIST: usize = 16 << 10;
/// Past [`INLINE_MAX`] ids, one id in this many ends a list: lists average about 5,000 ids.
pub const CUT_MODULUS: u32 = 4096;

/// Whether a list that holds `len` ids, the last being `last`, ends here.
pub fn ends_list(len: usize, last: &Id) -> bool {
    if len >= MAX_LIST {
        return true;
    }
    let low = u32::from_le_bytes([last.0[0], last.0[1], last.0[2], last.0[3]]);
    len > INLINE_MAX && low.is_multiple_of(CUT_MODULUS)
}

/// A list's plaintext: the ids' bytes, one after the other.
pub fn encode(ids: &[Id]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

/// Parses a list's plaintext, which must hold exactly `expected` ids (the count its node gives).
pub fn decode(bytes: &[u8], expected: u32) -> Result<Vec<Id>, DecodeError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(32) {
        return Err(DecodeError::Invalid(format!(
            "a content list of {} bytes (not a whole number of ids)",
            bytes.len()
        )));
    }
    if expected as usize > MAX_LIST {
        return Err(DecodeError::Invalid(format!("a content list of {expected} ids (at most {MAX_LIST})")));
    }
    let ids: Vec<Id> = bytes.chunks_exact(32).map(|c| Id(c.try_into().expect("chunks of 32"))).collect();
    if ids.len() != expected as usize {
        return Err(DecodeError::Invalid(format!(
            "a content list holds {} ids where its file's node says {expected}",
            ids.len()
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> Id {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        b[4] = 1;
        Id(b)
    }

    #[test]
    fn lists_round_trip_and_refuse_a_wrong_count_or_size() {
        let ids: Vec<Id> = (1..=3).map(id).collect();
        let bytes = encode(&ids);
        assert_eq!(decode(&bytes, 3).unwrap(), ids);
        assert!(decode(&bytes, 2).is_err());
        assert!(decode(&bytes[..95], 3).is_err());
        assert!(decode(&[], 0).is_err());
    }

    #[test]
    fn cuts_need_the_minimum_and_stop_at_the_maximum() {
        let cut = id(CUT_MODULUS * 7);
        let plain = id(CUT_MODULUS * 7 + 1);
        assert!(!ends_list(INLINE_MAX, &cut));
        assert!(ends_list(INLINE_MAX + 1, &cut));
        assert!(!ends_list(INLINE_MAX + 1, &plain));
        assert!(ends_list(MAX_LIST, &plain));
    }
}

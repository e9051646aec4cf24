//! The repository's bytes and nothing else: identifiers, sealing, chunking, and the encodings of blobs, packs,
//! index segments, trees and snapshots. No I/O happens here, so every decoder can be fuzzed and tested alone.

pub mod blob;
pub mod chunker;
pub mod crypto;
pub mod id;
pub mod index;
pub mod pack;
pub mod snapshot;
pub mod tree;
mod wire;

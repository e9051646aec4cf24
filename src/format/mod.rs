//! The repository's bytes and nothing else: identifiers, sealing, chunking, and the encodings of blobs, packs,
//! index segments, trees, snapshots, key files, the config, the small sealed lists and the WAL archive's files. No I/O happens here, so
//! every decoder can be fuzzed and tested alone. [`objects`] says where each kind of object lives.

pub mod blob;
pub mod chunker;
pub mod content_list;
pub mod crypto;
pub mod id;
pub mod index;
pub mod key_file;
pub mod lag;
pub mod lease;
pub mod objects;
pub mod obsolete;
pub mod pack;
pub mod repo_config;
pub mod snapshot;
pub mod tree;
pub mod wal;
mod wire;

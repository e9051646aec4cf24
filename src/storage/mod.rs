//! Storage: where repository objects live. A [`Storage`] is a list of regions, each an opendal operator made from
//! a URL. Writes go to every region; reads go to the first region that answers with the object. Nothing here
//! decrypts; callers verify what they read (object names are hashes of content, blobs carry AEAD tags).
//!
//! Contract of [`Backend`]: `write` returns only once the object is durable and appears whole or not at all under
//! its name (fs: written to a temporary file, fsynced, renamed, directory fsynced); `read_range` reads exactly the
//! bytes asked for or fails; `list` returns every object under a prefix with its size; `delete` of a missing
//! object succeeds.

mod append_only;
mod as_of;
mod backend;
pub mod local;
mod location;
mod region;
mod replicated;
pub mod s3api;
pub mod s3ops;
mod tuning;
mod versions;

pub use crate::format::repo_config::RegionSpec;
pub use as_of::AsOfBackend;
pub use backend::{Backend, Bucket, Listed, ObjectVersion, WriteOptions};
pub use location::Location;
pub use region::{Region, stream_error};
pub use replicated::{Storage, WriteOnce};
pub use s3ops::{BucketLock, LockMode, Retention};
pub use tuning::StorageTuning;

//! S3 buckets as a source of a job (see [`backup`]) and as a restore target (see [`restore`]).

pub mod backup;
pub mod bucket;
pub mod restore;

pub use bucket::{DEFAULT_CONCURRENCY, open_bucket};
pub use restore::{BucketRestore, restore_to_bucket};

//! The integration tests: one crate (one link step), one module per area, shared helpers in `common`.

mod common;

mod backup_restore;
mod content_lists;
mod crash;
mod daemon;
mod damage;
mod errors;
mod files;
mod full_disk;
mod history;
mod house;
mod immutable;
mod lifecycle;
mod pg_disaster;
mod pitr;
mod regions;
mod restore_safety;
mod roundtrip;
mod s3;
mod scale;
mod secrets;
mod stack;
mod vanished_region;
mod wal;

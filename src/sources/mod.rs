//! The stack's sources: each kind (PostgreSQL dumps and base backups, S3, Redis, files, environment variables) implements the
//! [`JobSource`](crate::ops::backup::source::JobSource) trait that backup defines, and produces one top-level
//! directory of a job's snapshot; [`job`] turns a job of the config file into them. A source's own failure (a
//! program that fails, a bucket that cannot be listed) is [`Error::SourceFailed`](crate::Error::SourceFailed),
//! so the job can fail as a whole or, for an optional source, leave it out; storage errors pass through. The
//! ways back (loading a dump, writing a bucket, the test restore) live here too.

pub mod env;
pub mod files;
pub mod job;
mod ordered_dump;
pub mod pg_conn;
pub mod pg_load;
pub mod pg_record;
pub mod pg_rewrite;
mod pg_script;
mod pg_sql;
pub mod pg_target;
pub mod physical;
pub mod postgres;
mod process;
pub mod redis;
pub mod s3;
pub mod test_restore;

//! Process exit codes. They are part of the interface: scripts and monitoring rely on them, so each one is
//! documented in docs/user-guide.md and never reused for another meaning.

/// Success.
pub const OK: i32 = 0;
/// A general error (the message says what failed).
pub const ERROR: i32 = 1;
/// Invalid command line (clap's own code).
pub const USAGE: i32 = 2;
/// The backup finished and a snapshot was written, but some inputs could not be read.
pub const INCOMPLETE: i32 = 3;
/// A source (stdin stream or `--command`) failed: no snapshot was written.
pub const SOURCE_FAILED: i32 = 4;
/// A test restore ran but its verification failed (or the dump did not load).
pub const VERIFY_FAILED: i32 = 5;
/// The backup was saved, but not in every region (it met `min_regions`); `gumvault sync` heals it.
pub const DEGRADED: i32 = 6;
/// `status`: some job is in `warning` (its newest backup is getting old, or a check or test restore failed).
pub const WARNING: i32 = 8;
/// `status`: some job is `critical` (no recent backup, or its last backup run failed).
pub const CRITICAL: i32 = 9;
/// The password opens no key of the repository.
pub const WRONG_PASSWORD: i32 = 10;
/// No repository exists at the given URL.
pub const REPO_NOT_FOUND: i32 = 11;
/// Corrupt or missing repository data was detected (restore restored what it could).
pub const DATA_ERROR: i32 = 12;
/// Another maintenance run (prune, forget) holds the repository's lease.
pub const LOCKED: i32 = 13;
/// The storage is full: no space left on the disk, or a quota reached (the message says how much is free).
pub const STORAGE_FULL: i32 = 14;
/// The storage refused: permission denied on a path, or credentials that do not allow the operation.
pub const STORAGE_DENIED: i32 = 15;
/// `wal-push`: the file is already archived with different content; nothing was changed.
pub const CONFLICT: i32 = 16;
/// `wal-fetch`: the file could not be fetched for a reason other than its absence (the repository unreachable
/// after retries, a wrong password, damaged copies). Above 125, so PostgreSQL aborts recovery instead of taking
/// the failure for the end of the archive.
pub const WAL_FETCH_FAILED: i32 = 200;

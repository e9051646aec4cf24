//! gumvault: an encrypted, deduplicating, content-addressed backup repository for a web application's stack.
//!
//! The library does all the work; the `gumvault` binary is a thin command line over it. A typical flow:
//! [`storage::Storage::open_url`] → [`repo::Repository::init`] or [`repo::Repository::open`] →
//! [`catalog::Catalog::open`] → [`backup::run`] → [`restore::walk`] and [`restore::restore`].

pub mod alerts;
pub mod backup;
pub mod blob;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod diff;
pub mod error;
pub mod exit;
pub mod id;
pub mod index;
pub mod lease;
pub mod pack;
pub mod prune;
pub mod reader;
pub mod regions;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod select;
pub mod snapshot;
pub mod sources;
pub mod status;
pub mod storage;
pub mod test_restore;
pub mod tree;
mod wire;

pub use error::{Error, Result};

/// This machine's host name (recorded in snapshots and key files).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

//! gumvault: an encrypted, deduplicating, content-addressed backup repository for a web application's stack.
//!
//! The library does all the work; the `gumvault` binary is a thin command line over it. The folders are layers
//! (docs/architecture.md): [`format`](mod@format) ← [`storage`] ← [`repo`] ← [`ops`] ← [`sources`] / [`daemon`] ← [`cli`],
//! with [`config`] beside `ops`. A typical flow: [`storage::Storage::open_url`] → [`repo::Repository::init`] or
//! [`repo::Repository::open`] → [`repo::catalog::Catalog::open`] → [`ops::backup::run`] →
//! [`ops::restore::walk()`] and [`ops::restore::restore`].

#![warn(missing_docs)]

pub mod children;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod exit;
pub mod format;
pub mod ops;
pub mod repo;
pub mod runtime;
pub mod sources;
pub mod storage;
pub mod time;

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

//! How the WAL commands work ahead and retry, from the environment (PostgreSQL calls them with fixed arguments,
//! so flags would not reach them; the config file's `repository` section is the same for every command).

use std::time::Duration;

use crate::error::{Error, Result};

/// `GUMVAULT_WAL_PUSH_AHEAD` (other `.ready` files a push takes along, default 8), `GUMVAULT_WAL_FETCH_AHEAD`
/// (segments a fetch gets ahead, default 8), `GUMVAULT_WAL_CONCURRENCY` (files moved at once, default 4),
/// `GUMVAULT_WAL_FETCH_RETRIES` (attempts after the first when the archive cannot be read, default 3) and
/// `GUMVAULT_WAL_FETCH_RETRY_DELAY` (seconds before the first retry, doubling each time, default 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalTuning {
    /// Other files waiting in `archive_status` that one `wal-push` archives too.
    pub push_ahead: usize,
    /// Segments after the asked one that one `wal-fetch` fetches into the local spool.
    pub fetch_ahead: usize,
    /// Files pushed or fetched at once.
    pub concurrency: usize,
    /// Attempts after the first when a fetch fails for another reason than the file's absence.
    pub fetch_retries: u32,
    /// Wait before the first retry (doubling after each).
    pub fetch_retry_delay: Duration,
}

impl Default for WalTuning {
    fn default() -> Self {
        WalTuning {
            push_ahead: 8,
            fetch_ahead: 8,
            concurrency: 4,
            fetch_retries: 3,
            fetch_retry_delay: Duration::from_secs(2),
        }
    }
}

impl WalTuning {
    /// Reads the variables; a value that is not a whole number in range is an error, not a silent default.
    pub fn from_env() -> Result<WalTuning> {
        let get = |name: &str, min: u64, max: u64| -> Result<Option<u64>> {
            match std::env::var(name) {
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(Error::InvalidInput(format!("{name}: expected a whole number from {min} to {max}")))
                }
                Ok(v) => v.trim().parse::<u64>().ok().filter(|n| (min..=max).contains(n)).map(Some).ok_or_else(|| {
                    Error::InvalidInput(format!("{name}={v:?}: expected a whole number from {min} to {max}"))
                }),
            }
        };
        let d = WalTuning::default();
        Ok(WalTuning {
            push_ahead: get("GUMVAULT_WAL_PUSH_AHEAD", 0, 256)?.map_or(d.push_ahead, |n| n as usize),
            fetch_ahead: get("GUMVAULT_WAL_FETCH_AHEAD", 0, 256)?.map_or(d.fetch_ahead, |n| n as usize),
            concurrency: get("GUMVAULT_WAL_CONCURRENCY", 1, 64)?.map_or(d.concurrency, |n| n as usize),
            fetch_retries: get("GUMVAULT_WAL_FETCH_RETRIES", 0, 100)?.map_or(d.fetch_retries, |n| n as u32),
            fetch_retry_delay: get("GUMVAULT_WAL_FETCH_RETRY_DELAY", 0, 3600)?
                .map_or(d.fetch_retry_delay, Duration::from_secs),
        })
    }
}

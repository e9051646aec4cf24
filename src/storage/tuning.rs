//! How hard storage tries: retries, timeouts and upload concurrency, from the environment.

use crate::error::{Error, Result};

/// Retries, timeouts and upload concurrency of storage operations, from `GUMVAULT_STORAGE_RETRIES` (default 4),
/// `GUMVAULT_STORAGE_TIMEOUT` (seconds per operation, default 120), `GUMVAULT_STORAGE_IO_TIMEOUT` (seconds
/// without progress on one read or write, default 10), `GUMVAULT_STORAGE_UPLOADS` (packs uploaded at once;
/// each holds one pack in memory) and `GUMVAULT_STORAGE_READS` (range reads a restore keeps in flight, streamed,
/// each holding about one blob; never fewer than one per core). A region that keeps failing is then set aside.
#[derive(Clone, Copy, Debug)]
pub struct StorageTuning {
    /// Retries of a failed operation.
    pub retries: usize,
    /// Seconds one operation may take.
    pub timeout_secs: u64,
    /// Seconds one read or write may go without progress.
    pub io_timeout_secs: u64,
    /// None: [`crate::storage::Storage::upload_concurrency`] decides.
    pub uploads: Option<usize>,
    /// None: [`crate::storage::Storage::read_concurrency`] decides.
    pub reads: Option<usize>,
}

impl StorageTuning {
    /// Reads the variables; a value that is not a whole number in range is an error, not a silent default.
    pub fn from_env() -> Result<StorageTuning> {
        // None when unset; what is set must be a whole number in range.
        let get = |name: &str, min: u64, max: u64, unit: &str| -> Result<Option<u64>> {
            let bad = |v: &str| {
                Error::InvalidInput(format!("{name}={v:?}: expected a whole number{unit} from {min} to {max}"))
            };
            match std::env::var(name) {
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(v)) => Err(bad(&v.to_string_lossy())),
                Ok(v) => {
                    v.trim().parse::<u64>().ok().filter(|n| (min..=max).contains(n)).map(Some).ok_or_else(|| bad(&v))
                }
            }
        };
        Ok(StorageTuning {
            retries: get("GUMVAULT_STORAGE_RETRIES", 0, 100, "")?.unwrap_or(4) as usize,
            timeout_secs: get("GUMVAULT_STORAGE_TIMEOUT", 1, 86_400, " of seconds")?.unwrap_or(120),
            io_timeout_secs: get("GUMVAULT_STORAGE_IO_TIMEOUT", 1, 86_400, " of seconds")?.unwrap_or(10),
            uploads: get("GUMVAULT_STORAGE_UPLOADS", 1, 64, "")?.map(|n| n as usize),
            reads: get("GUMVAULT_STORAGE_READS", 1, 64, "")?.map(|n| n as usize),
        })
    }
}

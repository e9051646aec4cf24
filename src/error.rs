//! The library's error type. Every variant carries what failed and where, so the binary can print a message a
//! person can act on, and maps to one documented exit code (see "Exit codes" in the user guide). Variants that
//! callers branch on are typed: a decode failure ([`DecodeError`]), a storage failure with its
//! [`StorageErrorKind`], a config error with file, line and key.

use std::path::PathBuf;

/// Everything that can go wrong in gumvault's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key slot of the repository opens with the given password.
    #[error(
        "wrong password: no key of the repository at {repo} opens with it (check GUMVAULT_PASSWORD, GUMVAULT_PASSWORD_FILE or GUMVAULT_PASSWORD_COMMAND)"
    )]
    WrongPassword {
        /// The repository's URL.
        repo: String,
    },

    /// The URL points at a place that holds no repository.
    #[error("no repository at {url}: run `gumvault init -r {url}` first, or check the URL")]
    RepoNotFound {
        /// Where none was found.
        url: String,
    },

    /// `init` was asked to create a repository where one already is.
    #[error("a repository already exists at {url}; refusing to initialise over it")]
    RepoExists {
        /// Where one was found.
        url: String,
    },

    /// An object failed its integrity check: bad AEAD tag, wrong id, truncated, undecodable.
    #[error("corrupt object {object}: {source}")]
    Corrupt {
        /// The object (a path, or a blob or tree id).
        object: String,
        /// What is wrong with it.
        source: DecodeError,
    },

    /// An object that is never overwritten (a file of the WAL archive) is already stored with other content.
    #[error(
        "{object} is already stored in region {region} with different content; nothing was changed (an archive must never be overwritten: see `gumvault check` and the user guide, \"wal-push\")"
    )]
    Conflict {
        /// The object.
        object: String,
        /// The region whose copy differs.
        region: String,
    },

    /// The repository uses a format this build does not understand.
    #[error("{what} has format version {found}, this gumvault reads version {supported}; upgrade gumvault")]
    UnsupportedVersion {
        /// What carries the version.
        what: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },

    /// A storage operation failed (network, permissions, missing object...).
    #[error("{0}")]
    Storage(#[from] StorageError),

    /// A local file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create directory", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },

    /// The local catalog (SQLite) failed.
    #[error("catalog {}: {source}", path.display())]
    Catalog {
        /// The catalog's file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// The config file is not valid: which file, where, which key, and why (never the value, which may be a
    /// secret).
    #[error("invalid config file {}{}: {key}{}{reason}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default(), if key.is_empty() { "" } else { ": " })]
    Config {
        /// The file.
        file: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// The key (`jobs.app.sources[0].url`), when known.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A user-supplied value is not valid (URL, glob, snapshot id, option): a usage error.
    #[error("{0}")]
    InvalidInput(String),

    /// A snapshot selector matched nothing or more than one snapshot.
    #[error("{0}")]
    SnapshotNotFound(String),

    /// A path given to `dump`/`ls`/`restore --include` is not in the snapshot.
    #[error("{0}")]
    PathNotFound(String),

    /// A source (stdin, a command) failed, so the backup was not committed.
    #[error("{0}")]
    SourceFailed(String),

    /// Another maintenance run holds the repository's lease.
    #[error("{0}")]
    Locked(String),

    /// Restore finished what it could but some files could not be restored.
    #[error("{0}")]
    RestoreIncomplete(String),
}

/// What kind of storage failure, for the decisions callers make (fail over, retry, tell the operator what to
/// fix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The object (or bucket) does not exist.
    NotFound,
    /// The credentials or file permissions do not allow it.
    PermissionDenied,
    /// No space left (a full disk, a quota).
    Full,
    /// The service asked us to slow down.
    RateLimited,
    /// Fewer regions than `min_regions` took a write.
    TooFewRegions,
    /// A read returned fewer bytes than asked for.
    ShortRead,
    /// The location could not be opened (bad configuration).
    Config,
    /// The region is not this repository (its directory is missing, or it holds no or another repository): it
    /// is not used.
    Unavailable,
    /// The repository is open read-only (`--as-of`).
    ReadOnly,
    /// A write only for a free name found the name taken (S3 answered 412 to `If-None-Match: *`).
    Exists,
    /// Anything else (network, timeouts, the service's own errors).
    Other,
}

/// A failed storage operation: what was done, on which object, in which region, and why.
#[derive(Debug, thiserror::Error)]
#[error("storage: {op}{}{path} in region {region} failed: {message}", if path.is_empty() { "" } else { " " })]
pub struct StorageError {
    /// The operation (`read`, `write`, `list`, `stat`, `delete`, `open`).
    pub op: &'static str,
    /// The object (or prefix, or URL).
    pub path: String,
    /// The region.
    pub region: String,
    /// What kind of failure.
    pub kind: StorageErrorKind,
    /// The service's (or our) description.
    pub message: String,
}

impl StorageError {
    /// A failure described by us.
    pub fn new(
        op: &'static str,
        path: impl Into<String>,
        region: impl Into<String>,
        kind: StorageErrorKind,
        message: impl Into<String>,
    ) -> StorageError {
        StorageError { op, path: path.into(), region: region.into(), kind, message: message.into() }
    }

    /// A failure opendal reported; its kind is kept.
    pub fn from_opendal(
        op: &'static str,
        path: impl Into<String>,
        region: impl Into<String>,
        e: &opendal::Error,
    ) -> Self {
        let text = e.to_string();
        let (kind, hint) = match e.kind() {
            opendal::ErrorKind::NotFound => (StorageErrorKind::NotFound, ""),
            opendal::ErrorKind::PermissionDenied => (
                StorageErrorKind::PermissionDenied,
                " (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the source's keys, and that their policy allows this operation on the bucket and prefix)",
            ),
            opendal::ErrorKind::RateLimited => (
                StorageErrorKind::RateLimited,
                " (the service is throttling requests: lower GUMVAULT_STORAGE_UPLOADS or retry later)",
            ),
            opendal::ErrorKind::ConfigInvalid => (StorageErrorKind::Config, ""),
            _ if ["QuotaExceeded", "InsufficientStorage", "no storage space", "No space left"]
                .iter()
                .any(|q| text.contains(q)) =>
            {
                (StorageErrorKind::Full, " (the storage is full or over its quota: free space or raise the quota)")
            }
            _ => (StorageErrorKind::Other, ""),
        };
        StorageError::new(op, path, region, kind, format!("{text}{hint}"))
    }
}

/// Why repository bytes could not be decoded. Every decoder in `format/` returns one; the caller names the
/// object ([`Error::Corrupt`]), so a message always says what was damaged and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The tag did not verify: damaged, another kind of object, or another repository's key.
    #[error("{0}")]
    Authentication(&'static str),
    /// Fewer bytes than the layout needs.
    #[error("truncated: wanted {wanted} bytes at offset {at}, have {have}")]
    Truncated {
        /// Bytes the next field needs.
        wanted: usize,
        /// Where it starts.
        at: usize,
        /// Bytes there are in all.
        have: usize,
    },
    /// Bytes after the end of the layout.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A format version this build does not read.
    #[error("{what} version {found} is not supported (this gumvault reads {supported}); upgrade gumvault")]
    Version {
        /// What carries the version.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The bytes open but say something impossible (the message says what).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for DecodeError {
    fn from(s: String) -> DecodeError {
        DecodeError::Invalid(s)
    }
}

impl From<&str> for DecodeError {
    fn from(s: &str) -> DecodeError {
        DecodeError::Invalid(s.to_string())
    }
}

/// Short alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// Builds a corruption error for an object.
    pub fn corrupt(object: impl Into<String>, detail: impl Into<DecodeError>) -> Self {
        Error::Corrupt { object: object.into(), source: detail.into() }
    }

    /// True when this is a storage error for an object that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Storage(StorageError { kind: StorageErrorKind::NotFound, .. }))
    }

    /// A configuration problem found only when a source starts (an unset variable) counts as the source failing,
    /// so an optional source is left out instead of failing the job.
    pub fn into_source_failure(self) -> Error {
        match self {
            Error::InvalidInput(m) => Error::SourceFailed(m),
            other => other,
        }
    }

    /// The process exit code documented for this error (docs/user-guide.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::WrongPassword { .. } => crate::exit::WRONG_PASSWORD,
            Error::RepoNotFound { .. } => crate::exit::REPO_NOT_FOUND,
            Error::Corrupt { .. } | Error::RestoreIncomplete(_) => crate::exit::DATA_ERROR,
            Error::UnsupportedVersion { .. } => crate::exit::ERROR,
            Error::SourceFailed(_) => crate::exit::SOURCE_FAILED,
            Error::Locked(_) => crate::exit::LOCKED,
            Error::Conflict { .. } => crate::exit::CONFLICT,
            Error::Storage(StorageError { kind: StorageErrorKind::Full, .. }) => crate::exit::STORAGE_FULL,
            Error::Storage(StorageError { kind: StorageErrorKind::PermissionDenied, .. }) => {
                crate::exit::STORAGE_DENIED
            }
            _ => crate::exit::ERROR,
        }
    }
}

//! The library's error type. Every variant carries what failed and where, so the binary can print a message a
//! person can act on, and maps to one documented exit code (see docs/exit-codes in the user guide).

use std::path::PathBuf;

/// Everything that can go wrong in gumvault's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key slot of the repository opens with the given password.
    #[error(
        "wrong password: no key of the repository at {repo} opens with it (check GUMVAULT_PASSWORD, GUMVAULT_PASSWORD_FILE or GUMVAULT_PASSWORD_COMMAND)"
    )]
    WrongPassword { repo: String },

    /// The URL points at a place that holds no repository.
    #[error("no repository at {url}: run `gumvault init -r {url}` first, or check the URL")]
    RepoNotFound { url: String },

    /// `init` was asked to create a repository where one already is.
    #[error("a repository already exists at {url}; refusing to initialise over it")]
    RepoExists { url: String },

    /// An object failed its integrity check: bad AEAD tag, wrong id, truncated, undecodable.
    #[error("corrupt object {object}: {detail}")]
    Corrupt { object: String, detail: String },

    /// The repository uses a format this build does not understand.
    #[error("{what} has format version {found}, this gumvault reads version {supported}; upgrade gumvault")]
    UnsupportedVersion { what: String, found: u32, supported: u32 },

    /// A storage operation failed (network, permissions, missing object...).
    #[error("storage: {op} {path} in region {region} failed: {message}")]
    Storage { op: &'static str, path: String, region: String, message: String, not_found: bool },

    /// A local file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    /// The local catalog (SQLite) failed.
    #[error("catalog {}: {source}", path.display())]
    Catalog { path: PathBuf, source: rusqlite::Error },

    /// A user-supplied value is not valid (URL, glob, snapshot id, option).
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

/// Short alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// Builds a corruption error for an object.
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt { object: object.into(), detail: detail.into() }
    }

    /// True when this is a storage error for an object that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Storage { not_found: true, .. })
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
            _ => crate::exit::ERROR,
        }
    }
}

//! PostgreSQL's continuous WAL archive: `wal-push` ([`push`]) and `wal-fetch` ([`fetch`]), which PostgreSQL runs as
//! its `archive_command` and `restore_command`; which archived WAL prune may remove ([`retention`]); the chain of
//! WAL from each base backup that `check` follows ([`chain`]); and what `status` shows ([`status`], with the
//! push outcomes of [`state`]). What the commands keep on the local disk is described in [`local`].

pub mod chain;
pub mod fetch;
pub mod local;
pub mod pgdata;
pub mod push;
pub mod retention;
pub mod state;
pub mod status;
pub mod tuning;

pub use fetch::{FetchOptions, FetchOutcome, fetch};
pub use local::LocalDir;
pub use push::{PushOptions, PushReport, push};
pub use state::{PushOutcome, PushState, read_push_state};
pub use status::{ArchiveSummary, archive_status};
pub use tuning::WalTuning;

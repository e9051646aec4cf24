//! The operations on an open repository, one module each: what backup, restore, forget, prune, check, repair,
//! sync and the WAL archive's commands do, with no knowledge of flags or printing.

pub mod backup;
pub mod check;
pub mod diff;
pub mod forget;
pub mod globs;
pub mod lock;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod select;
pub mod sync;
pub mod tree_walk;
pub mod wal;

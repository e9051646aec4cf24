//! Restore: snapshots back to a directory ([`to_dir`], a window at a time: [`plan`]), single files to a stream ([`dump`](mod@dump)), and the walks of a
//! snapshot's tree that listings and restores share ([`walk`](mod@walk)).

pub mod dump;
pub mod plan;
pub mod target;
pub mod to_dir;
pub mod walk;

pub use dump::dump;
pub use to_dir::{RestoreFailure, RestoreOptions, RestoreProgress, RestoreSummary, restore, restore_within};
pub use walk::{Entry, Unreadable, Walked, Walker, find, source_tree, walk};

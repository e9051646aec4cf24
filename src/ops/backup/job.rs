//! A job's sources, saved one after the other as the top-level directories of one snapshot. A required source
//! that fails fails the whole job; an optional one is left out and named.

use std::sync::Mutex;

use super::context::{BackupContext, synthetic_dir};
use super::source::{JobSource, Profile};
use crate::error::{Error, Result};
use crate::format::chunker::ChunkerParams;
use crate::format::id::Id;
use crate::format::tree::{Node, Tree};
use crate::ops::globs::PathGlobs;

/// The chunker parameters of a job's sources that are not file trees.
#[derive(Clone, Copy, Debug)]
pub(super) struct JobParams {
    /// The `stream` profile's.
    pub stream: ChunkerParams,
    /// The `pages` profile's.
    pub pages: ChunkerParams,
}

/// Saves every source; returns the root tree. `ctx` carries the files profile; `job_params` the stream and pages
/// profile. Optional sources that failed are added to `skipped` with the reason.
pub(super) fn save_job(
    ctx: &BackupContext<'_, '_>,
    sources: &[Box<dyn JobSource>],
    job_params: JobParams,
    parent_root: Option<&Tree>,
    skipped: &Mutex<Vec<String>>,
) -> Result<Id> {
    let no_excludes = PathGlobs::default();
    let mut nodes = Vec::new();
    for source in sources {
        let params = match source.profile() {
            Profile::Files => ctx.params,
            Profile::Stream => job_params.stream,
            Profile::Pages => job_params.pages,
        };
        let source_ctx = ctx.derive(params, &no_excludes);
        let parent_node = parent_root.and_then(|t| t.find(source.name().as_bytes()));
        match save_one(&source_ctx, source.as_ref(), parent_node) {
            Ok(node) => nodes.push(node),
            Err(Error::SourceFailed(why)) if source.optional() => {
                skipped.lock().expect("skipped lock").push(format!("{} ({}): {why}", source.name(), source.kind()))
            }
            Err(Error::SourceFailed(why)) => {
                return Err(Error::SourceFailed(format!(
                    "source {:?} ({}) failed: {why}; no snapshot was written",
                    source.name(),
                    source.kind()
                )));
            }
            Err(e) => return Err(e),
        }
    }
    ctx.save_tree(nodes)
}

/// One source as a directory node named after it (mode 0700: it is gumvault's, not the source's).
fn save_one(ctx: &BackupContext<'_, '_>, source: &dyn JobSource, parent: Option<&Node>) -> Result<Node> {
    let parent_tree = match parent.and_then(|n| n.subtree) {
        Some(id) => Some(ctx.load_tree(&id)?),
        None => None,
    };
    let tree = source.save(ctx, parent_tree.as_ref())?;
    Ok(synthetic_dir(source.name(), 0o700, tree))
}

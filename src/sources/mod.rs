//! The sources of a job (`gumvault run JOB`): each produces one top-level directory of the job's snapshot.
//! A source's own failure (a program that fails, a bucket that cannot be listed) is [`Error::SourceFailed`], so
//! the job can fail as a whole or, for an optional source, leave it out; storage errors pass through unchanged.

mod env;
mod ordered_dump;
pub mod postgres;
mod process;
mod redis;
pub mod s3;
pub mod test_restore;

use crate::config::SourceSpec;
use crate::error::{Error, Result};
use crate::format::chunker::ChunkerParams;
use crate::format::tree::Node;
use crate::ops::backup::{BackupContext, Excludes, save_paths, synthetic_dir};

/// Backs up one source; returns its directory node, named after the source. `parent` is the same directory in
/// the parent snapshot (unchanged files and objects are taken from it without reading).
pub(crate) fn save(
    ctx: &BackupContext<'_, '_>,
    spec: &SourceSpec,
    stream_params: ChunkerParams,
    parent: Option<&Node>,
) -> Result<Node> {
    let parent_tree = match parent.and_then(|n| n.subtree) {
        Some(id) => Some(ctx.loader.load(&id)?),
        None => None,
    };
    let tree = match spec {
        SourceSpec::Postgres(src) => {
            let stream_ctx = ctx.derive(stream_params, Excludes::new(&[])?);
            postgres_dump(&stream_ctx, src)?
        }
        SourceSpec::Redis(src) => {
            let stream_ctx = ctx.derive(stream_params, Excludes::new(&[])?);
            redis::save(&stream_ctx, src)?
        }
        SourceSpec::Env(src) => env::save(ctx, src)?,
        SourceSpec::Files(src) => {
            let patterns: Vec<String> = src.exclude.iter().map(|g| g.0.clone()).collect();
            let files_ctx = ctx.derive(ctx.params, Excludes::new(&patterns)?);
            let paths = crate::ops::backup::normalize_paths(&src.paths).map_err(|e| match e {
                Error::InvalidInput(m) => Error::SourceFailed(m),
                other => other,
            })?;
            save_paths(&files_ctx, &paths, parent_tree)?
        }
        SourceSpec::S3(src) => s3::save(ctx, src, parent_tree.as_ref())?,
    };
    Ok(synthetic_dir(spec.name(), tree))
}

/// Streams `pg_dump` into one file, `dump.sql` or `dump.pgdump`.
fn postgres_dump(ctx: &BackupContext<'_, '_>, src: &crate::config::PostgresSource) -> Result<crate::format::id::Id> {
    let conn = postgres::PgConn::from_source(src).map_err(as_source_failure)?;
    let what = format!("pg_dump of {}", conn.display());
    let node = if src.order == crate::config::RowOrder::PrimaryKey {
        let dump = ordered_dump::start(&conn, src.pg_dump.as_deref())?;
        crate::ops::backup::save_stream_file(ctx, ctx.params, src.format.file_name(), 0o600, dump, &what).map_err(
            |e| match e {
                Error::Io { source, .. } => Error::SourceFailed(source.to_string()),
                other => other,
            },
        )?
    } else {
        let cmd = postgres::dump_command(src, &conn);
        let (running, stdout) = process::spawn(cmd, "pg_dump")?;
        let node = crate::ops::backup::save_stream_file(ctx, ctx.params, src.format.file_name(), 0o600, stdout, &what);
        running.finish(node)?
    };
    crate::ops::backup::save_tree_nodes(ctx, vec![node])
}

/// Configuration problems found only when a source starts (an unset variable) count as the source failing.
fn as_source_failure(e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => Error::SourceFailed(m),
        other => other,
    }
}

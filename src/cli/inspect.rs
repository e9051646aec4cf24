//! `diff` and `stats`.

use std::os::unix::ffi::OsStrExt;

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use crate::exit;
use crate::ops::diff;
use crate::repo::reader::BlobReader;

#[derive(Args, Debug)]
#[command(after_help = "Each line: + added, - removed, M content changed, U metadata changed, T type changed.")]
pub(crate) struct DiffArgs {
    /// The older snapshot
    pub from: String,
    /// The newer snapshot
    pub to: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub(crate) fn diff(g: &Context, a: &DiffArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let from = a.filter.pick(&s.catalog, &a.from)?;
    let to = a.filter.pick(&s.catalog, &a.to)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let changes = diff::diff(&reader, &from.snapshot.tree, &to.snapshot.tree)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
    } else {
        for c in &changes {
            println!("{} {}", c.kind, format::escaped(c.path.as_os_str().as_bytes()));
        }
        if !g.quiet {
            let n = |k| changes.iter().filter(|c| c.kind == k).count();
            println!("{} added, {} removed, {} changed, {} metadata only", n('+'), n('-'), n('M') + n('T'), n('U'));
        }
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    /// A snapshot (id or `latest`); without it, the whole repository
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub(crate) fn stats(g: &Context, a: &StatsArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let (packs, blobs, stored) = s.catalog.totals()?;
    let snaps = s.catalog.snapshots()?;
    match &a.snapshot {
        None => {
            let logical: u64 = snaps.iter().map(|e| e.snapshot.summary.total_bytes).sum();
            let ratio = if stored > 0 { logical as f64 / stored as f64 } else { 1.0 };
            if g.json {
                println!(
                    "{}",
                    json!({"snapshots": snaps.len(), "packs": packs, "blobs": blobs, "stored_bytes": stored,
                           "logical_bytes": logical, "ratio": ratio})
                );
            } else {
                println!("snapshots: {}", snaps.len());
                println!("logical size of all snapshots: {}", format::bytes(logical));
                println!("stored: {} in {packs} packs, {blobs} blobs", format::bytes(stored));
                println!("logical / stored: {ratio:.1}x (deduplication and compression together)");
            }
        }
        Some(sel) => {
            let entry = a.filter.pick(&s.catalog, sel)?;
            let reader = BlobReader::new(&s.repo, &mut s.catalog);
            let st = diff::snapshot_stats(&reader, &entry.snapshot.tree, &g.memory_budget())?;
            if g.json {
                println!("{}", json!({"snapshot_id": entry.id.to_hex(), "stats": st}));
            } else {
                println!("snapshot {}: {} files, {} directories", entry.id.short(), st.files, st.dirs);
                println!("logical size: {}", format::bytes(st.logical_bytes));
                println!(
                    "unique data: {} in {} blobs, stored as {}",
                    format::bytes(st.unique_bytes),
                    st.unique_blobs,
                    format::bytes(st.stored_bytes)
                );
                println!("dedup ratio within the snapshot: {:.2}x", st.dedup_ratio);
            }
        }
    }
    Ok(exit::OK)
}

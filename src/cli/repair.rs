//! `gumvault repair index|snapshots`.

use clap::Subcommand;
use serde_json::json;

use super::context::Context;
use super::maintenance::LockArgs;
use crate::exit;
use crate::ops::repair;
use crate::repo::catalog::Catalog;
use crate::repo::lease;

#[derive(Subcommand, Debug)]
pub(crate) enum RepairCommand {
    /// Rebuild the index from the packs' own headers (after index segments were lost or damaged)
    Index {
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Rewrite snapshots that reference lost data; lost files become empty NAME.gumvault-lost markers
    Snapshots {
        /// Report what is lost, change nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
}

pub(crate) fn run(g: &Context, cmd: &RepairCommand) -> anyhow::Result<i32> {
    let repo = g.open_repo()?;
    match cmd {
        RepairCommand::Index { lock } => {
            let lease = lease::acquire(&repo, "repair index", lock.retry_lock.unwrap_or_default())?;
            let r = repair::repair_index(&repo)?;
            drop(lease);
            let mut cat = Catalog::open(&g.cache_dir(), &repo)?;
            cat.rebuild(&repo)?;
            for p in &r.unreadable_packs {
                eprintln!("gumvault: error: unreadable pack, its data is lost: {p}");
            }
            if g.json {
                println!("{}", json!({ "report": r }));
            } else {
                println!(
                    "index rebuilt from {} packs ({} blobs): {} segments written, {} old segments removed",
                    r.packs_indexed, r.blobs_indexed, r.segments_written, r.segments_removed
                );
                if !r.unreadable_packs.is_empty() {
                    println!("run `gumvault repair snapshots` to mark what the unreadable packs held as lost");
                }
            }
            Ok(if r.unreadable_packs.is_empty() { exit::OK } else { exit::DATA_ERROR })
        }
        RepairCommand::Snapshots { dry_run, lock } => {
            let lease = lease::acquire(&repo, "repair snapshots", lock.retry_lock.unwrap_or_default())?;
            let mut cat = Catalog::open(&g.cache_dir(), &repo)?;
            let results = repair::repair_snapshots(&repo, &mut cat, *dry_run)?;
            drop(lease);
            if g.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    let to = r.new_id.as_deref().map(|n| format!(" -> {}", &n[..8])).unwrap_or_default();
                    println!("snapshot {}{to}: lost {}", &r.old_id[..8], r.lost.len());
                    for l in &r.lost {
                        println!("  lost: {l}");
                    }
                }
                if results.is_empty() {
                    println!("every snapshot is complete: nothing to repair");
                }
            }
            let unrepairable = results.iter().any(|r| r.new_id.is_none() && !*dry_run);
            Ok(if unrepairable { exit::DATA_ERROR } else { exit::OK })
        }
    }
}

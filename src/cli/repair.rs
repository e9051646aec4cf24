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
    /// Rebuild the index from the packs themselves (after index segments or packs were lost or damaged)
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
            print_index_repair(&r);
            if g.json {
                println!("{}", json!({ "report": r }));
            } else {
                summarise_index_repair(&r);
            }
            let lost = r.blobs_lost > 0 || !r.unreadable_packs.is_empty() || !r.unrecoverable_packs.is_empty();
            Ok(if lost { exit::DATA_ERROR } else { exit::OK })
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

/// What `repair index` found, on stderr (problems) and stdout (the summary, unless `--json`).
fn print_index_repair(r: &repair::IndexRepair) {
    for p in &r.damaged_packs {
        let how = if p.header_found { "its header was found" } else { "its blobs were placed by the old index" };
        eprintln!(
            "gumvault: warning: damaged pack {}: {}; {how}: {} blobs recovered, {} lost",
            p.pack,
            p.problem,
            p.blobs_recovered,
            p.blobs_lost.len()
        );
    }
    for p in &r.missing_packs {
        eprintln!("gumvault: error: indexed pack missing from every region: {p}");
    }
    for p in &r.unrecoverable_packs {
        eprintln!("gumvault: error: pack with no readable header that no index segment describes, left in place: {p}");
    }
    for p in &r.unreadable_packs {
        eprintln!("gumvault: error: pack could not be read, the index segments describing it are kept: {p}");
    }
    for s in &r.segments_unreadable {
        eprintln!("gumvault: warning: damaged index segment removed (nothing in it could be read): {s}");
    }
}

/// The summary of `repair index` for people.
fn summarise_index_repair(r: &repair::IndexRepair) {
    println!(
        "index rebuilt from {} packs ({} blobs): {} segments written, {} old segments removed, {} kept",
        r.packs_indexed,
        r.blobs_indexed,
        r.segments_written,
        r.segments_removed,
        r.segments_kept.len()
    );
    if r.blobs_lost > 0 {
        println!("{} blobs are lost: run `gumvault repair snapshots` to mark what they held as lost", r.blobs_lost);
    }
    if !r.segments_kept.is_empty() {
        println!(
            "old segments were kept (a pack could not be read, or a region failed): run `gumvault repair index` again when storage answers"
        );
    }
}

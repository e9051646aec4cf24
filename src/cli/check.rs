//! `gumvault check`.

use std::os::unix::fs::DirBuilderExt;

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::format;
use super::progress::Ticker;
use crate::exit;
use crate::ops::check::{self, CheckOptions, DataSubset};

#[derive(Args, Debug)]
#[command(after_help = "Without --read-data, check reads the index, every snapshot and every tree, and confirms that
every referenced blob is indexed in a pack that exists with the right size, and follows the WAL archive from
every base backup to the newest archived segment of its cluster, naming each missing segment. With --read-data
it also downloads every pack and verifies every blob (authentication tag and id), and reads and authenticates
every archived WAL file. Exit code 12 on any problem.")]
pub(crate) struct CheckArgs {
    /// Download and verify every pack (an interrupted run resumes where it stopped)
    #[arg(long)]
    pub read_data: bool,
    /// Verify only part of the data: 10% (the packs verified longest ago), 3/7 (a fixed slice), or auto
    #[arg(long, value_name = "SUBSET", value_parser = DataSubset::parse, conflicts_with = "read_data")]
    pub read_data_subset: Option<DataSubset>,
    /// Compare the regions object by object (presence and size; with --read-data every copy's content)
    #[arg(long = "regions", id = "compare_regions", conflicts_with = "read_data_subset")]
    pub compare_regions: bool,
}

pub(crate) fn run(g: &Context, a: &CheckArgs) -> anyhow::Result<i32> {
    if a.compare_regions {
        return super::regions::check_regions(g, a.read_data);
    }
    let mut s = g.open_for_snapshots()?;
    // check verifies the repository, so its trees never come from this machine's tree cache. Over S3 they come
    // from whole tree packs read from the repository during this run (a request per tree pack, not per tree),
    // kept in a private scratch directory that goes with the run.
    let _scratch = if s.repo.has_remote_region() {
        let dir = s.cache_dir.join(s.repo.id());
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| tempfile::Builder::new().prefix("check-trees-").tempdir_in(&dir));
        let scratch = made.map_err(|e| crate::Error::io("create a scratch directory in", &dir, e))?;
        s.repo.cache_trees_in(scratch.path().to_path_buf());
        Some(scratch)
    } else {
        None
    };
    let ticker = Ticker::start(g.quiet || g.json, || ("checking".to_string(), None));
    let started = std::time::Instant::now();
    let read_data = if a.read_data { Some(DataSubset::All) } else { a.read_data_subset };
    let report = check::check(&s.repo, &s.catalog, &CheckOptions { read_data, memory: g.memory_budget() });
    drop(ticker);
    let report = report?;
    if g.json {
        println!("{}", json!({ "ok": report.problems.is_empty(), "report": report }));
    } else {
        for p in &report.problems {
            eprintln!("gumvault: problem: {p}");
        }
        for n in &report.notes {
            eprintln!("gumvault: note: {n}");
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs, {} blobs{}{} in {}: {}",
                report.snapshots,
                report.trees,
                report.packs,
                report.blobs,
                if read_data.is_some() {
                    format!(", read {} packs ({})", report.packs_read, format::bytes(report.bytes_read))
                } else {
                    String::new()
                },
                wal_summary(&report),
                format::duration(started.elapsed().as_secs_f64()),
                if report.problems.is_empty() {
                    "no problems".to_string()
                } else {
                    format!("{} PROBLEMS", report.problems.len())
                }
            );
        }
    }
    Ok(if report.problems.is_empty() { exit::OK } else { exit::DATA_ERROR })
}

/// The WAL part of the summary line (empty without an archive).
fn wal_summary(r: &check::CheckReport) -> String {
    if r.wal_files == 0 && r.wal_base_backups == 0 {
        return String::new();
    }
    let read = if r.wal_files_read > 0 { format!(", {} read", r.wal_files_read) } else { String::new() };
    format!(
        ", {} archived WAL files{read} ({} segments needed by {} base backups)",
        r.wal_files, r.wal_segments_needed, r.wal_base_backups
    )
}

//! `gumvault check`.

use clap::Args;
use serde_json::json;

use super::{GlobalArgs, format, progress::Ticker};
use crate::check::{self, CheckOptions};
use crate::exit;

#[derive(Args, Debug)]
#[command(after_help = "Without --read-data, check reads the index, every snapshot and every tree, and confirms that
every referenced blob is indexed in a pack that exists with the right size. With --read-data it also
downloads every pack and verifies every blob (authentication tag and id). Exit code 12 on any problem.")]
pub struct CheckArgs {
    /// Download and verify every pack
    #[arg(long)]
    pub read_data: bool,
}

pub fn run(g: &GlobalArgs, a: &CheckArgs) -> anyhow::Result<i32> {
    let repo = g.open_repo()?;
    let ticker = Ticker::start(g.quiet || g.json, || ("checking".to_string(), None));
    let started = std::time::Instant::now();
    let report = check::check(&repo, &CheckOptions { read_data: a.read_data });
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
                "checked {} snapshots, {} trees, {} packs, {} blobs{} in {}: {}",
                report.snapshots,
                report.trees,
                report.packs,
                report.blobs,
                if a.read_data { format!(", read {}", format::bytes(report.bytes_read)) } else { String::new() },
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

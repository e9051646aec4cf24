//! `gumvault sync`, `gumvault regions`, and the region comparison of `gumvault check --regions`.

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::format;
use super::progress::Ticker;
use super::report::BAD_COPIES_KEY;
use crate::exit;
use crate::ops::sync::{self as regions, SyncOptions};

#[derive(Args, Debug)]
#[command(after_help = "Copies every object some region lacks (or holds a bad copy of) from a region whose copy
verifies, and finishes deletes a prune or forget could not do in a region that was down. Running it again after
an interruption continues where it stopped. Damaged copies that a restore noticed are replaced even without
--read-data; --read-data reads and verifies every copy in every region first.

With --into URL it copies the whole repository into a fresh location instead: after an attack, open the
repository as it was before it and copy that view into a new bucket (then use the new bucket's URL).

Examples:
  gumvault sync                          # every region gets everything
  gumvault --as-of 2026-11-20T14:00:00Z sync --into s3://fresh/gv   # recover into a new bucket
  gumvault sync --from us --to eu        # only copy from us into eu
  gumvault sync --read-data --dry-run    # what would be copied, after verifying every copy")]
pub(crate) struct SyncArgs {
    /// Copy only from this region (repeatable)
    #[arg(long, value_name = "REGION")]
    pub from: Vec<String>,
    /// Copy only into this region (repeatable)
    #[arg(long, value_name = "REGION")]
    pub to: Vec<String>,
    /// Read and verify every copy in every region, and replace damaged ones
    #[arg(long)]
    pub read_data: bool,
    /// Show what would be copied and removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Create the directory of this region when it is missing (a replaced disk) and copy everything into it;
    /// nothing else ever creates a region's directory (repeatable)
    #[arg(long, value_name = "REGION")]
    pub rebuild: Vec<String>,
    /// Copy the whole repository (as this command sees it, e.g. with --as-of before an attack) into a fresh,
    /// empty location: a new bucket or region to recover into. Keys and config are copied last
    #[arg(long, value_name = "URL", conflicts_with_all = ["from", "to", "rebuild", "read_data"])]
    pub into: Option<String>,
}

pub(crate) fn sync(g: &Context, a: &SyncArgs) -> anyhow::Result<i32> {
    if let Some(url) = &a.into {
        return sync_into(g, url, a.dry_run);
    }
    let s = g.open_rebuilding(&a.rebuild)?;
    let suspects: Vec<(String, String)> =
        s.catalog.meta(BAD_COPIES_KEY)?.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
    let opts =
        SyncOptions { from: a.from.clone(), to: a.to.clone(), read_data: a.read_data, suspects, dry_run: a.dry_run };
    let ticker = Ticker::start(g.quiet || g.json, || ("comparing and copying".to_string(), None));
    let started = std::time::Instant::now();
    let report = regions::sync(&s.repo, &opts);
    drop(ticker);
    let report = report?;
    if !a.dry_run && report.failed.is_empty() {
        s.catalog.set_meta(BAD_COPIES_KEY, None)?;
    }
    if g.json {
        println!("{}", json!({ "dry_run": a.dry_run, "report": report }));
    } else {
        let verb = if a.dry_run { "would copy" } else { "copied" };
        for (region, path) in report.copied.iter().take(if g.quiet { 0 } else { 50 }) {
            println!("  {verb} {path} → {region}");
        }
        for (region, path) in report.removed.iter().take(if g.quiet { 0 } else { 50 }) {
            println!(
                "  {} {path} in {region} (deleted elsewhere by a prune)",
                if a.dry_run { "would remove" } else { "removed" }
            );
        }
        for f in &report.failed {
            eprintln!("gumvault: error: {f}");
        }
        if !g.quiet {
            println!(
                "{verb} {} objects ({}), {} {} objects, in {}{}",
                report.copied.len(),
                format::bytes(report.bytes_copied),
                if a.dry_run { "would remove" } else { "removed" },
                report.removed.len(),
                format::duration(started.elapsed().as_secs_f64()),
                if report.copied.is_empty() && report.removed.is_empty() && report.failed.is_empty() {
                    ": the regions agree"
                } else {
                    ""
                }
            );
        }
    }
    Ok(if report.failed.is_empty() { exit::OK } else { exit::DATA_ERROR })
}

#[derive(Args, Debug)]
pub(crate) struct RegionsArgs {}

pub(crate) fn regions(g: &Context, _a: &RegionsArgs) -> anyhow::Result<i32> {
    let s = g.open_repo()?;
    let health = regions::health(&s)?;
    let min = s.min_regions();
    if g.json {
        println!("{}", json!({ "min_regions": min, "regions": health }));
    } else {
        println!(
            "{:<12} {:<11} {:>9} {:>10} {:>9} {:>10}  url",
            "region", "state", "objects", "size", "missing", "to remove"
        );
        for h in &health {
            let state = if !h.reachable {
                "UNREACHABLE"
            } else if h.missing > 0 || h.to_remove > 0 {
                "LAGGING"
            } else {
                "in sync"
            };
            println!(
                "{:<12} {:<11} {:>9} {:>10} {:>9} {:>10}  {}",
                h.name,
                state,
                h.objects,
                format::bytes(h.bytes),
                h.missing,
                h.to_remove,
                h.url
            );
            if let Some(e) = &h.error {
                println!("             {e}");
            }
        }
        println!("writes need {min} of {} regions", health.len());
    }
    let healthy = health.iter().all(|h| h.reachable && h.missing == 0 && h.to_remove == 0);
    Ok(if healthy { exit::OK } else { exit::DATA_ERROR })
}

/// `check --regions`: every difference between regions, exit 12 when there is one.
pub(crate) fn check_regions(g: &Context, read_data: bool) -> anyhow::Result<i32> {
    let repo = g.open_repo()?;
    let ticker = Ticker::start(g.quiet || g.json, || ("comparing regions".to_string(), None));
    let listings = regions::list_regions(&repo);
    let diffs = regions::compare(&repo, &listings, read_data);
    drop(ticker);
    let diffs = diffs?;
    let objects: usize = listings.iter().filter_map(|l| l.objects.as_ref()).map(|o| o.len()).max().unwrap_or(0);
    if g.json {
        println!(
            "{}",
            json!({ "ok": diffs.is_empty(), "regions": listings.len(), "objects": objects, "differences": diffs })
        );
    } else {
        for d in &diffs {
            let detail = if d.detail.is_empty() { String::new() } else { format!(": {}", d.detail) };
            eprintln!("gumvault: problem: region {}: {} {}{detail}", d.region, d.kind, d.path);
        }
        if !g.quiet {
            println!(
                "compared {} regions, {objects} objects{}: {}",
                listings.len(),
                if read_data { ", every copy read and verified" } else { " (presence and size)" },
                if diffs.is_empty() {
                    "no differences".to_string()
                } else {
                    format!("{} DIFFERENCES (run `gumvault sync`)", diffs.len())
                }
            );
        }
    }
    Ok(if diffs.is_empty() { exit::OK } else { exit::DATA_ERROR })
}

/// `sync --into URL`: the repository, as this command sees it, copied whole into a fresh location.
fn sync_into(g: &Context, url: &str, dry_run: bool) -> anyhow::Result<i32> {
    let source = g.open_options()?;
    let password = g.password_source().get(false)?;
    let shown = format!("copying into {url}");
    let ticker = Ticker::start(g.quiet || g.json, move || (shown.clone(), None));
    let started = std::time::Instant::now();
    let open = || crate::repo::Repository::open_with(&source, &password);
    let report = crate::ops::sync::copy::copy_into(open, &source, url, dry_run);
    drop(ticker);
    let report = report?;
    if g.json {
        println!("{}", json!({ "dry_run": dry_run, "into": url, "report": report }));
    } else if !g.quiet {
        println!(
            "{} {} objects ({}) into {url} in {}",
            if dry_run { "would copy" } else { "copied" },
            report.copied.len(),
            format::bytes(report.bytes_copied),
            format::duration(started.elapsed().as_secs_f64())
        );
        if !dry_run {
            println!("The copy is the same repository (same id, keys and password): open it with -r {url}");
        }
    }
    Ok(exit::OK)
}

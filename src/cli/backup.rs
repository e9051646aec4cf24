//! `gumvault backup`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::format;
use super::progress::Ticker;
use crate::exit;
use crate::ops::backup::{self, BackupOptions, Progress, Source, read_exclude_file};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  gumvault backup /etc/bubblegum /srv/uploads --exclude '*.tmp' --exclude node_modules
  pg_dump -Fp mydb | gumvault backup --stdin --stdin-filename db.sql --tag db
  gumvault backup --command 'pg_dump -Fc mydb' --stdin-filename db.dump --tag db

A pattern with a '/' matches the whole absolute path; one without matches a name at any depth.
Files whose size, mtime, ctime and inode match the previous snapshot of the same host and paths are not read again.")]
pub(crate) struct BackupArgs {
    /// Files and directories to back up
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Back up standard input as one file
    #[arg(long, conflicts_with_all = ["paths", "command"])]
    pub stdin: bool,
    /// Back up the standard output of this command (split into words, no shell); it must exit 0
    #[arg(long, value_name = "CMD", conflicts_with = "paths")]
    pub command: Option<String>,
    /// Name of the file that holds standard input or the command's output
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    pub stdin_filename: String,
    /// Exclude paths matching this glob (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read exclude globs from this file, one per line (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's)
    #[arg(long)]
    pub host: Option<String>,
    /// Chunker profile: `files` (default for paths) or `stream` (default for --stdin/--command)
    #[arg(long, value_name = "PROFILE")]
    pub chunker: Option<String>,
    /// Read every file even if the parent snapshot says it is unchanged
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(g: &Context, a: &BackupArgs) -> anyhow::Result<i32> {
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(read_exclude_file(f)?);
    }
    let source = if a.stdin {
        Source::Stream { name: a.stdin_filename.clone(), reader: Box::new(std::io::stdin()) }
    } else if let Some(cmd) = &a.command {
        let argv = shell_words::split(cmd).map_err(|e| anyhow::anyhow!("cannot split --command into words: {e}"))?;
        Source::Command { argv, name: a.stdin_filename.clone() }
    } else {
        if a.paths.is_empty() {
            anyhow::bail!("nothing to back up: give paths, --stdin or --command (see `gumvault backup --help`)");
        }
        Source::Paths(a.paths.clone())
    };
    let opts = BackupOptions {
        host: a.host.clone().unwrap_or_else(crate::hostname),
        tags: a.tags.clone(),
        excludes,
        chunker: a.chunker.clone(),
        force: a.force,
        time: None,
        child_env: g.child_env(),
        known_in_memory: None,
    };
    let mut session = g.open()?;
    let outcome = perform(g, &mut session, source, &opts)?;
    Ok(print_outcome(g, &outcome))
}

/// Runs a backup with a progress bar (when on a terminal) and prints its warnings and notes.
pub(super) fn perform(
    g: &Context,
    session: &mut crate::repo::session::Session,
    source: Source,
    opts: &BackupOptions,
) -> anyhow::Result<backup::BackupOutcome> {
    // Backup gives the ids of the blobs already stored an eighth of the memory budget (128 MiB by default).
    let opts = &BackupOptions { known_in_memory: Some(g.memory_budget().bytes / 8), ..opts.clone() };
    let progress = Arc::new(Progress::default());
    let shown = progress.clone();
    let ticker = Ticker::start(g.quiet || g.json, move || {
        let p = &shown;
        let estimated = p.estimate_done.load(Ordering::Relaxed);
        let files = if estimated {
            format!("{}/{} files", p.files(), p.estimate_files.load(Ordering::Relaxed))
        } else {
            format!("{} files", p.files())
        };
        let msg = format!("{files}, {} errors", p.errors.load(Ordering::Relaxed));
        let done = p.bytes.load(Ordering::Relaxed) + p.bytes_skipped.load(Ordering::Relaxed);
        let total = estimated.then(|| p.estimate_bytes.load(Ordering::Relaxed));
        (msg, Some((done, total.unwrap_or(0))))
    });
    // Estimate the work in the background, only when someone watches the bar.
    if let (Some(_), Source::Paths(paths)) = (&ticker, &source) {
        let (paths, scanner, excludes) = (paths.clone(), progress.clone(), opts.excludes.clone());
        std::thread::spawn(move || {
            if let Ok(ex) = crate::ops::globs::PathGlobs::new(&excludes, "exclude") {
                let abs: Vec<PathBuf> = paths.iter().filter_map(|p| std::path::absolute(p).ok()).collect();
                backup::scan(&abs, &ex, &scanner);
            }
        });
    }
    let outcome = backup::run(&session.repo, &mut session.catalog, source, opts, &progress);
    progress.estimate_done.store(true, Ordering::Relaxed);
    drop(ticker);
    super::report::print_region_events(&session.repo);
    let outcome = outcome?;
    for w in &outcome.warnings {
        eprintln!("gumvault: warning: {w}");
    }
    for n in &outcome.notices {
        eprintln!("gumvault: note: {n}");
    }
    Ok(outcome)
}

/// Prints what a backup did (text or JSON); returns the exit code.
pub(super) fn print_outcome(g: &Context, outcome: &backup::BackupOutcome) -> i32 {
    let s = &outcome.snapshot.summary;
    if g.json {
        println!(
            "{}",
            json!({
                "snapshot_id": outcome.id.to_hex(), "short_id": outcome.id.short(), "time": outcome.snapshot.time.to_string(),
                "incomplete": outcome.snapshot.incomplete, "summary": s, "warnings": outcome.warnings,
                "unreadable": outcome.unreadable,
                "degraded": degraded(outcome), "missing_by_region": missing_by_region(outcome),
                "lagging": outcome.lagging.iter().map(|(r, t)| json!({ "region": r, "since": t.to_string() })).collect::<Vec<_>>(),
            })
        );
    } else if !g.quiet {
        println!(
            "snapshot {} saved{}",
            outcome.id.short(),
            if outcome.snapshot.incomplete { " (INCOMPLETE: some inputs could not be read)" } else { "" }
        );
        println!(
            "files: {} new, {} changed, {} unchanged; {} directories",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        println!(
            "read {} of {}, added {} ({} stored) in {}",
            format::bytes(s.bytes_read),
            format::bytes(s.total_bytes),
            format::bytes(s.bytes_added),
            format::bytes(s.stored_bytes_added),
            format::duration(s.duration_secs)
        );
    }
    if !outcome.missing.is_empty() {
        let by_region: Vec<String> =
            missing_by_region(outcome).iter().map(|(r, n)| format!("{n} objects missing in region {r}")).collect();
        eprintln!(
            "gumvault: DEGRADED: the snapshot is saved in enough regions, but {}; run `gumvault sync` once the region is back",
            by_region.join(", ")
        );
    }
    for (region, since) in &outcome.lagging {
        eprintln!(
            "gumvault: DEGRADED: region {region} lags behind since {} (a degraded write is not synced yet), so the snapshot is not whole there; run `gumvault sync`",
            format::local_time(since)
        );
    }
    if outcome.snapshot.incomplete {
        exit::INCOMPLETE
    } else if degraded(outcome) {
        exit::DEGRADED
    } else {
        exit::OK
    }
}

/// Saved in enough regions but not whole in every one: some region missed objects now, or lags from before.
fn degraded(outcome: &backup::BackupOutcome) -> bool {
    !outcome.missing.is_empty() || !outcome.lagging.is_empty()
}

/// How many objects each region is missing.
pub(super) fn missing_by_region(outcome: &backup::BackupOutcome) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for (region, _) in &outcome.missing {
        *m.entry(region.clone()).or_insert(0) += 1;
    }
    m
}

//! `restore`, `dump`, `ls`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use serde_json::json;

use super::{FilterArgs, GlobalArgs, format, progress::Ticker};
use crate::exit;
use crate::reader::BlobReader;
use crate::restore::{self, Includes, RestoreOptions, RestoreProgress};
use crate::tree::NodeKind;

#[derive(Args, Debug)]
#[command(after_help = "Paths are recreated under the target: /srv/app in the snapshot becomes TARGET/srv/app.
Examples:
  gumvault restore latest --target /tmp/r
  gumvault restore 1a2b3c4d --target /tmp/r --include '/etc/bubblegum/*.toml'
  gumvault restore --at '2026-11-20T14:00:00Z' --host web-1 --target /tmp/r")]
pub struct RestoreArgs {
    /// Snapshot id (8+ hex characters) or `latest`
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't')]
    pub target: PathBuf,
    /// Restore only paths matching this glob (repeatable); matching directories come whole
    #[arg(long = "include", short = 'i', value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Replace files that already exist in the target
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn restore(g: &GlobalArgs, a: &RestoreArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let entry = a.filter.pick(&s.catalog, &a.snapshot)?;
    let includes = Includes::new(&a.includes)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let entries = restore::walk(&reader, &entry.snapshot.tree, includes.as_ref())?;
    if entries.is_empty() {
        anyhow::bail!("nothing in snapshot {} matches the --include patterns", entry.id.short());
    }
    let progress = Arc::new(RestoreProgress::default());
    let shown = progress.clone();
    let ticker = Ticker::start(g.quiet || g.json, move || {
        let done = shown.bytes.load(Ordering::Relaxed);
        ("restoring".to_string(), Some((done, shown.total_bytes.load(Ordering::Relaxed))))
    });
    let started = std::time::Instant::now();
    let summary = restore::restore(
        &reader,
        &entries,
        &RestoreOptions { target: a.target.clone(), overwrite: a.overwrite },
        &progress,
    );
    drop(ticker);
    let summary = summary?;
    for e in &summary.errors {
        eprintln!("gumvault: error: {e}");
    }
    for s in &summary.skipped {
        eprintln!("gumvault: note: skipped {s}");
    }
    if g.json {
        println!("{}", json!({ "snapshot_id": entry.id.to_hex(), "target": a.target, "summary": summary }));
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} symlinks, {} in {}",
            entry.id.short(),
            a.target.display(),
            summary.files,
            summary.dirs,
            summary.symlinks,
            format::bytes(summary.bytes),
            format::duration(started.elapsed().as_secs_f64())
        );
    }
    if !summary.errors.is_empty() {
        eprintln!(
            "gumvault: restore incomplete: {} problems (see above); everything else was restored",
            summary.errors.len()
        );
        return Ok(exit::DATA_ERROR);
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  gumvault dump latest /db.sql | psql mydb
  gumvault dump --tag db latest db.sql > db.sql")]
pub struct DumpArgs {
    /// Snapshot id (8+ hex characters) or `latest`
    pub snapshot: String,
    /// Path of the file inside the snapshot
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn dump(g: &GlobalArgs, a: &DumpArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let entry = a.filter.pick(&s.catalog, &a.snapshot)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let node = restore::find(&reader, &entry.snapshot.tree, &a.path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    restore::dump(&reader, &node, &a.path, &mut out)?;
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (8+ hex characters) or `latest`
    pub snapshot: String,
    /// Only list below this path
    pub path: Option<String>,
    /// Show mode, size and modification time
    #[arg(long, short = 'l')]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn ls(g: &GlobalArgs, a: &LsArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let entry = a.filter.pick(&s.catalog, &a.snapshot)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let prefix = a.path.as_deref().map(|p| format!("/{}", p.trim_matches('/'))).filter(|p| p != "/");
    let includes = match &prefix {
        Some(p) => Includes::new(std::slice::from_ref(p))?,
        None => None,
    };
    if let Some(p) = &prefix {
        restore::find(&reader, &entry.snapshot.tree, p)?;
    }
    let entries = restore::walk(&reader, &entry.snapshot.tree, includes.as_ref())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for e in entries {
        let n = &e.node;
        let path = e.path.display();
        if g.json {
            let line = json!({
                "path": path.to_string(), "type": n.kind, "mode": format!("{:o}", n.mode), "size": n.size,
                "uid": n.uid, "gid": n.gid, "mtime_ns": n.mtime_ns,
            });
            writeln!(out, "{line}")?;
        } else if a.long {
            let t = jiff::Timestamp::from_nanosecond(n.mtime_ns as i128)
                .map(|t| format::local_time(&t))
                .unwrap_or_default();
            let kind = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
                _ => '?',
            };
            writeln!(out, "{kind}{:04o} {:>6} {:>6} {:>12} {t} {path}", n.mode, n.uid, n.gid, n.size)?;
        } else {
            writeln!(out, "{path}")?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

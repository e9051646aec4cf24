//! `restore`, `dump`, `ls`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use super::progress::Ticker;
use crate::exit;
use crate::format::tree::NodeKind;
use crate::ops::globs::PathGlobs;
use crate::ops::restore::{self, RestoreOptions, RestoreProgress};
use crate::repo::catalog::SnapshotEntry;
use crate::repo::reader::BlobReader;
use crate::sources::pg_conn::PgConn;
use crate::sources::pg_load;
use crate::sources::pg_target::{self, OwnerPolicy, RolePolicy, TargetOptions};

#[derive(Args, Debug)]
#[command(after_help = "Paths are recreated under the target: /srv/app in the snapshot becomes TARGET/srv/app.
With --source NAME only that source of a job's snapshot is restored, relative to its directory: /cache/dump.rdb
becomes TARGET/dump.rdb.
Examples:
  gumvault restore latest --target /tmp/r
  gumvault restore 1a2b3c4d --target /tmp/r --include '/etc/bubblegum/*.toml'
  gumvault restore --at '2026-11-20T14:00:00Z' --host web-1 --target /tmp/r
  gumvault restore latest --source db --to-postgres postgres://app@127.0.0.1/bubble_restored
  gumvault restore latest --source uploads --to-s3 's3://bubblegum-uploads?endpoint=http://127.0.0.1:9000'
  gumvault restore latest --source uploads --include 'avatars/42.png' --target /tmp/one-file
  gumvault restore latest --source env --target /tmp/env       (files of mode 0600)

Point-in-time recovery of a postgres-physical source (DIR must be new or empty):
  gumvault restore latest --source pg --to-pgdata /var/lib/postgresql/15/main
  gumvault restore latest --source pg --to-pgdata /srv/pg --at '2026-11-20T14:00:00Z'
  gumvault restore latest --source pg --to-pgdata /srv/pg --at '2026-11-20 14:00' --timeline 1
--to-pgdata picks the newest base backup that ended at or before --at (an id given must meet that too), lays it
out (mode 0700; as root every file belongs to the OS user postgres, or to --owner-user USER), writes
recovery.signal and, in postgresql.auto.conf, restore_command = 'gumvault ... wal-fetch %f %p' (this binary, the
config file or -r/--password-file given here; never the password), recovery_target_time (with --at),
recovery_target_action = 'promote' and recovery_target_timeline (latest unless --timeline). Then start PostgreSQL
of the same major version on DIR: it replays the archived WAL up to the target and promotes.")]
pub(crate) struct RestoreArgs {
    /// Snapshot id (8+ hex characters) or `latest`
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't', required_unless_present_any = ["to_postgres", "to_s3", "to_pgdata"])]
    pub target: Option<PathBuf>,
    /// Restore only this source of a job's snapshot (its top-level directory)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Load the source's database dump into this (empty) database; also takes env:NAME or file:/path
    #[arg(long, value_name = "URL", requires = "source", conflicts_with_all = ["target", "to_s3", "includes"])]
    pub to_postgres: Option<String>,
    /// With --to-postgres: drop everything in the target database first
    #[arg(long, requires = "to_postgres")]
    pub clean: bool,
    /// With --to-postgres: create the roles the database needs that the server lacks (`create`, the default
    /// unless --owner/--no-owner), or none (`skip`: their privileges are left out)
    #[arg(long, value_enum, value_name = "create|skip", requires = "to_postgres")]
    pub roles: Option<RolesArg>,
    /// With --to-postgres: ROLE owns the database and everything in it, and no roles are created (unless
    /// --roles create); privileges of roles the server lacks are left out
    #[arg(long, value_name = "ROLE", requires = "to_postgres", conflicts_with = "no_owner")]
    pub owner: Option<String>,
    /// With --to-postgres: the connecting role owns the database and everything in it (as pg_restore --no-owner)
    #[arg(long, requires = "to_postgres")]
    pub no_owner: bool,
    /// Write the source's objects into this bucket and prefix (s3://bucket/prefix?endpoint=URL&region=R)
    #[arg(long, value_name = "URL", requires = "source", conflicts_with = "target")]
    pub to_s3: Option<String>,
    #[command(flatten)]
    pub pgdata: super::pgdata::PgdataArgs,
    /// Objects written to S3 at once
    #[arg(long, default_value_t = crate::sources::s3::DEFAULT_CONCURRENCY, value_name = "N")]
    pub concurrency: usize,
    /// Restore only paths matching this glob (repeatable); matching directories come whole
    #[arg(long = "include", short = 'i', value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Replace files that already exist in the target
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `--roles`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum RolesArg {
    /// Create every role the database needs that the server lacks
    Create,
    /// Create none
    Skip,
}

pub(crate) fn restore(g: &Context, a: &RestoreArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let outcome = restore_in(g, a, &mut s);
    super::report::print_region_events(&s.repo);
    super::report::remember_bad_copies(&s);
    outcome
}

fn restore_in(g: &Context, a: &RestoreArgs, s: &mut crate::repo::session::Session) -> anyhow::Result<i32> {
    if let Some(dir) = &a.pgdata.to_pgdata {
        let source = a.source.as_deref().unwrap_or_default();
        return super::pgdata::to_pgdata(g, (&a.snapshot, source, &a.filter), &a.pgdata, s, dir);
    }
    let mut filter = a.filter.clone();
    if let Some(src) = &a.source {
        filter.paths.push(format!("/{}", src.trim_matches('/')));
    }
    let entry = filter.pick(&s.catalog, &a.snapshot)?;
    let includes = (!a.includes.is_empty()).then(|| PathGlobs::new(&a.includes, "include")).transpose()?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let root = match &a.source {
        Some(src) => restore::source_tree(&reader, &entry, src)?,
        None => entry.snapshot.tree,
    };
    if let Some(url) = &a.to_postgres {
        return to_postgres(g, &reader, &entry, a, url);
    }
    if let Some(url) = &a.to_s3 {
        let entries = restore::walk(&reader, &root, includes.as_ref())?;
        return to_s3(g, &reader, &entry, &entries, url, a);
    }
    let Some(target) = a.target.clone() else { anyhow::bail!("give --target DIR, --to-postgres URL or --to-s3 URL") };
    // The entries stream from the walk into the restore, never all held at once.
    let mut entries = restore::Walker::new(&reader, &root, includes.as_ref())?.peekable();
    if entries.peek().is_none() {
        anyhow::bail!("nothing in snapshot {} matches the --include patterns", entry.id.short());
    }
    to_dir(g, &reader, &entry, entries, RestoreOptions { target, overwrite: a.overwrite })
}

/// `restore --target DIR`: the entries into a directory, with a progress bar; exit 12 when some failed.
fn to_dir(
    g: &Context,
    reader: &BlobReader<'_>,
    entry: &SnapshotEntry,
    entries: impl Iterator<Item = restore::Walked>,
    opts: RestoreOptions,
) -> anyhow::Result<i32> {
    let progress = Arc::new(RestoreProgress::default());
    let shown = progress.clone();
    let ticker = Ticker::start(g.quiet || g.json, move || {
        let done = shown.bytes.load(Ordering::Relaxed);
        ("restoring".to_string(), Some((done, shown.total_bytes.load(Ordering::Relaxed))))
    });
    let started = std::time::Instant::now();
    let summary = restore::restore(reader, entries, &opts, &progress);
    drop(ticker);
    let summary = summary?;
    for e in &summary.errors {
        eprintln!("gumvault: error: {e}");
    }
    for s in &summary.skipped {
        eprintln!("gumvault: note: skipped {s}");
    }
    let target = &opts.target;
    if g.json {
        println!("{}", json!({ "snapshot_id": entry.id.to_hex(), "target": target, "summary": summary }));
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} symlinks, {} in {}",
            entry.id.short(),
            target.display(),
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

/// `restore --source NAME --to-postgres URL`: the database onto a server (created there with its roles when
/// missing), the dump loaded in one transaction.
fn to_postgres(
    g: &Context,
    reader: &BlobReader<'_>,
    entry: &SnapshotEntry,
    a: &RestoreArgs,
    url: &str,
) -> anyhow::Result<i32> {
    let secret = crate::config::Secret::new(url);
    let child_env = g.child_env().withholding(secret.env_name());
    let conn = PgConn::parse(&secret.resolve()?)?.with_child_env(child_env);
    let source = a.source.as_deref().unwrap_or_default().trim_matches('/');
    let tree = &entry.snapshot.tree;
    let (path, node, format) = crate::sources::test_restore::find_dump(reader, tree, source)?;
    let record = pg_target::read_record(crate::sources::test_restore::find_record(reader, tree, source)?)?;
    let opts = TargetOptions {
        roles: a.roles.map(|r| match r {
            RolesArg::Create => RolePolicy::Create,
            RolesArg::Skip => RolePolicy::Skip,
        }),
        owner: match (&a.owner, a.no_owner) {
            (Some(r), _) => OwnerPolicy::Role(r.clone()),
            (None, true) => OwnerPolicy::Connecting,
            (None, false) => OwnerPolicy::Recorded,
        },
        clean: a.clean,
    };
    let started = std::time::Instant::now();
    let outcome = pg_target::restore(&conn, record.as_ref(), &opts, |target, rules| {
        pg_load::load_dump_with(target, format, rules, |w| {
            restore::dump(reader, &node, &path, w, "the database restore")
        })
    })?;
    for n in &outcome.notes {
        eprintln!("gumvault: note: {n}");
    }
    if g.json {
        let mut v = json!({ "snapshot_id": entry.id.to_hex(), "dump": path });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), serde_json::to_value(&outcome)?) {
            obj.extend(more);
        }
        println!("{v}");
    } else if !g.quiet {
        print_postgres(entry, &path, &outcome, record.is_some(), started.elapsed().as_secs_f64());
    }
    Ok(exit::OK)
}

/// What `--to-postgres` did, for a person.
fn print_postgres(entry: &SnapshotEntry, path: &str, o: &pg_target::TargetOutcome, recorded: bool, secs: f64) {
    let names = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    if recorded {
        println!(
            "roles created: {}; already there (left as they were): {}",
            names(&o.roles_created),
            names(&o.roles_existing)
        );
        if !o.roles_missing.is_empty() {
            println!("roles missing on the server (not created): {}", names(&o.roles_missing));
        }
    }
    for t in &o.tablespaces_created {
        println!("created tablespace {t}");
    }
    if o.database_created {
        println!("created database {} (owner {})", o.database, o.owner.as_deref().unwrap_or("?"));
    }
    println!(
        "restored {path} of snapshot {} into {} ({} in {})",
        entry.id.short(),
        o.database,
        format::bytes(o.bytes),
        format::duration(secs)
    );
}

/// `restore --source NAME --to-s3 URL`: writes the source's files back as objects; exit 12 when some could not be.
fn to_s3(
    g: &Context,
    reader: &BlobReader<'_>,
    entry: &SnapshotEntry,
    entries: &[restore::Entry],
    url: &str,
    a: &RestoreArgs,
) -> anyhow::Result<i32> {
    if entries.is_empty() {
        anyhow::bail!("nothing in snapshot {} matches the --include patterns", entry.id.short());
    }
    let total: u64 = entries.iter().filter(|e| e.node.kind == NodeKind::File).map(|e| e.node.size).sum();
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let shown = progress.clone();
    let ticker = Ticker::start(g.quiet || g.json, move || {
        ("uploading".to_string(), Some((shown.load(Ordering::Relaxed), total)))
    });
    let started = std::time::Instant::now();
    let done = crate::sources::s3::restore_to_bucket(reader, entries, url, a.overwrite, a.concurrency, &progress);
    drop(ticker);
    let done = done?;
    for e in &done.errors {
        eprintln!("gumvault: error: {e}");
    }
    if g.json {
        println!("{}", json!({ "snapshot_id": entry.id.to_hex(), "bucket": url, "summary": done }));
    } else if !g.quiet {
        println!(
            "restored {} objects ({}) of snapshot {} to {url} in {}",
            done.objects,
            format::bytes(done.bytes),
            entry.id.short(),
            format::duration(started.elapsed().as_secs_f64())
        );
    }
    if !done.errors.is_empty() {
        eprintln!(
            "gumvault: restore incomplete: {} objects could not be restored (see above; `gumvault check` says \
             more); every other object was",
            done.errors.len()
        );
        return Ok(exit::DATA_ERROR);
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  gumvault dump latest /db.sql | psql mydb
  gumvault dump --tag db latest db.sql > db.sql")]
pub(crate) struct DumpArgs {
    /// Snapshot id (8+ hex characters) or `latest`
    pub snapshot: String,
    /// Path of the file inside the snapshot
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub(crate) fn dump(g: &Context, a: &DumpArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let entry = a.filter.pick(&s.catalog, &a.snapshot)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let node = restore::find(&reader, &entry.snapshot.tree, &a.path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let dumped = restore::dump(&reader, &node, &a.path, &mut out, "standard output");
    super::report::print_region_events(&s.repo);
    dumped?;
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub(crate) struct LsArgs {
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

pub(crate) fn ls(g: &Context, a: &LsArgs) -> anyhow::Result<i32> {
    let mut s = g.open()?;
    let entry = a.filter.pick(&s.catalog, &a.snapshot)?;
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let prefix = a.path.as_deref().map(|p| format!("/{}", p.trim_matches('/'))).filter(|p| p != "/");
    let includes = match &prefix {
        Some(p) => Some(PathGlobs::new(std::slice::from_ref(p), "include")?),
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
        if g.json {
            let line = json!({
                "path": e.path.display().to_string(), "type": n.kind, "mode": format!("{:o}", n.mode), "size": n.size,
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
            let path = format::escaped(e.path.as_os_str().as_bytes());
            writeln!(out, "{kind}{:04o} {:>6} {:>6} {:>12} {t} {path}", n.mode, n.uid, n.gid, n.size)?;
        } else {
            writeln!(out, "{}", format::escaped(e.path.as_os_str().as_bytes()))?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

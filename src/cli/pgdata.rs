//! `restore --source NAME --to-pgdata DIR [--at TIME] [--timeline N]`: a base backup laid out as a data directory
//! that recovers through `gumvault wal-fetch` when PostgreSQL starts on it; and the `restore_command` that calls
//! this very binary with what it needs to open the repository — never the password itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use super::progress::Ticker;
use crate::exit;
use crate::format::snapshot::BaseBackup;
use crate::ops::restore::{self, RestoreProgress};
use crate::ops::select::{self, BaseBackupQuery};
use crate::repo::catalog::SnapshotEntry;
use crate::repo::reader::BlobReader;
use crate::repo::session::Session;
use crate::sources::physical::pgdata::{self, OsUser, Recovery};

/// The flags of `restore --to-pgdata`.
#[derive(clap::Args, Debug)]
pub(crate) struct PgdataArgs {
    /// Lay a postgres-physical source's base backup out as a data directory (new or empty) that recovers on start
    #[arg(long, value_name = "DIR", requires = "source", conflicts_with_all = ["target", "to_postgres", "to_s3", "includes", "overwrite"])]
    pub to_pgdata: Option<PathBuf>,
    /// With --to-pgdata: recover along this timeline (default: the latest); base backups of later ones are skipped
    #[arg(long, value_name = "N", requires = "to_pgdata")]
    pub timeline: Option<u32>,
    /// With --to-pgdata, as root: the OS user PostgreSQL runs as, who gets every file (default: postgres)
    #[arg(long, value_name = "USER", requires = "to_pgdata")]
    pub owner_user: Option<String>,
}

/// `restore SNAPSHOT --source SOURCE [FILTERS] --to-pgdata DIR`.
pub(crate) fn to_pgdata(
    g: &Context,
    (snapshot, source, filter): (&str, &str, &FilterArgs),
    a: &PgdataArgs,
    s: &mut Session,
    dir: &Path,
) -> anyhow::Result<i32> {
    let source = source.trim_matches('/').to_string();
    let mut filter = filter.clone();
    let at = filter.at_time()?;
    filter.at = None;
    let query = BaseBackupQuery { source: source.clone(), at, timeline: a.timeline };
    let (entry, backup) = select::base_backup(&s.catalog, snapshot, &filter.filter(), &query)?;
    let owner = OsUser::for_restore(a.owner_user.as_deref())?;
    // Before anything is written: a data directory that cannot fetch its WAL is no restore.
    let restore_command = wal_fetch_command(g)?;
    pgdata::prepare_dir(dir)?;
    let started = std::time::Instant::now();
    let reader = BlobReader::new(&s.repo, &mut s.catalog);
    let root = restore::source_tree(&reader, &entry, &source)?;
    let entries = restore::Walker::new(&reader, &root, None)?;
    let progress = Arc::new(RestoreProgress::default());
    let shown = progress.clone();
    let ticker = Ticker::start(g.quiet || g.json, move || {
        let done = shown.bytes.load(Ordering::Relaxed);
        ("restoring".to_string(), Some((done, shown.total_bytes.load(Ordering::Relaxed))))
    });
    let summary = pgdata::lay_out(&reader, entries, dir, owner.as_ref(), &progress);
    drop(ticker);
    let summary = summary?;
    if !summary.errors.is_empty() {
        for e in &summary.errors {
            eprintln!("gumvault: error: {e}");
        }
        eprintln!(
            "gumvault: restore incomplete: {} problems (see above); {} is no usable data directory and was not \
             set up for recovery",
            summary.errors.len(),
            dir.display()
        );
        return Ok(exit::DATA_ERROR);
    }
    let origin = format!("snapshot {}, source {source}, base backup ended {}", entry.id.short(), backup.stop_time);
    let recovery = Recovery { restore_command, target_time: at, timeline: a.timeline, origin };
    pgdata::configure(dir, &recovery, owner.as_ref())?;
    let done = Restored { entry: &entry, backup: &backup, dir, owner: owner.as_ref(), recovery: &recovery };
    print_restored(g, &done, &summary, started.elapsed().as_secs_f64());
    Ok(exit::OK)
}

/// What was restored, for the report.
struct Restored<'a> {
    entry: &'a SnapshotEntry,
    backup: &'a BaseBackup,
    dir: &'a Path,
    owner: Option<&'a OsUser>,
    recovery: &'a Recovery,
}

fn print_restored(g: &Context, r: &Restored<'_>, summary: &restore::RestoreSummary, secs: f64) {
    let target = r.recovery.target_time.map(|t| t.to_string());
    let timeline = r.recovery.timeline.map(|t| t.to_string()).unwrap_or_else(|| "latest".into());
    if g.json {
        println!(
            "{}",
            json!({
                "snapshot_id": r.entry.id.to_hex(), "pgdata": r.dir, "base_backup": r.backup,
                "recovery_target_time": target, "recovery_target_timeline": timeline,
                "owner": r.owner.map(|o| &o.name), "summary": summary,
            })
        );
        return;
    }
    if g.quiet {
        return;
    }
    let b = r.backup;
    println!(
        "restored the base backup of {} from snapshot {} (PostgreSQL {}, timeline {}, ended {}) into {}: {} files, {} in {}",
        b.source,
        r.entry.id.short(),
        b.pg_version / 10000,
        b.timeline,
        format::local_time(&b.stop_time),
        r.dir.display(),
        summary.files,
        format::bytes(summary.bytes),
        format::duration(secs)
    );
    match &r.recovery.target_time {
        Some(t) => println!("recovery: replays the archived WAL up to {} ({t}), then promotes", format::local_time(t)),
        None => println!("recovery: replays every archived WAL, then promotes"),
    }
    println!("timeline: {timeline}; WAL comes from `gumvault wal-fetch` (restore_command in postgresql.auto.conf)");
    let user = r.owner.map(|o| format!(" as the OS user {}", o.name)).unwrap_or_default();
    println!("next: start PostgreSQL {} on it{user}:  pg_ctl -D {} start", b.pg_version / 10000, r.dir.display());
}

/// The `restore_command` of a restored cluster: this binary (absolute path), the config file or the
/// repository flags given to this command, a way to the password that works without this shell's environment
/// (a file or a command, never the password), then `wal-fetch %f %p`. Refuses when the password came only from
/// the environment, which the server does not have.
pub(crate) fn wal_fetch_command(g: &Context) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot tell where the gumvault binary is")?;
    let mut args: Vec<String> = vec![exe.to_string_lossy().into_owned()];
    if let Some(cfg) = g.config_path() {
        args.extend(["--config".into(), absolute(cfg)?]);
    }
    if let Some(repo) = &g.args.repo {
        args.extend(["--repo".into(), repo.clone()]);
    }
    for r in &g.args.regions {
        args.extend(["--region".into(), format!("{}={}", r.name, r.url)]);
    }
    for p in &g.args.prefer_regions {
        args.extend(["--prefer-region".into(), p.clone()]);
    }
    if g.args.single_region {
        args.push("--single-region".into());
    }
    args.extend(password_flags(g)?);
    let mut cmd: Vec<String> = args.iter().map(|a| shell_words::quote(a).into_owned()).collect();
    cmd.extend(["wal-fetch".into(), "%f".into(), "%p".into()]);
    Ok(cmd.join(" "))
}

/// How `wal-fetch` gets the password: the password file or command given to this command, else the config
/// file's (`--config` is passed already).
fn password_flags(g: &Context) -> anyhow::Result<Vec<String>> {
    if let Some(f) = &g.args.password_file {
        return Ok(vec!["--password-file".into(), absolute(f)?]);
    }
    if let Some(c) = &g.args.password_command {
        return Ok(vec!["--password-command".into(), c.clone()]);
    }
    let repo = g.config.as_ref().map(|c| &c.repository);
    if repo.is_some_and(|r| r.password_command.is_some() || r.password.as_ref().is_some_and(|p| p.env_name().is_none()))
    {
        return Ok(Vec::new());
    }
    let from_env = repo.and_then(|r| r.password.as_ref()).and_then(|p| p.env_name()).unwrap_or("GUMVAULT_PASSWORD");
    bail!(
        "the restored server's restore_command (gumvault wal-fetch) must find the repository password without this \
         shell's environment, and the password is never written into the data directory; {from_env} reaches only \
         this command. Put the password in a file the PostgreSQL user can read and name it: \
         `repository.password = \"file:/etc/gumvault/password\"` in the config file (with --config), or \
         --password-file FILE (GUMVAULT_PASSWORD_FILE), or use a password command (repository.password_command)"
    )
}

fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs: PathBuf = std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?;
    Ok(abs.to_string_lossy().into_owned())
}

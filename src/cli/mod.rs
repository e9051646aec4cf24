//! The command line: clap definitions, one module per group of commands, human and JSON output.

mod backup;
mod check;
mod daemon;
mod format;
mod inspect;
mod maintenance;
mod password;
mod progress;
mod regions;
mod repair;
mod repo_cmds;
mod restore;
mod run;
mod status;
mod test_restore;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::exit;
use crate::ops::select::Filter;
use crate::repo::Repository;
use crate::repo::catalog::{Catalog, default_cache_dir};
use crate::storage::{RegionSpec, Storage};
use password::PasswordSource;

const AFTER_HELP: &str = "\
Environment:
  GUMVAULT_CONFIG            the config file (instead of --config)
  GUMVAULT_REPO              repository URL (instead of -r)
  GUMVAULT_PASSWORD          the password itself
  GUMVAULT_PASSWORD_FILE     a file holding the password
  GUMVAULT_PASSWORD_COMMAND  a shell command that prints the password
  GUMVAULT_CACHE_DIR         where the local catalog lives (default: ~/.cache/gumvault)

Quick start:
  export GUMVAULT_REPO=/var/backups/gumvault GUMVAULT_PASSWORD_FILE=/etc/gumvault.pass
  gumvault init
  gumvault backup /etc /srv/app --exclude node_modules
  pg_dump mydb | gumvault backup --stdin --stdin-filename db.sql --tag db
  gumvault snapshots
  gumvault restore latest --target /tmp/restore
  gumvault dump --tag db latest /db.sql | psql mydb

Exit codes: 0 ok, 1 error, 2 bad usage, 3 backup incomplete (some inputs unreadable), 4 source failed
(no snapshot written), 5 test restore failed its verification, 6 backup degraded (saved in min_regions but not
in every region: run `gumvault sync`), 8/9 status warning/critical, 10 wrong password, 11 no repository, 12 corrupt or missing data,
13 repository busy with maintenance (another prune or forget holds the lease).";

/// gumvault — encrypted, deduplicating backups of a web application's stack.
#[derive(Parser, Debug)]
#[command(name = "gumvault", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Commands,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The config file (repository, password, jobs); flags and environment variables override it
    #[arg(short = 'c', long, env = "GUMVAULT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository URL: a path, file:///abs/path, s3://bucket/prefix?endpoint=URL&region=R, or memory://
    #[arg(short = 'r', long = "repo", env = "GUMVAULT_REPO", global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the password from this file
    #[arg(long, env = "GUMVAULT_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use what it prints as the password
    #[arg(long, env = "GUMVAULT_PASSWORD_COMMAND", global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// A region as NAME=URL (repeatable). With `init`: the regions of the new repository, each a complete copy.
    /// Otherwise: replaces the stored URL of that region for this command
    #[arg(long = "region", value_name = "NAME=URL", global = true, value_parser = parse_region)]
    pub regions: Vec<RegionSpec>,
    /// Regions that must hold every new object before a write counts as done (default: all; `init` stores it)
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_regions: Option<u32>,
    /// Read from these regions first, in this order (repeatable; default: the order given at init)
    #[arg(long = "prefer-region", value_name = "NAME", global = true)]
    pub prefer_regions: Vec<String>,
    /// Use only the location given with -r/--repo, not the other regions the repository lists (recovery)
    #[arg(long, global = true)]
    pub single_region: bool,
    /// Directory of the local catalog cache
    #[arg(long, env = "GUMVAULT_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and warnings; no progress bar
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Create a new repository
    Init(repo_cmds::InitArgs),
    /// Back up files and directories, standard input, or a command's output
    Backup(backup::BackupArgs),
    /// Back up every source of a job from the config file into one snapshot
    Run(run::RunArgs),
    /// Restore a job's newest database dump into a scratch database and run verification queries
    TestRestore(test_restore::TestRestoreArgs),
    /// Health of every job: last backup, age, next backup, last check and test restore
    Status(status::StatusArgs),
    /// Run every job and maintenance task on its schedule (and serve the status with --listen)
    Daemon(daemon::DaemonArgs),
    /// Serve /status, /metrics, /healthz and a dashboard over HTTP (read-only)
    Serve(status::ServeArgs),
    /// Print crontab lines or systemd units for the configured jobs
    Schedule(daemon::ScheduleArgs),
    /// Alerts: send a test alert
    #[command(subcommand)]
    Alert(daemon::AlertCommand),
    /// List snapshots
    Snapshots(repo_cmds::SnapshotsArgs),
    /// Restore a snapshot (or part of it) into a directory
    Restore(restore::RestoreArgs),
    /// Write one file of a snapshot to standard output
    Dump(restore::DumpArgs),
    /// List the files of a snapshot
    Ls(restore::LsArgs),
    /// Remove snapshots by a retention policy (or by id)
    Forget(maintenance::ForgetArgs),
    /// Reclaim the space of data no snapshot needs (two-phase, safe beside backups)
    Prune(maintenance::PruneCmd),
    /// Verify the repository: structure, and with --read-data every byte
    Check(check::CheckArgs),
    /// Copy missing or damaged objects between regions until they agree
    Sync(regions::SyncArgs),
    /// Show each region's health: reachable, objects, size, what it lacks
    Regions(regions::RegionsArgs),
    /// Show what changed between two snapshots
    Diff(inspect::DiffArgs),
    /// Sizes and deduplication of a snapshot or the whole repository
    Stats(inspect::StatsArgs),
    /// Rebuild the index from packs, or rewrite snapshots that reference lost data
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Manage the passwords that open the repository
    #[command(subcommand)]
    Key(repo_cmds::KeyCommand),
    /// Manage the local catalog cache
    #[command(subcommand)]
    Catalog(repo_cmds::CatalogCommand),
}

/// Snapshot filters shared by snapshots, restore, dump and ls.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Point in time: with `latest`, pick the newest matching snapshot taken at or before it
    /// (2026-11-20T14:00:00Z, '2026-11-20 14:00' local time, '2 days ago')
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter { hosts: self.hosts.clone(), tags: self.tags.clone(), paths: self.paths.clone() }
    }

    /// The point in time given with --at, if any.
    pub fn at_time(&self) -> anyhow::Result<Option<jiff::Timestamp>> {
        let tz = jiff::tz::TimeZone::system();
        Ok(self.at.as_deref().map(|t| crate::time::parse_time(t, crate::time::now(), &tz)).transpose()?)
    }

    /// Resolves a snapshot selector (`latest`, an id prefix) under these filters and --at.
    pub fn pick(&self, catalog: &Catalog, selector: &str) -> anyhow::Result<crate::repo::catalog::SnapshotEntry> {
        match self.at_time()? {
            Some(at) if selector == "latest" => Ok(crate::ops::select::at(catalog, at, &self.filter())?),
            Some(_) => anyhow::bail!("--at picks a snapshot by time; give `latest` (or nothing) instead of an id"),
            None => Ok(crate::ops::select::resolve(catalog, selector, &self.filter())?),
        }
    }
}

/// An open repository and its synced catalog.
pub struct Session {
    pub repo: Repository,
    pub catalog: Catalog,
}

impl GlobalArgs {
    /// The config file, when one is given with --config or GUMVAULT_CONFIG.
    pub fn load_config(&self) -> anyhow::Result<Option<Config>> {
        Ok(self.config.as_deref().map(Config::load).transpose()?)
    }

    /// The config file, which this command needs.
    pub fn require_config(&self) -> anyhow::Result<Config> {
        self.load_config()?.ok_or_else(|| {
            anyhow::anyhow!("this command needs a config file: pass --config FILE or set GUMVAULT_CONFIG (example: docs/gumvault.example.toml)")
        })
    }

    /// The repository URL: -r/--repo or GUMVAULT_REPO, else the config file's `repository.url`.
    fn url(&self) -> anyhow::Result<String> {
        if let Some(r) = &self.repo {
            return Ok(r.clone());
        }
        if let Some(url) = self.load_config()?.and_then(|c| c.repository.url) {
            return Ok(url);
        }
        anyhow::bail!(
            "no repository given: pass -r/--repo URL, set GUMVAULT_REPO, or set repository.url in the config file"
        )
    }

    fn password_source(&self) -> anyhow::Result<PasswordSource> {
        let config = self.load_config()?.map(|c| c.repository);
        Ok(PasswordSource {
            file: self.password_file.clone(),
            command: self.password_command.clone().or_else(|| config.as_ref().and_then(|c| c.password_command.clone())),
            config: config.and_then(|c| c.password),
        })
    }

    fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| self.load_config().ok().flatten().and_then(|c| c.repository.cache_dir))
            .unwrap_or_else(default_cache_dir)
    }

    /// Region overrides: --region flags, then the config file's `repository.regions`.
    pub fn region_specs(&self) -> anyhow::Result<Vec<RegionSpec>> {
        let mut specs = self.regions.clone();
        if let Some(c) = self.load_config()? {
            for r in c.repository.regions {
                if !specs.iter().any(|s| s.name == r.name) {
                    specs.push(RegionSpec { name: r.name, url: r.url });
                }
            }
        }
        Ok(specs)
    }

    /// --min-regions, else the config file's `repository.min_regions`.
    pub fn min_regions(&self) -> anyhow::Result<Option<u32>> {
        Ok(self.min_regions.or(self.load_config()?.and_then(|c| c.repository.min_regions)))
    }

    /// Opens the repository (asking for the password) without touching the catalog: from the URL given, then
    /// every region its config lists.
    pub fn open_repo(&self) -> anyhow::Result<Repository> {
        let url = match self.url() {
            Ok(u) => u,
            Err(e) => match self.region_specs()?.first() {
                Some(r) => r.url.clone(),
                None => return Err(e),
            },
        };
        let storage = Storage::open_url(&url)?;
        let password = self.password_source()?.get(false)?;
        let mut repo = Repository::open(storage, &password)?;
        let min = self.min_regions()?.map(|n| n as usize);
        if self.single_region {
            if let Some(n) = min.filter(|n| *n > 1) {
                anyhow::bail!("--min-regions {n} cannot be met with --single-region");
            }
            repo.use_single_region()?;
        } else {
            let mut prefer = self.prefer_regions.clone();
            if prefer.is_empty() {
                prefer = self.load_config()?.map(|c| c.repository.prefer_regions).unwrap_or_default();
            }
            repo.connect_regions(&self.region_specs()?, min, &prefer)?;
        }
        Ok(repo)
    }

    /// Opens the repository and brings its catalog up to date.
    pub fn open(&self) -> anyhow::Result<Session> {
        let repo = self.open_repo()?;
        let catalog = Catalog::open(&self.cache_dir(), &repo)?;
        for w in &catalog.warnings {
            eprintln!("gumvault: warning: {w}");
        }
        Ok(Session { repo, catalog })
    }
}

/// Parses `NAME=URL`.
fn parse_region(s: &str) -> Result<RegionSpec, String> {
    let (name, url) = s.split_once('=').ok_or("expected NAME=URL, e.g. eu=s3://bucket/prefix?region=eu-west-1")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("invalid region name {name:?} (letters, digits, '-' and '_')"));
    }
    crate::storage::Location::parse(url).map_err(|e| e.to_string())?;
    Ok(RegionSpec { name: name.to_string(), url: url.to_string() })
}

/// Prints what the storage had to work around: regions that failed, copies that were bad or missing.
pub(crate) fn print_region_events(repo: &Repository) {
    for e in repo.take_events() {
        eprintln!("gumvault: region: {e}");
    }
}

/// Remembers damaged copies in the catalog, so the next `gumvault sync` replaces them even without --read-data.
pub(crate) fn remember_bad_copies(s: &Session) {
    let bad = s.repo.bad_copies();
    if bad.is_empty() {
        return;
    }
    let mut known: Vec<(String, String)> =
        s.catalog.meta(BAD_COPIES_KEY).ok().flatten().and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
    known.extend(bad);
    known.sort();
    known.dedup();
    for (region, path) in &known {
        eprintln!("gumvault: region {region} holds a damaged copy of {path}; `gumvault sync` replaces it");
    }
    if let Ok(v) = serde_json::to_string(&known) {
        let _ = s.catalog.set_meta(BAD_COPIES_KEY, Some(&v));
    }
}

/// False when the daemon runs this command and records the run itself (`GUMVAULT_RECORD_RUNS=0`).
pub(crate) fn records_runs() -> bool {
    std::env::var("GUMVAULT_RECORD_RUNS").map(|v| v != "0").unwrap_or(true)
}

/// Catalog key of the damaged copies seen so far.
pub(crate) const BAD_COPIES_KEY: &str = "bad_copies";

/// Parses arguments, runs the command, prints errors; returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    match dispatch(&cli) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Commands::Init(a) => repo_cmds::init(g, a),
        Commands::Backup(a) => backup::run(g, a),
        Commands::Run(a) => run::run(g, a),
        Commands::TestRestore(a) => test_restore::run(g, a),
        Commands::Status(a) => status::run(g, a),
        Commands::Daemon(a) => daemon::run(g, a),
        Commands::Serve(a) => status::serve(g, a),
        Commands::Schedule(a) => daemon::schedule(g, a),
        Commands::Alert(c) => daemon::alert_cmd(g, c),
        Commands::Snapshots(a) => repo_cmds::snapshots(g, a),
        Commands::Restore(a) => restore::restore(g, a),
        Commands::Dump(a) => restore::dump(g, a),
        Commands::Ls(a) => restore::ls(g, a),
        Commands::Check(a) => check::run(g, a),
        Commands::Repair(c) => repair::run(g, c),
        Commands::Sync(a) => regions::sync(g, a),
        Commands::Regions(a) => regions::regions(g, a),
        Commands::Diff(a) => inspect::diff(g, a),
        Commands::Stats(a) => inspect::stats(g, a),
        Commands::Forget(a) => maintenance::forget(g, a),
        Commands::Prune(a) => maintenance::prune_cmd(g, a),
        Commands::Key(k) => repo_cmds::key(g, k),
        Commands::Catalog(c) => repo_cmds::catalog(g, c),
    }
}

/// Prints an error chain and picks its exit code. A closed pipe on standard output is not an error.
fn report(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return exit::OK;
        }
        if let Some(crate::Error::Io { source, .. }) = cause.downcast_ref::<crate::Error>()
            && source.kind() == std::io::ErrorKind::BrokenPipe
        {
            return exit::OK;
        }
    }
    eprintln!("gumvault: error: {err:#}");
    err.chain().find_map(|c| c.downcast_ref::<crate::Error>()).map(crate::Error::exit_code).unwrap_or(exit::ERROR)
}

//! The command line: clap definitions, one module per group of commands, human and JSON output.

mod backup;
mod check;
mod context;
mod daemon;
mod filter;
mod format;
mod inspect;
mod maintenance;
mod password;
mod pgdata;
mod progress;
mod protect;
mod regions;
mod repair;
mod repo_cmds;
mod report;
mod restore;
mod run;
mod status;
mod test_restore;
mod wal;

use clap::{Parser, Subcommand};

use crate::exit;
use context::{Context, GlobalArgs};

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
13 repository busy with maintenance (another prune or forget holds the lease), 14 storage full (disk or quota),
15 storage refused (permission denied, credentials), 16 wal-push: the file is already archived with different
content (nothing changed). wal-fetch: 1 the file is not in the archive, 200 it could not be fetched (PostgreSQL
aborts recovery).";

/// gumvault — encrypted, deduplicating backups of a web application's stack.
#[derive(Parser, Debug)]
#[command(name = "gumvault", version, about, long_about = None, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Commands {
    /// Create a new repository
    Init(repo_cmds::InitArgs),
    /// Back up files and directories, standard input, or a command's output
    Backup(backup::BackupArgs),
    /// Back up every source of a job from the config file into one snapshot
    Run(run::RunArgs),
    /// Restore a job's newest database dump (or base backup) into a scratch database (or cluster) and run its queries
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
    /// PostgreSQL's archive_command: archive a WAL file (%p) durably in the repository
    WalPush(wal::WalPushArgs),
    /// PostgreSQL's restore_command: fetch an archived WAL file (%f) to %p, verified
    WalFetch(wal::WalFetchArgs),
    /// S3 Object Lock: extend the locks of what the repository still needs
    #[command(subcommand)]
    Lock(protect::LockCommand),
    /// Print example IAM policies for a backup role (append-only) and a maintenance role
    #[command(subcommand)]
    Policy(protect::PolicyCommand),
}

impl Commands {
    /// True for the commands that only read the repository: the ones `--as-of` (a read-only view of the past)
    /// allows.
    fn only_reads(&self) -> bool {
        match self {
            Commands::Snapshots(_)
            | Commands::Restore(_)
            | Commands::Dump(_)
            | Commands::Ls(_)
            | Commands::Check(_)
            | Commands::Diff(_)
            | Commands::Stats(_)
            | Commands::Regions(_)
            | Commands::Policy(_)
            | Commands::WalFetch(_) => true,
            Commands::Sync(a) => a.into.is_some(),
            _ => false,
        }
    }
}

/// Parses arguments, runs the command, prints errors; returns the exit code.
///
/// `wal-fetch` never exits 1 or 2 for anything but a file that is not archived: PostgreSQL would take that for
/// the end of the archive and start up with WAL missing. A bad command line, a config file that does not load,
/// or a panic exit with [`exit::WAL_FETCH_FAILED`] instead.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() && std::env::args().skip(1).any(|a| a == "wal-fetch") {
                return exit::WAL_FETCH_FAILED;
            }
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    if !matches!(cli.command, Commands::WalFetch(_)) {
        return dispatch(&cli).unwrap_or_else(|err| report(&err));
    }
    match std::panic::catch_unwind(|| dispatch(&cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            report(&err);
            exit::WAL_FETCH_FAILED
        }
        Err(_) => exit::WAL_FETCH_FAILED,
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let g = &Context::new(&cli.global)?;
    if cli.global.as_of.is_some() && !cli.command.only_reads() {
        return Err(crate::Error::InvalidInput(format!(
            "{}; allowed with --as-of: snapshots, ls, restore, dump, check, diff, stats, regions, wal-fetch, and sync --into URL",
            crate::repo::lock::read_only_message()
        ))
        .into());
    }
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
        Commands::WalPush(a) => wal::push(g, a),
        Commands::WalFetch(a) => wal::fetch(g, a),
        Commands::Lock(c) => protect::lock(g, c),
        Commands::Policy(c) => protect::policy(g, c),
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
    eprintln!("gumvault: error: {}", chain(err));
    err.chain().find_map(|c| c.downcast_ref::<crate::Error>()).map(crate::Error::exit_code).unwrap_or(exit::ERROR)
}

/// The error and its causes, each once: a cause whose words the message already holds is not repeated.
fn chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

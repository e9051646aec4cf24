//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and `restore_command`. Both are quiet when they
//! succeed (PostgreSQL logs what they print); their exit codes are the protocol.

use std::path::PathBuf;

use clap::Args;

use super::context::Context;
use crate::exit;
use crate::ops::wal::{self, FetchOptions, FetchOutcome, LocalDir, PushOptions, WalTuning};

#[derive(Args, Debug)]
#[command(after_help = "In postgresql.conf (the repository and password come from the config file):
  archive_mode = on
  archive_command = 'gumvault --config /etc/gumvault.toml wal-push %p'
  archive_timeout = 60

Exit 0 only when the file is durable in min_regions regions. Pushing a file that is already archived with the
same content succeeds (a region that lacks it gets it); other content under the same name fails with exit 16 and
changes nothing. One run also archives other files waiting in archive_status (GUMVAULT_WAL_PUSH_AHEAD, default
8), and a later call for one of them is answered from the local spool without opening the repository.")]
pub(crate) struct WalPushArgs {
    /// The data directory (default: the working directory, where PostgreSQL runs the command; else $PGDATA)
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// The file to archive: PostgreSQL's %p (e.g. pg_wal/000000010000000000000002)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = "In the recovery settings (gumvault restore --to-pgdata writes them):
  restore_command = 'gumvault --config /etc/gumvault.toml wal-fetch %f %p'

Exit 0: the file was written to DEST, verified. Exit 1: the file is not in the archive (PostgreSQL ends recovery
there, or tries the next timeline). Exit 200: it could not be fetched (repository unreachable after retries,
wrong password, damaged copies); PostgreSQL then stops recovery instead of starting up with WAL missing. Once the
segment size is known, a run also fetches the next segments (GUMVAULT_WAL_FETCH_AHEAD, default 8) into a local
spool.")]
pub(crate) struct WalFetchArgs {
    /// The data directory being recovered (default: the working directory, where PostgreSQL runs the command;
    /// else $PGDATA)
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// The file to fetch: PostgreSQL's %f
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to write it: PostgreSQL's %p
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
}

pub(crate) fn push(g: &Context, a: &WalPushArgs) -> anyhow::Result<i32> {
    let opts = PushOptions {
        pgdata: a.pgdata.clone(),
        file: a.path.clone(),
        local: LocalDir::new(&g.cache_dir(), &g.open_options()?.url),
        tuning: WalTuning::from_env()?,
    };
    let report = wal::push(&opts, || g.open_repo_library(), crate::time::now())?;
    for w in &report.warnings {
        eprintln!("gumvault: warning: {w}");
    }
    for f in &report.ahead_failed {
        eprintln!("gumvault: note: not archived ahead: {f}");
    }
    if !report.lagging.is_empty() {
        eprintln!(
            "gumvault: warning: {} is archived, but regions {} missed it; run `gumvault sync`",
            report.file,
            report.lagging.join(", ")
        );
    }
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(exit::OK)
}

/// Any failure but the file's absence exits above 125, so PostgreSQL aborts recovery rather than ending it.
pub(crate) fn fetch(g: &Context, a: &WalFetchArgs) -> anyhow::Result<i32> {
    let outcome = (|| -> anyhow::Result<FetchOutcome> {
        let opts = FetchOptions {
            pgdata: a.pgdata.clone(),
            name: a.name.clone(),
            dest: a.dest.clone(),
            local: LocalDir::new(&g.cache_dir(), &g.open_options()?.url),
            tuning: WalTuning::from_env()?,
        };
        Ok(wal::fetch(&opts, || g.open_repo_library(), std::thread::sleep)?)
    })();
    match outcome {
        Ok(o) => {
            if g.json {
                println!("{}", serde_json::to_string(&o)?);
            }
            Ok(if o == FetchOutcome::Absent { exit::ERROR } else { exit::OK })
        }
        Err(e) => {
            eprintln!("gumvault: error: wal-fetch {}: {e:#}", a.name);
            Ok(exit::WAL_FETCH_FAILED)
        }
    }
}

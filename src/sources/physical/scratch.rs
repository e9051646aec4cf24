//! The test restore of a physical source: the newest base backup laid out in a scratch data directory that
//! recovers every archived WAL through `gumvault wal-fetch`, a PostgreSQL started on it (on a free loopback port,
//! its socket in the scratch directory, only local trust connections, no archiving), the wait until recovery has
//! ended, the job's verification queries, then the server stopped and the directory deleted whatever happened.
//! The time from the start of the restore until the database answered as a primary is the measured RTO.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::pgdata::{self, OsUser, Recovery};
use crate::children::ChildEnv;
use crate::config::VerifyQuery;
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::snapshot::BaseBackup;
use crate::ops::restore::{self, RestoreProgress};
use crate::repo::reader::BlobReader;
use crate::sources::pg_conn::PgConn;
use crate::sources::test_restore::{QueryResult, check_query};

/// How a physical test restore runs.
#[derive(Clone, Debug)]
pub struct ScratchOptions {
    /// The directory of `pg_ctl` and `psql` (the one of the source's pg_basebackup), else PATH.
    pub bin_dir: Option<PathBuf>,
    /// The OS user the scratch server runs as (when gumvault runs as root).
    pub os_user: Option<OsUser>,
    /// The database the queries run in.
    pub database: String,
    /// The role they run as.
    pub user: String,
    /// How long recovery may take.
    pub timeout: Duration,
    /// The `restore_command` of the scratch cluster.
    pub restore_command: String,
    /// The environment of pg_ctl and psql (no secrets of gumvault's).
    pub child_env: ChildEnv,
}

/// What a physical test restore found.
#[derive(Clone, Debug, Serialize)]
pub struct PhysicalReport {
    /// The snapshot whose base backup was restored.
    pub snapshot: Id,
    /// The base backup.
    pub base_backup: BaseBackup,
    /// Where the scratch cluster was (deleted afterwards).
    pub scratch_dir: PathBuf,
    /// The loopback port it listened on.
    pub port: u16,
    /// Bytes of files laid out.
    pub restored_bytes: u64,
    /// Seconds to lay the base backup out.
    pub restore_secs: f64,
    /// Seconds from starting PostgreSQL until recovery had ended.
    pub recovery_secs: f64,
    /// Seconds from the start of the restore until the database answered as a primary: the measured RTO.
    pub measured_rto_secs: f64,
    /// Seconds of the whole test restore, stopping and deleting included.
    pub duration_secs: f64,
    /// Each verification query's result.
    pub queries: Vec<QueryResult>,
    /// True if the cluster recovered and every query passed.
    pub ok: bool,
    /// Why it failed, when it failed before or outside the queries.
    pub error: Option<String>,
    /// Set when the scratch server could not be stopped or its directory removed.
    pub cleanup_error: Option<String>,
    /// The end of the scratch server's log, when recovery failed.
    pub log_tail: Option<String>,
}

/// Restores the base backup (the source's tree `root` of `snapshot`) into a scratch cluster, recovers it, runs
/// `queries`, and removes it.
pub fn run(
    reader: &BlobReader<'_>,
    (snapshot, root): (Id, Id),
    backup: &BaseBackup,
    opts: &ScratchOptions,
    queries: &[VerifyQuery],
) -> Result<PhysicalReport> {
    let started = Instant::now();
    let scratch = Scratch::new(opts)?;
    let mut report = PhysicalReport {
        snapshot,
        base_backup: backup.clone(),
        scratch_dir: scratch.dir.clone(),
        port: scratch.port,
        restored_bytes: 0,
        restore_secs: 0.0,
        recovery_secs: 0.0,
        measured_rto_secs: 0.0,
        duration_secs: 0.0,
        queries: Vec::new(),
        ok: false,
        error: None,
        cleanup_error: None,
        log_tail: None,
    };
    let outcome = scratch.recover(reader, &root, opts, &mut report, started).map(|conn| {
        report.queries = queries.iter().map(|q| check_query(&conn, q)).collect();
    });
    if outcome.is_err() {
        report.log_tail = Some(scratch.log_tail());
    }
    report.cleanup_error = scratch.remove(opts).err().map(|e| e.to_string());
    report.duration_secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            report.ok = report.queries.iter().all(|q| q.ok);
            if !report.ok {
                report.error = Some("a verification query failed".into());
            }
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    Ok(report)
}

/// The scratch directory: `data/` (the cluster), the socket, `hba.conf`, `log`.
struct Scratch {
    dir: PathBuf,
    port: u16,
}

impl Scratch {
    fn new(opts: &ScratchOptions) -> Result<Scratch> {
        let name = format!("gumvault-test-restore-{}", hex::encode(rand::random::<[u8; 4]>()));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir).map_err(|e| Error::io("create the scratch directory", &dir, e))?;
        let scratch = Scratch { dir, port: free_port()? };
        std::fs::set_permissions(&scratch.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io("chmod", &scratch.dir, e))?;
        if let Some(u) = &opts.os_user {
            std::os::unix::fs::lchown(&scratch.dir, Some(u.uid), Some(u.gid))
                .map_err(|e| Error::io("chown", &scratch.dir, e))?;
        }
        Ok(scratch)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Lays the backup out, starts the server and waits until recovery has ended; returns a connection to it.
    fn recover(
        &self,
        reader: &BlobReader<'_>,
        root: &Id,
        opts: &ScratchOptions,
        report: &mut PhysicalReport,
        started: Instant,
    ) -> Result<PgConn> {
        let owner = opts.os_user.as_ref();
        pgdata::prepare_dir(&self.data())?;
        let entries = restore::Walker::new(reader, root, None)?;
        let summary = pgdata::lay_out(reader, entries, &self.data(), owner, &RestoreProgress::default())?;
        if let Some(first) = summary.errors.first() {
            return Err(Error::InvalidInput(format!("{} paths could not be restored: {first}", summary.errors.len())));
        }
        report.restored_bytes = summary.bytes;
        let recovery = Recovery {
            restore_command: opts.restore_command.clone(),
            target_time: None,
            timeline: None,
            origin: format!("test restore of snapshot {}", report.snapshot.short()),
        };
        pgdata::configure(&self.data(), &recovery, owner)?;
        self.write_server_files(owner)?;
        report.restore_secs = started.elapsed().as_secs_f64();
        self.pg_ctl(opts, &["start", "-W"])?;
        let conn = self.conn(opts)?;
        self.wait_recovered(&conn, opts.timeout)?;
        report.measured_rto_secs = started.elapsed().as_secs_f64();
        report.recovery_secs = report.measured_rto_secs - report.restore_secs;
        Ok(conn)
    }

    /// Only local trust connections (the socket is in the private scratch directory), and a postgresql.conf
    /// when the cluster kept its configuration elsewhere (as Debian's do).
    fn write_server_files(&self, owner: Option<&OsUser>) -> Result<()> {
        let files = [
            (self.dir.join("hba.conf"), "local all all trust\n"),
            (self.dir.join("ident.conf"), ""),
            (self.data().join("postgresql.conf"), "# made by gumvault test-restore: the backup held none\n"),
        ];
        for (path, text) in files {
            if path.ends_with("postgresql.conf") && std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
            if let Some(u) = owner {
                std::os::unix::fs::lchown(&path, Some(u.uid), Some(u.gid)).map_err(|e| Error::io("chown", &path, e))?;
            }
        }
        Ok(())
    }

    /// Runs pg_ctl on the scratch cluster (as its OS user) with the scratch settings.
    fn pg_ctl(&self, opts: &ScratchOptions, args: &[&str]) -> Result<()> {
        let settings = format!(
            "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c hba_file='{}' -c ident_file='{}' -c archive_mode=off \
             -c hot_standby=off",
            self.port,
            self.dir.display(),
            self.dir.join("hba.conf").display(),
            self.dir.join("ident.conf").display()
        );
        let mut cmd = self.command(opts, "pg_ctl");
        cmd.arg("-D").arg(self.data()).args(["-o", &settings, "-l"]).arg(self.dir.join("log")).args(args);
        let out = cmd.output().map_err(|e| Error::SourceFailed(format!("cannot run pg_ctl: {e}")))?;
        if !out.status.success() {
            return Err(Error::SourceFailed(format!(
                "pg_ctl {} failed ({}): {}",
                args.first().copied().unwrap_or_default(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// A client program of the configured directory, run as the scratch server's OS user with that user's
    /// home (its `gumvault wal-fetch` keeps its cache there).
    fn command(&self, opts: &ScratchOptions, program: &str) -> Command {
        let path = opts.bin_dir.as_ref().map(|d| d.join(program)).unwrap_or_else(|| PathBuf::from(program));
        let mut cmd = opts.child_env.command(path);
        cmd.stdin(Stdio::null()).current_dir(&self.dir);
        if let Some(u) = &opts.os_user {
            std::os::unix::process::CommandExt::uid(&mut cmd, u.uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, u.gid);
            cmd.env("HOME", &u.home).env("USER", &u.name).env("LOGNAME", &u.name).env_remove("GUMVAULT_CACHE_DIR");
        }
        cmd
    }

    fn conn(&self, opts: &ScratchOptions) -> Result<PgConn> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let url = format!(
            "postgresql://{}@localhost/{}?host={}&port={}",
            enc(&opts.user),
            enc(&opts.database),
            enc(&self.dir.to_string_lossy()),
            self.port
        );
        Ok(PgConn::parse(&url)?.with_bin_dir(opts.bin_dir.clone()).with_child_env(opts.child_env.clone()))
    }

    /// Polls until the server answers as a primary: it started, replayed the WAL and promoted (with hot_standby
    /// off it takes no connection before).
    fn wait_recovered(&self, conn: &PgConn, timeout: Duration) -> Result<()> {
        let waiting = Instant::now();
        let deadline = waiting + timeout;
        loop {
            let last = match conn.query("SELECT pg_is_in_recovery()") {
                Ok(rows) if rows.first().and_then(|r| r.first()).is_some_and(|v| v == "f") => return Ok(()),
                Ok(_) => "still in recovery".to_string(),
                Err(e) => e.to_string(),
            };
            if !self.data().join("postmaster.pid").exists() && waiting.elapsed() > WARMUP {
                return Err(Error::SourceFailed(format!("the scratch server stopped during recovery ({last})")));
            }
            if Instant::now() > deadline {
                return Err(Error::SourceFailed(format!(
                    "recovery did not end within {} s ({last}); raise test_restore.recovery_timeout",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server (immediately: the cluster is thrown away) and deletes the scratch directory.
    fn remove(&self, opts: &ScratchOptions) -> Result<()> {
        let stopped = if self.data().join("postmaster.pid").exists() {
            self.pg_ctl(opts, &["stop", "-m", "immediate", "-w"])
        } else {
            Ok(())
        };
        let removed = std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io("remove", &self.dir, e));
        stopped.and(removed)
    }
}

/// Time a server gets to write its postmaster.pid before its absence means it died.
const WARMUP: Duration = Duration::from_secs(5);

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("find a free port on", "127.0.0.1", e))?;
    Ok(l.local_addr().map_err(|e| Error::io("find a free port on", "127.0.0.1", e))?.port())
}

/// The directory of a source's client programs.
pub fn bin_dir_of(pg_basebackup: Option<&Path>) -> Option<PathBuf> {
    pg_basebackup.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()).map(Path::to_path_buf)
}

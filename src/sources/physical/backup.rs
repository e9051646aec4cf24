//! The `postgres-physical` source: `pg_basebackup -Ft -D - -c fast` streamed as tar into the source's directory
//! (file by file, cut by the `stream` profile), and the [`BaseBackup`] that tells recovery where its WAL starts
//! and ends.

use std::process::Command;

use super::control::{self, Lsn};
use super::tar_stream::{self, Kept};
use crate::config::{PhysicalSource, WalMode};
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::snapshot::BaseBackup;
use crate::format::tree::Tree;
use crate::ops::backup::context::BackupContext;
use crate::ops::backup::source::{JobSource, Profile};
use crate::sources::pg_conn::PgConn;
use crate::sources::process;

/// What the server says about itself before the backup.
struct Server {
    /// `server_version_num`.
    version_num: u32,
    /// `wal_segment_size` in bytes.
    segment_size: Option<u64>,
}

impl JobSource for PhysicalSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres-physical"
    }

    fn optional(&self) -> bool {
        self.optional
    }

    fn profile(&self) -> Profile {
        Profile::Stream
    }

    fn save(&self, ctx: &BackupContext<'_, '_>, parent: Option<&Tree>) -> Result<Id> {
        let conn =
            PgConn::from_physical(self).map_err(Error::into_source_failure)?.with_child_env(ctx.child_env.clone());
        let server = server(&conn)?;
        let what = format!("base backup of {}", conn.display());
        let (running, stdout) = process::spawn(basebackup_command(self, &conn), "pg_basebackup")?;
        let saved = tar_stream::save_tar(ctx, stdout, &what, parent);
        let ((root, kept), stderr) = running.finish_with_stderr(saved).map_err(explain_tablespaces)?;
        let backup = describe(&self.name, &kept, &stderr, &server, crate::time::now())?;
        ctx.record_base_backup(backup);
        Ok(root)
    }
}

/// The pg_basebackup command: tar to standard output, a fast checkpoint, WAL as the source says, the end
/// location reported (`--verbose`).
fn basebackup_command(src: &PhysicalSource, conn: &PgConn) -> Command {
    let mut cmd = match &src.pg_basebackup {
        Some(p) => conn.command_at(p),
        None => conn.command("pg_basebackup"),
    };
    cmd.args(["--format=tar", "--pgdata=-", "--checkpoint=fast", "--verbose", "--label=gumvault"]);
    cmd.arg(match src.wal {
        WalMode::Fetch => "--wal-method=fetch",
        WalMode::Archive => "--wal-method=none",
    });
    cmd
}

/// The server's version and WAL segment size, asked over a replication connection (the one pg_basebackup uses).
fn server(conn: &PgConn) -> Result<Server> {
    let replication = conn.replication();
    let show = |name: &str| -> Result<String> {
        let rows = replication.query(&format!("SHOW {name}"))?;
        Ok(rows.first().and_then(|r| r.first()).map(|v| v.trim().to_string()).unwrap_or_default())
    };
    let version = show("server_version_num")?;
    let version_num = version.parse().map_err(|_| {
        Error::SourceFailed(format!("{} did not say its server_version_num ({version:?})", conn.display()))
    })?;
    Ok(Server { version_num, segment_size: control::parse_setting_size(&show("wal_segment_size")?) })
}

/// pg_basebackup refuses to write more than one tablespace to standard output: say so in gumvault's words.
fn explain_tablespaces(e: Error) -> Error {
    match e {
        Error::SourceFailed(m) if m.contains("can only write single tablespace to stdout") => {
            Error::SourceFailed(format!(
                "the cluster has tablespaces besides pg_default and pg_global, and pg_basebackup streams only one \
                 tablespace to standard output (-D -), which the postgres-physical source reads; move those \
                 tables into pg_default or back the tablespaces up another way ({m})"
            ))
        }
        other => other,
    }
}

/// The base backup's record, from what its stream held and what pg_basebackup reported.
fn describe(
    source: &str,
    kept: &Kept,
    stderr: &str,
    server: &Server,
    stop_time: jiff::Timestamp,
) -> Result<BaseBackup> {
    let missing = |what: &str| Error::SourceFailed(format!("the base backup stream holds no {what}"));
    let label = control::parse_label(kept.label.as_deref().ok_or_else(|| missing("backup_label"))?)?;
    let control = control::parse_control(kept.control.as_deref().ok_or_else(|| missing("global/pg_control"))?)?;
    let segment_size = control.segment_size.or(server.segment_size).ok_or_else(|| {
        Error::SourceFailed(format!(
            "cannot tell the WAL segment size (pg_control version {} is not known, and SHOW wal_segment_size \
             said nothing usable)",
            control.version
        ))
    })?;
    let stop: Lsn = kept
        .manifest_tail
        .as_deref()
        .and_then(control::manifest_end_lsn)
        .or_else(|| control::stderr_end_lsn(stderr))
        .ok_or_else(|| missing("end location (neither a backup_manifest nor pg_basebackup's report has it)"))?;
    if let Some(v) = kept.pg_version.as_deref() {
        let major = String::from_utf8_lossy(v).trim().parse::<u32>().unwrap_or(0);
        if major != server.version_num / 10000 {
            return Err(Error::SourceFailed(format!(
                "the base backup's PG_VERSION ({major}) is not the server's version ({})",
                server.version_num
            )));
        }
    }
    Ok(BaseBackup {
        source: source.to_string(),
        system_id: control.system_id,
        pg_version: server.version_num,
        timeline: label.timeline,
        start_lsn: label.start.to_string(),
        start_wal: label.start_file,
        stop_lsn: stop.to_string(),
        stop_wal: stop.segment_before(label.timeline, segment_size),
        stop_time,
    })
}

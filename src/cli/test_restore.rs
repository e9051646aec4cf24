//! `gumvault test-restore JOB`: proves the newest database dump of a job restores and holds what it should.

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use crate::config::{Job, PhysicalSource, PostgresSource, TestRestoreSource};
use crate::exit;
use crate::ops::select::{self, BaseBackupQuery};
use crate::repo::catalog::RunRecord;
use crate::repo::reader::BlobReader;
use crate::sources::pg_conn::PgConn;
use crate::sources::physical::pgdata::OsUser;
use crate::sources::physical::scratch::{PhysicalReport, ScratchOptions, bin_dir_of};
use crate::sources::test_restore::Report;

#[derive(Args, Debug)]
#[command(after_help = "Restores the job's database dump into a new scratch database on the same server (or on
test_restore.admin_url), runs the verification queries of [jobs.JOB.test_restore], drops the scratch database
whatever happens, records the result in the local catalog and exits 0 when every query passed, 5 when not.
For a postgres-physical source: recovers the newest base backup (every archived WAL, through wal-fetch) in a
scratch cluster (pg_ctl beside pg_basebackup; a free loopback port, a private socket directory, archiving off),
runs the queries in test_restore.database as test_restore.user, stops and deletes it; the time until the
recovered database answered is the job's measured RTO, printed and recorded.

Config:
  [jobs.bubblegum.test_restore]
  queries = [
    { sql = \"SELECT COUNT(*) FROM users\", min = 1 },
    { sql = \"SELECT id FROM orders ORDER BY id DESC LIMIT 10\", min_rows = 10 },
  ]

Examples:
  gumvault test-restore bubblegum
  gumvault test-restore bubblegum 1a2b3c4d --json")]
pub(crate) struct TestRestoreArgs {
    /// The job (its postgres or postgres-physical source is restored)
    pub job: String,
    /// Snapshot id (8+ hex characters) or `latest`
    #[arg(default_value = "latest")]
    pub snapshot: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub(crate) fn run(g: &Context, a: &TestRestoreArgs) -> anyhow::Result<i32> {
    let config = g.require_config()?;
    let job = config.job(&a.job)?;
    match job.test_restore_target()? {
        TestRestoreSource::Logical(source) => run_logical(g, a, config, job, source),
        TestRestoreSource::Physical(source) => run_physical(g, a, config, job, source),
    }
}

/// A `postgres` source: its dump into a scratch database.
fn run_logical(
    g: &Context,
    a: &TestRestoreArgs,
    config: &crate::config::Config,
    job: &Job,
    source: &PostgresSource,
) -> anyhow::Result<i32> {
    let queries = job.test_restore.as_ref().map(|t| t.queries.clone()).unwrap_or_default();
    let admin_url = job.test_restore.as_ref().and_then(|t| t.admin_url.as_ref());
    let admin = match admin_url {
        Some(url) => PgConn::parse(&url.resolve()?)?,
        None => PgConn::from_source(source)?,
    }
    .with_child_env(config.child_env());
    let mut s = g.open()?;
    let mut filter = a.filter.clone();
    filter.tags.push(a.job.clone());
    filter.paths.push(format!("/{}", source.name));
    let entry = filter.pick(&s.catalog, &a.snapshot)?;
    let started = crate::time::now();
    let report = {
        let reader = BlobReader::new(&s.repo, &mut s.catalog);
        crate::sources::test_restore::run(&reader, entry.id, &entry.snapshot.tree, &source.name, &admin, &queries)
    };
    let report = report.map_err(|e| with_admin_hint(e, &a.job, admin_url.is_some()));
    let record = RunRecord {
        ok: report.as_ref().is_ok_and(|r| r.ok),
        bytes: report.as_ref().map(|r| r.restored_bytes).unwrap_or(0),
        error: report_error(report.as_ref().map(|r| r.error.clone())),
        detail: report.as_ref().map(|r| json!({ "queries": r.queries, "dump": r.dump })).unwrap_or_default(),
        ..record_of(&a.job, started, entry.id)
    };
    save(&mut s.catalog, &record);
    let report = report?;
    print_report(g, &a.job, entry.id, &report)?;
    Ok(if report.ok { exit::OK } else { exit::VERIFY_FAILED })
}

/// A scratch database the source's own role may not create: the fix is a connection that may.
fn with_admin_hint(e: crate::Error, job: &str, admin_url_set: bool) -> crate::Error {
    match e {
        crate::Error::SourceFailed(m) if m.contains("permission denied to create database") => {
            let fix = if admin_url_set {
                format!(
                    "the role of test_restore.admin_url in [jobs.{job}.test_restore] may not create databases: give it CREATEDB, or point admin_url at a superuser's connection"
                )
            } else {
                format!(
                    "the test restore creates a scratch database, which the application's role may not: set admin_url in [jobs.{job}.test_restore] (test_restore.admin_url) to a connection of a role with CREATEDB on the same server, e.g. \"env:TEST_RESTORE_ADMIN_URL\" holding postgres://postgres:…@host/postgres"
                )
            };
            crate::Error::SourceFailed(format!("{m}; {fix}"))
        }
        other => other,
    }
}

/// A `postgres-physical` source: its newest base backup recovered in a scratch cluster; the time until it
/// answered is the job's measured RTO.
fn run_physical(
    g: &Context,
    a: &TestRestoreArgs,
    config: &crate::config::Config,
    job: &Job,
    source: &PhysicalSource,
) -> anyhow::Result<i32> {
    let opts = scratch_options(g, config, job, source)?;
    let queries = job.test_restore.as_ref().map(|t| t.queries.clone()).unwrap_or_default();
    let mut s = g.open()?;
    let mut filter = a.filter.clone();
    filter.tags.push(a.job.clone());
    let at = filter.at_time()?;
    filter.at = None;
    let query = BaseBackupQuery { source: source.name.clone(), at, timeline: None };
    let (entry, backup) = select::base_backup(&s.catalog, &a.snapshot, &filter.filter(), &query)?;
    let started = crate::time::now();
    let report = {
        let reader = BlobReader::new(&s.repo, &mut s.catalog);
        crate::ops::restore::source_tree(&reader, &entry, &source.name).and_then(|root| {
            crate::sources::physical::scratch::run(&reader, (entry.id, root), &backup, &opts, &queries)
        })
    };
    let record = RunRecord {
        ok: report.as_ref().is_ok_and(|r| r.ok),
        bytes: report.as_ref().map(|r| r.restored_bytes).unwrap_or(0),
        error: match &report {
            Ok(r) => r.error.clone(),
            Err(e) => Some(e.to_string()),
        },
        detail: report.as_ref().map(physical_detail).unwrap_or_default(),
        ..record_of(&a.job, started, entry.id)
    };
    save(&mut s.catalog, &record);
    let report = report?;
    print_physical(g, &a.job, &report)?;
    Ok(if report.ok { exit::OK } else { exit::VERIFY_FAILED })
}

/// How the scratch cluster of a physical source runs: the test_restore settings, the source URL's user and
/// database as defaults, pg_ctl beside the source's pg_basebackup.
fn scratch_options(
    g: &Context,
    config: &crate::config::Config,
    job: &Job,
    source: &PhysicalSource,
) -> anyhow::Result<ScratchOptions> {
    let t = job.test_restore.as_ref();
    let conn = PgConn::from_physical(source)?;
    let database = Some(conn.database()).filter(|d| !d.is_empty());
    let timeout = t.map(|t| t.recovery_timeout.0.unsigned_abs()).unwrap_or(std::time::Duration::from_secs(3600));
    Ok(ScratchOptions {
        bin_dir: bin_dir_of(source.pg_basebackup.as_deref()),
        os_user: OsUser::for_restore(t.and_then(|t| t.os_user.as_deref()))?,
        database: t.and_then(|t| t.database.clone()).or(database).unwrap_or_else(|| "postgres".into()),
        user: t.and_then(|t| t.user.clone()).or(conn.user()).unwrap_or_else(|| "postgres".into()),
        timeout,
        restore_command: super::pgdata::wal_fetch_command(g)?,
        child_env: config.child_env(),
    })
}

fn physical_detail(r: &PhysicalReport) -> serde_json::Value {
    json!({
        "queries": r.queries, "base_backup": r.base_backup, "measured_rto_secs": r.measured_rto_secs,
        "restore_secs": r.restore_secs, "recovery_secs": r.recovery_secs,
    })
}

fn report_error(r: Result<Option<String>, &crate::Error>) -> Option<String> {
    match r {
        Ok(e) => e,
        Err(e) => Some(e.to_string()),
    }
}

/// A test-restore run of `job` on `snapshot`, started at `started`, ending now (a failure until told otherwise).
fn record_of(job: &str, started: jiff::Timestamp, snapshot: crate::format::id::Id) -> RunRecord {
    RunRecord {
        job: job.to_string(),
        kind: "test-restore".into(),
        started,
        finished: crate::time::now(),
        ok: false,
        snapshot: Some(snapshot),
        bytes: 0,
        error: None,
        detail: serde_json::Value::Null,
    }
}

/// Records the test restore in the catalog (unless the daemon records it).
fn save(catalog: &mut crate::repo::catalog::Catalog, record: &RunRecord) {
    if super::context::records_runs()
        && let Err(e) = catalog.record_run(record)
    {
        eprintln!("gumvault: warning: could not record the test restore in the catalog: {e}");
    }
}

/// What the physical test restore found, as text or JSON.
fn print_physical(g: &Context, job: &str, r: &PhysicalReport) -> anyhow::Result<()> {
    if let Some(e) = &r.cleanup_error {
        eprintln!("gumvault: warning: {e}");
    }
    if g.json {
        println!("{}", serde_json::to_string(&json!({ "job": job, "report": r }))?);
        return Ok(());
    }
    if g.quiet && r.ok {
        return Ok(());
    }
    let b = &r.base_backup;
    println!(
        "test restore of the base backup of {} from snapshot {} (ended {}) in a scratch cluster on port {}: {}",
        b.source,
        r.snapshot.short(),
        format::local_time(&b.stop_time),
        r.port,
        if r.ok { "PASSED" } else { "FAILED" }
    );
    println!(
        "  measured RTO {}: {} laid out in {}, recovered in {}",
        format::duration(r.measured_rto_secs),
        format::bytes(r.restored_bytes),
        format::duration(r.restore_secs),
        format::duration(r.recovery_secs)
    );
    print_queries(&r.queries);
    if let (Some(e), true) = (&r.error, r.queries.iter().all(|q| q.ok)) {
        println!("  error: {e}");
        if let Some(log) = &r.log_tail {
            println!("  the scratch server's log ended with:\n{log}");
        }
    }
    Ok(())
}

fn print_queries(queries: &[crate::sources::test_restore::QueryResult]) {
    for q in queries {
        let verdict = if q.ok { "ok" } else { "FAILED" };
        let value = q.value.as_deref().unwrap_or("-");
        println!(
            "  {verdict:6} {} → {value} ({} rows){}",
            q.sql,
            q.rows,
            q.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
}

/// What the test restore found, as text or JSON.
fn print_report(g: &Context, job: &str, snapshot: crate::format::id::Id, report: &Report) -> anyhow::Result<()> {
    if let Some(e) = &report.cleanup_error {
        eprintln!("gumvault: warning: {e}");
    }
    if g.json {
        println!("{}", serde_json::to_string(&json!({ "job": job, "report": report }))?);
    } else if !g.quiet || !report.ok {
        println!(
            "test restore of {} from snapshot {} into scratch database {}: {} ({} restored in {})",
            report.dump,
            snapshot.short(),
            report.scratch_database,
            if report.ok { "PASSED" } else { "FAILED" },
            format::bytes(report.restored_bytes),
            format::duration(report.duration_secs)
        );
        print_queries(&report.queries);
        if let (Some(e), true) = (&report.error, report.queries.is_empty() || report.queries.iter().all(|q| q.ok)) {
            println!("  error: {e}");
        }
    }
    Ok(())
}

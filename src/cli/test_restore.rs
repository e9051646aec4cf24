//! `gumvault test-restore JOB`: proves the newest database dump of a job restores and holds what it should.

use clap::Args;
use serde_json::json;

use super::context::Context;
use super::filter::FilterArgs;
use super::format;
use crate::exit;
use crate::repo::catalog::RunRecord;
use crate::repo::reader::BlobReader;
use crate::sources::pg_conn::PgConn;
use crate::sources::test_restore::Report;

#[derive(Args, Debug)]
#[command(after_help = "Restores the job's database dump into a new scratch database on the same server (or on
test_restore.admin_url), runs the verification queries of [jobs.JOB.test_restore], drops the scratch database
whatever happens, records the result in the local catalog and exits 0 when every query passed, 5 when not.

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
    /// The job (its postgres source is restored)
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
    let source = job.test_restore_source()?;
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
    record(&mut s.catalog, &a.job, started, entry.id, &report);
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

/// Records the test restore in the catalog (unless the daemon records it).
fn record(
    catalog: &mut crate::repo::catalog::Catalog,
    job: &str,
    started: jiff::Timestamp,
    snapshot: crate::format::id::Id,
    report: &crate::Result<Report>,
) {
    let record = RunRecord {
        job: job.to_string(),
        kind: "test-restore".into(),
        started,
        finished: crate::time::now(),
        ok: report.as_ref().is_ok_and(|r| r.ok),
        snapshot: Some(snapshot),
        bytes: report.as_ref().map(|r| r.restored_bytes).unwrap_or(0),
        error: match report {
            Ok(r) => r.error.clone(),
            Err(e) => Some(e.to_string()),
        },
        detail: report.as_ref().map(|r| json!({ "queries": r.queries, "dump": r.dump })).unwrap_or_default(),
    };
    if super::context::records_runs()
        && let Err(e) = catalog.record_run(&record)
    {
        eprintln!("gumvault: warning: could not record the test restore in the catalog: {e}");
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
        for q in &report.queries {
            let verdict = if q.ok { "ok" } else { "FAILED" };
            let value = q.value.as_deref().unwrap_or("-");
            println!(
                "  {verdict:6} {} → {value} ({} rows){}",
                q.sql,
                q.rows,
                q.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
        if let (Some(e), true) = (&report.error, report.queries.is_empty() || report.queries.iter().all(|q| q.ok)) {
            println!("  error: {e}");
        }
    }
    Ok(())
}

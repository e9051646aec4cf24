//! The automated test restore: load a snapshot's database dump into a scratch database, run verification
//! queries, and drop the scratch database whatever happened. The report says what was checked and what was found.

use std::time::Instant;

use serde::Serialize;

use crate::config::{DumpFormat, VerifyQuery};
use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Node;
use crate::repo::reader::BlobReader;
use crate::sources::pg_conn::PgConn;
use crate::sources::pg_load::load_dump;
use crate::sources::pg_record::RECORD_FILE;

/// The outcome of one query.
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    /// The query, as configured.
    pub sql: String,
    /// Rows it returned (0 when it failed).
    pub rows: usize,
    /// The first column of the first row.
    pub value: Option<String>,
    /// The configured minimum for the first value, if any.
    pub min: Option<i64>,
    /// The configured minimum number of rows, if any.
    pub min_rows: Option<u64>,
    /// True if the query ran and met its minimums (with none set, returned at least one row).
    pub ok: bool,
    /// Why it failed: the database's error, or which minimum was missed.
    pub error: Option<String>,
}

/// What a test restore found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The snapshot whose dump was restored.
    pub snapshot: Id,
    /// The dump inside the snapshot (`/db/dump.sql`).
    pub dump: String,
    /// Name of the scratch database the dump was loaded into (`gumvault_test_restore_<random hex>`).
    pub scratch_database: String,
    /// Bytes of the dump loaded into the scratch database.
    pub restored_bytes: u64,
    /// How long the whole test restore took, in seconds, dropping the scratch database included.
    pub duration_secs: f64,
    /// Each verification query's result, in the configured order.
    pub queries: Vec<QueryResult>,
    /// True if the dump loaded and every query passed.
    pub ok: bool,
    /// Why it failed, when it failed before or outside the queries.
    pub error: Option<String>,
    /// Set when the scratch database could not be dropped (it must then be dropped by hand).
    pub cleanup_error: Option<String>,
}

/// Finds the dump file in a postgres source's directory of a snapshot: `dump.sql` (plain) or `dump.pgdump`.
pub fn find_dump(reader: &BlobReader<'_>, root: &Id, source: &str) -> Result<(String, Node, DumpFormat)> {
    for format in [DumpFormat::Plain, DumpFormat::Custom] {
        let path = format!("/{source}/{}", format.file_name());
        match crate::ops::restore::find(reader, root, &path) {
            Ok(node) => return Ok((path, node, format)),
            Err(Error::PathNotFound(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::PathNotFound(format!(
        "the snapshot holds no database dump under /{source} (looked for dump.sql and dump.pgdump)"
    )))
}

/// The database record (`database.json`) in a postgres source's directory, if the snapshot has one.
pub fn find_record(reader: &BlobReader<'_>, root: &Id, source: &str) -> Result<Option<Vec<u8>>> {
    let path = format!("/{source}/{RECORD_FILE}");
    let node = match crate::ops::restore::find(reader, root, &path) {
        Ok(node) => node,
        Err(Error::PathNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    crate::ops::restore::dump(reader, &node, &path, &mut bytes, "memory")?;
    Ok(Some(bytes))
}

/// Restores the dump at `source` of the snapshot into a new scratch database on `admin`'s server, runs
/// `queries`, and drops the scratch database.
pub fn run(
    reader: &BlobReader<'_>,
    snapshot: Id,
    root: &Id,
    source: &str,
    admin: &PgConn,
    queries: &[VerifyQuery],
) -> Result<Report> {
    let started = Instant::now();
    let (dump_path, node, format) = find_dump(reader, root, source)?;
    let scratch = format!("gumvault_test_restore_{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut report = Report {
        snapshot,
        dump: dump_path.clone(),
        scratch_database: scratch.clone(),
        restored_bytes: 0,
        duration_secs: 0.0,
        queries: Vec::new(),
        ok: false,
        error: None,
        cleanup_error: None,
    };
    admin.query(&format!("CREATE DATABASE {scratch}"))?;
    let target = admin.with_database(&scratch);
    let outcome = (|| -> Result<()> {
        report.restored_bytes = load_dump(&target, format, |w| {
            crate::ops::restore::dump(reader, &node, &dump_path, w, "the database restore")
        })?;
        for q in queries {
            report.queries.push(check_query(&target, q));
        }
        Ok(())
    })();
    if let Err(e) = admin.query(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")) {
        report.cleanup_error = Some(format!("could not drop the scratch database {scratch}: {e}"));
    }
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

/// Runs one verification query and judges its result.
pub fn check_query(conn: &PgConn, q: &VerifyQuery) -> QueryResult {
    let mut r = QueryResult {
        sql: q.sql.clone(),
        rows: 0,
        value: None,
        min: q.min,
        min_rows: q.min_rows,
        ok: false,
        error: None,
    };
    match conn.query(&q.sql) {
        Err(e) => r.error = Some(e.to_string()),
        Ok(rows) => {
            r.rows = rows.len();
            r.value = rows.first().and_then(|row| row.first()).cloned();
            let mut problems = Vec::new();
            if let Some(min_rows) = q.min_rows
                && (r.rows as u64) < min_rows
            {
                problems.push(format!("returned {} rows, at least {min_rows} required", r.rows));
            }
            if let Some(min) = q.min {
                match r.value.as_deref().map(|v| v.trim().parse::<i64>()) {
                    Some(Ok(v)) if v >= min => {}
                    Some(Ok(v)) => problems.push(format!("returned {v}, at least {min} required")),
                    Some(Err(_)) => {
                        problems.push(format!("returned {:?}, not a number", r.value.as_deref().unwrap_or("")))
                    }
                    None => problems.push(format!("returned no value, at least {min} required")),
                }
            }
            if q.min.is_none() && q.min_rows.is_none() && r.rows == 0 {
                problems.push("returned no rows".into());
            }
            r.ok = problems.is_empty();
            if !r.ok {
                r.error = Some(problems.join("; "));
            }
        }
    }
    r
}

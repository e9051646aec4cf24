//! A plain-SQL PostgreSQL dump whose table data is in primary-key order. pg_dump writes rows in physical order,
//! which MVCC reshuffles on every update, so successive dumps of a busy database differ almost everywhere.
//! Ordered by primary key, an unchanged row stays at the same place in the dump and dedups.
//!
//! One exported snapshot keeps every part consistent: a coordinating session exports it, `pg_dump
//! --snapshot --section=pre-data` writes the schema, one psql session on the same snapshot writes each table's
//! `COPY … FROM stdin` block (`COPY (SELECT … ORDER BY pk) TO STDOUT`) and the sequence values, and
//! `pg_dump --section=post-data` writes indexes and constraints. The result restores with psql like any plain
//! dump. Tables without a primary key keep physical order.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::pg_conn::PgConn;
use super::process::{self, Running};
use crate::error::{Error, Result};

/// One table to dump.
struct Table {
    /// Qualified and quoted, e.g. `public."Users"`.
    name: String,
    columns: String,
    primary_key: String,
}

/// The session that exported the snapshot; it must stay open until the dump is read.
struct Coordinator {
    child: Child,
    stdin: ChildStdin,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"COMMIT;\n\\q\n");
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one stage of the dump is.
enum Stage {
    /// A command whose standard output is part of the dump.
    Command(Command, &'static str),
    /// psql fed a script on its standard input.
    Script(Command, String),
}

/// A running stage: the program, its output, and the thread feeding its script (if any).
type Current = (Running, Box<dyn Read + Send>, Option<std::thread::JoinHandle<()>>);

/// The dump as one byte stream: stages run one after another, each checked when it ends.
pub struct OrderedDump {
    stages: VecDeque<Stage>,
    current: Option<Current>,
    _coordinator: Coordinator,
}

/// Starts an ordered dump of `conn`'s database.
pub fn start(conn: &PgConn, pg_dump: Option<&Path>) -> Result<OrderedDump> {
    let coordinator = export_snapshot(conn)?;
    let snapshot = coordinator.1;
    let tables = list_tables(conn, &snapshot)?;
    let sequences = list_sequences(conn, &snapshot)?;
    let pg_dump_cmd = |section: &str| {
        let mut c = match pg_dump {
            Some(p) => conn.command_at(p),
            None => conn.command("pg_dump"),
        };
        c.args(["--format=plain", &format!("--snapshot={snapshot}"), &format!("--section={section}")]);
        c
    };
    let mut psql = conn.command("psql");
    psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
    let stages = VecDeque::from([
        Stage::Command(pg_dump_cmd("pre-data"), "pg_dump (schema)"),
        Stage::Script(psql, data_script(&snapshot, &tables, &sequences)),
        Stage::Command(pg_dump_cmd("post-data"), "pg_dump (indexes and constraints)"),
    ]);
    Ok(OrderedDump { stages, current: None, _coordinator: coordinator.0 })
}

/// Opens a read-only repeatable-read transaction and exports its snapshot.
fn export_snapshot(conn: &PgConn) -> Result<(Coordinator, String)> {
    let mut cmd = conn.command("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::SourceFailed(format!("cannot start psql: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin piped");
    let stdout = child.stdout.take().expect("stdout piped");
    let sent = stdin.write_all(b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n");
    let mut line = String::new();
    let read = sent.and_then(|_| stdin.flush()).and_then(|_| BufReader::new(stdout).read_line(&mut line));
    let id = line.trim().to_string();
    if read.is_err() || id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = child.kill();
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        return Err(Error::SourceFailed(format!(
            "psql could not export a snapshot of {}: {}",
            conn.display(),
            err.trim()
        )));
    }
    Ok((Coordinator { child, stdin }, id))
}

/// Runs queries on the exported snapshot.
fn query_on(conn: &PgConn, snapshot: &str, sql: &str) -> Result<Vec<Vec<String>>> {
    conn.query_all(&[
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        &format!("SET TRANSACTION SNAPSHOT '{snapshot}'"),
        sql,
    ])
}

fn list_tables(conn: &PgConn, snapshot: &str) -> Result<Vec<Table>> {
    let rows = query_on(
        conn,
        snapshot,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY array_position(i.indkey::int2[], a.attnum))
                   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                  WHERE i.indrelid = c.oid AND i.indisprimary), '')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY n.nspname, c.relname",
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [name, columns, pk] if !columns.is_empty() => {
                Some(Table { name: name.clone(), columns: columns.clone(), primary_key: pk.clone() })
            }
            _ => None,
        })
        .collect())
}

fn list_sequences(conn: &PgConn, snapshot: &str) -> Result<Vec<String>> {
    let rows = query_on(
        conn,
        snapshot,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY 1",
    )?;
    Ok(rows.into_iter().filter_map(|r| r.into_iter().next()).collect())
}

/// A psql `\echo` argument: single-quoted, with `'` and `\` escaped.
fn echo(text: &str) -> String {
    format!("\\echo '{}'\n", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The psql script that writes the data section on the snapshot.
fn data_script(snapshot: &str, tables: &[Table], sequences: &[String]) -> String {
    let mut s = format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSET TRANSACTION SNAPSHOT '{snapshot}';\n");
    for t in tables {
        let order = if t.primary_key.is_empty() { String::new() } else { format!(" ORDER BY {}", t.primary_key) };
        s.push_str(&echo("--"));
        s.push_str(&echo(&format!(
            "-- Data for {}{}",
            t.name,
            if order.is_empty() { "" } else { " (primary-key order)" }
        )));
        s.push_str(&echo("--"));
        s.push_str(&echo(""));
        s.push_str(&echo(&format!("COPY {} ({}) FROM stdin;", t.name, t.columns)));
        s.push_str(&format!("COPY (SELECT {} FROM ONLY {}{order}) TO STDOUT;\n", t.columns, t.name));
        s.push_str(&echo("\\."));
        s.push_str(&echo(""));
    }
    for seq in sequences {
        let literal = seq.replace('\'', "''");
        s.push_str(&format!(
            "SELECT format('SELECT pg_catalog.setval(%L, %s, %s);', '{literal}', last_value, CASE WHEN is_called THEN 'true' ELSE 'false' END) FROM {seq};\n"
        ));
    }
    if !sequences.is_empty() {
        s.push_str(&echo(""));
    }
    s.push_str("COMMIT;\n");
    s
}

impl OrderedDump {
    fn next_stage(&mut self) -> std::io::Result<bool> {
        let Some(stage) = self.stages.pop_front() else { return Ok(false) };
        let started = match stage {
            Stage::Command(cmd, name) => {
                process::spawn(cmd, name).map(|(r, out)| (r, Box::new(out) as Box<dyn Read + Send>, None))
            }
            Stage::Script(mut cmd, script) => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
                process::spawn_with_stdin(cmd, "psql (table data)").map(|(r, stdin, out)| {
                    // Fed on a thread: the script can be larger than a pipe while psql is already writing.
                    let feeder = std::thread::spawn(move || {
                        let mut stdin = stdin;
                        let _ = stdin.write_all(script.as_bytes());
                    });
                    (r, Box::new(out) as Box<dyn Read + Send>, Some(feeder))
                })
            }
        };
        self.current = Some(started.map_err(std::io::Error::other)?);
        Ok(true)
    }
}

impl Read for OrderedDump {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current.is_none() && !self.next_stage()? {
                return Ok(0);
            }
            let (_, out, _) = self.current.as_mut().expect("a stage is running");
            let n = out.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let (running, out, feeder) = self.current.take().expect("a stage is running");
            drop(out);
            if let Some(f) = feeder {
                let _ = f.join();
            }
            running.finish(Ok(())).map_err(std::io::Error::other)?;
        }
    }
}

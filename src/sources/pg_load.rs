//! Loading a dump into a database in one transaction: psql for plain SQL, pg_restore for custom archives, and —
//! when roles must change on the way in ([`RoleRules`]) — the SQL through a [`Rewriter`] into psql, a custom
//! archive first turned into SQL by `pg_restore --file=-`. Everything streams; nothing is staged on disk.
//!
//! A loader whose input could not be read to its end (the repository failed mid-way) is killed before its
//! input is closed: psql, given a script cut short, commits what it got, and the database would look restored.

use std::io::{BufWriter, Write};
use std::process::{ChildStdin, Command, Stdio};

use super::pg_conn::PgConn;
use super::pg_rewrite::{RewriteReport, Rewriter, RoleRules};
use super::process::{self, Running, is_broken_pipe};
use crate::config::DumpFormat;
use crate::error::{Error, Result};

/// What a load wrote: the dump's bytes, and what rewriting did (when it was asked for).
pub type Loaded = (u64, Option<RewriteReport>);

/// Loads a dump (read from `write_dump`) into `conn`'s database in one transaction. Nothing is left behind when
/// it fails.
pub fn load_dump(
    conn: &PgConn,
    format: DumpFormat,
    write_dump: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    load_dump_with(conn, format, None, write_dump).map(|(n, _)| n)
}

/// Like [`load_dump`], changing roles by `rules` on the way in when given.
pub fn load_dump_with(
    conn: &PgConn,
    format: DumpFormat,
    rules: Option<RoleRules>,
    write_dump: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<Loaded> {
    let loaded = match (format, rules) {
        (DumpFormat::Plain, rules) => {
            let (running, stdin) = process::spawn_writer(psql_loader(conn), "psql")?;
            feed(running, stdin, "psql", rules, write_dump)
        }
        (DumpFormat::Custom, None) => {
            let mut c = conn.command("pg_restore");
            c.args(["--single-transaction", "--exit-on-error"]);
            let (running, stdin) = process::spawn_writer(c, "pg_restore")?;
            feed(running, stdin, "pg_restore", None, write_dump)
        }
        (DumpFormat::Custom, Some(rules)) => custom_rewritten(conn, rules, write_dump),
    };
    loaded.map_err(|e| conn.context(e))
}

/// psql reading a script on its standard input, in one transaction, stopping at the first error.
fn psql_loader(conn: &PgConn) -> Command {
    let mut c = conn.command("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", "/dev/null"]);
    c
}

/// Where the dump goes: the loader's input, or a rewriter in front of it.
enum Sink {
    Plain(BufWriter<ChildStdin>),
    Rewritten(Box<Rewriter<BufWriter<ChildStdin>>>),
}

impl Sink {
    fn new(stdin: ChildStdin, rules: Option<RoleRules>) -> Sink {
        let w = BufWriter::with_capacity(1 << 20, stdin);
        match rules {
            Some(r) => Sink::Rewritten(Box::new(Rewriter::new(w, r))),
            None => Sink::Plain(w),
        }
    }

    /// Flushes everything into the loader and closes its input.
    fn finish(self) -> std::io::Result<Option<RewriteReport>> {
        match self {
            Sink::Plain(mut w) => w.flush().map(|_| None),
            Sink::Rewritten(r) => r.finish().and_then(|(mut w, report)| w.flush().map(|_| Some(report))),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Rewritten(r) => r.as_mut(),
        }
    }
}

/// Feeds the dump into a started loader; kills it before closing its input when feeding failed.
fn feed(
    mut running: Running,
    stdin: ChildStdin,
    program: &str,
    rules: Option<RoleRules>,
    write_dump: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<Loaded> {
    let mut sink = Sink::new(stdin, rules);
    let written = write_dump(sink.writer());
    let done = match written {
        Ok(n) => sink.finish().map(|report| (n, report)).map_err(|e| Error::io("write to", program, e)),
        Err(e) => {
            if !is_broken_pipe(&e) {
                running.abort();
            }
            drop(sink);
            Err(e)
        }
    };
    running.finish(done)
}

/// A custom archive with roles to change: `pg_restore --file=-` turns it into SQL, which goes through the
/// rewriter into psql. Three streams at once: the dump into pg_restore (this thread), its SQL into psql (another).
fn custom_rewritten(
    conn: &PgConn,
    rules: RoleRules,
    write_dump: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<Loaded> {
    let (mut psql, psql_stdin) = process::spawn_writer(psql_loader(conn), "psql")?;
    let mut convert = conn.program("pg_restore");
    convert.arg("--file=-").stdin(Stdio::piped()).stdout(Stdio::piped());
    let (mut restore, restore_stdin, mut sql) = match process::spawn_with_stdin(convert, "pg_restore") {
        Ok(started) => started,
        Err(e) => {
            psql.abort();
            return Err(e);
        }
    };
    let mut sink = Rewriter::new(BufWriter::with_capacity(1 << 20, psql_stdin), rules);
    let copier = std::thread::spawn(move || {
        let copied = std::io::copy(&mut sql, &mut sink);
        (sink, copied)
    });
    let mut into_restore = BufWriter::with_capacity(1 << 20, restore_stdin);
    let written = write_dump(&mut into_restore)
        .and_then(|n| into_restore.flush().map(|_| n).map_err(|e| Error::io("write to", "pg_restore", e)));
    if let Err(e) = &written
        && !is_broken_pipe(e)
    {
        psql.abort();
        restore.abort();
    }
    drop(into_restore);
    let converted = restore.finish(written);
    let (sink, copied) = copier.join().map_err(|_| Error::SourceFailed("the SQL rewriting thread panicked".into()))?;
    let done = match (converted, copied) {
        (Ok(n), Ok(_)) => {
            sink.finish().map(|(_, report)| (n, Some(report))).map_err(|e| Error::io("write to", "psql", e))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(Error::io("write to", "psql", e)),
    };
    if done.is_err() {
        psql.abort();
    }
    psql.finish(done)
}

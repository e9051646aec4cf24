//! Talking to PostgreSQL through its client programs: a connection (URL and password apart), the `pg_dump`
//! command of a source, queries and scripts with `psql` (loading a dump is [`super::pg_load`]). Passwords are
//! taken out of the URL and handed to the child in `PGPASSWORD`, never on its command line; the child inherits no
//! other secret of gumvault's (the repository password, AWS keys, the config's `env:` values: see `ChildEnv`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::children::ChildEnv;
use crate::config::{DumpFormat, PhysicalSource, PostgresSource, Secret};
use crate::error::{Error, Result};

/// A PostgreSQL connection: a URL without its password, and the password apart.
#[derive(Clone)]
pub struct PgConn {
    /// `postgres://user@host:port/db?...` with no password in it.
    url: url::Url,
    password: Option<String>,
    /// Directory of the PostgreSQL client programs, when not on PATH.
    bin_dir: Option<PathBuf>,
    /// The environment of the client programs, less the secrets gumvault holds.
    child_env: ChildEnv,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgConn({})", self.display())
    }
}

impl PgConn {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(raw: &str) -> Result<PgConn> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid PostgreSQL URL: {why} (expected postgres://user:password@host:port/database)"
            ))
        };
        let mut url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(&format!("scheme {:?}", url.scheme())));
        }
        let mut password = url.password().map(percent_decode);
        let _ = url.set_password(None);
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if pairs.iter().any(|(k, _)| k == "password") {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                if k == "password" {
                    password = Some(v.clone());
                } else {
                    q.append_pair(k, v);
                }
            }
            let q = q.finish();
            url.set_query(if q.is_empty() { None } else { Some(&q) });
        }
        Ok(PgConn { url, password, bin_dir: None, child_env: ChildEnv::default() })
    }

    /// Uses client programs from this directory (the one holding a configured pg_dump).
    pub fn with_bin_dir(mut self, dir: Option<PathBuf>) -> PgConn {
        self.bin_dir = dir;
        self
    }

    /// Starts the client programs with this environment: the one the config says (every `env:` value withheld).
    pub fn with_child_env(mut self, env: ChildEnv) -> PgConn {
        self.child_env = env;
        self
    }

    /// The connection from a source's config: its `url`, else `DATABASE_URL`.
    pub fn from_source(src: &PostgresSource) -> Result<PgConn> {
        PgConn::from_config(src.url.as_ref(), &src.name, src.pg_dump.as_deref())
    }

    /// The connection of a physical source: its `url`, else `DATABASE_URL`; the client programs from the
    /// directory of its `pg_basebackup`.
    pub fn from_physical(src: &PhysicalSource) -> Result<PgConn> {
        PgConn::from_config(src.url.as_ref(), &src.name, src.pg_basebackup.as_deref())
    }

    fn from_config(url: Option<&Secret>, name: &str, program: Option<&Path>) -> Result<PgConn> {
        let raw = match url {
            Some(s) => s.resolve()?,
            None => std::env::var("DATABASE_URL")
                .map_err(|_| Error::InvalidInput(format!("source {name}: no url given and DATABASE_URL is not set")))?,
        };
        let bin_dir = program.and_then(|p| p.parent()).filter(|d| !d.as_os_str().is_empty());
        Ok(PgConn::parse(&raw)?.with_bin_dir(bin_dir.map(Path::to_path_buf)))
    }

    /// The same connection in physical replication mode (`replication=true`), where the server takes replication
    /// commands and `SHOW`.
    pub fn replication(&self) -> PgConn {
        let mut c = self.clone();
        c.url.query_pairs_mut().append_pair("replication", "true");
        c
    }

    /// The user the URL names, if it names one.
    pub fn user(&self) -> Option<String> {
        Some(percent_decode(self.url.username())).filter(|u| !u.is_empty())
    }

    /// The directory of the client programs, when one was configured.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.bin_dir.as_deref()
    }

    /// The path of a client program: in the configured directory, else the name (found on PATH).
    pub fn program_path(&self, program: &str) -> PathBuf {
        self.bin_dir.as_ref().map(|d| d.join(program)).unwrap_or_else(|| PathBuf::from(program))
    }

    /// The database name.
    pub fn database(&self) -> String {
        percent_decode(self.url.path().trim_start_matches('/'))
    }

    /// The same server and user, another database.
    pub fn with_database(&self, db: &str) -> PgConn {
        let mut c = self.clone();
        c.url.set_path(&format!("/{}", url::form_urlencoded::byte_serialize(db.as_bytes()).collect::<String>()));
        c
    }

    /// Safe to print: user, host, port and database, never the password.
    pub fn display(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.to_string()
    }

    /// A command for one of the client programs, connected to this database, that never prompts.
    pub fn command(&self, program: &str) -> Command {
        self.command_at(&self.program_path(program))
    }

    /// One of the client programs with no connection (`pg_restore --file=-` converting an archive to SQL).
    pub fn program(&self, program: &str) -> Command {
        let mut cmd = self.child_env.command(self.program_path(program));
        cmd.env_remove("PGPASSWORD");
        cmd
    }

    /// Like [`PgConn::command`] for a program given by path.
    pub fn command_at(&self, path: &Path) -> Command {
        let mut cmd = self.child_env.command(path);
        cmd.arg("--no-password").arg(format!("--dbname={}", self.url));
        cmd.env_remove("PGPASSWORD");
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd
    }

    /// Runs SQL with psql; rows of fields, as text.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\u{1f}", "-R", "\u{1e}", "-c", sql]);
        let out = super::process::output(cmd, "psql").map_err(|e| self.context(e))?;
        let text = String::from_utf8_lossy(&out);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text
            .split('\u{1e}')
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\u{1f}').map(str::to_string).collect())
            .collect())
    }

    /// Runs several statements in one session (one `-c` each); the rows of all of them.
    pub fn query_all(&self, statements: &[&str]) -> Result<Vec<Vec<String>>> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\u{1f}", "-R", "\u{1e}"]);
        for s in statements {
            cmd.arg("-c").arg(s);
        }
        let out = super::process::output(cmd, "psql").map_err(|e| self.context(e))?;
        let text = String::from_utf8_lossy(&out);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text
            .split('\u{1e}')
            .map(|r| r.trim_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\u{1f}').map(str::to_string).collect())
            .collect())
    }

    /// Runs a script given on psql's standard input (never on its command line: it may hold password hashes), in
    /// one transaction unless `single` is false; errors are terse, so no message quotes a statement back.
    pub fn execute(&self, script: &str, single: bool) -> Result<()> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=terse", "-o", "/dev/null", "-f", "-"]);
        if single {
            cmd.arg("--single-transaction");
        }
        let (running, mut stdin) = super::process::spawn_writer(cmd, "psql")?;
        let written = stdin.write_all(script.as_bytes()).map_err(|e| Error::io("write to", "psql", e));
        drop(stdin);
        running.finish(written).map_err(|e| self.context(e))
    }

    /// True when the database holds no tables, views, sequences, schemas or large objects of its own.
    pub fn is_empty(&self) -> Result<bool> {
        let rows = self.query(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%')
                  + (SELECT count(*) FROM pg_namespace
                     WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\\_%')
                  + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)",
        )?;
        Ok(rows.first().and_then(|r| r.first()).is_some_and(|v| v == "0"))
    }

    /// Drops every schema of the database's own (and what is in them), its large objects, publications and event
    /// triggers (which live outside schemas), leaving an empty `public` made as initdb makes it, so a restored
    /// database dumps the same as the original.
    pub fn clean(&self) -> Result<()> {
        let version: u32 = self
            .query("SHOW server_version_num")?
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let drops = self.query(
            "SELECT 'DROP SCHEMA ' || quote_ident(nspname) || ' CASCADE;' FROM pg_catalog.pg_namespace
              WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'
             UNION ALL SELECT 'DROP PUBLICATION ' || quote_ident(pubname) || ';' FROM pg_catalog.pg_publication
             UNION ALL SELECT 'DROP EVENT TRIGGER ' || quote_ident(evtname) || ';' FROM pg_catalog.pg_event_trigger",
        )?;
        let mut sql = String::from("BEGIN;");
        for d in drops.iter().filter_map(|r| r.first()) {
            sql.push_str(d);
        }
        sql.push_str("SELECT count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata;");
        sql.push_str(if version >= 150000 {
            "CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;"
        } else {
            "CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC;"
        });
        sql.push_str("COMMENT ON SCHEMA public IS 'standard public schema'; COMMIT;");
        self.query(&sql).map(|_| ())
    }

    /// Adds which database to a client program's failure.
    pub fn context(&self, e: Error) -> Error {
        match e {
            Error::SourceFailed(m) => Error::SourceFailed(format!("{m} (database {})", self.display())),
            other => other,
        }
    }
}

/// The pg_dump command of a source (format, table selections), writing the dump to standard output.
pub fn dump_command(src: &PostgresSource, conn: &PgConn) -> Command {
    let mut cmd = match &src.pg_dump {
        Some(p) => conn.command_at(p),
        None => conn.command("pg_dump"),
    };
    cmd.arg(match src.format {
        DumpFormat::Plain => "--format=plain",
        DumpFormat::Custom => "--format=custom",
    });
    for t in &src.tables {
        cmd.arg(format!("--table={t}"));
    }
    for t in &src.exclude_tables {
        cmd.arg(format!("--exclude-table={t}"));
    }
    cmd
}

/// Percent-decodes a URL component.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        let c = PgConn::parse("postgres://app:s%40cret+x@127.0.0.1:5433/bubble?sslmode=disable").unwrap();
        assert_eq!(c.password.as_deref(), Some("s@cret+x"));
        assert!(!c.url.as_str().contains("cret"));
        assert_eq!(c.database(), "bubble");
        assert_eq!(c.display(), "postgres://app@127.0.0.1:5433/bubble");
        let c = PgConn::parse("postgresql://app@h/db?password=pw&sslmode=require").unwrap();
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.url.query(), Some("sslmode=require"));
        let other = c.with_database("scratch_1");
        assert_eq!(other.database(), "scratch_1");
        let cmd = other.command("psql");
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.iter().all(|a| !a.contains("pw")), "{args:?}");
        assert!(PgConn::parse("host=x dbname=y").is_err());
        assert!(PgConn::parse("mysql://x/y").is_err());
    }
}

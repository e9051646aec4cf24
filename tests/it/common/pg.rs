//! A real PostgreSQL server on 127.0.0.1 for tests: a throw-away cluster (initdb in a temp dir, password auth over
//! TCP), stopped on drop. Needs Debian's `postgresql` package (scripts/install-test-deps.sh installs it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub const USER: &str = "postgres";
pub const PASSWORD: &str = "pg-test-secret";

pub struct PgServer {
    dir: TempDir,
    pub port: u16,
    bin: PathBuf,
}

/// The directory of the newest installed PostgreSQL's programs.
pub fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().expect("PostgreSQL is not installed: run scripts/install-test-deps.sh (Debian's postgresql package)")
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the unprivileged `postgres` user when we are root (initdb and postgres refuse root).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        if is_root() {
            let ok = Command::new("chown").arg("postgres:").arg(dir.path()).status().expect("chown");
            assert!(ok.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            Command::new("chown").arg("postgres:").arg(&pwfile).status().expect("chown");
        }
        check(
            as_pg_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", USER, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .expect("run initdb"),
            "initdb",
        );
        // A free port can be taken by another test before the server binds it: then try another.
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.path().display()
            );
            let out = as_pg_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts, "-l"])
                .arg(dir.path().join("log"))
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                break port;
            }
            if attempt == 5 {
                check(out, "pg_ctl start");
            }
        };
        PgServer { dir, port, bin }
    }

    /// A URL with the password in it.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// A URL for another role, with its password.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    /// A client program of this server's version, connected with the password.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.env("PGPASSWORD", PASSWORD)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", USER);
        c
    }

    /// Runs SQL in `db`; returns trimmed unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = check(
            self.client("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
                .output()
                .expect("psql"),
            &format!("psql {sql}"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn create_db(&self, db: &str) {
        self.sql("postgres", &format!("CREATE DATABASE {db}"));
    }

    /// `pgbench -i` at `scale`.
    pub fn pgbench_init(&self, db: &str, scale: u32) {
        check(
            self.client("pgbench").args(["-i", "-q", "-s", &scale.to_string(), db]).output().expect("pgbench"),
            "pgbench -i",
        );
    }

    /// `txns` pgbench transactions with a fixed seed.
    pub fn pgbench_run(&self, db: &str, txns: u32, seed: u32) {
        check(
            self.client("pgbench")
                .args(["-n", "-c", "1", "-t", &txns.to_string(), &format!("--random-seed={seed}"), db])
                .output()
                .expect("pgbench"),
            "pgbench",
        );
    }

    /// A plain pg_dump of `db` without the random `\restrict` lines PostgreSQL 15.14+ writes, for comparisons.
    pub fn dump(&self, db: &str) -> String {
        self.dump_with(db, &[])
    }

    /// A plain pg_dump of `db` with extra options (`--no-owner`, `--schema-only`, …), `\restrict` lines left out.
    pub fn dump_with(&self, db: &str, opts: &[&str]) -> String {
        let out = check(
            self.client("pg_dump").args(["--format=plain"]).args(opts).arg(db).output().expect("pg_dump"),
            "pg_dump",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A directory the server's user owns (for a tablespace), removed with the returned guard.
    pub fn server_dir(&self) -> TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        if is_root() {
            let ok = Command::new("chown").arg("postgres:").arg(dir.path()).status().expect("chown");
            assert!(ok.success());
        }
        dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

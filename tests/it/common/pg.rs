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
pub fn as_pg_user(program: &Path) -> Command {
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

/// Settings of a test server beyond the defaults (`-c NAME=VALUE`, given in single quotes, so a value holds
/// none), and variables of its environment (the archive and restore commands inherit them).
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    pub settings: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

impl PgOptions {
    pub fn set(mut self, name: &str, value: &str) -> PgOptions {
        assert!(!value.contains('\''), "a setting's value is given in single quotes");
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> PgOptions {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
}

/// Gives a path to the postgres OS user when we are root.
pub fn give_to_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown").arg("-R").arg("postgres:").arg(path).status().expect("chown");
        assert!(ok.success(), "chown postgres {}", path.display());
    }
}

impl PgServer {
    pub fn start() -> PgServer {
        PgServer::start_with(&PgOptions::default())
    }

    /// A new cluster (initdb) started with these options.
    pub fn start_with(opts: &PgOptions) -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        give_to_postgres(&pwfile);
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
        PgServer::launch(dir, bin, opts)
    }

    /// A server on a data directory made elsewhere (a restore): `dir/data`, which the postgres user owns.
    pub fn start_existing(dir: TempDir, opts: &PgOptions) -> PgServer {
        give_to_postgres(dir.path());
        PgServer::launch(dir, bin_dir(), opts)
    }

    fn launch(dir: TempDir, bin: PathBuf, opts: &PgOptions) -> PgServer {
        let data = dir.path().join("data");
        let mut extra = String::new();
        for (k, v) in &opts.settings {
            extra.push_str(&format!(" -c {k}='{v}'"));
        }
        // A free port can be taken by another test before the server binds it: then try another.
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let opts_line = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off{extra}",
                dir.path().display()
            );
            let mut cmd = as_pg_user(&bin.join("pg_ctl"));
            for (k, v) in &opts.env {
                cmd.env(k, v);
            }
            let out = cmd
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts_line, "-l"])
                .arg(dir.path().join("log"))
                .args(["-w", "-t", "120", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                break port;
            }
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            if attempt == 5 || !log.contains("could not bind") {
                check(out, &format!("pg_ctl start (log: {log})"));
            }
        };
        PgServer { dir, port, bin }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// SIGKILL to the postmaster (its children die with it), then the data directory deleted: the primary is gone.
    pub fn kill_and_delete(&self) {
        let pid = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid line").trim().to_string();
        Command::new("kill").args(["-9", &pid]).status().expect("kill");
        for _ in 0..200 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Backends notice the postmaster is gone on their own; none of them writes to a deleted directory.
        std::fs::remove_dir_all(self.data_dir()).expect("delete the data directory");
    }

    /// Stops the server (fast shutdown) and waits.
    pub fn stop(&self) {
        let _ = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .output();
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

//! PostgreSQL physical backups and point-in-time recovery against real PostgreSQL 15 clusters: base backups of a
//! `postgres-physical` source, `restore --to-pgdata` into fresh data directories started as the postgres OS user,
//! the WAL archive fed by `wal-push` as the primary's archive_command and read back by `wal-fetch`.
//!
//! PostgreSQL runs as the postgres OS user (we are root), and so do the archive and restore commands: the
//! repository, the config, the password file and the binary are made readable to it, and it keeps its own cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::pg::{self, PgOptions, PgServer, give_to_postgres};
use crate::common::{code, stderr};

const PASSWORD: &str = "pitr repository password";

/// A repository (one or more local regions) owned by the postgres user, with a config file naming it, a
/// password file, and a job with one postgres-physical source.
struct Vault {
    base: TempDir,
    config: PathBuf,
    regions: Vec<PathBuf>,
}

impl Vault {
    /// `regions` local directories; the repository is made by the postgres user.
    fn new(regions: usize) -> Vault {
        let base = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let pw = base.path().join("password");
        std::fs::write(&pw, PASSWORD).unwrap();
        std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let regions: Vec<PathBuf> = (0..regions).map(|i| base.path().join(format!("region-{i}"))).collect();
        let config = base.path().join("gumvault.toml");
        let v = Vault { base, config, regions };
        v.write_config(None);
        give_to_postgres(v.base.path());
        let mut init = vec!["init", "--kdf-memory", "8", "--kdf-iterations", "1"];
        let specs: Vec<String> = v.regions.iter().enumerate().map(|(i, r)| format!("r{i}={}", r.display())).collect();
        if v.regions.len() > 1 {
            for s in &specs {
                init.extend(["--region", s]);
            }
        }
        v.ok_pg(&init);
        v
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.base.path().join(rel)
    }

    fn password_file(&self) -> PathBuf {
        self.path("password")
    }

    /// The config file: the repository, its password file, and (once the server is known) the job.
    fn write_config(&self, pg: Option<(&PgServer, &str)>) {
        self.write_config_with(pg, "");
    }

    /// The config file with `extra` (a test restore, say) after the job's source.
    fn write_config_with(&self, pg: Option<(&PgServer, &str)>, extra: &str) {
        let mut text = format!(
            "[repository]\nurl = \"{}\"\npassword = \"file:{}\"\n",
            self.regions[0].display(),
            self.password_file().display()
        );
        if let Some((pg, wal)) = pg {
            text.push_str(&format!(
                "\n[[jobs.pg.sources]]\nname = \"db\"\nkind = \"postgres-physical\"\nurl = \"{}\"\n\
                 pg_basebackup = \"{}\"\nwal = \"{wal}\"\n",
                pg.url("postgres"),
                pg::bin_dir().join("pg_basebackup").display()
            ));
        }
        text.push_str(extra);
        std::fs::write(&self.config, text).unwrap();
        give_to_postgres(&self.config);
    }

    /// The archive_command of a primary archiving into this repository.
    fn archive_command(&self) -> String {
        format!("{} --config {} wal-push %p", env!("CARGO_BIN_EXE_gumvault"), self.config.display())
    }

    /// Server options that archive into this repository (the archive and restore commands get a cache of their
    /// own through the server's environment).
    fn archiving(&self) -> PgOptions {
        PgOptions::default()
            .set("archive_mode", "on")
            .set("archive_command", &self.archive_command())
            .set("archive_timeout", "1s")
            .env("GUMVAULT_CACHE_DIR", &self.path("cache-pg").display().to_string())
    }

    /// gumvault as root, with the config file and a cache of root's.
    fn root(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gumvault"));
        clear_env(&mut c);
        c.env("GUMVAULT_CACHE_DIR", self.path("cache-root")).arg("--config").arg(&self.config);
        c
    }

    /// gumvault as the postgres user (as the archive command runs), with its cache.
    fn as_pg(&self) -> Command {
        let mut c = Command::new("runuser");
        clear_env(&mut c);
        c.args(["-u", "postgres", "--", "env"])
            .arg(format!("GUMVAULT_CACHE_DIR={}", self.path("cache-pg").display()))
            .arg(env!("CARGO_BIN_EXE_gumvault"))
            .arg("--config")
            .arg(&self.config);
        c
    }

    fn ok_pg(&self, args: &[&str]) -> String {
        ok(self.as_pg().args(args), args)
    }

    fn ok_root(&self, args: &[&str]) -> String {
        ok(self.root().args(args), args)
    }

    fn json_root(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok_root(&[args, &["--json"]].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}\n{out}"))
    }

    /// The newest snapshot's manifest summary, as `snapshots --json` shows it.
    fn last_snapshot(&self) -> serde_json::Value {
        self.json_root(&["snapshots"]).as_array().unwrap().last().expect("a snapshot").clone()
    }
}

fn clear_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"GUMVAULT_") {
            c.env_remove(k);
        }
    }
    c.stdin(std::process::Stdio::null());
}

fn ok(cmd: &mut Command, args: &[&str]) -> String {
    let out = cmd.output().expect("run gumvault");
    assert!(out.status.success(), "gumvault {args:?} failed ({}):\n{}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh place for a restored data directory: `DIR/data` is what `--to-pgdata` gets.
fn fresh_pgdata() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    (dir, data)
}

/// Starts PostgreSQL on a restored data directory (not archiving) and waits until recovery has ended.
fn start_restored(dir: TempDir, vault: &Vault, archive: bool) -> PgServer {
    let opts = if archive {
        vault.archiving()
    } else {
        PgOptions::default()
            .set("archive_mode", "off")
            .env("GUMVAULT_CACHE_DIR", &vault.path("cache-pg").display().to_string())
    };
    let server = PgServer::start_existing(dir, &opts);
    wait_promoted(&server);
    server
}

fn wait_promoted(server: &PgServer) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.sql("postgres", "SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "recovery did not end within 120 s:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_base_backup_restores_into_a_new_data_directory_and_the_next_one_dedups() {
    let vault = Vault::new(1);
    let primary = PgServer::start();
    vault.write_config(Some((&primary, "fetch")));
    primary.create_db("bench");
    primary.pgbench_init("bench", 5);
    primary.sql("bench", "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    vault.ok_pg(&["run", "pg"]);
    let first = vault.last_snapshot();
    let b = &first["base_backups"][0];
    assert_eq!(b["source"], "db");
    assert_eq!(b["timeline"], 1);
    assert_eq!(b["pg_version"].as_u64().unwrap() / 10000, 15);
    let control = primary.client("pg_controldata").arg(primary.data_dir()).output().unwrap();
    let control = stdout(&control);
    assert!(control.contains(&format!("Database system identifier:           {}", b["system_id"])), "{control}\n{b}");
    assert_eq!(&b["start_wal"].as_str().unwrap()[..8], "00000001");
    assert!(b["stop_lsn"].as_str().unwrap() > b["start_lsn"].as_str().unwrap() || b["stop_wal"] != b["start_wal"]);

    // After a quiet while, a second base backup adds a small fraction of the first.
    std::thread::sleep(Duration::from_secs(2));
    vault.ok_pg(&["run", "pg"]);
    let second = vault.last_snapshot();
    let (added1, added2) =
        (first["summary"]["bytes_added"].as_u64().unwrap(), second["summary"]["bytes_added"].as_u64().unwrap());
    let read2 = second["summary"]["bytes_read"].as_u64().unwrap();
    eprintln!("base backups of pgbench scale 5: first added {added1} bytes, second {added2} of {read2} read");
    assert!(added2 * 20 < added1, "the second base backup added {added2} bytes, the first {added1}");

    let dump = primary.dump("bench");
    let (dir, data) = fresh_pgdata();
    let out = vault.ok_root(&["restore", "latest", "--source", "db", "--to-pgdata", data.to_str().unwrap()]);
    assert!(out.contains("pg_ctl -D") && out.contains("as the OS user postgres"), "{out}");
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), pg_uid(), "the data directory is postgres'");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o700);
    assert!(data.join("recovery.signal").exists() && data.join("pg_wal").is_dir());
    let conf = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(conf.contains("wal-fetch %f %p") && conf.contains("recovery_target_action = 'promote'"), "{conf}");
    assert!(!conf.contains(PASSWORD), "the password is never in the data directory");
    drop(primary);
    let restored = start_restored(dir, &vault, false);
    assert_eq!(restored.dump("bench"), dump, "the restored cluster holds what the primary held");
}

fn pg_uid() -> u32 {
    let out = Command::new("id").args(["-u", "postgres"]).output().unwrap();
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn a_data_directory_is_restored_only_where_it_can_recover() {
    let vault = Vault::new(1);
    let primary = PgServer::start();
    vault.write_config(Some((&primary, "fetch")));
    vault.ok_pg(&["run", "pg"]);
    let (_dir, data) = fresh_pgdata();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    let restore = |extra: &[&str], dir: &Path| {
        let mut c = vault.root();
        c.args(["restore", "latest", "--source", "db", "--to-pgdata"]).arg(dir).args(extra);
        c.output().unwrap()
    };
    let out = restore(&[], &data);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    let (_d2, other) = fresh_pgdata();
    let out = restore(&["--at", "2000-01-01T00:00:00Z"], &other);
    assert!(stderr(&out).contains("no base backup of source \"db\" ended at or before"), "{}", stderr(&out));
    assert!(!other.exists(), "nothing is made when no base backup fits");
    let id = vault.last_snapshot()["id"].as_str().unwrap().to_string();
    let out = restore(&["--at", "2000-01-01T00:00:00Z"], &other);
    assert_ne!(code(&out), 0);
    let mut c = vault.root();
    let out = c
        .args(["restore", &id[..8], "--source", "db", "--to-pgdata"])
        .arg(&other)
        .args(["--at", "2000-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("recovery cannot stop before the backup is consistent"), "{}", stderr(&out));
    // A password only in the environment cannot reach the restored server's restore_command.
    let mut c = Command::new(env!("CARGO_BIN_EXE_gumvault"));
    clear_env(&mut c);
    let out = c
        .env("GUMVAULT_REPO", &vault.regions[0])
        .env("GUMVAULT_PASSWORD", PASSWORD)
        .env("GUMVAULT_CACHE_DIR", vault.path("cache-env"))
        .args(["restore", "latest", "--source", "db", "--to-pgdata"])
        .arg(&other)
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("repository.password = \"file:"), "{}", stderr(&out));
    assert!(!other.exists());
}

#[test]
fn a_test_restore_recovers_a_scratch_cluster_runs_the_queries_and_records_the_measured_rto() {
    let vault = Vault::new(1);
    let primary = PgServer::start();
    let queries = "\n[jobs.pg.test_restore]\ndatabase = \"shop\"\nqueries = [\n  \
                   { sql = \"SELECT count(*) FROM orders\", min = 500 },\n  \
                   { sql = \"SELECT id FROM orders ORDER BY id DESC LIMIT 10\", min_rows = 10 },\n]\n";
    vault.write_config_with(Some((&primary, "fetch")), queries);
    primary.create_db("shop");
    primary.sql("shop", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 500)");
    vault.ok_pg(&["run", "pg"]);
    let report = vault.json_root(&["test-restore", "pg"]);
    let r = &report["report"];
    assert_eq!(r["ok"], true, "{report}");
    let rto = r["measured_rto_secs"].as_f64().unwrap();
    assert!(rto > 0.0 && rto >= r["restore_secs"].as_f64().unwrap(), "{report}");
    assert_eq!(r["queries"][0]["value"], "500", "{report}");
    let scratch = PathBuf::from(r["scratch_dir"].as_str().unwrap());
    assert!(!scratch.exists(), "the scratch cluster is deleted");
    let status = vault.json_root(&["status"]);
    let last = &status["jobs"][0]["lastTestRestore"];
    assert_eq!(last["ok"], true, "{status}");
    assert_eq!(last["detail"]["measured_rto_secs"].as_f64(), Some(rto), "{status}");
    let text = vault.ok_root(&["status"]);
    assert!(text.contains("measured RTO"), "{text}");

    // A query that fails fails the test restore (exit 5), and the cluster is still removed.
    let failing = queries.replace("min = 500", "min = 501");
    vault.write_config_with(Some((&primary, "fetch")), &failing);
    let out = vault.root().args(["test-restore", "pg"]).output().unwrap();
    assert_eq!(code(&out), 5, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("FAILED") && stdout(&out).contains("at least 501"), "{}", stdout(&out));
}

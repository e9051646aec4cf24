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
        std::fs::create_dir_all(v.path("cache-pg")).unwrap();
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

/// Starts PostgreSQL on a restored data directory (archiving into the vault, or not at all) and waits until
/// recovery has ended. Its restore command keeps its cache in `cache` (a directory of the postgres user's).
fn start_restored(dir: TempDir, vault: &Vault, archive: bool, cache: &str) -> PgServer {
    let cache_dir = vault.path(cache);
    std::fs::create_dir_all(&cache_dir).unwrap();
    give_to_postgres(&cache_dir);
    let opts = if archive { vault.archiving() } else { PgOptions::default().set("archive_mode", "off") };
    let opts = opts.env("GUMVAULT_CACHE_DIR", &cache_dir.display().to_string());
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
    let restored = start_restored(dir, &vault, false, "cache-pg");
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
    assert_eq!(status["jobs"][0]["measuredRtoSeconds"].as_f64(), Some(rto), "the job's measured RTO: {status}");
    let text = vault.ok_root(&["status"]);
    assert!(text.contains("measured RTO"), "{text}");

    // A query that fails fails the test restore (exit 5), and the cluster is still removed.
    let failing = queries.replace("min = 500", "min = 501");
    vault.write_config_with(Some((&primary, "fetch")), &failing);
    let out = vault.root().args(["test-restore", "pg"]).output().unwrap();
    assert_eq!(code(&out), 5, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("FAILED") && stdout(&out).contains("at least 501"), "{}", stdout(&out));
}

/// The rows of `t` by phase: `phase|count` lines.
fn phases(server: &PgServer) -> String {
    server.sql("shop", "SELECT phase, count(*) FROM t GROUP BY phase ORDER BY phase")
}

/// Inserts 100 rows of `phase`, then (after the commit) says the time, as RFC 3339 in UTC to the microsecond.
fn commit_phase(server: &PgServer, phase: u32) -> String {
    server.sql("shop", &format!("INSERT INTO t SELECT {phase}, g FROM generate_series(1, 100) g"));
    let t =
        server.sql("shop", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    // Commits of the next phase come clearly after the noted time.
    std::thread::sleep(Duration::from_millis(1200));
    t
}

/// Closes the current WAL segment and waits until the archiver has pushed it.
fn archive_now(server: &PgServer) {
    let segment = server.sql("shop", "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (last, failed) = {
            let row = server.sql("shop", "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver");
            let (l, f) = row.split_once('|').unwrap();
            (l.to_string(), f.to_string())
        };
        if last.as_str() >= segment.as_str() && last.len() == segment.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{segment} not archived in 120 s (last {last}, {failed} failures):\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Restores with `cmd` (its repository, password and cache already set) into a fresh directory, starts
/// PostgreSQL on it (archiving or not) and returns it once recovered.
fn recover(vault: &Vault, mut cmd: Command, extra: &[&str], archive: bool, cache: &str) -> PgServer {
    let (dir, data) = fresh_pgdata();
    let out = cmd.args(["restore", "latest", "--source", "db", "--to-pgdata"]).arg(&data).args(extra).output().unwrap();
    assert!(out.status.success(), "restore {extra:?} failed:\n{}{}", stdout(&out), stderr(&out));
    start_restored(dir, vault, archive, cache)
}

/// gumvault as root knowing only a repository URL and the password file, with a new, empty cache.
fn url_and_password_only(vault: &Vault, url: &Path, cache: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gumvault"));
    clear_env(&mut c);
    c.env("GUMVAULT_REPO", url)
        .env("GUMVAULT_PASSWORD_FILE", vault.password_file())
        .env("GUMVAULT_CACHE_DIR", vault.path(cache));
    c
}

#[test]
fn point_in_time_recovery_from_the_wal_archive_to_each_moment_on_either_timeline() {
    let vault = Vault::new(2);
    let primary = PgServer::start_with(&vault.archiving());
    vault.write_config(Some((&primary, "archive")));
    primary.create_db("shop");
    primary.sql("shop", "CREATE TABLE t (phase int, i int)");
    vault.ok_pg(&["run", "pg"]);
    let times: Vec<String> = (1..=3).map(|p| commit_phase(&primary, p)).collect();
    commit_phase(&primary, 4);
    archive_now(&primary);
    primary.kill_and_delete();
    drop(primary);

    // Each noted moment, exactly: the rows committed by then and none after.
    let all = "1|100\n2|100\n3|100\n4|100";
    for (k, t) in times.iter().enumerate() {
        let server = recover(&vault, vault.root(), &["--at", t], false, "cache-pg");
        let want: Vec<String> = (1..=k + 1).map(|p| format!("{p}|100")).collect();
        assert_eq!(phases(&server), want.join("\n"), "restored to {t}");
    }
    // The latest point loses nothing that was archived; so from a fresh cache with only the URL and password.
    assert_eq!(phases(&recover(&vault, vault.root(), &[], false, "cache-pg")), all);
    let fresh = url_and_password_only(&vault, &vault.regions[1], "cache-fresh-1");
    assert_eq!(phases(&recover(&vault, fresh, &[], false, "cache-pg-fresh-1")), all);

    // A restore to phase 1 that is promoted and archives: timeline 2, with phases 11 and 12 of its own.
    let tl2 = recover(&vault, vault.root(), &["--at", &times[0]], true, "cache-pg");
    assert_eq!(phases(&tl2), "1|100");
    assert_eq!(tl2.sql("shop", "SELECT timeline_id FROM pg_control_checkpoint()"), "2");
    let t11 = commit_phase(&tl2, 11);
    commit_phase(&tl2, 12);
    archive_now(&tl2);
    tl2.kill_and_delete();
    drop(tl2);
    // A time on the new timeline, and one on the old that came after the fork.
    assert_eq!(phases(&recover(&vault, vault.root(), &["--at", &t11], false, "cache-pg")), "1|100\n11|100");
    let old = recover(&vault, vault.root(), &["--at", &times[2], "--timeline", "1"], false, "cache-pg");
    assert_eq!(phases(&old), "1|100\n2|100\n3|100");
    drop(old);

    // One region alone, the other gone, from a fresh cache: the latest point follows timeline 2.
    std::fs::remove_dir_all(&vault.regions[0]).unwrap();
    let alone = url_and_password_only(&vault, &vault.regions[1], "cache-fresh-2");
    assert_eq!(phases(&recover(&vault, alone, &[], false, "cache-pg-fresh-2")), "1|100\n11|100\n12|100");
    let alone = url_and_password_only(&vault, &vault.regions[1], "cache-fresh-2");
    let server = recover(&vault, alone, &["--at", &times[1], "--timeline", "1"], false, "cache-pg-fresh-2");
    assert_eq!(phases(&server), "1|100\n2|100");
}

/// `status --json` of the vault as the postgres user, whose cache holds what `wal-push` recorded.
fn status_as_pg(vault: &Vault) -> (i32, serde_json::Value) {
    let out = vault.as_pg().args(["status", "--json"]).output().unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad status JSON: {e}\n{}{}", stdout(&out), stderr(&out)));
    (code(&out), json)
}

#[test]
fn status_takes_the_recovery_point_from_the_archived_wal_and_turns_critical_while_pushing_fails() {
    let vault = Vault::new(1);
    let cache = vault.path("cache-pg").display().to_string();
    let primary = PgServer::start_with(&vault.archiving().env("GUMVAULT_CACHE_DIR", &cache));
    vault.write_config_with(Some((&primary, "archive")), "\n[jobs.pg]\nrpo = \"1h\"\n");
    primary.create_db("shop");
    primary.sql("shop", "CREATE TABLE t (phase int, i int)");
    vault.ok_pg(&["run", "pg"]);
    commit_phase(&primary, 1);
    archive_now(&primary);
    let newest = primary.sql("shop", "SELECT last_archived_wal FROM pg_stat_archiver");

    // The recovery point is the newest archived segment, newer than the base backup's snapshot.
    let (exit, st) = status_as_pg(&vault);
    let job = &st["jobs"][0];
    let point = &job["sources"][0]["recoveryPoint"];
    assert_eq!((exit, &point["kind"], &point["from"]), (0, &"wal".into(), &newest.clone().into()), "{st}");
    assert!(point["ageSeconds"].as_i64().unwrap() < 60, "{st}");
    assert_eq!(job["recoveryPoint"]["kind"], "wal", "{st}");

    // Pushing fails (the archive's directory is read-only for the archiver): the job is critical and says why.
    let wal_dir = vault.regions[0].join("wal");
    let chmod =
        |mode: &str| assert!(Command::new("chmod").args(["-R", mode]).arg(&wal_dir).status().unwrap().success());
    chmod("a-w");
    primary.sql("shop", "INSERT INTO t VALUES (2, 1)");
    let failing = primary.sql("shop", "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    while primary.sql("shop", "SELECT failed_count FROM pg_stat_archiver") == "0" {
        assert!(Instant::now() < deadline, "the archiver never failed:\n{}", primary.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (exit, st) = status_as_pg(&vault);
    let reasons = st["jobs"][0]["reasons"].to_string();
    assert_eq!((exit, &st["status"]), (9, &"critical".into()), "{st}");
    assert!(reasons.contains("WAL archiving fails") && reasons.contains(&failing), "{reasons}");

    // Once the archive takes files again, PostgreSQL's retry succeeds and the job is healthy.
    chmod("u+w");
    archive_now(&primary);
    let (exit, st) = status_as_pg(&vault);
    assert_eq!((exit, &st["status"]), (0, &"healthy".into()), "{st}");
}

//! The whole application stack against real servers on 127.0.0.1: PostgreSQL (pgbench), an S3-compatible server
//! (s3s-fs), Redis, config files and environment variables, in one job of a config file. Back up, change
//! everything, back up again, and restore the first snapshot source by source.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::pg::PgServer;
use crate::common::redis::RedisServer;
use crate::common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::common::{Env, code, pseudo_random, stderr};
use rayon::prelude::*;

const STRIPE: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";

/// Everything one stack test needs, with the config file written.
struct Stack {
    env: Env,
    pg: PgServer,
    redis: RedisServer,
    s3: S3Server,
    config: PathBuf,
    etc: PathBuf,
}

impl Stack {
    fn start(queries: &str) -> Stack {
        let env = Env::uninitialised();
        let pg = PgServer::start();
        let redis = RedisServer::start();
        let s3 = S3Server::start(&env.path("s3"), &["uploads", "restored"]);
        let etc = env.path("etc/bubblegum");
        std::fs::create_dir_all(&etc).unwrap();
        let config = env.path("gumvault.toml");
        let stack = Stack { env, pg, redis, s3, config, etc };
        stack.write_config(queries);
        stack
    }

    fn write_config(&self, queries: &str) {
        let text = format!(
            r#"
[repository]
url = "{repo}"
password = "env:GUMVAULT_PASSWORD"

[[jobs.bubblegum.sources]]
name = "db"
kind = "postgres"
url = "env:DATABASE_URL"
pg_dump = "{pg_dump}"

[[jobs.bubblegum.sources]]
name = "uploads"
kind = "s3"
url = "{uploads}"
include = ["*.jpg", "*.png", "*.pdf"]
access_key_id = "env:TEST_S3_KEY"
secret_access_key = "env:TEST_S3_SECRET"

[[jobs.bubblegum.sources]]
name = "cache"
kind = "redis"
url = "{redis}"

[[jobs.bubblegum.sources]]
name = "config"
kind = "files"
paths = ["{etc}"]
exclude = ["*.tmp"]

[[jobs.bubblegum.sources]]
name = "env"
kind = "env"
names = ["DATABASE_URL", "STRIPE_SECRET_KEY", "APP_MODE"]

[jobs.bubblegum.test_restore]
queries = [{queries}]
"#,
            repo = self.env.repo,
            pg_dump = self.pg.bin_dir().join("pg_dump").display(),
            uploads = self.s3.url("uploads", ""),
            redis = self.redis.url(),
            etc = self.etc.display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// gumvault with the config file (the repository comes from it) and the application's environment.
    fn cmd(&self, database_url: &str, app_mode: &str) -> Command {
        let mut c = self.env.cmd();
        c.env_remove("GUMVAULT_REPO")
            .env("GUMVAULT_CONFIG", &self.config)
            .env("DATABASE_URL", database_url)
            .env("STRIPE_SECRET_KEY", STRIPE)
            .env("APP_MODE", app_mode)
            .env("TEST_S3_KEY", ACCESS_KEY)
            .env("TEST_S3_SECRET", SECRET_KEY)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(&self.pg.url("bubble"), "production").args(args).output().expect("run gumvault")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "gumvault {args:?} failed ({}):\n{}", out.status, stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn bucket(&self, bucket: &str) -> opendal::blocking::Operator {
        self.s3.bucket(bucket)
    }
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "pdf" => "application/pdf",
        _ => "text/plain",
    }
}

/// Every object of a bucket: key → bytes.
fn objects(op: &opendal::blocking::Operator) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = op
        .list_options("", opendal::options::ListOptions { recursive: true, ..Default::default() })
        .unwrap()
        .into_iter()
        .filter(|e| e.metadata().is_file())
        .map(|e| e.path().trim_start_matches('/').to_string())
        .collect();
    keys.par_iter().map(|k| (k.clone(), op.read(k).unwrap().to_vec())).collect()
}

fn put(op: &opendal::blocking::Operator, key: &str, data: Vec<u8>) {
    let ext = key.rsplit('.').next().unwrap_or("");
    let opts = opendal::options::WriteOptions { content_type: Some(content_type(ext).into()), ..Default::default() };
    op.write_options(key, data, opts).unwrap();
}

/// Panics at the first line where two dumps differ.
fn assert_same_dump(restored: &str, original: &str) {
    if restored == original {
        return;
    }
    let (r, o): (Vec<&str>, Vec<&str>) = (restored.lines().collect(), original.lines().collect());
    let at = r.iter().zip(&o).position(|(a, b)| a != b).unwrap_or(r.len().min(o.len()));
    panic!(
        "the restored database dumps differently from the first run's, at line {}: {:?} vs {:?} ({} vs {} lines)",
        at + 1,
        r.get(at),
        o.get(at),
        r.len(),
        o.len()
    );
}

fn snapshot_id(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["snapshot_id"].as_str().unwrap().to_string()
}

#[test]
fn a_job_backs_up_the_whole_stack_and_restores_the_first_snapshot_source_by_source() {
    let stack = Stack::start(
        r#"{ sql = "SELECT COUNT(*) FROM pgbench_accounts", min = 1000000 }, { sql = "SELECT bid FROM pgbench_branches", min_rows = 10 }"#,
    );
    let pg = &stack.pg;
    stack.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);

    // The first state of the application.
    pg.create_db("bubble");
    pg.pgbench_init("bubble", 10);
    let uploads = stack.bucket("uploads");
    let exts = ["jpg", "png", "pdf", "tmp"];
    (0..1000usize).into_par_iter().for_each(|i| {
        let key = format!("u{}/{i}.{}", i % 10, exts[i % 4]);
        put(&uploads, &key, pseudo_random(200 + (i * 37) % 3000, i as u64));
    });
    for i in 0..50 {
        stack.redis.cli(&["SET", &format!("session:{i}"), &format!("user-{i}")]);
    }
    std::fs::write(stack.etc.join("app.toml"), "[server]\nport = 8080\n").unwrap();
    std::fs::write(stack.etc.join("nginx.conf"), "server { listen 80; }\n").unwrap();
    std::fs::write(stack.etc.join("scratch.tmp"), "not wanted").unwrap();
    let first_dump = pg.dump("bubble");
    let first_objects: BTreeMap<String, Vec<u8>> =
        objects(&uploads).into_iter().filter(|(k, _)| !k.ends_with(".tmp")).collect();
    assert_eq!(first_objects.len(), 750);

    let first = snapshot_id(&stack.ok(&["run", "bubblegum", "--json"]));

    // Change everything.
    pg.pgbench_run("bubble", 500, 7);
    (0..10usize).for_each(|i| put(&uploads, &format!("u{i}/{i}.jpg"), pseudo_random(999, 10_000 + i as u64)));
    for i in 1..6usize {
        uploads.delete(&format!("u{i}/{i}.png")).unwrap();
        put(&uploads, &format!("new/{i}.pdf"), pseudo_random(500, 20_000 + i as u64));
    }
    stack.redis.cli(&["SET", "session:0", "changed"]);
    stack.redis.cli(&["DEL", "session:1"]);
    stack.redis.cli(&["SET", "later", "x"]);
    std::fs::write(stack.etc.join("app.toml"), "[server]\nport = 9090\n").unwrap();
    let second = stack.cmd(&pg.url("bubble"), "maintenance").args(["run", "bubblegum", "--json"]).output().unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    // Unchanged objects and files come from the first snapshot without being downloaded again.
    assert!(second["summary"]["files_unchanged"].as_u64().unwrap() >= 730, "{second}");
    assert_ne!(second["snapshot_id"].as_str().unwrap(), first);

    let listing = stack.ok(&["ls", &first]);
    for dir in ["/db/dump.sql", "/uploads/u0/0.jpg", "/cache/dump.rdb", "/config", "/env/variables.env"] {
        assert!(listing.lines().any(|l| l == dir), "{dir} missing from:\n{listing}");
    }
    assert!(!listing.lines().any(|l| l.ends_with(".tmp")), "excluded files were backed up:\n{listing}");
    assert!(!listing.contains(STRIPE));

    // Database: a pg_dump of the restored database equals the dump taken at the first run.
    pg.create_db("restored");
    stack.ok(&["restore", &first, "--source", "db", "--to-postgres", &pg.url("restored")]);
    assert_same_dump(&pg.dump("restored"), &first_dump);
    let again = stack.run(&["restore", &first, "--source", "db", "--to-postgres", &pg.url("restored")]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    stack.ok(&["restore", &first, "--source", "db", "--to-postgres", &pg.url("restored"), "--clean"]);
    assert_same_dump(&pg.dump("restored"), &first_dump);

    // Bucket: exactly the first run's included objects, byte for byte, with their content types.
    stack.ok(&["restore", &first, "--source", "uploads", "--to-s3", &stack.s3.url("restored", "")]);
    let restored = stack.bucket("restored");
    assert!(objects(&restored) == first_objects, "restored bucket differs from the first run's objects");
    assert_eq!(restored.stat("u1/1.png").unwrap().content_type(), Some("image/png"));
    let clash = stack.run(&["restore", &first, "--source", "uploads", "--to-s3", &stack.s3.url("restored", "")]);
    assert_eq!(code(&clash), 1, "{}", stderr(&clash));
    // A single object.
    let one = stack.env.path("one");
    stack.ok(&["restore", &first, "--source", "uploads", "--include", "u0/0.jpg", "--target", one.to_str().unwrap()]);
    assert_eq!(crate::common::files_under(&one).len(), 1);
    assert_eq!(std::fs::read(one.join("u0/0.jpg")).unwrap(), first_objects["u0/0.jpg"]);

    // Redis: the restored dump loads with the first run's keys.
    let cache = stack.env.path("cache-restore");
    stack.ok(&["restore", &first, "--source", "cache", "--target", cache.to_str().unwrap()]);
    let loaded = RedisServer::load(&cache);
    assert_eq!(loaded.cli(&["DBSIZE"]), "50");
    assert_eq!(loaded.cli(&["GET", "session:0"]), "user-0");
    assert_eq!(loaded.cli(&["GET", "session:1"]), "user-1");
    assert_eq!(loaded.cli(&["EXISTS", "later"]), "0");

    // Config files: the first versions, without the excluded one.
    let cfg = stack.env.path("cfg");
    stack.ok(&["restore", &first, "--source", "config", "--target", cfg.to_str().unwrap()]);
    let restored_etc = cfg.join(stack.etc.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(restored_etc.join("app.toml")).unwrap(), "[server]\nport = 8080\n");
    assert_eq!(std::fs::read_to_string(restored_etc.join("nginx.conf")).unwrap(), "server { listen 80; }\n");
    assert!(!restored_etc.join("scratch.tmp").exists());

    // Environment: the first run's values, in a file only its owner can read.
    let envdir = stack.env.path("env-restore");
    stack.ok(&["restore", &first, "--source", "env", "--target", envdir.to_str().unwrap()]);
    let vars = std::fs::read_to_string(envdir.join("variables.env")).unwrap();
    assert!(vars.contains("APP_MODE=production\n"), "{vars}");
    assert!(vars.contains(&format!("STRIPE_SECRET_KEY={STRIPE}\n")), "{vars}");
    assert!(vars.contains(&format!("DATABASE_URL={}\n", pg.url("bubble"))), "{vars}");
    let mode = std::fs::metadata(envdir.join("variables.env")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The test restore passes on a good snapshot, and leaves no scratch database behind.
    let report = stack.ok(&["test-restore", "bubblegum", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["report"]["ok"], true, "{report}");
    assert_eq!(report["report"]["queries"][0]["value"], "1000000");
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'gumvault_test%'"), "0");

    // ... and fails clearly when a query returns fewer rows than required.
    stack.write_config(r#"{ sql = "SELECT bid FROM pgbench_branches", min_rows = 11 }"#);
    let failed = stack.run(&["test-restore", "bubblegum"]);
    assert_eq!(code(&failed), 5, "{}", stderr(&failed));
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(text.contains("FAILED") && text.contains("returned 10 rows, at least 11 required"), "{text}");
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'gumvault_test%'"), "0");
}

#[test]
fn a_failing_pg_dump_leaves_no_snapshot_and_says_why() {
    let stack = Stack::start(r#"{ sql = "SELECT 1", min = 1 }"#);
    stack.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    stack.pg.create_db("bubble");
    std::fs::write(stack.etc.join("app.toml"), "x").unwrap();
    let before = stack.env.snapshot_count();

    let wrong_password = stack.pg.url("bubble").replace(crate::common::pg::PASSWORD, "not-the-password");
    let out = stack.cmd(&wrong_password, "production").args(["run", "bubblegum"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("source \"db\"") && err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "the password leaked into a message: {err}");
    assert_eq!(stack.env.snapshot_count(), before);

    let missing = stack.pg.url("nope");
    let out = stack.cmd(&missing, "production").args(["run", "bubblegum"]).output().unwrap();
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("database \"nope\" does not exist"), "{}", stderr(&out));
    assert_eq!(stack.env.snapshot_count(), before);

    // A required variable that is not set, and a bucket that does not exist: named, and no snapshot.
    let out = stack
        .cmd(&stack.pg.url("bubble"), "production")
        .env_remove("STRIPE_SECRET_KEY")
        .args(["run", "bubblegum"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("environment variable STRIPE_SECRET_KEY is not set"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(crate::common::pg::PASSWORD), "a secret leaked: {}", stderr(&out));
    let good = std::fs::read_to_string(&stack.config).unwrap();
    std::fs::write(&stack.config, good.replace("s3://uploads/", "s3://no-such-bucket/")).unwrap();
    let out = stack.run(&["run", "bubblegum"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("source \"uploads\"") && stderr(&out).contains("no-such-bucket"), "{}", stderr(&out));
    std::fs::write(&stack.config, good).unwrap();
    assert_eq!(stack.env.snapshot_count(), before);

    // An optional source that fails is left out, and said so; Redis is optional by default.
    let redis_url = stack.redis.url();
    let _ = Command::new("redis-cli").args(["-p", &stack.redis.port.to_string(), "SHUTDOWN", "NOSAVE"]).output();
    let out = stack.run(&["run", "bubblegum"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("optional source left out: cache"), "{}", stderr(&out));
    assert!(stderr(&out).contains(redis_url.trim_start_matches("redis://")), "{}", stderr(&out));
    assert_eq!(stack.env.snapshot_count(), before + 1);
    let listing = stack.ok(&["ls", "latest"]);
    assert!(!listing.contains("/cache") && listing.contains("/db/dump.sql"), "{listing}");
}

#[test]
fn a_custom_format_dump_restores_with_pg_restore_and_passes_the_test_restore() {
    let stack = Stack::start(r#"{ sql = "SELECT COUNT(*) FROM pgbench_accounts", min = 100000 }"#);
    let text = std::fs::read_to_string(&stack.config).unwrap().replace(
        "url = \"env:DATABASE_URL\"\n",
        "url = \"env:DATABASE_URL\"\nformat = \"custom\"\nexclude_tables = [\"pgbench_history\"]\n",
    );
    std::fs::write(&stack.config, text).unwrap();
    stack.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    let pg = &stack.pg;
    pg.create_db("bubble");
    pg.pgbench_init("bubble", 1);
    pg.sql("bubble", "INSERT INTO pgbench_history VALUES (1, 1, 1, 1, now(), NULL)");
    std::fs::write(stack.etc.join("app.toml"), "x").unwrap();
    let id = snapshot_id(&stack.ok(&["run", "bubblegum", "--json"]));
    let listing = stack.ok(&["ls", &id, "/db"]);
    assert!(listing.contains("/db/dump.pgdump"), "{listing}");

    pg.create_db("restored");
    stack.ok(&["restore", &id, "--source", "db", "--to-postgres", &pg.url("restored")]);
    assert_eq!(pg.sql("restored", "SELECT count(*) FROM pgbench_accounts"), "100000");
    assert_eq!(pg.sql("restored", "SELECT count(*) FROM pg_tables WHERE tablename = 'pgbench_history'"), "0");
    let report = stack.ok(&["test-restore", "bubblegum", "--json"]);
    assert!(report.contains("\"ok\":true"), "{report}");
}

#[test]
fn a_primary_key_ordered_dump_restores_the_same_rows_in_key_order() {
    let stack = Stack::start(r#"{ sql = "SELECT COUNT(*) FROM pgbench_accounts", min = 100000 }"#);
    let text = std::fs::read_to_string(&stack.config)
        .unwrap()
        .replace("url = \"env:DATABASE_URL\"\n", "url = \"env:DATABASE_URL\"\norder = \"primary-key\"\n");
    std::fs::write(&stack.config, text).unwrap();
    stack.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    let pg = &stack.pg;
    pg.create_db("bubble");
    pg.pgbench_init("bubble", 1);
    // Updates move rows physically; a sequence and a quoted name check the parts pg_dump's sections leave to us.
    pg.pgbench_run("bubble", 2000, 3);
    pg.sql("bubble", "CREATE TABLE \"Odd Name\" (id serial PRIMARY KEY, note text); INSERT INTO \"Odd Name\" (note) SELECT 'n' || g FROM generate_series(1, 50) g");
    std::fs::write(stack.etc.join("app.toml"), "x").unwrap();
    let id = snapshot_id(&stack.ok(&["run", "bubblegum", "--json"]));

    let out = stack.run(&["dump", &id, "/db/dump.sql"]);
    let dump = String::from_utf8_lossy(&out.stdout).into_owned();
    let aids: Vec<u64> = dump
        .split("COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n")
        .nth(1)
        .expect("the accounts block")
        .lines()
        .take_while(|l| *l != "\\.")
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(aids.len(), 100_000);
    assert!(aids.windows(2).all(|w| w[0] < w[1]), "accounts are not in primary-key order");

    pg.create_db("restored");
    stack.ok(&["restore", &id, "--source", "db", "--to-postgres", &pg.url("restored")]);
    let sorted = |db: &str| {
        let mut lines: Vec<String> = pg.dump(db).lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert!(sorted("restored") == sorted("bubble"), "the restored database holds other rows or schema");
    assert_eq!(pg.sql("restored", "SELECT nextval('\"Odd Name_id_seq\"')"), "51");
}

#[test]
fn an_invalid_config_names_the_file_the_line_and_the_key() {
    let env = Env::uninitialised();
    let config = env.path("bad.toml");
    std::fs::write(&config, "[repository]\nurl = \"/tmp/x\"\n\n[[jobs.app.sources]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"x\"\n")
        .unwrap();
    let out = env.cmd().env("GUMVAULT_CONFIG", &config).args(["run", "app"]).output().unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains(&config.display().to_string()) && err.contains("line 4") && err.contains("database"), "{err}");
    let out =
        env.cmd().env("GUMVAULT_CONFIG", Path::new("/nonexistent/gumvault.toml")).args(["snapshots"]).output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("/nonexistent/gumvault.toml"), "{}", stderr(&out));
}

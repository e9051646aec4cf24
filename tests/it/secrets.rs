//! Secrets stay with their owner, on the real binary: every program gumvault starts (`backup --command`,
//! pg_dump, redis-cli, the alert command, the password command) gets no repository password, no AWS secret and
//! no value of another `env:` reference, but what it needs; the repository and the catalog are their owner's
//! only (0600 files, 0700 directories); a new password is never empty and a password file others can read is
//! named; config errors never echo a value; an incomplete backup is recorded with what it could not read; `ls`
//! prints every name on one line.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Env, code, stderr};

const AWS_KEY_ID: &str = "AKIAWITHHELDKEYID0001";
const AWS_SECRET: &str = "aws-secret-withheld-0001";
const AWS_TOKEN: &str = "aws-session-token-withheld-0001";
const NEW_PASSWORD: &str = "new-password-withheld-0001";
const FOREIGN: &str = "foreign-secret-withheld-0001";

/// The binary with secrets in its environment that no child may see, started with umask 027 (which children must
/// get back).
fn with_secrets(env: &Env, config: Option<&Path>) -> Command {
    let mut c = env.cmd();
    c.env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_SESSION_TOKEN", AWS_TOKEN)
        .env("GUMVAULT_NEW_PASSWORD", NEW_PASSWORD)
        .env("FOREIGN_URL", format!("redis://:{FOREIGN}@127.0.0.1:1"));
    if let Some(config) = config {
        c.env("GUMVAULT_CONFIG", config);
    }
    with_umask(&mut c, 0o027);
    c
}

fn with_umask(c: &mut Command, mask: libc::mode_t) {
    // SAFETY: umask is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed ({}): {}", out.status, stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts `text` (what a child saw) holds none of the secrets it must not get.
fn assert_no_secret(text: &str, env: &Env, what: &str) {
    for secret in [env.password.as_str(), AWS_KEY_ID, AWS_SECRET, AWS_TOKEN, NEW_PASSWORD, FOREIGN] {
        assert!(!text.contains(secret), "{what} saw the secret {secret:?}:\n{text}");
    }
    for name in ["GUMVAULT_PASSWORD", "GUMVAULT_NEW_PASSWORD", "AWS_SECRET_ACCESS_KEY", "FOREIGN_URL="] {
        assert!(!text.contains(name), "{what} got {name}:\n{text}");
    }
    assert!(text.contains("PATH="), "{what} should see the rest of the environment:\n{text}");
}

#[test]
fn a_command_child_gets_no_repository_password_and_no_secret_of_the_config() {
    let env = Env::new();
    let config = env.path("gumvault.toml");
    std::fs::write(&config, "[[jobs.app.sources]]\nname = \"cache\"\nkind = \"redis\"\nurl = \"env:FOREIGN_URL\"\n")
        .unwrap();
    let backup = ["backup", "--command", "sh -c 'env; echo umask=$(umask)'", "--stdin-filename", "env.txt"];
    for config in [None, Some(config.as_path())] {
        ok(with_secrets(&env, config).args(backup).output().unwrap(), "backup --command");
        let seen = env.ok(&["dump", "latest", "/env.txt"]);
        if config.is_some() {
            assert_no_secret(&seen, &env, "backup --command");
        } else {
            // Without a config gumvault cannot know FOREIGN_URL holds a secret; everything else is withheld.
            assert!(seen.contains(FOREIGN));
            assert_no_secret(&seen.replace(FOREIGN, "").replace("FOREIGN_URL=", ""), &env, "backup --command");
        }
        assert!(seen.contains("umask=0027"), "the child gets the umask gumvault was started with:\n{seen}");
    }
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn pg_dump_and_redis_cli_get_their_own_password_and_nothing_else() {
    let env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Stand-ins that put what they were given into the dump itself.
    script(&bin.join("pg_dump"), "env\necho 'SELECT 1;'");
    script(&bin.join("redis-cli"), "printf 'REDIS0011\\n'\nenv");
    // psql reads the database's properties (roles, settings) for the restore onto a new server: the stand-in
    // answers the two queries with "no passwords readable" and an empty record, and keeps its environment.
    let record = serde_json::to_string(&gumvault::sources::pg_record::DatabaseRecord::empty("app")).unwrap();
    let psql_env = env.path("psql-env.txt");
    script(
        &bin.join("psql"),
        &format!(
            "env >> '{}'\ncase \"$*\" in *has_table_privilege*) echo f ;; *) cat <<'EOF'\n{record}\nEOF\n;; esac",
            psql_env.display()
        ),
    );
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        format!(
            "[[jobs.app.sources]]\nname = \"db\"\nkind = \"postgres\"\nurl = \"env:APP_DATABASE_URL\"\npg_dump = \"{}\"\n\n\
             [[jobs.app.sources]]\nname = \"cache\"\nkind = \"redis\"\nurl = \"env:FOREIGN_URL\"\nredis_cli = \"{}\"\n\
             optional = false\n\n[[jobs.app.sources]]\nname = \"env\"\nkind = \"env\"\nnames = [\"STRIPE_SECRET_KEY\"]\n",
            bin.join("pg_dump").display(),
            bin.join("redis-cli").display()
        ),
    )
    .unwrap();
    let mut run = with_secrets(&env, Some(&config));
    run.env("APP_DATABASE_URL", "postgres://app:pg-own-password@127.0.0.1:1/app")
        .env("STRIPE_SECRET_KEY", "sk_live_withheld_0001");
    ok(run.args(["run", "app"]).output().unwrap(), "run app");

    let dump = env.ok(&["dump", "latest", "/db/dump.sql"]);
    assert!(dump.contains("PGPASSWORD=pg-own-password"), "pg_dump gets its password:\n{dump}");
    assert!(dump.contains("SELECT 1;"));
    assert_no_secret(&dump, &env, "pg_dump");
    for other in ["sk_live_withheld_0001", "APP_DATABASE_URL", "STRIPE_SECRET_KEY"] {
        assert!(!dump.contains(other), "pg_dump got {other}:\n{dump}");
    }

    let seen = std::fs::read_to_string(&psql_env).unwrap();
    assert!(seen.contains("PGPASSWORD=pg-own-password"), "psql gets the source's password:\n{seen}");
    assert_no_secret(&seen, &env, "psql");
    assert!(!seen.contains("sk_live_withheld_0001"), "psql got another source's secret:\n{seen}");

    let rdb = env.ok(&["dump", "latest", "/cache/dump.rdb"]);
    assert!(rdb.starts_with("REDIS0011"));
    assert!(rdb.contains(&format!("REDISCLI_AUTH={FOREIGN}")), "redis-cli gets its password:\n{rdb}");
    let without_own = rdb.replace(&format!("REDISCLI_AUTH={FOREIGN}"), "");
    assert_no_secret(&without_own, &env, "redis-cli");
    assert!(!rdb.contains("pg-own-password") && !rdb.contains("sk_live_withheld_0001"), "{rdb}");
}

#[test]
fn the_alert_command_gets_what_its_config_names() {
    let env = Env::new();
    let seen = env.path("alert-env.txt");
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        format!(
            "[[jobs.app.sources]]\nname = \"cache\"\nkind = \"redis\"\nurl = \"env:FOREIGN_URL\"\n\n\
             [http]\ntoken = \"env:PAGER_TOKEN\"\n\n\
             [alerts]\ncommand = \"env > {0}; echo umask=$(umask) >> {0}\"\ncommand_env = [\"PAGER_TOKEN\"]\n",
            seen.display()
        ),
    )
    .unwrap();
    let mut alert = with_secrets(&env, Some(&config));
    alert.env("PAGER_TOKEN", "pager-token-passed-0001");
    ok(alert.args(["alert", "test"]).output().unwrap(), "alert test");
    let text = std::fs::read_to_string(&seen).unwrap();
    assert!(text.contains("GUMVAULT_ALERT_KIND=test"), "{text}");
    assert!(text.contains("PAGER_TOKEN=pager-token-passed-0001"), "command_env passes it on:\n{text}");
    assert!(text.contains("umask=0027"), "{text}");
    assert_no_secret(&text, &env, "the alert command");
    let mode = std::fs::metadata(&seen).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the alert command creates files with the umask gumvault was started with");
}

#[test]
fn the_password_command_gets_no_secret() {
    let env = Env::new();
    let seen = env.path("password-command-env.txt");
    let mut c = with_secrets(&env, None);
    c.env_remove("GUMVAULT_PASSWORD")
        .env("GUMVAULT_PASSWORD_COMMAND", format!("env > {}; echo '{}'", seen.display(), env.password));
    ok(c.args(["snapshots"]).output().unwrap(), "snapshots with a password command");
    let text = std::fs::read_to_string(&seen).unwrap();
    let text = text.replace(FOREIGN, "").replace("FOREIGN_URL=", "");
    assert_no_secret(&text, &env, "the password command");
    assert!(!text.contains("GUMVAULT_PASSWORD_COMMAND"), "{text}");
}

/// Every file and directory below `root`, with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = vec![(root.to_path_buf(), std::fs::metadata(root).unwrap().mode() & 0o7777, true)];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path(), m.mode() & 0o7777, m.is_dir()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn assert_private(root: &Path) {
    let all = modes(root);
    assert!(all.iter().any(|(_, _, dir)| !dir), "no files below {}: {all:?}", root.display());
    for (path, mode, dir) in all {
        assert_eq!(mode, if dir { 0o700 } else { 0o600 }, "{} has mode {mode:04o}", path.display());
    }
}

#[test]
fn repository_and_catalog_are_their_owners_only_and_restores_keep_their_modes() {
    let env = Env::uninitialised();
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("GUMVAULT_NEW_PASSWORD", NEW_PASSWORD);
        with_umask(&mut c, 0o022);
        ok(c.args(args).output().unwrap(), &args.join(" "))
    };
    run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("public")).unwrap();
    std::fs::write(src.join("public/index.html"), "hello").unwrap();
    std::fs::set_permissions(src.join("public"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(src.join("public/index.html"), std::fs::Permissions::from_mode(0o644)).unwrap();
    run(&["backup", src.to_str().unwrap()]);
    run(&["key", "add"]);
    assert_private(Path::new(&env.repo));
    assert_private(&env.cache);

    // A catalog made before (0644 in a 0755 directory) is tightened when its owner opens it.
    for (path, _, dir) in modes(&env.cache) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(if dir { 0o755 } else { 0o644 })).unwrap();
    }
    run(&["snapshots"]);
    let catalog_dir = std::fs::read_dir(&env.cache).unwrap().flatten().next().unwrap().path();
    assert_private(&catalog_dir);

    // The umask is gumvault's own: restored files get the modes of the snapshot.
    let target = env.path("target");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::metadata(restored.join("public")).unwrap().mode() & 0o777, 0o755);
    assert_eq!(std::fs::metadata(restored.join("public/index.html")).unwrap().mode() & 0o777, 0o644);
}

#[test]
fn a_new_password_is_never_empty_whatever_its_source() {
    let env = Env::uninitialised();
    let init = ["init", "--kdf-memory", "8", "--kdf-iterations", "1"];
    let refused = |mut c: Command, args: &[&str], what: &str| {
        let out = c.args(args).output().unwrap();
        assert_eq!(code(&out), 1, "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains("empty"), "{what}: {}", stderr(&out));
    };
    let mut c = env.cmd();
    c.env("GUMVAULT_PASSWORD", "");
    refused(c, &init, "GUMVAULT_PASSWORD");
    let empty = env.path("empty-password");
    std::fs::write(&empty, "\n").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = env.cmd();
    c.env_remove("GUMVAULT_PASSWORD").env("GUMVAULT_PASSWORD_FILE", &empty);
    refused(c, &init, "a password file");
    let mut c = env.cmd();
    c.env_remove("GUMVAULT_PASSWORD").env("GUMVAULT_PASSWORD_COMMAND", "printf ''");
    refused(c, &init, "a password command");
    let config = env.path("gumvault.toml");
    std::fs::write(&config, "[repository]\npassword = \"env:EMPTY_REPOSITORY_PASSWORD\"\n").unwrap();
    let mut c = env.cmd();
    c.env_remove("GUMVAULT_PASSWORD").env("GUMVAULT_CONFIG", &config).env("EMPTY_REPOSITORY_PASSWORD", "");
    refused(c, &init, "repository.password");
    assert!(!Path::new(&env.repo).join("config").exists(), "no repository was made");

    env.ok(&init);
    let mut c = env.cmd();
    c.env("GUMVAULT_NEW_PASSWORD", "");
    refused(c, &["key", "add"], "GUMVAULT_NEW_PASSWORD");
    refused(env.cmd(), &["key", "passwd", "--new-password-file", empty.to_str().unwrap()], "--new-password-file");
    assert_eq!(env.json(&["key", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_password_file_open_to_others_is_named_with_a_warning() {
    let env = Env::uninitialised();
    let file = env.path("password");
    std::fs::write(&file, format!("{}\n", env.password)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut c = env.cmd();
    c.env_remove("GUMVAULT_PASSWORD").env("GUMVAULT_PASSWORD_FILE", &file);
    let out = c.args(["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).output().unwrap();
    assert_eq!(code(&out), 0, "the password is still used: {}", stderr(&out));
    let err = stderr(&out);
    let shown = file.display().to_string();
    assert!(
        err.contains("warning") && err.contains(&shown) && err.contains("chmod 600") && err.contains("0640"),
        "{err}"
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = env.cmd();
    c.env_remove("GUMVAULT_PASSWORD").env("GUMVAULT_PASSWORD_FILE", &file);
    let out = c.args(["snapshots"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn a_broken_config_line_never_shows_its_secret() {
    let env = Env::new();
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        "[repository]\nurl = \"/x\"\npassword = \"hunter2-in-the-config\" # and then\nbroken line\n",
    )
    .unwrap();
    let out = env.cmd().env("GUMVAULT_CONFIG", &config).args(["snapshots"]).output().unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains(&config.display().to_string()) && err.contains("line 4"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    std::fs::write(&config, "[repository]\npassword = 31415926535\n").unwrap();
    let out = env.cmd().env("GUMVAULT_CONFIG", &config).args(["snapshots"]).output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("line 2") && err.contains("repository.password") && !err.contains("31415926535"), "{err}");
}

#[test]
fn ls_prints_every_name_on_one_line() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("evil\nforged-line"), "x").unwrap();
    std::fs::write(src.join("bell\x07and\x1b[31mred"), "x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    for long in [false, true] {
        let args: &[&str] = if long { &["ls", "-l", "latest"] } else { &["ls", "latest"] };
        let text = env.ok(args);
        assert!(text.lines().all(|l| !l.starts_with("forged-line")), "{text}");
        assert!(text.contains("evil\\nforged-line"), "{text}");
        assert!(text.contains("bell\\u{7}and\\u{1b}[31mred") && !text.contains('\x1b'), "{text}");
    }
    let out = env.ok(&["ls", "latest", "--json"]);
    let paths: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("/evil\nforged-line")), "--json keeps names exact: {paths:?}");
}

/// `c` run as the unprivileged user nobody when we are root (root reads any file, so nothing would be unreadable).
fn as_nobody(c: Command) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return c;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(c.get_program());
    wrapped.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

#[test]
fn an_incomplete_backup_is_recorded_with_the_paths_it_could_not_read() {
    let env = Env::uninitialised();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("readable"), "ok").unwrap();
    std::fs::write(data.join("locked\nsecret"), "no").unwrap();
    let config = env.path("gumvault.toml");
    let job = format!(
        "[jobs.app]\nschedule = \"0 0 * * *\"\nsources = [{{ name = \"files\", kind = \"files\", paths = [\"{}\"] }}]\n",
        data.display()
    );
    std::fs::write(&config, job).unwrap();
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(env.dir.path()).status().unwrap();
    assert!(status.success());
    std::fs::set_permissions(data.join("locked\nsecret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let gv = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("GUMVAULT_CONFIG", &config).env("HOME", env.dir.path()).env("TZ", "UTC").args(args);
        as_nobody(c).output().unwrap()
    };
    ok(gv(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]), "init");
    let locked = data.join("locked\nsecret").display().to_string();

    let out = gv(&["run", "app", "--json"]);
    assert_eq!(code(&out), gumvault::exit::INCOMPLETE, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unreadable"], serde_json::json!([locked]));
    let status_of = |expect: i32| {
        let out = gv(&["status", "--json"]);
        assert_eq!(code(&out), expect, "{}", stderr(&out));
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        st["jobs"][0].clone()
    };
    let job = status_of(gumvault::exit::WARNING);
    assert_eq!(job["status"], "warning", "{job:#}");
    let last = &job["lastRun"];
    assert_eq!((last["ok"].clone(), last["incomplete"].clone()), (true.into(), true.into()), "{job:#}");
    assert_eq!(last["unreadable"], serde_json::json!([locked]), "{job:#}");
    assert!(last["error"].is_null() && job["failures"].as_object().unwrap().is_empty(), "no failure: {job:#}");
    assert!(job["reasons"][0].as_str().unwrap().contains("locked\\nsecret"), "{job:#}");
    let text = String::from_utf8_lossy(&gv(&["status"]).stdout).into_owned();
    assert!(text.contains("unreadable: ") && text.contains("locked\\nsecret"), "{text}");

    // The daemon records its runs from the child's JSON: the same, and neither retried nor alerted.
    let out = gv(&[
        "daemon",
        "--log-format",
        "json",
        "--simulate-from",
        "2027-01-02T23:59:00Z",
        "--simulate-until",
        "2027-01-03T00:30:00Z",
    ]);
    let log = ok(out, "daemon");
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let backups: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "backup").collect();
    assert!(!backups.is_empty() && backups.iter().all(|b| b["outcome"] == "incomplete"), "{log}");
    assert_eq!(backups.last().unwrap()["unreadable"], serde_json::json!([locked]), "{log}");
    assert!(backups.iter().all(|b| !b["time"].as_str().unwrap().contains(":05:")), "no retry: {log}");
    assert!(events.iter().all(|e| e["outcome"] != "backup_failed"), "{log}");
    let job = status_of(gumvault::exit::WARNING);
    assert_eq!(job["lastRun"]["detail"]["exit_code"], 3, "the daemon's record: {job:#}");
    assert_eq!(job["lastRun"]["unreadable"], serde_json::json!([locked]), "{job:#}");
}

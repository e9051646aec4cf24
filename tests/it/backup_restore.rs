//! End-to-end: the real binary backs up real trees and streams and restores them exactly.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

/// Copies real system directories (at least 150 MB) and adds the awkward cases.
fn build_real_tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for src in ["/usr/share/doc", "/usr/lib/python3.11", "/usr/lib/python3"] {
        if Path::new(src).exists() {
            let st = Command::new("cp")
                .arg("-a")
                .arg(src)
                .arg(root.join(src.trim_start_matches('/').replace('/', "_")))
                .status();
            assert!(st.unwrap().success(), "cp -a {src}");
        }
    }
    let du = Command::new("du").arg("-sb").arg(root).output().unwrap();
    let bytes: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    if bytes < 150_000_000 {
        // Top up with real shared libraries.
        let libs = root.join("libs");
        std::fs::create_dir_all(&libs).unwrap();
        let mut total = bytes;
        for e in std::fs::read_dir("/usr/lib/x86_64-linux-gnu").unwrap().flatten() {
            if total >= 160_000_000 {
                break;
            }
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_file() {
                std::fs::copy(e.path(), libs.join(e.file_name())).unwrap();
                total += m.len();
            }
        }
    }
    let special = root.join("special");
    std::fs::create_dir_all(special.join("empty-dir")).unwrap();
    std::fs::write(special.join("secret.key"), b"private").unwrap();
    std::fs::set_permissions(special.join("secret.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(special.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.txt")), b"non-utf8 name").unwrap();
    std::os::unix::fs::symlink("secret.key", special.join("link-to-key")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", special.join("dangling")).unwrap();
    std::fs::write(special.join("empty-file"), b"").unwrap();
    std::fs::write(special.join("big.bin"), pseudo_random(9 << 20, 5)).unwrap();
}

#[test]
fn a_real_tree_restores_identical_and_an_unchanged_tree_is_not_read_again() {
    let env = Env::new();
    let src = env.path("src");
    build_real_tree(&src);
    let first = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(first["incomplete"], false);
    assert!(first["summary"]["bytes_read"].as_u64().unwrap() >= 150_000_000);

    let second = env.json(&["backup", src.to_str().unwrap()]);
    let s = &second["summary"];
    assert_eq!(s["bytes_read"], 0, "an unchanged tree must not be read again: {s}");
    assert_eq!(s["files_new"], 0);
    assert_eq!(s["files_unchanged"], first["summary"]["files_new"]);
    // Only the trees above the source may change (their directory mtimes moved when the repository was written).
    assert!(s["bytes_added"].as_u64().unwrap() < 10_000, "{s}");

    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &restored);

    env.ok(&["check", "--read-data"]);
}

#[test]
fn no_plaintext_reaches_the_repository() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let marker = "GUMVAULT-LEAK-MARKER-7f3a9c";
    std::fs::write(src.join(format!("{marker}.txt")), format!("{marker} {marker}\n").repeat(1000)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = Command::new("grep").args(["-r", "-a", "-l", marker, &env.repo]).output().unwrap();
    assert!(out.stdout.is_empty(), "plaintext found in {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(code(&out), 1, "grep must have run and found nothing");
    let names = Command::new("find").arg(&env.repo).output().unwrap();
    assert!(!String::from_utf8_lossy(&names.stdout).contains(marker));
}

#[test]
fn a_flipped_byte_is_detected_and_other_data_stays_restorable() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("large.bin"), pseudo_random(6 << 20, 1)).unwrap();
    std::fs::write(b.join("small.bin"), pseudo_random(100_000, 2)).unwrap();
    env.ok(&["backup", a.to_str().unwrap(), "--tag", "a"]);
    env.ok(&["backup", b.to_str().unwrap(), "--tag", "b"]);

    let largest = largest_file(&Path::new(&env.repo).join("data"));
    let mut bytes = std::fs::read(&largest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&largest, bytes).unwrap();

    let out = env.run(&["restore", "latest", "--tag", "a", "--target", env.path("ra").to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains("large.bin"), "the message names the affected file: {err}");

    env.ok(&["restore", "latest", "--tag", "b", "--target", env.path("rb").to_str().unwrap()]);
    let restored = std::fs::read(env.path("rb").join(b.strip_prefix("/").unwrap()).join("small.bin")).unwrap();
    assert_eq!(restored, pseudo_random(100_000, 2));

    let check = env.run(&["check", "--read-data"]);
    assert_eq!(code(&check), gumvault::exit::DATA_ERROR);
    assert!(stderr(&check).contains("pack"), "{}", stderr(&check));
}

fn largest_file(root: &Path) -> std::path::PathBuf {
    crate::common::files_under(root).into_iter().max_by_key(|(_, size)| *size).expect("a file").0
}

#[test]
fn without_the_catalog_every_snapshot_is_still_listed_and_restorable() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    std::fs::remove_dir_all(&env.cache).unwrap();
    assert_eq!(env.snapshot_count(), 3);
    let out = env.ok(&["dump", "latest", &format!("{}/f", src.display())]);
    assert_eq!(out, "version 2");
    // A catalog of another schema is rebuilt, not trusted.
    env.ok(&["catalog", "rebuild"]);
    assert_eq!(env.snapshot_count(), 3);
}

#[test]
fn a_failing_command_leaves_no_snapshot() {
    let env = Env::new();
    let out = env.run(&[
        "backup",
        "--command",
        "sh -c 'echo partial dump; echo pg_dump: connection refused >&2; exit 3'",
        "--stdin-filename",
        "db.sql",
    ]);
    assert_eq!(code(&out), gumvault::exit::SOURCE_FAILED);
    assert!(stderr(&out).contains("no snapshot was written"), "{}", stderr(&out));
    assert!(stderr(&out).contains("connection refused"), "the command's own stderr is shown");
    assert_eq!(env.snapshot_count(), 0);

    let ok =
        env.json(&["backup", "--command", "printf 'row 1\\nrow 2\\n'", "--stdin-filename", "db.sql", "--tag", "db"]);
    assert_eq!(ok["incomplete"], false);
    assert_eq!(env.ok(&["dump", "--tag", "db", "latest", "/db.sql"]), "row 1\nrow 2\n");
    assert_eq!(env.ok(&["dump", "latest", "db.sql"]), "row 1\nrow 2\n");
}

#[test]
fn stdin_streams_round_trip_and_successive_dumps_dedup() {
    let env = Env::new();
    let dump1 = pseudo_random(20 << 20, 9);
    let mut dump2 = dump1.clone();
    for at in (0..dump2.len()).step_by(2 << 20) {
        dump2[at] ^= 0xff; // ten scattered row changes
    }
    for (i, d) in [&dump1, &dump2].iter().enumerate() {
        let mut child = env
            .cmd()
            .args(["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "db", "--json"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), d).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let added = v["summary"]["bytes_added"].as_u64().unwrap();
        if i == 1 {
            assert!(added < d.len() as u64 / 20, "second dump added {added} bytes of {}", d.len());
        }
    }
    let out = env.cmd().args(["dump", "--tag", "db", "latest", "/db.sql"]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == dump2, "dumped stream differs from the input");
}

#[test]
fn dump_into_a_closed_pipe_is_not_an_error() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), pseudo_random(30 << 20, 3)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let script = format!(
        "'{}' dump latest '{}/big' | head -c 10 > /dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_gumvault"),
        src.display()
    );
    let out = env.cmd().arg0_shell(&script);
    assert_eq!(out.trim(), "0");
}

trait Shell {
    fn arg0_shell(&mut self, script: &str) -> String;
}

impl Shell for Command {
    /// Runs `script` in bash with this command's environment.
    fn arg0_shell(&mut self, script: &str) -> String {
        let mut c = Command::new("bash");
        for (k, v) in self.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        let out = c.arg("-c").arg(script).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn excludes_includes_and_ls() {
    let env = Env::new();
    let src = env.path("app");
    for d in ["node_modules/pkg", "config", "logs"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("node_modules/pkg/index.js"), "x").unwrap();
    std::fs::write(src.join("config/app.toml"), "a = 1").unwrap();
    std::fs::write(src.join("config/scratch.tmp"), "tmp").unwrap();
    std::fs::write(src.join("logs/app.log"), "log").unwrap();
    let exclude_file = env.path("excludes");
    std::fs::write(&exclude_file, "# comment\n*.log\n").unwrap();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "node_modules",
        "--exclude",
        "*.tmp",
        "--exclude-file",
        exclude_file.to_str().unwrap(),
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("config/app.toml"));
    assert!(!ls.contains("node_modules"), "{ls}");
    assert!(!ls.contains("scratch.tmp"));
    assert!(!ls.contains("app.log"));
    assert!(ls.contains("/logs"), "the directory stays, only its excluded content goes");

    let target = env.path("r");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "--include", "*.toml"]);
    let base = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(base.join("config/app.toml")).unwrap(), "a = 1");
    assert!(!base.join("logs").exists());

    // The same files again: identical, so they are kept and the restore succeeds (it continues where it stopped).
    let same = env.json(&["restore", "latest", "--target", target.to_str().unwrap(), "--include", "*.toml"]);
    assert_eq!(same["summary"]["unchanged"], 1, "{same}");
    // A file that differs is not overwritten without --overwrite.
    std::fs::write(base.join("config/app.toml"), "a = 2").unwrap();
    let again = env.run(&["restore", "latest", "--target", target.to_str().unwrap(), "--include", "*.toml"]);
    assert_eq!(code(&again), gumvault::exit::DATA_ERROR, "existing files are not overwritten without --overwrite");
    assert!(stderr(&again).contains("--overwrite") && stderr(&again).contains("app.toml"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(base.join("config/app.toml")).unwrap(), "a = 2");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "--include", "*.toml", "--overwrite"]);
    assert_eq!(std::fs::read_to_string(base.join("config/app.toml")).unwrap(), "a = 1");
}

#[test]
fn unreadable_files_are_reported_and_the_snapshot_is_marked_incomplete() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("readable"), "ok").unwrap();
    std::fs::write(src.join("locked"), "secret").unwrap();
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything, so run the backup as an unprivileged user when we are root.
    let is_root = unsafe_geteuid() == 0;
    let out = if is_root {
        Command::new("chmod").args(["-R", "a+rwX"]).arg(env.dir.path()).status().unwrap();
        std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let c = env.cmd();
        let prog = c.get_program().to_owned();
        let mut wrapped = Command::new("setpriv");
        wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(prog);
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped.env("HOME", env.dir.path());
        wrapped.args(["backup", src.to_str().unwrap(), "--json"]).output().unwrap()
    } else {
        env.run(&["backup", src.to_str().unwrap(), "--json"])
    };
    assert_eq!(code(&out), gumvault::exit::INCOMPLETE, "{}", stderr(&out));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incomplete"], true);
    assert_eq!(v["summary"]["errors"], 1);
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[0]["incomplete"], true);
    assert!(env.ok(&["ls", "latest"]).contains("readable"));
}

fn unsafe_geteuid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1)
}

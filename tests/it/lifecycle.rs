//! End-to-end: forget, two-phase prune beside a running backup, the maintenance lease, point-in-time selection.

use std::path::Path;

use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

fn repo_bytes(repo: &str) -> u64 {
    crate::common::stored_bytes(Path::new(repo))
}

fn prune_json(env: &Env, offset: Option<&str>) -> serde_json::Value {
    let mut c = env.cmd();
    if let Some(o) = offset {
        c.env("GUMVAULT_TEST_CLOCK_OFFSET", o);
    }
    let out = c.args(["prune", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["report"].clone()
}

#[test]
fn forget_then_prune_frees_space_only_after_the_grace_period() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join("data.bin"), pseudo_random(3 << 20, i)).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    let dry = env.json(&["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry.as_array().unwrap().iter().filter(|d| d["keep"] == false).count(), 2);
    assert_eq!(env.snapshot_count(), 3, "a dry run removes nothing");
    env.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(env.snapshot_count(), 1);

    let before = repo_bytes(&env.repo);
    let first = prune_json(&env, None);
    assert_eq!(first["packs_deleted"], 0, "nothing is deleted before the grace period: {first}");
    assert!(first["packs_marked"].as_u64().unwrap() >= 2, "{first}");
    assert!(repo_bytes(&env.repo) >= before - 10_000);
    env.ok(&["check", "--read-data"]);

    let second = prune_json(&env, Some("25h"));
    assert!(second["packs_deleted"].as_u64().unwrap() >= 2, "{second}");
    assert!(repo_bytes(&env.repo) < before - 5_000_000, "space was freed");
    env.ok(&["check", "--read-data"]);
    let target = env.path("r");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(target.join(src.strip_prefix("/").unwrap()).join("data.bin")).unwrap(),
        pseudo_random(3 << 20, 2)
    );
}

#[test]
fn a_backup_running_beside_prune_stays_restorable_after_later_prunes() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(1 << 20, 100 + i)).unwrap();
    }
    // Snapshot the data, then forget it: its packs are unused when prune looks, but the next backup reuses them.
    env.ok(&["backup", src.to_str().unwrap(), "--tag", "old"]);
    env.ok(&["forget", "--tag", "old", "--keep-last", "0", "--keep-tag", "none", "--allow-remove-newest"]);
    assert_eq!(env.snapshot_count(), 0);
    std::fs::write(src.join("extra"), pseudo_random(8 << 20, 7)).unwrap();

    let backup = env
        .cmd()
        .args(["backup", src.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let prune = env.run(&["prune"]);
    let backup = backup.wait_with_output().unwrap();
    assert!(backup.status.success(), "{}", stderr(&backup));
    assert!(prune.status.success(), "{}", stderr(&prune));

    for offset in ["25h", "50h"] {
        prune_json(&env, Some(offset));
        env.ok(&["check", "--read-data"]);
        let target = env.path(&format!("r{offset}"));
        env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
        assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    }
}

#[test]
fn a_live_lease_blocks_a_second_maintenance_run_and_an_expired_one_is_taken_over() {
    let env = Env::new();
    let storage = gumvault::storage::Storage::open_url(&env.repo).unwrap();
    let repo = gumvault::repo::Repository::open(storage, env.password.as_bytes()).unwrap();
    let lease = gumvault::repo::lease::acquire(&repo, "test", std::time::Duration::ZERO).unwrap();
    let out = env.run(&["prune"]);
    assert_eq!(code(&out), gumvault::exit::LOCKED, "{}", stderr(&out));
    assert!(stderr(&out).contains("busy with maintenance"), "{}", stderr(&out));
    let out = env.run(&["forget", "--keep-last", "1"]);
    assert_eq!(code(&out), gumvault::exit::LOCKED);
    // Backups and checks never wait for the lease.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["check"]);
    // Seen from far in the future the lease has expired: it is taken over, and said so.
    let out = env.cmd().env("GUMVAULT_TEST_CLOCK_OFFSET", "2h").arg("prune").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("took over the expired lease"), "{}", stderr(&out));
    drop(lease);
}

#[test]
fn restore_and_dump_at_a_point_in_time() {
    let env = Env::new();
    let mut times = Vec::new();
    for i in 0..3 {
        let out = env
            .cmd()
            .args([
                "backup",
                "--command",
                &format!("echo version {i}"),
                "--stdin-filename",
                "db.sql",
                "--tag",
                "db",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        times.push(v["time"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let dump = env.ok(&["dump", "--tag", "db", "latest", "/db.sql", "--at", &times[1]]);
    assert_eq!(dump, "version 1\n");
    let picked = env.json(&["snapshots", "--at", &times[1]]);
    assert_eq!(picked.as_array().unwrap().len(), 1);
    assert_eq!(picked[0]["time"], times[1]);
    let out = env.run(&["dump", "latest", "/db.sql", "--at", "2001-01-01T00:00:00Z"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("no snapshot matches at or before"));
    let out = env.run(&["dump", "latest", "/db.sql", "--at", "next tuesday"]);
    assert!(stderr(&out).contains("cannot read the time"), "{}", stderr(&out));
}

#[test]
fn diff_and_stats() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("keep"), "same").unwrap();
    std::fs::write(src.join("change"), "one").unwrap();
    std::fs::write(src.join("sub/gone"), "bye").unwrap();
    std::fs::write(src.join("dup1"), pseudo_random(100_000, 1)).unwrap();
    std::fs::write(src.join("dup2"), pseudo_random(100_000, 1)).unwrap();
    let a = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    std::fs::write(src.join("change"), "two!").unwrap();
    std::fs::remove_file(src.join("sub/gone")).unwrap();
    std::fs::write(src.join("new"), "hi").unwrap();
    let b = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    let out = env.ok(&["diff", &a[..8], &b[..8]]);
    let base = src.display().to_string();
    assert!(out.contains(&format!("M {base}/change")), "{out}");
    assert!(out.contains(&format!("- {base}/sub/gone")), "{out}");
    assert!(out.contains(&format!("+ {base}/new")), "{out}");
    assert!(!out.contains(&format!("{base}/keep")), "{out}");

    let st = env.json(&["stats", "latest"]);
    assert_eq!(st["stats"]["files"], 5);
    assert!(st["stats"]["dedup_ratio"].as_f64().unwrap() > 1.9, "two identical files dedup: {st}");
    let repo = env.json(&["stats"]);
    assert_eq!(repo["snapshots"], 2);
    assert!(repo["stored_bytes"].as_u64().unwrap() > 0);
}

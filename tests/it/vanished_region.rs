//! Regions that are really there: a region counts only when it holds this repository. A region whose directory
//! vanished (a disk not mounted) is not re-created, the backup degrades or fails, later backups say it lags until
//! `sync` heals it, and it alone then restores the newest snapshot.

use std::path::{Path, PathBuf};

use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

struct Three {
    env: Env,
    dirs: [PathBuf; 3],
}

impl Three {
    fn new() -> Three {
        let env = Env::uninitialised();
        let dirs = ["a", "b", "c"].map(|n| env.path(&format!("region-{n}")));
        let regions: Vec<String> =
            ["a", "b", "c"].iter().zip(&dirs).map(|(n, d)| format!("{n}={}", d.display())).collect();
        let mut args = vec!["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--min-regions", "2"];
        for r in &regions {
            args.extend(["--region", r.as_str()]);
        }
        let t = Three { env, dirs };
        let out = t.run(&args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        t
    }

    /// Runs with the repository opened from region a.
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.env.cmd().env("GUMVAULT_REPO", &self.dirs[0]).args(args).output().unwrap()
    }
}

fn change(src: &Path, seed: u64) {
    std::fs::write(src.join(format!("f{seed}")), pseudo_random(300_000, seed)).unwrap();
}

#[test]
fn a_vanished_region_is_not_recreated_and_is_healed_by_sync() {
    let t = Three::new();
    let src = t.env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    change(&src, 1);
    assert_eq!(code(&t.run(&["backup", src.to_str().unwrap()])), 0);
    let b = &t.dirs[1];
    let gone = t.env.path("region-b.gone");
    std::fs::rename(b, &gone).unwrap();

    change(&src, 2);
    let out = t.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::DEGRADED, "{}", stderr(&out));
    assert!(stderr(&out).contains("region b") && stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!b.exists(), "the region's directory is not re-created");
    // All three required: the backup fails and nothing is committed.
    change(&src, 3);
    let before = t.run(&["snapshots", "--json"]);
    let out = t.run(&["--min-regions", "3", "backup", src.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("required"), "{}", stderr(&out));
    assert_eq!(t.run(&["snapshots", "--json"]).stdout, before.stdout, "no snapshot was written");
    assert!(!b.exists());

    // The disk is back: until synced, every backup says region b lags.
    std::fs::rename(&gone, b).unwrap();
    change(&src, 4);
    let out = t.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::DEGRADED, "{}", stderr(&out));
    assert!(stderr(&out).contains("region b lags behind"), "{}", stderr(&out));
    let out = t.run(&["sync"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    change(&src, 5);
    let out = t.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "after sync no region lags: {}", stderr(&out));

    // Region b alone restores the newest snapshot.
    let target = t.env.path("target");
    let out = t
        .env
        .cmd()
        .env("GUMVAULT_REPO", b)
        .args(["--single-region", "restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn only_sync_rebuild_creates_a_missing_region_and_a_foreign_region_is_left_alone() {
    let t = Three::new();
    let src = t.env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    change(&src, 1);
    assert_eq!(code(&t.run(&["backup", src.to_str().unwrap()])), 0);
    std::fs::remove_dir_all(&t.dirs[2]).unwrap();
    let out = t.run(&["sync"]);
    assert_ne!(code(&out), 0, "sync does not silently create region c");
    assert!(stderr(&out).contains("sync --rebuild c"), "{}", stderr(&out));
    assert!(!t.dirs[2].exists());
    let out = t.run(&["sync", "--rebuild", "c"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(code(&t.run(&["check", "--regions", "--read-data"])), 0);

    // Region b's URL pointed at another repository: it is not used, not written, and sync refuses it.
    let other = Env::new();
    let override_b = format!("b={}", other.repo);
    change(&src, 2);
    let out = t.run(&["--region", &override_b, "backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::DEGRADED, "{}", stderr(&out));
    assert!(stderr(&out).contains("another repository"), "{}", stderr(&out));
    assert_eq!(other.snapshot_count(), 0);
    let out = t.run(&["--region", &override_b, "sync"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("another repository"), "{}", stderr(&out));
}

#[test]
fn a_deleted_repository_is_not_recreated_by_a_command() {
    let env = Env::new();
    std::fs::remove_dir_all(&env.repo).unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), gumvault::exit::REPO_NOT_FOUND, "{}", stderr(&out));
    assert!(!Path::new(&env.repo).exists(), "the repository directory is not re-created");
}

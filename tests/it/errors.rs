//! End-to-end: bad input gets a clear message and its documented exit code.

use crate::common::{Env, code, stderr};
use gumvault::exit;

#[test]
fn wrong_password_has_its_own_exit_code() {
    let env = Env::new();
    let out = env.cmd().env("GUMVAULT_PASSWORD", "not the password").arg("snapshots").output().unwrap();
    assert_eq!(code(&out), exit::WRONG_PASSWORD);
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not the password"), "the password never appears in messages");
}

#[test]
fn missing_repository_is_named() {
    let env = Env::uninitialised();
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), exit::REPO_NOT_FOUND);
    assert!(stderr(&out).contains("gumvault init"), "{}", stderr(&out));
}

#[test]
fn init_refuses_an_existing_repository() {
    let env = Env::new();
    let out = env.run(&["init", "--kdf-memory", "8"]);
    assert_eq!(code(&out), exit::ERROR);
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(env.snapshot_count(), 0, "the existing repository still opens");
}

#[test]
fn bad_ids_paths_and_urls_are_explained() {
    let env = Env::new();
    let out = env.run(&["restore", "zz", "--target", "/tmp/x"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("not a snapshot id"));
    let out = env.run(&["restore", "latest", "--target", "/tmp/x"]);
    assert!(stderr(&out).contains("no snapshot matches"), "{}", stderr(&out));
    let out = env.cmd().env("GUMVAULT_REPO", "ftp://host/x").arg("snapshots").output().unwrap();
    assert!(stderr(&out).contains("unsupported scheme"), "{}", stderr(&out));
    let out = env.run(&["backup", "/definitely/not/here"]);
    assert!(stderr(&out).contains("does not exist"));
    let out = env.run(&["backup", "--stdin", "--stdin-filename", "a/b"]);
    assert!(stderr(&out).contains("plain file name"));
}

#[test]
fn password_file_and_command_work() {
    let env = Env::new();
    let file = env.path("pw");
    std::fs::write(&file, format!("{}\n", env.password)).unwrap();
    let out = env
        .cmd()
        .env_remove("GUMVAULT_PASSWORD")
        .env("GUMVAULT_PASSWORD_FILE", &file)
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("GUMVAULT_PASSWORD")
        .env("GUMVAULT_PASSWORD_COMMAND", format!("cat {}", file.display()))
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.cmd().env_remove("GUMVAULT_PASSWORD").arg("snapshots").output().unwrap();
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("GUMVAULT_PASSWORD"), "explains where a password comes from");
}

#[test]
fn several_passwords_open_one_repository() {
    let env = Env::new();
    let out =
        env.cmd().env("GUMVAULT_NEW_PASSWORD", "second").args(["key", "add", "--kdf-memory", "8"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let second_id =
        keys.as_array().unwrap().iter().find(|k| k["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let out = env.cmd().env("GUMVAULT_PASSWORD", "second").arg("snapshots").output().unwrap();
    assert!(out.status.success());
    let out = env.cmd().env("GUMVAULT_PASSWORD", "second").args(["key", "remove", &second_id]).output().unwrap();
    assert_ne!(code(&out), 0, "the key in use cannot be removed");
    env.ok(&["key", "remove", &second_id]);
    let out = env.cmd().env("GUMVAULT_PASSWORD", "second").arg("snapshots").output().unwrap();
    assert_eq!(code(&out), exit::WRONG_PASSWORD);
    let out =
        env.cmd().env("GUMVAULT_NEW_PASSWORD", "third").args(["key", "passwd", "--kdf-memory", "8"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(code(&env.run(&["snapshots"])), exit::WRONG_PASSWORD);
    assert!(env.cmd().env("GUMVAULT_PASSWORD", "third").arg("snapshots").output().unwrap().status.success());
}

#[test]
fn storage_tuning_variables_are_checked_not_ignored() {
    let env = Env::new();
    let bad = [("GUMVAULT_STORAGE_UPLOADS", "0"), ("GUMVAULT_STORAGE_TIMEOUT", "2m"), ("GUMVAULT_STORAGE_READS", "65")];
    for (var, value) in bad {
        let out = env.cmd().env(var, value).arg("snapshots").output().unwrap();
        assert_ne!(code(&out), 0, "{var}={value} was accepted");
        assert!(stderr(&out).contains(var) && stderr(&out).contains("whole number"), "{}", stderr(&out));
    }
    // One upload thread or many: the same data either way (1 MiB packs, so there are many to upload).
    let data = tempfile::tempdir().unwrap();
    let src = data.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..12 {
        std::fs::write(src.join(format!("f{i}")), crate::common::pseudo_random(1 << 20, i)).unwrap();
    }
    let mut listings = Vec::new();
    for uploads in ["1", "8"] {
        let env = Env::uninitialised();
        env.ok(&["init", "--kdf-memory", "8", "--pack-size", "1"]);
        let out = env.cmd().env("GUMVAULT_STORAGE_UPLOADS", uploads).arg("backup").arg(&src).output().unwrap();
        assert_eq!(code(&out), 0, "uploads={uploads}: {}", stderr(&out));
        env.ok(&["check", "--read-data"]);
        let packs: usize = std::fs::read_dir(env.path("repo/data"))
            .unwrap()
            .flatten()
            .map(|d| std::fs::read_dir(d.path()).unwrap().count())
            .sum();
        assert!(packs >= 6, "uploads={uploads}: 12 MiB in only {packs} packs of about 1 MiB");
        let target = env.path("restored");
        // Many reads in flight take download threads of their own; the restore is the same.
        let out = env
            .cmd()
            .env("GUMVAULT_STORAGE_READS", "32")
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        for i in 0..12 {
            let name = format!("f{i}");
            let restored = std::fs::read(target.join(src.strip_prefix("/").unwrap()).join(&name)).unwrap();
            assert!(restored == crate::common::pseudo_random(1 << 20, i), "uploads={uploads}: {name} differs");
        }
        listings.push(env.ok(&["ls", "latest"]));
    }
    assert_eq!(listings[0], listings[1]);
}

/// A memory budget that is not a size stops the command before it touches the repository, naming the flag (or
/// variable) and showing sizes that would do; a prune given a valid budget still works.
#[test]
fn a_bad_memory_budget_is_refused_with_examples() {
    let env = Env::new();
    for bad in ["--memory-budget=lots", "--memory-budget=12Q", "--memory-budget=-5M", "--memory-budget=1.5.2G"] {
        let out = env.run(&[bad, "prune"]);
        assert_eq!(code(&out), exit::USAGE, "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--memory-budget") && stderr(&out).contains("512MiB"), "{}", stderr(&out));
    }
    let out = env.cmd().env("GUMVAULT_MEMORY_BUDGET", "a lot").arg("check").output().unwrap();
    assert_eq!(code(&out), exit::USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid size"), "{}", stderr(&out));
    let out = env.run(&["--memory-budget", "64MiB", "prune"]);
    assert_eq!(code(&out), exit::OK, "{}", stderr(&out));
}

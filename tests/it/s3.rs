//! End-to-end against a real S3-compatible server on 127.0.0.1.

use crate::common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

fn s3_env(server: &S3Server, bucket: &str) -> Env {
    let mut env = Env::uninitialised();
    env.repo = server.url(bucket, "backups/app");
    env
}

fn with_keys(env: &Env, args: &[&str]) -> std::process::Output {
    env.cmd().env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY).args(args).output().unwrap()
}

#[test]
fn backup_restore_and_check_over_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("s3"), &["gumvault-test"]);
    let env = s3_env(&server, "gumvault-test");
    let out = with_keys(&env, &["init", "--kdf-memory", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let src = env.path("src");
    std::fs::create_dir_all(src.join("uploads")).unwrap();
    std::fs::write(src.join("uploads/photo.jpg"), pseudo_random(3 << 20, 11)).unwrap();
    std::fs::write(src.join("settings.toml"), "x = 1\n").unwrap();
    std::os::unix::fs::symlink("settings.toml", src.join("link")).unwrap();
    let out = with_keys(&env, &["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Objects landed in the bucket under the prefix, in the documented layout.
    let base = server.root.join("gumvault-test/backups/app");
    for dir in ["config", "keys", "data", "index", "snapshots"] {
        assert!(base.join(dir).exists(), "{dir} missing in the bucket");
    }

    // A new machine (empty cache) restores everything from the URL and the password.
    std::fs::remove_dir_all(&env.cache).ok();
    let target = env.path("restore");
    let out = with_keys(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    let out = with_keys(&env, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_credentials_and_missing_buckets_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("s3"), &["present"]);
    let env = s3_env(&server, "present");
    let out = env
        .cmd()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .args(["init", "--kdf-memory", "8"])
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("storage"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-secret"), "secrets never appear in messages");

    let missing = s3_env(&server, "absent-bucket");
    let out = with_keys(&missing, &["snapshots"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("absent-bucket"), "{}", stderr(&out));
}

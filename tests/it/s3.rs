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

/// The packs in `dir` (a tree cache or a bucket's `data/`), as (name, bytes).
fn packs_in(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk_files(dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.len() == 64 {
            out.push((name, std::fs::read(&e).unwrap()));
        }
    }
    out.sort();
    out
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk_files(&p)) } else { out.push(p) }
    }
    out
}

/// Over S3 the trees of a snapshot come from whole tree packs kept in the cache (one request per pack, not per
/// directory). The cache is a byte-exact, private copy of the repository's tree packs; a damaged cached pack is
/// noticed when its blobs fail to authenticate and fetched again, and `check` reads the repository, never the cache.
#[test]
fn tree_packs_are_cached_privately_and_a_damaged_copy_is_fetched_again() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("s3"), &["trees"]);
    let env = s3_env(&server, "trees");
    assert!(with_keys(&env, &["init", "--kdf-memory", "8"]).status.success());
    let src = env.path("src");
    for d in 0..40 {
        let dir = src.join(format!("d{d}/sub"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f.txt"), format!("file {d}\n")).unwrap();
    }
    let out = with_keys(&env, &["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let catalog = walk_files(&env.cache).into_iter().find(|p| p.ends_with("catalog.sqlite")).unwrap();
    let trees = catalog.parent().unwrap().join("trees");
    let bucket_packs = packs_in(&server.root.join("trees/backups/app/data"));
    // The backup kept the tree packs it wrote.
    let cached = packs_in(&trees);
    assert!(!cached.is_empty(), "no tree pack cached by the backup");
    assert!(cached.iter().all(|c| bucket_packs.contains(c)), "a cached pack differs from the repository's");
    assert_eq!(std::fs::metadata(&trees).unwrap().permissions().mode() & 0o777, 0o700);
    for (name, _) in &cached {
        assert_eq!(std::fs::metadata(trees.join(name)).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A new machine: the restore fetches the tree packs whole and keeps them.
    std::fs::remove_dir_all(&env.cache).unwrap();
    let target = env.path("restore-1");
    let out = with_keys(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    assert_eq!(packs_in(&trees), cached, "the restore did not cache exactly the tree packs");

    // A cached pack damaged on this disk is not believed: the restore is still whole, and the copy is repaired.
    for (name, bytes) in &cached {
        let mut bad = bytes.clone();
        for b in bad.iter_mut().step_by(97) {
            *b ^= 0x5a;
        }
        std::fs::write(trees.join(name), bad).unwrap();
    }
    let target = env.path("restore-2");
    let out = with_keys(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    assert_eq!(packs_in(&trees), cached, "damaged cached packs were not fetched again");

    // check verifies the repository: a tree pack damaged in the bucket is found although the cache is good.
    let data = server.root.join("trees/backups/app/data");
    let (name, bytes) = &cached[0];
    let stored = walk_files(&data).into_iter().find(|p| p.file_name().unwrap().to_string_lossy() == *name).unwrap();
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&stored, bad).unwrap();
    let out = with_keys(&env, &["check", "--read-data"]);
    assert_ne!(code(&out), 0, "check passed a damaged tree pack: {}", stderr(&out));
    let out = with_keys(&env, &["check"]);
    assert_ne!(code(&out), 0, "check without --read-data trusted the cached trees: {}", stderr(&out));
}

/// A tree pack that another machine's prune deleted leaves this machine's tree cache at its next command, and so
/// does a temporary file a crash left there long ago; a young one (another process's download) stays.
#[test]
fn tree_packs_pruned_elsewhere_leave_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("s3"), &["sweep"]);
    let env = s3_env(&server, "sweep");
    assert!(with_keys(&env, &["init", "--kdf-memory", "8"]).status.success());
    let src = env.path("src");
    for round in 0..2 {
        for d in 0..20 {
            let dir = src.join(format!("d{d}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("f.txt"), format!("round {round} file {d}\n")).unwrap();
        }
        let out = with_keys(&env, &["backup", src.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let catalog = walk_files(&env.cache).into_iter().find(|p| p.ends_with("catalog.sqlite")).unwrap();
    let trees = catalog.parent().unwrap().join("trees");
    let before = packs_in(&trees);
    assert!(before.len() >= 2, "each backup cached its tree pack: {before:?}");
    let (old, young) = (trees.join(".fetching-crashed"), trees.join(".fetching-running"));
    std::fs::write(&old, b"partial").unwrap();
    std::fs::write(&young, b"partial").unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(long_ago).unwrap();

    // Another machine forgets the first snapshot and prunes.
    let other_cache = env.path("other-machine-cache");
    let elsewhere = |args: &[&str]| {
        let out = env
            .cmd()
            .env("GUMVAULT_CACHE_DIR", &other_cache)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    elsewhere(&["forget", "--keep-last", "1"]);
    elsewhere(&["prune", "--grace", "0s"]); // marks the first snapshot's packs
    elsewhere(&["prune", "--grace", "0s"]); // deletes them
    let bucket: Vec<String> =
        packs_in(&server.root.join("sweep/backups/app/data")).into_iter().map(|(name, _)| name).collect();
    let pruned: Vec<&String> = before.iter().map(|(name, _)| name).filter(|n| !bucket.contains(n)).collect();
    assert!(!pruned.is_empty(), "the prune deleted no tree pack, so this test shows nothing");

    // This machine's next command that reads the index lets go of them.
    let target = env.path("restore");
    let out = with_keys(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    let after: Vec<String> = packs_in(&trees).into_iter().map(|(name, _)| name).collect();
    assert!(after.iter().all(|n| bucket.contains(n)), "a pruned pack stayed cached: {after:?} vs {bucket:?}");
    assert!(!old.exists(), "a crash's leftover from hours ago stayed");
    assert!(young.exists(), "a young temporary file was removed");
}

/// `sync --into` streams each object from the source into the fresh location (S3 or a directory), checking it
/// against its name on the way: the copy is a whole repository. A damaged pack is refused before its last bytes
/// are sent, so neither kind of target ever stores it (nor, the copy being incomplete, its config and keys), and
/// the message names the pack.
#[test]
fn sync_into_streams_whole_copies_and_never_stores_a_damaged_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("s3"), &["origin", "copy", "refused"]);
    let env = s3_env(&server, "origin");
    assert!(with_keys(&env, &["init", "--kdf-memory", "8"]).status.success());
    let src = env.path("src");
    std::fs::create_dir_all(src.join("uploads")).unwrap();
    std::fs::write(src.join("uploads/big.bin"), pseudo_random(6 << 20, 5)).unwrap();
    for i in 0..50 {
        std::fs::write(src.join(format!("uploads/note-{i}.txt")), format!("note {i}\n")).unwrap();
    }
    let out = with_keys(&env, &["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let dir_copy = env.path("copy-dir");
    for into in [server.url("copy", "backups/app"), dir_copy.to_str().unwrap().to_string()] {
        let out = with_keys(&env, &["sync", "--into", &into]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut copy = Env::uninitialised();
        copy.repo = into.clone();
        copy.cache = env.path("copy-cache");
        let out = with_keys(&copy, &["check", "--read-data"]);
        assert!(out.status.success(), "{into}: {}", stderr(&out));
        let target = env.path("restored");
        let out = with_keys(&copy, &["restore", "latest", "--target", target.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
        std::fs::remove_dir_all(&target).unwrap();
        std::fs::remove_dir_all(&copy.cache).unwrap();
    }

    // The largest pack loses its last byte's value (only the end of the stream can tell), and the smallest all
    // of its bytes (an empty object has no end to check at).
    let origin = server.root.join("origin/backups/app");
    let mut packs = packs_in(&origin.join("data"));
    packs.sort_by_key(|(_, b)| b.len());
    let (emptied, _) = packs.first().unwrap().clone();
    let (name, mut bytes) = packs.pop().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(origin.join("data").join(&name[..2]).join(&name), &bytes).unwrap();
    std::fs::write(origin.join("data").join(&emptied[..2]).join(&emptied), b"").unwrap();
    let refused_dir = env.path("refused-dir");
    for (into, stored) in [
        (server.url("refused", "backups/app"), server.root.join("refused")),
        (refused_dir.to_str().unwrap().to_string(), refused_dir.clone()),
    ] {
        let out = with_keys(&env, &["sync", "--into", &into]);
        assert_ne!(code(&out), 0, "a damaged pack cannot be copied");
        assert!(stderr(&out).contains("2 objects could not be copied"), "{}", stderr(&out));
        assert!(stderr(&out).contains("does not match its name"), "{}", stderr(&out));
        let files: Vec<String> =
            walk_files(&stored).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(!files.contains(&name) && !files.contains(&emptied), "{into}: a damaged pack was stored: {files:?}");
        assert!(!files.iter().any(|f| f == "config" || f.len() == 32), "{into}: no config or keys yet: {files:?}");
        assert!(files.iter().all(|f| f.len() == 64 || f == "reserve"), "{into}: nothing half-written: {files:?}");
    }
}

/// A second command on the same machine unlocks the key file kept from the first while the bucket is asked for
/// it, without listing `keys/`; the kept copy never opens more than the bucket's keys do (a password changed on
/// another machine, a wrong password) and is dropped by a failed opening and replaced by a good one.
#[test]
fn the_key_file_kept_from_the_last_opening_is_a_head_start_never_an_authority() {
    use crate::common::proxy::Proxy;
    let mut env = Env::uninitialised();
    let server = S3Server::start(&env.path("s3"), &["gumvault-keys"]);
    let proxy = Proxy::start(server.port);
    env.repo = format!("s3://gumvault-keys/r?endpoint=http://127.0.0.1:{}&region=us-east-1", proxy.port);
    let run = |env: &Env, args: &[&str]| with_keys(env, args);
    assert!(run(&env, &["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).status.success());
    let key_listing =
        |lines: &[String]| lines.iter().any(|l| l.contains("prefix=r%2Fkeys") || l.contains("prefix=r/keys"));
    let hint_file = || {
        let dir = env.cache.join("key-hints");
        let files: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(files.len() <= 1, "{files:?}");
        files.into_iter().next()
    };
    let keys_in_bucket = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(server.root.join("gumvault-keys/r/keys")).unwrap().flatten().map(|e| e.path()).collect()
    };

    // The first opening lists the keys and keeps the one that opened, as the bucket has it, privately.
    let before = proxy.request_lines().len();
    let out = run(&env, &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(key_listing(&proxy.request_lines()[before..]), "the first opening lists keys/");
    let kept = hint_file().expect("a key file kept after the first opening");
    let [key] = keys_in_bucket().try_into().unwrap();
    let key_name = key.file_name().unwrap().to_str().unwrap().to_string();
    let mut expected = format!("{key_name}\n").into_bytes();
    expected.extend(std::fs::read(&key).unwrap());
    assert_eq!(std::fs::read(&kept).unwrap(), expected);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(kept.metadata().unwrap().permissions().mode() & 0o777, 0o600);

    // The second fetches that key file by name (to compare) and lists nothing under keys/.
    let before = proxy.request_lines().len();
    let out = run(&env, &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = proxy.request_lines()[before..].to_vec();
    assert!(!key_listing(&lines), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(&format!("keys/{key_name}"))), "{lines:#?}");

    // A wrong password is refused as ever, and the kept copy stays.
    let mut wrong = Env { password: "not it".into(), ..Env::uninitialised() };
    wrong.repo = env.repo.clone();
    wrong.cache = env.cache.clone();
    let out = run(&wrong, &["snapshots"]);
    assert_eq!(code(&out), gumvault::exit::WRONG_PASSWORD, "{}", stderr(&out));
    // A failed opening drops the copy (it might be of a removed key); the next good one keeps it again.
    assert_eq!(hint_file(), None);
    assert!(run(&env, &["snapshots"]).status.success());
    assert_eq!(std::fs::read(&kept).unwrap(), expected);

    // Another machine changes the password: the old key file leaves the bucket. Here the kept copy still opens
    // with the old password, yet the old password is refused, because the bucket no longer holds that file.
    let mut other = Env { password: env.password.clone(), ..Env::uninitialised() };
    other.repo = env.repo.clone();
    let new_password = other.path("new-password");
    std::fs::write(&new_password, "a new password\n").unwrap();
    let out =
        run(&other, &["key", "passwd", "--new-password-file", new_password.to_str().unwrap(), "--kdf-memory", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // S3 answers 403, not 404, for a missing object to a caller that may list only some prefixes (the backup
    // policy `policy print` writes): the refused read is taken as "not there", and the keys are listed.
    proxy.refuse(Some(&format!("r/keys/{key_name}")));
    let out = run(&env, &["snapshots"]);
    proxy.refuse(None);
    assert_eq!(code(&out), gumvault::exit::WRONG_PASSWORD, "{}", stderr(&out));
    assert_eq!(hint_file(), None, "the revoked key file is still kept here");

    // The new password opens, and the kept copy becomes the new key file.
    let mut renewed = Env { password: "a new password".into(), ..Env::uninitialised() };
    renewed.repo = env.repo.clone();
    renewed.cache = env.cache.clone();
    let out = run(&renewed, &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let [new_key] = keys_in_bucket().try_into().unwrap();
    assert_ne!(new_key, key);
    let kept = hint_file().expect("the new key file kept");
    assert!(std::fs::read(&kept).unwrap().starts_with(new_key.file_name().unwrap().as_encoded_bytes()));

    // Changing the password on this machine drops the copy of the key file it replaced.
    let newer = renewed.path("newer");
    std::fs::write(&newer, "newer\n").unwrap();
    let out = run(&renewed, &["key", "passwd", "--new-password-file", newer.to_str().unwrap(), "--kdf-memory", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hint_file(), None);

    // A bucket that does not answer fails the opening on the kept key file's read, through its retries, and
    // not once more by listing keys/ after it; the copy stays, since an outage says nothing about the key.
    let mut newest = Env { password: "newer".into(), ..Env::uninitialised() };
    newest.repo = env.repo.clone();
    newest.cache = env.cache.clone();
    assert!(run(&newest, &["snapshots"]).status.success());
    let kept = std::fs::read(hint_file().expect("the newest key file kept")).unwrap();
    drop(server);
    let before = proxy.request_lines().len();
    let out = newest
        .cmd()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("GUMVAULT_STORAGE_RETRIES", "1")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("keys/"), "{}", stderr(&out));
    let lines = proxy.request_lines()[before..].to_vec();
    assert!(!key_listing(&lines), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("r/keys/")), "{lines:#?}");
    assert_eq!(std::fs::read(hint_file().expect("the copy kept through the outage")).unwrap(), kept);
}

/// A config whose job `app` backs up the bucket `uploads` of `server` into the test repository.
fn uploads_job(env: &Env, server: &S3Server) -> std::path::PathBuf {
    let config = env.path("gumvault.toml");
    let text = format!(
        "[repository]\nurl = \"{}\"\n\n[jobs.app]\nsources = [{{ name = \"uploads\", kind = \"s3\", url = \"{}\" }}]\n",
        env.repo,
        server.url("uploads", "")
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `restore --to-s3` from a repository with one damaged blob: the object it belongs to is named and left out
/// (no partial object in the bucket), every other object is written, and the exit code is 12.
#[test]
fn a_bucket_restore_writes_every_object_it_can_and_names_the_one_it_cannot() {
    let env = Env::new();
    let server = S3Server::start(&env.path("s3"), &["uploads", "restored"]);
    let bucket = |name: &str| server.bucket(name);
    let uploads = bucket("uploads");
    let originals = [
        ("a/big.bin", pseudo_random(10 << 20, 3)),
        ("b/small.txt", b"small".to_vec()),
        ("c/other.bin", pseudo_random(3000, 4)),
    ];
    for (key, data) in &originals {
        uploads.write(key, data.clone()).unwrap();
    }
    let config = uploads_job(&env, &server);
    let run = |args: &[&str]| with_keys(&env, &[&["--config", config.to_str().unwrap()], args].concat());
    let out = run(&["run", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let data = std::path::Path::new(&env.repo).join("data");
    let pack = crate::common::files_under(&data).into_iter().max_by_key(|(_, len)| *len).unwrap().0;
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 0x08;
    std::fs::write(&pack, &bytes).unwrap();

    let out = run(&["restore", "latest", "--source", "uploads", "--to-s3", &server.url("restored", ""), "--json"]);
    let err = stderr(&out);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{err}");
    assert!(err.contains("restore incomplete"), "{err}");
    // The damaged byte is in the pack's first blob: whichever object that belongs to (objects are read in
    // parallel) is the one failure, named with its key.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["summary"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report:#}");
    let (lost, _) =
        originals.iter().find(|(key, _)| errors[0].as_str().unwrap().starts_with(&format!("{key}: "))).unwrap();
    assert!(err.contains(&format!("error: {lost}: ")), "{err}");
    assert_eq!(report["summary"]["objects"], 2, "{report:#}");
    let restored = bucket("restored");
    for (key, data) in &originals {
        if key == lost {
            assert!(!restored.exists(key).unwrap(), "the damaged object {key} was written");
        } else {
            assert_eq!(&restored.read(key).unwrap().to_vec(), data, "{key}");
        }
    }
}

/// `restore --to-s3` of an object of several parts whose last part cannot be read: the multipart upload is
/// abandoned after its first two parts went up, so the bucket holds no object under that key (not a short one
/// looking whole) and no upload is left open; the other objects are written.
#[test]
fn a_bucket_restore_abandons_a_multipart_upload_whose_later_part_cannot_be_read() {
    use gumvault::repo::reader::BlobReader;
    let env = Env::new();
    let server = S3Server::start(&env.path("s3"), &["uploads", "restored"]);
    let uploads = server.bucket("uploads");
    // Parts of 8, 8 and 4 MiB; the damage goes into a blob of the third, read after the upload began (the
    // first two are read before it starts).
    let big = pseudo_random(20 << 20, 5);
    uploads.write("a/big.bin", big.clone()).unwrap();
    uploads.write("b/small.txt", b"small".to_vec()).unwrap();
    let config = uploads_job(&env, &server);
    let run = |args: &[&str]| with_keys(&env, &[&["--config", config.to_str().unwrap()], args].concat());
    assert!(run(&["run", "app"]).status.success());

    // A blob of big.bin's third part, found through the library, gets one bit flipped in its pack.
    let listed = run(&["ls", "latest"]);
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    let path = listing.lines().map(str::trim).find(|l| l.ends_with("a/big.bin")).unwrap_or_else(|| panic!("{listing}"));
    let storage = gumvault::storage::Storage::open_url(&env.repo).unwrap();
    let repo = gumvault::repo::Repository::open(storage, env.password.as_bytes()).unwrap();
    let mut cat = gumvault::repo::catalog::Catalog::open(&env.path("lib-cache"), &repo).unwrap();
    let snapshot = cat.snapshots().unwrap().pop().unwrap();
    let reader = BlobReader::new(&repo, &mut cat);
    let tree = repo.load_snapshot(&snapshot.id).unwrap().tree;
    let node = gumvault::ops::restore::find(&reader, &tree, path).unwrap();
    // The first blob that starts in the third part: read only after the first two went up.
    let (mut at, mut target) = (0u64, None);
    for id in node.content.iter() {
        if at >= 16 << 20 {
            target = Some(reader.locate(id).unwrap());
            break;
        }
        at += reader.locate(id).unwrap().info.raw_len as u64;
    }
    let target = target.expect("a blob that starts past 16 MiB");
    let pack = std::path::Path::new(&env.repo).join("data").join(&target.pack.to_hex()[..2]).join(target.pack.to_hex());
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[target.offset as usize + 40] ^= 0x08;
    std::fs::write(&pack, &bytes).unwrap();

    // Through a proxy that counts, to see the upload begin and end.
    let proxy = crate::common::proxy::Proxy::start(server.port);
    let into = format!("s3://restored/?endpoint=http://127.0.0.1:{}&region=us-east-1", proxy.port);
    let out = run(&["restore", "latest", "--source", "uploads", "--to-s3", &into, "--json"]);
    let err = stderr(&out);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["summary"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report:#}");
    assert!(errors[0].as_str().unwrap().starts_with("a/big.bin: "), "{report:#}");
    let lines = proxy.request_lines();
    let big = |method: &str, query: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(method) && l.contains("/restored/a/big.bin?") && l.contains(query))
            .count()
    };
    assert_eq!(big("POST", "uploads"), 1, "the upload began: {lines:#?}");
    assert_eq!(big("PUT", "partNumber="), 2, "its first two parts went up: {lines:#?}");
    assert_eq!(big("DELETE", "uploadId="), 1, "and it was abandoned: {lines:#?}");
    let restored = server.bucket("restored");
    assert!(!restored.exists("a/big.bin").unwrap(), "a damaged object was written");
    assert_eq!(restored.read("b/small.txt").unwrap().to_vec(), b"small");
    // No upload is left open: S3 would keep (and bill) its first part until a lifecycle rule removed it.
    // s3s-fs keeps an open upload and its parts as `.upload…` files in its root until it is completed or
    // aborted.
    let open_uploads: Vec<String> = std::fs::read_dir(&server.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".upload"))
        .collect();
    assert!(open_uploads.is_empty(), "{open_uploads:?}");
}

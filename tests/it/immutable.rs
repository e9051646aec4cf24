//! Backups an intruder cannot destroy, against moto's S3 server (versioning and Object Lock): locked objects,
//! a view of the bucket as of a time before an attack, append-only credentials, storage classes, and S3
//! objects whose metadata comes back whole.

use crate::common::moto::{ACCESS_KEY, MotoServer, SECRET_KEY};
use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

/// A repository under `bucket/backups` on the server (not initialised).
fn moto_env(server: &MotoServer, bucket: &str) -> Env {
    let mut env = Env::uninitialised();
    env.repo = server.url(bucket, "backups");
    env
}

/// Runs gumvault with the server's keys (and more environment).
fn run(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    let mut c = env.cmd();
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

fn ok(env: &Env, args: &[&str]) -> String {
    ok_with(env, args, &[])
}

fn ok_with(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> String {
    let out = run(env, args, extra);
    assert!(
        out.status.success(),
        "gumvault {args:?} failed: {}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(env, &a)).unwrap()
}

fn init(env: &Env, extra: &[&str]) {
    let mut args = vec!["init", "--kdf-memory", "8", "--kdf-iterations", "1"];
    args.extend_from_slice(extra);
    ok(env, &args);
}

/// A source tree of a few files (one of several chunks).
fn source(env: &Env, seed: u64) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big.bin"), pseudo_random(3 << 20, seed)).unwrap();
    std::fs::write(src.join("sub/small.txt"), format!("version {seed}\n")).unwrap();
    src
}

/// Every current key under `prefix` with its storage class and retention, as JSON lines.
fn objects(server: &MotoServer, bucket: &str, prefix: &str) -> Vec<serde_json::Value> {
    let out = server.py(&format!(
        r#"
for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}'):
    for o in page.get('Contents', []):
        h = s3.head_object(Bucket='{bucket}', Key=o['Key'])
        print(json.dumps({{'key': o['Key'], 'class': h.get('StorageClass', 'STANDARD'), 'mode': h.get('ObjectLockMode'),
            'until': h['ObjectLockRetainUntilDate'].isoformat() if 'ObjectLockRetainUntilDate' in h else None,
            'version': h.get('VersionId')}}))
"#
    ));
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn init_checks_the_bucket_and_every_object_is_locked_data_packs_in_their_class() {
    let server = MotoServer::start();
    server.bucket("plain", false);
    server.bucket("locked", true);

    // A bucket without Object Lock: init fails naming the bucket setting, and writes nothing.
    let env = moto_env(&server, "plain");
    let out = run(&env, &["init", "--kdf-memory", "8", "--object-lock", "compliance:1d"], &[]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("ObjectLockEnabled"), "{}", stderr(&out));
    assert!(objects(&server, "plain", "").is_empty(), "nothing written by a refused init");
    // Archive classes are refused with the reason.
    let out = run(&env, &["init", "--kdf-memory", "8", "--storage-class", "GLACIER"], &[]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("RestoreObject"), "{}", stderr(&out));

    let env = moto_env(&server, "locked");
    init(&env, &["--object-lock", "compliance:1d", "--storage-class", "STANDARD_IA"]);
    let src = source(&env, 1);
    ok(&env, &["backup", src.to_str().unwrap()]);

    let all = objects(&server, "locked", "backups/");
    let now = jiff::Timestamp::now();
    let mut data_packs = 0;
    for o in &all {
        let key = o["key"].as_str().unwrap();
        assert_eq!(o["mode"], "COMPLIANCE", "{key} is locked: {o}");
        let until: jiff::Timestamp = o["until"].as_str().unwrap().parse().unwrap();
        let left = until.duration_since(now).as_secs();
        assert!((86_000..=86_400).contains(&left), "{key} locked for a day: {left}s");
        let class = o["class"].as_str().unwrap();
        if class == "STANDARD_IA" {
            assert!(key.starts_with("backups/data/"), "only packs are in the cold class: {key}");
            data_packs += 1;
        }
    }
    for dir in ["config", "keys/", "index/", "snapshots/"] {
        let o = all.iter().find(|o| o["key"].as_str().unwrap().starts_with(&format!("backups/{dir}"))).unwrap();
        assert_eq!(o["class"], "STANDARD", "{dir} stays in the default class");
    }
    let packs = all.iter().filter(|o| o["key"].as_str().unwrap().starts_with("backups/data/")).count();
    assert!(data_packs >= 1 && data_packs < packs, "data packs cold, the tree pack not ({data_packs} of {packs})");

    // The server itself refuses to delete a locked version, with the backup's own credentials.
    let o = all.iter().find(|o| o["key"].as_str().unwrap().starts_with("backups/data/")).unwrap();
    let out = server.py_output(&format!(
        "s3.delete_object(Bucket='locked', Key='{}', VersionId='{}')",
        o["key"].as_str().unwrap(),
        o["version"].as_str().unwrap()
    ));
    assert!(!out.status.success(), "a locked version cannot be deleted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&env, &["check", "--read-data"]);
}

/// Every current object under `prefix` deleted (odd ones) or overwritten with garbage (even ones), with the
/// same credentials the backups use; returns how many.
fn intrude(server: &MotoServer, bucket: &str, prefix: &str) -> usize {
    let out = server.py(&format!(
        r#"
keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}') for o in p.get('Contents', [])]
for i, k in enumerate(keys):
    if i % 2: s3.delete_object(Bucket='{bucket}', Key=k)
    else: s3.put_object(Bucket='{bucket}', Key=k, Body=b'encrypted by ransomware')
print(len(keys))
"#
    ));
    out.trim().parse().unwrap()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let ok = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success();
    assert!(ok);
}

#[test]
fn after_an_intrusion_as_of_restores_every_snapshot_and_sync_rebuilds_a_clean_copy() {
    let server = MotoServer::start();
    server.bucket("prod", true);
    server.bucket("fresh", true);
    server.bucket("nolock", false);
    let env = moto_env(&server, "prod");
    init(&env, &["--object-lock", "governance:2d"]);
    let src = source(&env, 1);
    ok(&env, &["backup", src.to_str().unwrap()]);
    copy_tree(&src, &env.path("v1"));
    std::fs::write(src.join("sub/small.txt"), "changed\n").unwrap();
    std::fs::write(src.join("new.bin"), pseudo_random(1 << 20, 9)).unwrap();
    ok(&env, &["backup", src.to_str().unwrap()]);
    copy_tree(&src, &env.path("v2"));
    let before: Vec<String> =
        json(&env, &["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(before.len(), 2);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let n = intrude(&server, "prod", "backups/");
    assert!(n > 8, "every object attacked ({n})");

    // Today's bucket is useless, and says so.
    std::fs::remove_dir_all(&env.cache).ok();
    assert_ne!(code(&run(&env, &["snapshots"], &[])), 0, "the attacked repository cannot even be opened");

    // As it was before the attack, it works as before: snapshots, check, restore, dump.
    let t = t.as_str();
    macro_rules! as_of {
        ($($a:expr),*) => { &["--as-of", t, $(&$a),*] };
    }
    let listed: Vec<String> = json(&env, as_of!("snapshots"))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, before);
    ok(&env, as_of!("check", "--read-data"));
    for (id, want) in before.iter().zip(["v1", "v2"]) {
        let target = env.path(&format!("restored-{want}"));
        ok(&env, as_of!("restore", id, "--target", target.to_str().unwrap()));
        assert_same_tree(&env.path(want), &target.join(src.strip_prefix("/").unwrap()));
    }
    let small = format!("{}/sub/small.txt", src.display());
    assert_eq!(ok(&env, as_of!("dump", &before[0], &small)), "version 1\n");
    // The view is read-only.
    let out = run(&env, as_of!("backup", src.to_str().unwrap()), &[]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));

    // Recover: copy the view into a fresh bucket, then use that. A bucket that cannot keep the locks is refused.
    let out = run(&env, as_of!("sync", "--into", &server.url("nolock", "backups")), &[]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("ObjectLockEnabled"), "{}", stderr(&out));
    let fresh = server.url("fresh", "backups");
    ok(&env, as_of!("sync", "--into", &fresh));
    let mut env2 = Env::uninitialised();
    env2.repo = fresh;
    let listed: Vec<String> =
        json(&env2, &["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, before);
    ok(&env2, &["check", "--read-data"]);
    let target = env2.path("restored");
    ok(&env2, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&env.path("v2"), &target.join(src.strip_prefix("/").unwrap()));
    // The copy is locked too, and takes new backups.
    assert!(objects(&server, "fresh", "backups/").iter().all(|o| o["mode"] == "GOVERNANCE"));
    ok(&env2, &["backup", src.to_str().unwrap()]);
}

/// Every version of `key` as (version id, is a delete marker).
fn versions(server: &MotoServer, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let out = server.py(&format!(
        r#"
r = s3.list_object_versions(Bucket='{bucket}', Prefix='{key}')
for v in r.get('Versions', []): print(v['VersionId'], 0)
for v in r.get('DeleteMarkers', []): print(v['VersionId'], 1)
"#
    ));
    out.lines().map(|l| l.split_once(' ').map(|(v, d)| (v.to_string(), d == "1")).unwrap()).collect()
}

fn until_of(objs: &[serde_json::Value], key: &str) -> jiff::Timestamp {
    let o = objs.iter().find(|o| o["key"] == key).unwrap_or_else(|| panic!("{key} not current"));
    o["until"].as_str().unwrap().parse().unwrap()
}

#[test]
fn locks_are_extended_for_what_is_needed_and_prune_deletes_the_rest_once_its_lock_ran_out() {
    let server = MotoServer::start();
    server.bucket("prod", true);
    let env = moto_env(&server, "prod");
    init(&env, &["--object-lock", "governance:12s"]);
    let src = source(&env, 1);
    ok(&env, &["backup", src.to_str().unwrap()]);
    let first = objects(&server, "prod", "backups/data/");
    std::fs::write(src.join("big.bin"), pseudo_random(3 << 20, 2)).unwrap();
    ok(&env, &["backup", src.to_str().unwrap()]);
    let packs: Vec<String> =
        objects(&server, "prod", "backups/data/").iter().map(|o| o["key"].as_str().unwrap().into()).collect();
    std::thread::sleep(std::time::Duration::from_secs(2));

    // The first snapshot goes; prune marks its own packs obsolete and extends the locks of everything else.
    ok(&env, &["forget", "--keep-last", "1"]);
    let before_prune = jiff::Timestamp::now();
    let r = json(&env, &["prune", "--grace", "0s"]);
    assert!(r["report"]["packs_marked"].as_u64().unwrap() >= 1, "{r}");
    let now = objects(&server, "prod", "backups/");
    let (mut extended, mut obsolete) = (0, Vec::new());
    for key in &packs {
        let after = until_of(&now, key);
        if first.iter().any(|o| o["key"] == key.as_str()) && after == until_of(&first, key) {
            obsolete.push(key.clone());
        } else {
            // Measured from before the prune, so a slow machine cannot make it fail.
            assert!(after.duration_since(before_prune).as_secs() >= 11, "{key} extended to prune's time + 12s");
            extended += 1;
        }
    }
    let left = obsolete.len();
    // `lock extend` does the same, and says how many it left to run out.
    let l = json(&env, &["lock", "extend"]);
    assert_eq!(l["lock"]["obsolete_left"].as_u64().unwrap(), left as u64, "{l}");
    assert!(left >= 1 && extended >= 1, "obsolete packs left to run out ({left}), needed ones extended ({extended})");

    // The next prune deletes them while they are locked: never a failure, the data stays as old versions.
    let r = json(&env, &["prune", "--grace", "0s"]);
    assert_eq!(r["report"]["packs_deleted"].as_u64().unwrap(), left as u64, "{r}");
    assert!(r["report"]["purge"]["versions_locked"].as_u64().unwrap() >= left as u64, "{r}");
    for key in &obsolete {
        let v = versions(&server, "prod", key);
        assert!(v.iter().any(|(_, d)| *d) && v.iter().any(|(_, d)| !*d), "{key}: a marker over the locked data: {v:?}");
    }
    ok(&env, &["check"]);

    // Once their lock ran out (and the skew allowance, here by an injected clock), prune removes them for good.
    let free = obsolete.iter().map(|k| until_of(&now, k)).max().unwrap();
    while jiff::Timestamp::now() <= free {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let r: serde_json::Value = serde_json::from_str(&ok_with(
        &env,
        &["prune", "--grace", "0s", "--json"],
        &[("GUMVAULT_TEST_CLOCK_OFFSET", "6m")],
    ))
    .unwrap();
    assert!(r["report"]["purge"]["versions_deleted"].as_u64().unwrap() >= 2 * left as u64, "{r}");
    for key in &obsolete {
        assert_eq!(versions(&server, "prod", key), vec![], "{key} is gone for good");
    }
    ok(&env, &["check", "--read-data"]);
    let target = env.path("restored");
    ok(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn append_only_credentials_back_up_run_and_check_but_maintenance_names_the_missing_permission() {
    let server = MotoServer::start();
    server.bucket("prod", true);
    let env = moto_env(&server, "prod");
    let src = source(&env, 1);
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        format!(
            "[repository]\nurl = \"{}\"\nobject_lock = \"governance:1d\"\nstorage_class = \"STANDARD_IA\"\n\n[jobs.app]\nsources = [{{ name = \"files\", kind = \"files\", paths = [\"{}\"] }}]\n",
            env.repo,
            src.display()
        ),
    )
    .unwrap();
    // The lock comes from the config file.
    ok_with(
        &env,
        &["init", "--kdf-memory", "8", "--kdf-iterations", "1"],
        &[("GUMVAULT_CONFIG", config.to_str().unwrap())],
    );
    let deny = [("GUMVAULT_TEST_APPEND_ONLY", "1")];
    let with_config = [("GUMVAULT_TEST_APPEND_ONLY", "1"), ("GUMVAULT_CONFIG", config.to_str().unwrap())];
    ok_with(&env, &["backup", src.to_str().unwrap()], &deny);
    std::fs::write(src.join("sub/small.txt"), "second\n").unwrap();
    ok_with(&env, &["run", "app"], &with_config);
    ok_with(&env, &["check", "--read-data"], &deny);
    assert_eq!(json(&env, &["snapshots"]).as_array().unwrap().len(), 2);
    // wal-push archives with the same credentials, locked and in the default class (recovery reads it at once).
    let cluster = crate::wal::FakeCluster::new(7_000_000_000_000_000_001);
    let seg = cluster.segment(1, 1, 1);
    for _ in 0..2 {
        let out = env
            .cmd()
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("GUMVAULT_TEST_APPEND_ONLY", "1")
            .current_dir(cluster.data())
            .args(["wal-push", &format!("pg_wal/{seg}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "wal-push: {}", stderr(&out));
    }
    let wal = objects(&server, "prod", "backups/wal/");
    assert_eq!(wal.len(), 1, "{wal:?}");
    assert_eq!(wal[0]["class"], "STANDARD");
    assert!(objects(&server, "prod", "backups/").iter().all(|o| o["mode"] == "GOVERNANCE"));

    for args in [&["prune"][..], &["forget", "--keep-last", "1"], &["sync"], &["key", "remove", "0000"]] {
        let out = run(&env, args, &deny);
        assert_ne!(code(&out), 0, "{args:?} needs to delete");
        assert!(stderr(&out).contains("permission s3:DeleteObject is missing"), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("policy print --maintenance"), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(json(&env, &["snapshots"]).as_array().unwrap().len(), 2, "nothing was forgotten");
    // With the maintenance role's credentials the same commands work.
    ok(&env, &["forget", "--keep-last", "1"]);
    ok(&env, &["prune"]);
}

#[test]
fn policy_print_names_the_bucket_and_prefix_and_denies_deletes_to_the_backup_role() {
    let env = Env::uninitialised();
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        "[repository]\nurl = \"s3://corp-backups/gumvault/app?region=eu-west-1\"\nobject_lock = \"compliance:35d\"\n",
    )
    .unwrap();
    let print = |which: &str| -> serde_json::Value {
        let out = env
            .cmd()
            .env_remove("GUMVAULT_REPO")
            .env("GUMVAULT_CONFIG", &config)
            .args(["policy", "print", which])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let backup = print("--backup");
    let text = backup.to_string();
    assert!(text.contains("arn:aws:s3:::corp-backups/gumvault/app/*"), "{text}");
    let statements = backup["Statement"].as_array().unwrap();
    let allowed: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()))
        .collect();
    assert!(allowed.contains(&"s3:PutObject") && !allowed.iter().any(|a| a.contains("Delete")), "{allowed:?}");
    let denied = statements.iter().find(|s| s["Sid"] == "NeverDestroy").unwrap().to_string();
    assert!(denied.contains("s3:DeleteObject\"") && denied.contains("s3:DeleteObjectVersion"), "{denied}");
    assert!(text.contains("s3:object-lock-remaining-retention-days"), "{text}");
    let maintenance = print("--maintenance").to_string();
    assert!(maintenance.contains("s3:DeleteObjectVersion") && maintenance.contains("s3:ListBucketVersions"));
}

/// head-object of every key in `bucket`, without what S3 sets itself (dates, ETag, version); the body's hash.
fn heads(server: &MotoServer, bucket: &str) -> serde_json::Value {
    let out = server.py(&format!(
        r#"
import hashlib
out = {{}}
for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []):
    h = s3.head_object(Bucket='{bucket}', Key=o['Key'])
    keep = {{k: (v.isoformat() if hasattr(v, 'isoformat') else v) for k, v in h.items()
            if k in ('ContentLength', 'ContentType', 'Metadata', 'CacheControl', 'ContentDisposition',
                     'ContentEncoding', 'ContentLanguage', 'Expires')}}
    keep['sha256'] = hashlib.sha256(s3.get_object(Bucket='{bucket}', Key=o['Key'])['Body'].read()).hexdigest()
    keep['etag'] = h['ETag']
    out[o['Key']] = keep
print(json.dumps(out, sort_keys=True))
"#
    ));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn s3_objects_come_back_with_their_metadata_and_large_ones_in_parts() {
    let server = MotoServer::start();
    server.bucket("uploads", false);
    server.bucket("restored", false);
    server.py(r#"
import datetime, random
exp = datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
s3.put_object(Bucket='uploads', Key='u42/avatar.png', Body=b'\x89PNG...' * 100, ContentType='image/png',
    Metadata={'owner': '42', 'uploaded-by': 'web-7'}, CacheControl='public, max-age=86400',
    ContentDisposition='attachment; filename="avatar.png"', ContentEncoding='identity', ContentLanguage='de-CH',
    Expires=exp)
s3.put_object(Bucket='uploads', Key='docs/readme.txt', Body=b'hello\n', ContentType='text/plain; charset=utf-8')
s3.put_object(Bucket='uploads', Key='docs/Read me + notes (ü).txt', Body=b'odd key\n', Metadata={'k': 'v w'},
    ContentDisposition='inline')
s3.put_object(Bucket='uploads', Key='video/big.mp4', Body=random.Random(5).randbytes(20 << 20), ContentType='video/mp4',
    Metadata={'owner': '7'}, ContentLanguage='en')
"#);
    let env = moto_env(&server, "repo");
    server.bucket("repo", false);
    init(&env, &[]);
    let config = env.path("gumvault.toml");
    std::fs::write(
        &config,
        format!(
            "[repository]\nurl = \"{}\"\n\n[jobs.app]\nsources = [{{ name = \"uploads\", kind = \"s3\", url = \"{}\" }}]\n",
            env.repo,
            server.url("uploads", "")
        ),
    )
    .unwrap();
    let with_config = [("GUMVAULT_CONFIG", config.to_str().unwrap())];
    ok_with(&env, &["run", "app"], &with_config);
    ok_with(&env, &["restore", "latest", "--source", "uploads", "--to-s3", &server.url("restored", "")], &with_config);

    let (mut before, mut after) = (heads(&server, "uploads"), heads(&server, "restored"));
    assert_eq!(before["u42/avatar.png"]["Metadata"]["owner"], "42", "{before}");
    assert_eq!(before["u42/avatar.png"]["ContentLanguage"], "de-CH", "{before}");
    // The big object went up in three parts of 8 MiB (an ETag "…-3"); the small ones in one.
    let etag = after["video/big.mp4"]["etag"].as_str().unwrap().to_string();
    assert!(etag.ends_with("-3\""), "{etag}");
    for v in [&mut before, &mut after] {
        for (_, o) in v.as_object_mut().unwrap() {
            o.as_object_mut().unwrap().remove("etag");
        }
    }
    assert_eq!(after, before);
}

#[test]
fn prune_after_an_intrusion_keeps_the_old_versions_of_what_the_repository_needs() {
    let server = MotoServer::start();
    server.bucket("prod", true);
    let env = moto_env(&server, "prod");
    init(&env, &["--object-lock", "governance:2s"]);
    let src = source(&env, 3);
    ok(&env, &["backup", src.to_str().unwrap()]);
    // The locks run out (no maintenance extended them); then an intruder overwrites the data packs (the big ones:
    // the tree pack stays, so prune can still read the snapshot).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let n = server.py(r#"
keys = [o['Key'] for o in s3.list_objects_v2(Bucket='prod', Prefix='backups/data/')['Contents'] if o['Size'] > 100000]
for k in keys: s3.put_object(Bucket='prod', Key=k, Body=b'encrypted by ransomware')
print('\n'.join(keys))
"#);
    let attacked: Vec<&str> = n.lines().collect();
    assert!(!attacked.is_empty());
    // Maintenance runs later (an injected clock past the skew allowance): the packs are still in the index, so
    // their old versions, free of any lock by now, are the way back and stay.
    ok_with(&env, &["prune", "--grace", "0s"], &[("GUMVAULT_TEST_CLOCK_OFFSET", "1h")]);
    for key in attacked {
        assert_eq!(versions(&server, "prod", key).len(), 2, "{key}: the version before the attack is kept");
    }
}

#[test]
fn a_daemon_in_the_backup_role_never_deletes_and_one_in_the_maintenance_role_does_the_rest() {
    let (env, config, _) =
        crate::daemon::setup("schedule = \"0 */6 * * *\"\n[jobs.app.retention]\nkeep_last = 2\nkeep_within = \"1h\"");
    let c = config.to_str().unwrap();
    let init = env
        .cmd()
        .env("GUMVAULT_CONFIG", c)
        .args(["init", "--kdf-memory", "8", "--kdf-iterations", "1"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    let simulate = |role: &str, deny: bool| -> Vec<serde_json::Value> {
        let mut cmd = env.cmd();
        cmd.env("GUMVAULT_CONFIG", c).env("TZ", "UTC");
        if deny {
            cmd.env("GUMVAULT_TEST_APPEND_ONLY", "1");
        }
        let out = cmd
            .args(["daemon", "--role", role, "--log-format", "json"])
            .args(["--simulate-from", "2026-11-21T01:00:00Z", "--simulate-until", "2026-11-22T05:00:00Z"])
            .output()
            .unwrap();
        assert!(out.status.success(), "daemon failed: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let count = |log: &[serde_json::Value], event: &str, outcome: &str| {
        log.iter().filter(|l| l["event"] == event && l["outcome"] == outcome).count()
    };
    // The application server: credentials that may not delete. Every task it runs succeeds.
    let log = simulate("backup", true);
    assert!(count(&log, "backup", "ok") >= 4, "{log:#?}");
    assert!(count(&log, "check", "ok") >= 1, "{log:#?}");
    for event in ["forget", "prune"] {
        assert!(log.iter().all(|l| l["event"] != event), "no {event} in the backup role: {log:#?}");
    }
    assert_eq!(count(&log, "lock-extend", "ok"), 1, "on the prune schedule, locks are extended: {log:#?}");
    assert!(log.iter().all(|l| l["outcome"] != "failed"), "{log:#?}");
    // The maintenance host: retention, then prune, on the prune schedule (Sunday 03:00); no backups.
    let log = simulate("maintenance", false);
    assert_eq!(count(&log, "forget", "ok"), 1, "{log:#?}");
    assert_eq!(count(&log, "prune", "ok"), 1, "{log:#?}");
    assert!(log.iter().all(|l| l["event"] != "backup" && l["event"] != "check"), "{log:#?}");
    let out = env.cmd().env("GUMVAULT_CONFIG", c).args(["snapshots", "--json"]).output().unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2, "retention kept two");
}

#[test]
fn a_locked_write_once_never_replaces_an_object() {
    use gumvault::storage::s3api::S3Api;
    use gumvault::storage::s3ops::{Retention, retention_headers};
    let server = MotoServer::start();
    server.bucket("once", true);
    let credentials = Some((ACCESS_KEY.to_string(), SECRET_KEY.to_string()));
    let api = S3Api::new("t", "once", "p", Some(&server.endpoint()), "us-east-1", credentials).unwrap();
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let headers = retention_headers(Retention { mode: gumvault::storage::LockMode::Governance, until });
    assert!(api.put_object_new("wal/x", bytes::Bytes::from_static(b"first"), &headers).unwrap());
    assert!(!api.put_object_new("wal/x", bytes::Bytes::from_static(b"second"), &headers).unwrap(), "name taken");
    let body = server.py("print(s3.get_object(Bucket='once', Key='p/wal/x')['Body'].read().decode())");
    assert_eq!(body.trim(), "first");
    assert_eq!(versions(&server, "once", "p/wal/x").len(), 1, "no second version either");
}

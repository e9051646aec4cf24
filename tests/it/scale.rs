//! The memory budget: an index larger than the budget is sorted and searched in scratch files, and prune and
//! check decide exactly what they decide in memory.

use std::process::Command;

use crate::common::{Env, assert_same_tree, pseudo_random, stderr};

/// Runs gumvault on `repo` with its own cache, the budget given (if any), its clock moved ahead by `clock`.
fn run_json(env: &Env, repo: &str, cache: &str, budget: Option<&str>, args: &[&str], clock: &str) -> serde_json::Value {
    let mut c = env.cmd();
    c.env("GUMVAULT_REPO", repo).env("GUMVAULT_CACHE_DIR", env.path(cache));
    if let Some(b) = budget {
        c.args(["--memory-budget", b]);
    }
    c.env("GUMVAULT_TEST_CLOCK_OFFSET", clock);
    let out = c.args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?} with budget {budget:?}: {}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["report"].clone()
}

/// The report without what is expected to differ between the two runs.
fn without(mut v: serde_json::Value, keys: &[&str]) -> serde_json::Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn a_budget_smaller_than_the_index_spills_and_prune_and_check_decide_the_same() {
    let env = Env::new();
    let src = env.path("src");
    // 4,000 small distinct files: each is one blob, so the index has far more records than the smallest run.
    for d in 0..8 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
    }
    let write = |seed: u64| {
        for i in 0..4000u64 {
            let name = src.join(format!("d{}/f{i}", i % 8));
            if seed == 0 || i % 3 == 0 {
                std::fs::write(name, pseudo_random(300, seed * 10_000 + i)).unwrap();
            }
        }
    };
    write(0);
    env.ok(&["backup", src.to_str().unwrap()]);
    write(1); // a third of the files change: their old blobs become unused once the first snapshot goes
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["forget", "--keep-last", "1"]);
    let copy = env.path("copy").to_string_lossy().into_owned();
    assert!(Command::new("cp").args(["-a", &env.repo, &copy]).status().unwrap().success());

    for round in 0..2 {
        let clock = format!("{}h", 25 * round);
        let prune = ["prune", "--max-unused", "0%"];
        let memory = run_json(&env, &env.repo, "cache-a", None, &prune, &clock);
        let spilled = run_json(&env, &copy, "cache-b", Some("64K"), &prune, &clock);
        assert_eq!(memory["index_spilled"], false, "{memory}");
        assert_eq!(spilled["index_spilled"], true, "{spilled}");
        assert_eq!(without(memory.clone(), &["index_spilled"]), without(spilled, &["index_spilled"]), "round {round}");
        if round == 0 {
            assert!(memory["packs_repacked"].as_u64().unwrap() > 0, "partly used packs are repacked: {memory}");
        } else {
            assert!(memory["packs_deleted"].as_u64().unwrap() > 0, "the next prune deletes them: {memory}");
        }
    }
    let memory = run_json(&env, &env.repo, "cache-a", None, &["check", "--read-data"], "50h");
    let spilled = run_json(&env, &copy, "cache-b", Some("64K"), &["check", "--read-data"], "50h");
    assert_eq!(spilled["index_spilled"], true);
    assert_eq!(memory["problems"], serde_json::json!([]), "{memory}");
    let same = ["index_spilled", "packs_verified"];
    assert_eq!(without(memory.clone(), &same), without(spilled.clone(), &same));
    assert!(memory["blobs"].as_u64().unwrap() >= 4000, "{memory}");

    restores_as(&env, &copy, "cache-b", &src);
}

/// Restores the latest snapshot of `repo` with the cache `cache` and compares it with `src`.
fn restores_as(env: &Env, repo: &str, cache: &str, src: &std::path::Path) {
    let target = env.path(&format!("restored-{cache}"));
    let out = env
        .cmd()
        .env("GUMVAULT_REPO", repo)
        .env("GUMVAULT_CACHE_DIR", env.path(cache))
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
}

/// A stream backup into `repo` with the known blob ids given `in_memory` bytes; returns the blobs it added.
fn stream_backup(
    repo: &gumvault::repo::Repository,
    cat: &mut gumvault::repo::catalog::Catalog,
    data: &[u8],
    in_memory: u64,
) -> u64 {
    use gumvault::ops::backup::{self, BackupOptions, Source, progress::Progress};
    let opts = BackupOptions { host: "h".into(), known_in_memory: Some(in_memory), ..Default::default() };
    let src = Source::Stream { name: "db.sql".into(), reader: Box::new(std::io::Cursor::new(data.to_vec())) };
    backup::run(repo, cat, src, &opts, &Progress::default()).unwrap().snapshot.summary.blobs_added
}

#[test]
fn a_backup_beyond_its_memory_share_asks_the_catalog_on_disk_and_stores_exactly_the_same() {
    use gumvault::ops::backup::known::KnownBlobs;
    use gumvault::repo::catalog::Catalog;
    let tmp = tempfile::tempdir().unwrap();
    // One repository and an exact copy of it (same key, so the same cut points): one backs up with its known
    // blobs in memory, the other looks each up in its catalog.
    let (dir_m, dir_d) = (tmp.path().join("repo-m"), tmp.path().join("repo-d"));
    {
        let mut opts = gumvault::repo::InitOptions {
            kdf: gumvault::format::crypto::KdfParams { memory_kib: 256, iterations: 1, parallelism: 1 },
            pack_size: 64 << 10,
            ..Default::default()
        };
        let tiny = gumvault::format::chunker::ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 };
        opts.chunker_profiles.insert("stream".into(), tiny);
        std::fs::create_dir(&dir_m).unwrap();
        let storage = gumvault::storage::Storage::open_url(dir_m.to_str().unwrap()).unwrap();
        gumvault::repo::Repository::init(storage, b"pw", &opts).unwrap();
    }
    assert!(Command::new("cp").arg("-a").arg(&dir_m).arg(&dir_d).status().unwrap().success());
    let open = |d: &std::path::Path| {
        gumvault::repo::Repository::open(gumvault::storage::Storage::open_url(d.to_str().unwrap()).unwrap(), b"pw")
            .unwrap()
    };
    let (in_memory, on_disk) = (open(&dir_m), open(&dir_d));
    let mut cat_m = Catalog::open(&tmp.path().join("m"), &in_memory).unwrap();
    let mut cat_d = Catalog::open(&tmp.path().join("d"), &on_disk).unwrap();
    let first = pseudo_random(3 << 20, 1);
    let mut second = first.clone();
    second[1 << 20..(1 << 20) + 300_000].copy_from_slice(&pseudo_random(300_000, 2));

    let a = stream_backup(&in_memory, &mut cat_m, &first, 128 << 20);
    let b = stream_backup(&on_disk, &mut cat_d, &first, 0);
    assert_eq!(a, b);
    assert!(a > 1000, "the stream is cut into many blobs: {a}");
    assert!(!KnownBlobs::load(&cat_m, 128 << 20).unwrap().on_disk());
    let known = KnownBlobs::load(&cat_d, 0).unwrap();
    assert!(known.on_disk(), "a share of 0 bytes looks every blob up in the catalog");
    for id in cat_d.blob_ids().unwrap() {
        assert!(known.contains(&id).unwrap());
    }
    assert!(!known.contains(&gumvault::format::id::Id([7; 32])).unwrap());

    // The changed stream adds the same blobs either way, and the same stream again adds only its root tree.
    let a = stream_backup(&in_memory, &mut cat_m, &second, 128 << 20);
    let b = stream_backup(&on_disk, &mut cat_d, &second, 0);
    assert_eq!(a, b);
    assert!(a > 0 && a < 500, "only the changed 300 KB (of 3 MiB) is new: {a}");
    assert!(stream_backup(&on_disk, &mut cat_d, &second, 0) <= 1);
}

#[test]
fn prune_leaves_the_mode_of_a_shared_scratch_directory_alone() {
    use std::os::unix::fs::PermissionsExt;
    // The default scratch directory is the system's /tmp: prune must never tighten it (other users need it).
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let repo = crate::common::small_repo(
        gumvault::format::chunker::ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 },
        64 << 10,
    );
    let memory = gumvault::repo::blob_index::MemoryBudget { bytes: 1 << 16, scratch: shared.path().to_path_buf() };
    let opts = gumvault::ops::prune::PruneOptions { memory, ..Default::default() };
    gumvault::ops::prune::prune(&repo, &opts, jiff::Timestamp::now()).unwrap();
    let mode = std::fs::metadata(shared.path()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);
    assert_eq!(std::fs::read_dir(shared.path()).unwrap().count(), 0, "scratch files vanish with the run");
}

#[test]
fn snapshots_on_a_new_machine_read_the_snapshots_and_not_the_index() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), pseudo_random(10_000, 1)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["backup", src.to_str().unwrap()]);
    // Damage every index segment: whoever reads the index says so.
    for e in std::fs::read_dir(std::path::Path::new(&env.repo).join("index")).unwrap() {
        let p = e.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&p, bytes).unwrap();
    }
    let fresh = |cache: &str, args: &[&str]| {
        let out = env.cmd().env("GUMVAULT_CACHE_DIR", env.path(cache)).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    let (listed, warnings) = fresh("new-machine", &["snapshots", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&listed).unwrap().as_array().unwrap().len(), 2);
    assert!(!warnings.contains("index"), "snapshots did not read the index: {warnings}");
    let (_, warnings) = fresh("new-machine", &["stats"]);
    assert!(warnings.contains("index"), "the first command that needs the index reads it: {warnings}");
}

#[test]
fn a_catalog_rebuilt_from_many_segments_in_sorted_order_matches_the_one_built_as_backups_ran() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Each backup writes at least one index segment: more than the 16 above which a new catalog is staged.
    for i in 0..18 {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(20_000, i)).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    let segments = std::fs::read_dir(std::path::Path::new(&env.repo).join("index")).unwrap().count();
    assert!(segments > 16, "{segments} segments");
    let stats = |cache: &str| {
        let out = env.cmd().env("GUMVAULT_CACHE_DIR", env.path(cache)).args(["stats", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (grown, rebuilt) = (stats("cache"), stats("new-machine"));
    assert_eq!(grown, rebuilt);
    assert!(rebuilt["blobs"].as_u64().unwrap() >= 18, "{rebuilt}");
    restores_as(&env, &env.repo, "new-machine", &src);
}

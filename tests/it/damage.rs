//! Broken repositories: check names each problem precisely; repair recovers what can be recovered and says what
//! cannot.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::common::{Env, code, pseudo_random, stderr};

fn objects(repo: &str, dir: &str) -> Vec<PathBuf> {
    crate::common::files_under(&Path::new(repo).join(dir)).into_iter().map(|(p, _)| p).collect()
}

/// Two snapshots in separate backups: `a` (two files) and `b`; returns the env and the source dirs.
fn two_snapshots() -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("big.bin"), pseudo_random(2 << 20, 1)).unwrap();
    std::fs::write(a.join("small.txt"), "small").unwrap();
    std::fs::write(b.join("other.bin"), pseudo_random(1 << 20, 2)).unwrap();
    env.ok(&["backup", a.to_str().unwrap(), "--tag", "a"]);
    env.ok(&["backup", b.to_str().unwrap(), "--tag", "b"]);
    (env, a, b)
}

fn data_pack_of(env: &Env) -> PathBuf {
    // The largest pack holds big.bin.
    objects(&env.repo, "data").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap()
}

#[test]
fn a_deleted_pack_is_named_and_repair_marks_what_was_lost() {
    let (env, a, b) = two_snapshots();
    let pack = data_pack_of(&env);
    let pack_name = pack.file_name().unwrap().to_str().unwrap()[..8].to_string();
    std::fs::remove_file(&pack).unwrap();

    let out = env.run(&["check"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    let err = stderr(&out);
    assert!(err.contains(&format!("pack {pack_name}")) && err.contains("missing"), "{err}");

    // The pack's blobs are lost, and repair says so (exit 12) rather than dropping them silently.
    let out = env.run(&["repair", "index"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    assert!(
        stderr(&out).contains("missing from every region") && stderr(&out).contains(&pack_name),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert!(err.contains("big.bin") && err.contains("not in any index"), "check names the path: {err}");

    let repaired = env.json(&["repair", "snapshots"]);
    let lost: Vec<String> =
        repaired[0]["lost"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(lost.iter().any(|l| l.ends_with("big.bin")), "{lost:?}");
    env.ok(&["check", "--read-data"]);

    let target = env.path("r");
    env.ok(&["restore", "latest", "--tag", "a", "--target", target.to_str().unwrap()]);
    let base = target.join(a.strip_prefix("/").unwrap());
    // Both files of `a` were in the deleted pack (one backup fills one pack): both are marked lost.
    assert!(base.join("big.bin.gumvault-lost").exists(), "the loss is marked, never silent");
    assert!(base.join("small.txt.gumvault-lost").exists());
    assert!(!base.join("big.bin").exists());
    let snaps = env.json(&["snapshots", "--tag", "a"]);
    assert_eq!(snaps[0]["incomplete"], true);
    assert!(snaps[0]["tags"].as_array().unwrap().iter().any(|t| t == "repaired"));
    let rb = env.path("rb");
    env.ok(&["restore", "latest", "--tag", "b", "--target", rb.to_str().unwrap()]);
    let other = std::fs::read(rb.join(b.strip_prefix("/").unwrap()).join("other.bin")).unwrap();
    assert_eq!(other, pseudo_random(1 << 20, 2), "data in other packs is untouched");
}

#[test]
fn a_truncated_index_is_named_and_repair_index_rebuilds_it() {
    let (env, a, _b) = two_snapshots();
    let idx = objects(&env.repo, "index").remove(0);
    let bytes = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();

    let out = env.run(&["check"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    let name = idx.file_name().unwrap().to_str().unwrap().to_string();
    assert!(stderr(&out).contains(&format!("index/{name}")) || stderr(&out).contains(&name[..8]), "{}", stderr(&out));

    env.ok(&["repair", "index"]);
    env.ok(&["check", "--read-data"]);
    let target = env.path("r");
    env.ok(&["restore", "latest", "--tag", "a", "--target", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(target.join(a.strip_prefix("/").unwrap()).join("big.bin")).unwrap(),
        pseudo_random(2 << 20, 1)
    );
}

#[test]
fn a_corrupt_snapshot_is_named_and_the_others_stay_usable() {
    let (env, _a, b) = two_snapshots();
    let snaps = env.json(&["snapshots"]);
    let victim = snaps[0]["id"].as_str().unwrap().to_string();
    let path = Path::new(&env.repo).join("snapshots").join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();

    let out = env.run(&["check"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    assert!(stderr(&out).contains(&victim[..8]), "{}", stderr(&out));
    let out = env.run(&["snapshots", "--json"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("corrupt"), "listing warns about the damaged snapshot");
    env.ok(&["restore", "latest", "--tag", "b", "--target", env.path("r").to_str().unwrap()]);
    let _ = b;
}

#[test]
fn read_data_subsets_cover_everything_and_resume() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(1 << 20, i)).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    let verified = |args: &[&str]| -> HashSet<String> {
        let v = env.json(args);
        v["report"]["packs_verified"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
    };
    let all = verified(&["check", "--read-data"]);
    assert!(all.len() >= 6);
    let s1 = verified(&["check", "--read-data-subset", "1/3"]);
    let s2 = verified(&["check", "--read-data-subset", "2/3"]);
    let s3 = verified(&["check", "--read-data-subset", "3/3"]);
    assert!(s1.is_disjoint(&s2) && s2.is_disjoint(&s3) && s1.is_disjoint(&s3));
    assert_eq!(&(&(&s1 | &s2) | &s3), &all, "the slices cover every pack");
    // Percentages take the packs verified longest ago: two halves cover everything.
    let h1 = verified(&["check", "--read-data-subset", "50%"]);
    let h2 = verified(&["check", "--read-data-subset", "50%"]);
    assert!(h1.is_disjoint(&h2), "the second run verifies the other half");
    assert_eq!(&(&h1 | &h2), &all);
    let auto = verified(&["check", "--read-data-subset", "auto"]);
    assert!(!auto.is_empty() && auto.len() < all.len());
}

/// Restores the newest snapshot tagged `tag` and compares it with the source directory `src`.
fn restores_identical(env: &Env, tag: &str, src: &Path) {
    let target = env.path(&format!("r-{tag}-{}", rand_suffix()));
    env.ok(&["restore", "latest", "--tag", tag, "--target", target.to_str().unwrap()]);
    crate::common::assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// `check --read-data` said of the damaged pack that all its indexed blobs still authenticate ("N of its N").
fn assert_all_blobs_authenticate(err: &str) {
    let line = err.lines().find(|l| l.contains("indexed blobs still authenticate")).unwrap_or_else(|| panic!("{err}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(2).position(|w| w == ["of", "its"]).unwrap();
    assert_eq!(words[at - 1], words[at + 2], "{line}");
}

/// Runs `repair index --json`; (exit code, report).
fn repair_index(env: &Env) -> (i32, serde_json::Value) {
    let out = env.run(&["repair", "index", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out)));
    (code(&out), v["report"].clone())
}

#[test]
fn repair_index_keeps_a_pack_with_trailing_bytes_and_prune_keeps_its_data() {
    let (env, a, b) = two_snapshots();
    let pack = data_pack_of(&env);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes.extend_from_slice(b"\x00\x01\x02\x03");
    std::fs::write(&pack, &bytes).unwrap();
    restores_identical(&env, "a", &a);

    let (exit, report) = repair_index(&env);
    assert_eq!(exit, 0, "{report:#}");
    let damaged = report["damaged_packs"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report:#}");
    assert!(damaged[0]["problem"].as_str().unwrap().contains("4 bytes follow"), "{report:#}");
    assert_eq!(damaged[0]["header_found"], true);
    assert!(damaged[0]["blobs_recovered"].as_u64().unwrap() >= 2);
    assert_eq!(damaged[0]["blobs_lost"].as_array().unwrap().len(), 0);
    assert_eq!(report["blobs_lost"], 0);
    restores_identical(&env, "a", &a);
    restores_identical(&env, "b", &b);

    // check: the structure is sound; reading the data names the pack whose bytes no longer match its name.
    env.ok(&["check"]);
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(stderr(&out).contains(&name[..8]), "{}", stderr(&out));
    assert_all_blobs_authenticate(&stderr(&out));
    // A prune keeps it: every blob in it is indexed and referenced.
    env.ok(&["prune"]);
    assert!(pack.exists());
    restores_identical(&env, "a", &a);
}

#[test]
fn repair_index_recovers_the_blobs_of_a_pack_whose_header_is_damaged() {
    let (env, a, b) = two_snapshots();
    let pack = data_pack_of(&env);
    let mut bytes = std::fs::read(&pack).unwrap();
    let n = bytes.len();
    let header_len = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap()) as usize;
    bytes[n - 4 - header_len / 2] ^= 0x08;
    std::fs::write(&pack, &bytes).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();

    let (exit, report) = repair_index(&env);
    assert_eq!(exit, 0, "{report:#}");
    let damaged = report["damaged_packs"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report:#}");
    assert_eq!(damaged[0]["header_found"], false, "{report:#}");
    assert!(damaged[0]["problem"].as_str().unwrap().contains("header cannot be read"));
    assert!(damaged[0]["blobs_recovered"].as_u64().unwrap() >= 2);
    assert_eq!(report["blobs_lost"], 0);
    assert!(report["segments_kept"].as_array().unwrap().is_empty(), "every pack was fully re-read: {report:#}");
    restores_identical(&env, "a", &a);
    restores_identical(&env, "b", &b);
    env.ok(&["check"]);
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "the damaged header is still reported");
    assert_all_blobs_authenticate(&stderr(&out));
    // Repairing again finds the same: the index it wrote describes the pack as the old one did.
    let (exit, again) = repair_index(&env);
    assert_eq!(exit, 0, "{again:#}");
    assert_eq!(again["blobs_indexed"], report["blobs_indexed"]);
    restores_identical(&env, "a", &a);

    // With no index segment left to describe it (as an earlier repair that dropped it would leave things), a
    // pack without a readable header cannot be recovered: that is said, and the pack is left in place.
    for seg in objects(&env.repo, "index") {
        std::fs::remove_file(seg).unwrap();
    }
    let (exit, last) = repair_index(&env);
    assert_eq!(exit, gumvault::exit::DATA_ERROR, "{last:#}");
    assert_eq!(last["unrecoverable_packs"].as_array().unwrap().len(), 1, "{last:#}");
    assert!(pack.exists());
}

#[test]
fn repair_index_says_which_blobs_of_a_damaged_pack_are_lost_and_keeps_the_rest() {
    let (env, a, _b) = two_snapshots();
    let pack = data_pack_of(&env);
    let mut bytes = std::fs::read(&pack).unwrap();
    let n = bytes.len();
    let header_len = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap()) as usize;
    // The header and the first blob (the start of big.bin: blobs are packed in the order they were read).
    bytes[n - 4 - header_len / 2] ^= 0x08;
    bytes[100] ^= 0x08;
    std::fs::write(&pack, &bytes).unwrap();

    let (exit, report) = repair_index(&env);
    assert_eq!(exit, gumvault::exit::DATA_ERROR, "{report:#}");
    let damaged = &report["damaged_packs"][0];
    assert_eq!(damaged["blobs_lost"].as_array().unwrap().len(), 1, "{report:#}");
    assert!(damaged["blobs_recovered"].as_u64().unwrap() >= 1);
    assert_eq!(report["blobs_lost"], 1);
    // The loss is marked in the snapshot; everything else of it restores.
    let repaired = env.json(&["repair", "snapshots"]);
    let lost: Vec<&str> = repaired[0]["lost"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let target = env.path("r");
    env.ok(&["restore", "latest", "--tag", "a", "--target", target.to_str().unwrap()]);
    let base = target.join(a.strip_prefix("/").unwrap());
    let survivor = if lost[0].ends_with("big.bin") { "small.txt" } else { "big.bin" };
    assert_eq!(std::fs::read(base.join(survivor)).unwrap(), std::fs::read(a.join(survivor)).unwrap());
    env.ok(&["check"]);
}

#[test]
fn repair_index_keeps_the_old_index_of_a_pack_it_cannot_read() {
    use crate::common::proxy::Proxy;
    use crate::common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
    let mut env = Env::uninitialised();
    let server = S3Server::start(&env.path("s3"), &["gumvault-repair"]);
    let proxy = Proxy::start(server.port);
    env.repo = format!("s3://gumvault-repair/r?endpoint=http://127.0.0.1:{}&region=us-east-1", proxy.port);
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .args(args)
            .output()
            .unwrap();
        (code(&out), String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    assert_eq!(run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).0, 0);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("data.bin"), pseudo_random(1 << 20, 5)).unwrap();
    let (c, _, err) = run(&["backup", src.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    let bucket = server.root.join("gumvault-repair/r");
    let pack =
        objects(bucket.to_str().unwrap(), "data").into_iter().max_by_key(|p| p.metadata().unwrap().len()).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let segments_before = objects(bucket.to_str().unwrap(), "index");

    // The storage refuses to hand out that pack: it cannot be re-read, so what the index says about it stays.
    proxy.refuse(Some(&name));
    let (c, out, err) = run(&["repair", "index", "--json"]);
    assert_eq!(c, gumvault::exit::DATA_ERROR, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["report"]["unreadable_packs"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["report"]["segments_removed"], 0, "{report:#}");
    assert!(err.contains("could not be read"), "{err}");
    for seg in &segments_before {
        assert!(seg.exists(), "{} was removed", seg.display());
    }
    proxy.refuse(None);
    let target = env.path("r");
    let (c, _, err) = run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    crate::common::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

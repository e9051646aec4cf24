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

    env.ok(&["repair", "index"]);
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

//! Files of many blobs: their nodes list content lists, not ids. Backup, restore (in windows that cut a file
//! across lists), dump, diff, check, prune and repair see the same content; a change stores a few new lists; a
//! damaged list is named and its file is never restored looking whole.

use std::path::{Path, PathBuf};

use gumvault::format::chunker::ChunkerParams;
use gumvault::format::id::Id;
use gumvault::format::tree::Node;
use gumvault::ops::backup::{self, BackupOptions, Progress, Source};
use gumvault::ops::restore::{self, RestoreOptions, RestoreProgress};
use gumvault::repo::Repository;
use gumvault::repo::catalog::Catalog;
use gumvault::repo::reader::BlobReader;

use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

/// 256-byte chunks: a few MiB make tens of thousands of blobs, so several content lists.
const TINY: &str = "files=64/256/1K";

fn tiny_env() -> Env {
    let env = Env::uninitialised();
    env.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--chunker-profile", TINY]);
    env
}

/// A large file, a sparse one (a hole of 3 MiB: thousands of the same zero blob), and a small one.
fn build(src: &Path) {
    std::fs::create_dir_all(src).unwrap();
    std::fs::write(src.join("big.bin"), pseudo_random(6 << 20, 1)).unwrap();
    let sparse = std::fs::File::create(src.join("sparse.img")).unwrap();
    sparse.set_len(4 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(&pseudo_random(64 << 10, 2), 0).unwrap();
    sparse.write_all_at(&pseudo_random(64 << 10, 3), (4 << 20) - (64 << 10)).unwrap();
    std::fs::write(src.join("small.txt"), "small").unwrap();
}

fn open(env: &Env, cache: &str) -> (Repository, Catalog) {
    let storage = gumvault::storage::Storage::open_url(&env.repo).unwrap();
    let repo = Repository::open(storage, env.password.as_bytes()).unwrap();
    let cat = Catalog::open(&env.path(cache), &repo).unwrap();
    (repo, cat)
}

/// The node of `path` in the snapshot `snapshot`.
fn node_of(reader: &BlobReader<'_>, snapshot: &str, path: &Path) -> Node {
    let snap = reader.repo.load_snapshot(&Id::from_hex(snapshot).unwrap()).unwrap();
    restore::find(reader, &snap.tree, path.to_str().unwrap()).unwrap()
}

fn snapshot_id(backup: &serde_json::Value) -> String {
    backup["snapshot_id"].as_str().unwrap_or_else(|| panic!("no id in {backup}")).to_string()
}

#[test]
fn large_files_go_by_content_lists_through_every_command() {
    let env = tiny_env();
    let src = env.path("src");
    build(&src);
    let first = env.json(&["backup", src.to_str().unwrap()]);
    let first_id = snapshot_id(&first);
    {
        let (repo, mut cat) = open(&env, "lib-cache");
        let reader = BlobReader::new(&repo, &mut cat);
        let big = node_of(&reader, &first_id, &src.join("big.bin"));
        assert!(big.content.is_empty() && big.content_lists.len() >= 2, "{} lists", big.content_lists.len());
        // Past 16,384 blobs a second list is certain, wherever the cuts fall.
        assert!(big.blob_count() > 16_384, "{} blobs", big.blob_count());
        let sparse = node_of(&reader, &first_id, &src.join("sparse.img"));
        assert!(!sparse.content_lists.is_empty(), "the hole alone is thousands of blobs");
        let small = node_of(&reader, &first_id, &src.join("small.txt"));
        assert!(small.content_lists.is_empty() && small.content.len() == 1);
    }

    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    let dumped = env.cmd().args(["dump", "latest", src.join("big.bin").to_str().unwrap()]).output().unwrap();
    assert!(dumped.status.success(), "{}", stderr(&dumped));
    assert!(dumped.stdout == std::fs::read(src.join("big.bin")).unwrap(), "dump gives the file's bytes");

    // 1,000 bytes inserted at 512 KiB: every later blob moves, but lists are cut by the ids, so only the list
    // around the change (and at most the next ones, should a cut fall in it) is new. So early that the last list
    // cannot reach back to it (at most 16,384 blobs of ~256 bytes, 4 MiB of the 6): ids are keyed by the
    // repository's random key, so where lists end differs from run to run.
    let mut big = std::fs::read(src.join("big.bin")).unwrap();
    let tail = big.split_off(512 << 10);
    big.extend_from_slice(&pseudo_random(1000, 9));
    big.extend_from_slice(&tail);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let second = env.json(&["backup", src.to_str().unwrap()]);
    let added = second["summary"]["blobs_added"].as_u64().unwrap();
    assert!(added < 40, "a small change adds few blobs: {}", second["summary"]);
    {
        let (repo, mut cat) = open(&env, "lib-cache");
        let reader = BlobReader::new(&repo, &mut cat);
        let before = node_of(&reader, &first_id, &src.join("big.bin")).content_lists;
        let after = node_of(&reader, &snapshot_id(&second), &src.join("big.bin")).content_lists;
        let new = after.iter().filter(|l| !before.contains(l)).count();
        // A list that ended at the 16,384-id maximum, not at a cut of the ids, moves with the insertion; its
        // successor is then new too, until a cut of the ids falls again.
        let forced = after.iter().filter(|l| l.blobs as usize == gumvault::format::content_list::MAX_LIST).count();
        assert!(new <= 2 + forced, "{new} of {} lists are new ({forced} at the maximum)", after.len());
        if forced == 0 {
            assert_eq!(before.last(), after.last(), "the file's last list is the same list");
        }
    }
    let diff = env.ok(&["diff", &first_id[..8], &snapshot_id(&second)[..8]]);
    assert!(diff.contains("big.bin") && !diff.contains("sparse.img") && !diff.contains("small.txt"), "{diff}");

    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["report"]["problems"], serde_json::json!([]), "{check}");
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune", "--max-unused", "0%"]);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["report"]["problems"], serde_json::json!([]), "{check}");
    let fresh = env.path("restore-after-prune");
    let out = env
        .cmd()
        .env("GUMVAULT_CACHE_DIR", env.path("fresh-cache"))
        .args(["restore", "latest", "--target", fresh.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &fresh.join(src.strip_prefix("/").unwrap()));
}

/// The pack file that holds blob `id`, and where the blob starts in it.
fn blob_place(env: &Env, reader: &BlobReader<'_>, id: &Id) -> (PathBuf, u64) {
    let loc = reader.locate(id).unwrap();
    let hex = loc.pack.to_hex();
    (Path::new(&env.repo).join("data").join(&hex[..2]).join(&hex), loc.offset)
}

#[test]
fn a_damaged_content_list_is_named_and_its_file_is_not_restored_looking_whole() {
    let env = tiny_env();
    let src = env.path("src");
    build(&src);
    let id = snapshot_id(&env.json(&["backup", src.to_str().unwrap()]));
    let before = env.path("restored-before");
    env.ok(&["restore", "latest", "--target", before.to_str().unwrap()]);
    let (pack, offset) = {
        let (repo, mut cat) = open(&env, "lib-cache");
        let reader = BlobReader::new(&repo, &mut cat);
        let big = node_of(&reader, &id, &src.join("big.bin"));
        blob_place(&env, &reader, &big.content_lists[1].id)
    };
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[offset as usize + 40] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();

    // A new machine: nothing cached, so the damaged copy is what is read.
    let fresh = |args: &[&str]| env.cmd().env("GUMVAULT_CACHE_DIR", env.path("fresh")).args(args).output().unwrap();
    let check = fresh(&["check", "--json"]);
    assert_eq!(code(&check), 12, "{}", stderr(&check));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("content list") && report.contains("big.bin"), "{report}");

    let target = env.path("restore");
    let out = fresh(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(stderr(&out).contains("big.bin"), "{}", stderr(&out));
    let restored = target.join(src.strip_prefix("/").unwrap());
    let left: Vec<String> =
        std::fs::read_dir(&restored).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.starts_with("big.bin")), "nothing of big.bin is left: {left:?}");
    assert_eq!(std::fs::read(restored.join("small.txt")).unwrap(), b"small");
    assert_eq!(std::fs::read(restored.join("sparse.img")).unwrap(), std::fs::read(src.join("sparse.img")).unwrap());

    // A restore over the earlier one: the file in place cannot be compared with a damaged list. That is what
    // it says (not "differs"), and the good file in place is left as it is.
    let out = fresh(&["restore", "latest", "--target", before.to_str().unwrap()]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(stderr(&out).contains("content list") && !stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    let kept = before.join(src.strip_prefix("/").unwrap()).join("big.bin");
    assert!(std::fs::read(kept).unwrap() == std::fs::read(src.join("big.bin")).unwrap());

    let dumped = fresh(&["dump", "latest", src.join("big.bin").to_str().unwrap()]);
    assert_ne!(code(&dumped), 0, "a dump of it fails");
    assert!(stderr(&dumped).contains("content list"), "{}", stderr(&dumped));

    // repair marks the file lost (its list is damaged), keeps the rest, and the repository checks clean.
    let repaired = fresh(&["repair", "snapshots", "--json"]);
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    let lost = String::from_utf8_lossy(&repaired.stdout);
    assert!(lost.contains("big.bin") && !lost.contains("small.txt") && !lost.contains("sparse.img"), "{lost}");
    let check = fresh(&["check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let again = env.path("restore-repaired");
    let out = fresh(&["restore", "latest", "--target", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = again.join(src.strip_prefix("/").unwrap());
    assert!(restored.join("big.bin.gumvault-lost").exists() && !restored.join("big.bin").exists());
    assert_eq!(std::fs::read(restored.join("sparse.img")).unwrap(), std::fs::read(src.join("sparse.img")).unwrap());
}

#[test]
fn a_lost_data_pack_makes_the_next_backup_read_the_file_again_which_heals_the_first_snapshot() {
    let env = tiny_env();
    let src = env.path("src");
    build(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    // The largest pack holds part of big.bin (its content lists are in a tree pack, which stays).
    let packs = crate::common::files_under(&Path::new(&env.repo).join("data"));
    let (largest, _) = packs.iter().max_by_key(|(_, size)| *size).unwrap();
    std::fs::remove_file(largest).unwrap();
    let out = env.run(&["repair", "index"]);
    assert_eq!(code(&out), 12, "the pack's blobs are lost: {}", stderr(&out));

    // big.bin is unchanged on disk, but its lists name lost blobs: it is read again, not reused, and its lost
    // blobs are stored again, so the first snapshot is whole too.
    let second = env.json(&["backup", src.to_str().unwrap()]);
    assert!(second["summary"]["files_unchanged"].as_u64().unwrap() < 3, "{}", second["summary"]);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["report"]["problems"], serde_json::json!([]), "{check}");
    let repaired = env.json(&["repair", "snapshots"]);
    assert!(!repaired.to_string().contains("big.bin"), "nothing is lost any more: {repaired}");
    for (i, id) in env.snapshot_ids().iter().enumerate() {
        let target = env.path(&format!("restore-{i}"));
        env.ok(&["restore", &id[..8], "--target", target.to_str().unwrap()]);
        assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    }
}

fn small_repo() -> Repository {
    crate::common::small_repo(ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024 }, 64 << 10)
}

#[test]
fn restores_in_small_windows_cut_files_across_lists_and_settle_them_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build(&src);
    std::fs::write(src.join("big2.bin"), pseudo_random(3 << 20, 5)).unwrap();
    let repo = small_repo();
    let mut cat = Catalog::open(&tmp.path().join("cache"), &repo).unwrap();
    let opts = BackupOptions { host: "h".into(), ..Default::default() };
    let out = backup::run(&repo, &mut cat, Source::Paths(vec![src.clone()]), &opts, &Progress::default()).unwrap();
    let reader = BlobReader::new(&repo, &mut cat);
    let target = tmp.path().join("restore");
    // Windows of 700 blobs: every list (over 1,024 ids) is planned over several windows.
    let limits = restore::plan::Limits { files: 3, blobs: 700 };
    for round in 0..2 {
        let entries = restore::Walker::new(&reader, &out.snapshot.tree, None).unwrap();
        let opts = RestoreOptions { target: target.clone(), overwrite: false };
        let summary = restore::restore_within(&reader, entries, &opts, &RestoreProgress::default(), limits).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!((summary.files, summary.unchanged), if round == 0 { (4, 0) } else { (0, 4) });
    }
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// `stats` of a snapshot counts its distinct blobs by sorting the ids it references: with a budget smaller than
/// them the sort goes through scratch files, and the figures are the same as in memory and as a plain set of
/// every id gives.
#[test]
fn snapshot_stats_within_a_small_memory_budget_spill_and_agree() {
    use gumvault::ops::diff::snapshot_stats;
    use gumvault::repo::blob_index::MemoryBudget;
    let env = tiny_env();
    let src = env.path("src");
    build(&src);
    std::fs::copy(src.join("big.bin"), src.join("big-again.bin")).unwrap();
    let id = snapshot_id(&env.json(&["backup", src.to_str().unwrap()]));
    let (repo, mut cat) = open(&env, "lib-cache");
    let reader = BlobReader::new(&repo, &mut cat);
    let tree = repo.load_snapshot(&Id::from_hex(&id).unwrap()).unwrap().tree;

    // The oracle: every id the snapshot references, in a set.
    let mut all = std::collections::HashSet::new();
    let mut stack = vec![tree];
    while let Some(t) = stack.pop() {
        all.insert(t);
        for node in reader.load_tree(&t).unwrap().nodes {
            stack.extend(node.subtree);
            all.extend(node.content_lists.iter().map(|l| l.id));
            all.extend(reader.content(&node).map(|id| id.unwrap()));
        }
    }
    let budget = |bytes: u64| MemoryBudget { bytes, scratch: env.path("scratch") };
    let in_memory = snapshot_stats(&reader, &tree, &budget(MemoryBudget::DEFAULT_BYTES)).unwrap();
    let spilled = snapshot_stats(&reader, &tree, &budget(4 << 20)).unwrap();
    assert!(!in_memory.spilled && spilled.spilled, "the small budget did not force the scratch files");
    assert!(all.len() > 20_000, "{} ids", all.len());
    assert_eq!(in_memory.unique_blobs, all.len() as u64);
    let figures = |s: &gumvault::ops::diff::SnapshotStats| {
        (s.files, s.dirs, s.logical_bytes, s.unique_blobs, s.unique_bytes, s.stored_bytes)
    };
    assert_eq!(figures(&in_memory), figures(&spilled));
    assert_eq!(in_memory.files, 4);

    // The command takes the budget too, and says the same.
    let cli = env.json(&["stats", &id[..8]]);
    let small = env.json(&["--memory-budget", "4MiB", "stats", &id[..8]]);
    assert_eq!(cli["stats"], small["stats"]);
    assert_eq!(cli["stats"]["unique_blobs"], all.len() as u64);
}

//! Property tests through the library: random trees and random streams survive backup and restore exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gumvault::format::chunker::ChunkerParams;
use gumvault::ops::backup::{self, BackupOptions, Progress, Source};
use gumvault::ops::restore::{self, RestoreOptions, RestoreProgress};
use gumvault::repo::Repository;
use gumvault::repo::catalog::Catalog;
use gumvault::repo::reader::BlobReader;
use proptest::prelude::*;

fn small_repo() -> Repository {
    crate::common::small_repo(ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }, 64 << 10)
}

#[derive(Debug, Clone)]
enum Item {
    File(Vec<u8>, u32),
    Dir,
    Symlink(String),
}

fn arb_tree() -> impl Strategy<Value = BTreeMap<Vec<String>, Item>> {
    let name = prop::sample::select(vec!["a", "b", "c", "d", "é", "data.bin", "x y"]);
    let path = prop::collection::vec(name.prop_map(String::from), 1..4);
    let item = prop_oneof![
        4 => (prop::collection::vec(any::<u8>(), 0..20_000), prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o400]))
            .prop_map(|(d, m)| Item::File(d, m)),
        1 => Just(Item::Dir),
        1 => "[a-z]{1,8}".prop_map(Item::Symlink),
    ];
    prop::collection::btree_map(path, item, 0..25)
}

/// Materialises a generated tree; entries whose parent is not a directory are skipped.
fn build(root: &std::path::Path, tree: &BTreeMap<Vec<String>, Item>) {
    std::fs::create_dir_all(root).unwrap();
    for (path, item) in tree {
        let mut p = root.to_path_buf();
        for c in &path[..path.len() - 1] {
            p.push(c);
        }
        if std::fs::create_dir_all(&p).is_err() {
            continue;
        }
        p.push(path.last().unwrap());
        if std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match item {
            Item::File(data, mode) => {
                std::fs::write(&p, data).unwrap();
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
            }
            Item::Dir => std::fs::create_dir_all(&p).unwrap(),
            Item::Symlink(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(tree in arb_tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        build(&src, &tree);
        let repo = small_repo();
        let mut cat = Catalog::open(&tmp.path().join("cache"), &repo).unwrap();
        let opts = BackupOptions { host: "h".into(), ..Default::default() };
        let out = backup::run(&repo, &mut cat, Source::Paths(vec![src.clone()]), &opts, &Progress::default()).unwrap();
        prop_assert!(!out.snapshot.incomplete);
        let target = tmp.path().join("restore");
        let reader = BlobReader::new(&repo, &mut cat);
        let entries = restore::Walker::new(&reader, &out.snapshot.tree, None).unwrap();
        let summary = restore::restore(&reader, entries, &RestoreOptions { target: target.clone(), overwrite: false }, &RestoreProgress::default()).unwrap();
        prop_assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let restored: PathBuf = target.join(src.strip_prefix("/").unwrap());
        prop_assert_eq!(crate::common::listing(&src), crate::common::listing(&restored));
        for (rel, l) in crate::common::listing(&src) {
            if l.kind == "file" {
                prop_assert_eq!(std::fs::read(src.join(&rel)).unwrap(), std::fs::read(restored.join(&rel)).unwrap());
            }
        }
        // Tiny windows: files cut into pieces over several windows, blobs shared between windows, the settling of
        // a second restore in batches; the result is the same.
        let small = tmp.path().join("restore-small");
        let limits = restore::plan::Limits { files: 2, blobs: 5 };
        let files = crate::common::listing(&src).values().filter(|l| l.kind == "file").count() as u64;
        for round in 0..2 {
            let entries = restore::Walker::new(&reader, &out.snapshot.tree, None).unwrap();
            let opts = RestoreOptions { target: small.clone(), overwrite: false };
            let summary = restore::restore_within(&reader, entries, &opts, &RestoreProgress::default(), limits).unwrap();
            prop_assert!(summary.errors.is_empty(), "{:?}", summary.errors);
            prop_assert_eq!((summary.files, summary.unchanged), if round == 0 { (files, 0) } else { (0, files) });
        }
        let restored: PathBuf = small.join(src.strip_prefix("/").unwrap());
        prop_assert_eq!(crate::common::listing(&src), crate::common::listing(&restored));
        for (rel, l) in crate::common::listing(&src) {
            if l.kind == "file" {
                prop_assert_eq!(std::fs::read(src.join(&rel)).unwrap(), std::fs::read(restored.join(&rel)).unwrap());
            }
        }
    }

    #[test]
    fn random_streams_round_trip_and_repeat_without_new_data(data in prop::collection::vec(any::<u8>(), 0..200_000)) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = small_repo();
        let mut cat = Catalog::open(&tmp.path().join("cache"), &repo).unwrap();
        let opts = BackupOptions { host: "h".into(), ..Default::default() };
        let src = Source::Stream { name: "db.sql".into(), reader: Box::new(std::io::Cursor::new(data.clone())) };
        let out = backup::run(&repo, &mut cat, src, &opts, &Progress::default()).unwrap();
        // The same stream again adds no data blobs (only the root tree, whose mtime differs).
        let again = Source::Stream { name: "db.sql".into(), reader: Box::new(std::io::Cursor::new(data.clone())) };
        let out2 = backup::run(&repo, &mut cat, again, &opts, &Progress::default()).unwrap();
        prop_assert!(out2.snapshot.summary.blobs_added <= 1);
        for snap in [&out.snapshot, &out2.snapshot] {
            let reader = BlobReader::new(&repo, &mut cat);
            let node = restore::find(&reader, &snap.tree, "/db.sql").unwrap();
            let mut buf = Vec::new();
            restore::dump(&reader, &node, "/db.sql", &mut buf, "memory").unwrap();
            prop_assert_eq!(&buf, &data);
        }
    }
}

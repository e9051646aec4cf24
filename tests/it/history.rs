//! Property test: random histories of backup, forget and prune (with the clock moving on) leave every remaining
//! snapshot restorable byte-identical, and a clean `check --read-data`.

use std::collections::BTreeMap;
use std::path::Path;

use gumvault::format::chunker::ChunkerParams;
use gumvault::format::id::Id;
use gumvault::ops::backup::{self, BackupOptions, Progress, Source};
use gumvault::ops::check::{self, CheckOptions, DataSubset};
use gumvault::ops::prune::{self, PruneOptions};
use gumvault::ops::restore;
use gumvault::repo::Repository;
use gumvault::repo::catalog::Catalog;
use gumvault::repo::reader::BlobReader;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Back up three files; `seeds` pick their content (equal seeds dedup).
    Backup([u8; 3]),
    /// Forget all but the newest `keep` snapshots.
    Forget(usize),
    /// Prune after `hours` pass, repacking down to `max_unused` percent.
    Prune { hours: i64, max_unused: u8 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<[u8; 3]>().prop_map(|s| Op::Backup([s[0] % 6, s[1] % 6, s[2] % 6])),
        1 => (0usize..3).prop_map(Op::Forget),
        2 => (0i64..40, 0u8..60).prop_map(|(hours, max_unused)| Op::Prune { hours, max_unused }),
    ]
}

fn content(seed: u8) -> Vec<u8> {
    crate::common::pseudo_random(40_000 + seed as usize * 3_000, 0x9E37 + seed as u64)
}

fn small_repo() -> Repository {
    crate::common::small_repo(ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 }, 32 << 10)
}

fn read_file(reader: &BlobReader<'_>, root: &Id, path: &Path) -> Vec<u8> {
    let node = restore::find(reader, root, path.to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    restore::dump(reader, &node, "", &mut out, "memory").unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_remaining_snapshot_intact(ops in prop::collection::vec(arb_op(), 1..14)) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let repo = small_repo();
        let mut cat = Catalog::open(&tmp.path().join("cache"), &repo).unwrap();
        let mut now: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut expected: BTreeMap<Id, [u8; 3]> = BTreeMap::new();
        let mut order: Vec<Id> = Vec::new();
        for op in ops {
            match op {
                Op::Backup(seeds) => {
                    for (i, s) in seeds.iter().enumerate() {
                        std::fs::write(src.join(format!("f{i}")), content(*s)).unwrap();
                    }
                    let opts = BackupOptions { host: "h".into(), time: Some(now), ..Default::default() };
                    let out = backup::run(&repo, &mut cat, Source::Paths(vec![src.clone()]), &opts, &Progress::default()).unwrap();
                    expected.insert(out.id, seeds);
                    order.push(out.id);
                    now += SignedDuration::from_mins(1);
                }
                Op::Forget(keep) => {
                    let cut = order.len().saturating_sub(keep);
                    for id in order.drain(..cut) {
                        repo.delete_object(gumvault::format::objects::ObjectKind::Snapshot, &id).unwrap();
                        expected.remove(&id);
                    }
                    cat.sync(&repo).unwrap();
                }
                Op::Prune { hours, max_unused } => {
                    now += SignedDuration::from_hours(hours);
                    let opts = PruneOptions { max_unused: max_unused as f64 / 100.0, ..Default::default() };
                    prune::prune(&repo, &opts, now).unwrap();
                    cat.sync(&repo).unwrap();
                }
            }
        }
        let report = check::check(&repo, &cat, &CheckOptions { read_data: Some(DataSubset::All), ..Default::default() }).unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
        let snaps = cat.snapshots().unwrap();
        prop_assert_eq!(snaps.len(), expected.len());
        let reader = BlobReader::new(&repo, &mut cat);
        for s in &snaps {
            let seeds = expected[&s.id];
            for (i, seed) in seeds.iter().enumerate() {
                let got = read_file(&reader, &s.snapshot.tree, &src.join(format!("f{i}")));
                prop_assert!(got == content(*seed), "snapshot {} file f{} differs", s.id.short(), i);
            }
        }
    }
}

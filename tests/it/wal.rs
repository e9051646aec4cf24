//! The continuous WAL archive: `wal-push` as PostgreSQL's archive_command and `wal-fetch` as its
//! restore_command, against a real PostgreSQL 15 (running as the `postgres` user) and against data directories
//! made by hand (a pg_control with a system id, segments with real long page headers), so that each promise is
//! tested where it can fail: durable before exit 0, never overwritten, absent = 1 and anything else > 125,
//! survival of SIGKILL at random moments, retention by base backup, gaps named by `check`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gumvault::format::objects::ObjectKind;
use gumvault::format::snapshot::BaseBackup;
use gumvault::format::wal::WalFile;
use gumvault::repo::Repository;
use gumvault::storage::Storage;
use tempfile::TempDir;

use crate::common::pg::{PgOptions, PgServer, as_pg_user};
use crate::common::{Env, code, pseudo_random, stderr};

const MB4: u32 = 4 << 20;

/// A data directory as the WAL commands see it, without a server: `global/pg_control` with a system identifier
/// and `pg_wal/` with segments whose first page carries a PostgreSQL 15 long header.
pub(crate) struct FakeCluster {
    dir: TempDir,
    system_id: u64,
    seg_size: u32,
}

impl FakeCluster {
    pub(crate) fn new(system_id: u64) -> FakeCluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("global")).unwrap();
        std::fs::create_dir_all(dir.path().join("pg_wal/archive_status")).unwrap();
        let mut control = vec![0u8; 8192];
        control[..8].copy_from_slice(&system_id.to_le_bytes());
        std::fs::write(dir.path().join("global/pg_control"), control).unwrap();
        FakeCluster { dir, system_id, seg_size: MB4 }
    }

    pub(crate) fn data(&self) -> &Path {
        self.dir.path()
    }

    fn wal(&self, name: &str) -> PathBuf {
        self.data().join("pg_wal").join(name)
    }

    /// A segment of `system_id`: the long header, then half compressible pseudo-random pages.
    fn segment_bytes(&self, system_id: u64, tli: u32, segno: u64, seed: u64) -> Vec<u8> {
        let mut b = pseudo_random(self.seg_size as usize, seed);
        for chunk in b.chunks_mut(8192).step_by(2) {
            chunk.fill((seed % 251) as u8);
        }
        b[..40].fill(0);
        b[..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&2u16.to_le_bytes());
        b[4..8].copy_from_slice(&tli.to_le_bytes());
        b[8..16].copy_from_slice(&(segno * u64::from(self.seg_size)).to_le_bytes());
        b[24..32].copy_from_slice(&system_id.to_le_bytes());
        b[32..36].copy_from_slice(&self.seg_size.to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        b
    }

    /// Writes segment `segno` of timeline `tli` into pg_wal; returns its name.
    pub(crate) fn segment(&self, tli: u32, segno: u64, seed: u64) -> String {
        let name = WalFile::from_segno(tli, segno, self.seg_size).name;
        std::fs::write(self.wal(&name), self.segment_bytes(self.system_id, tli, segno, seed)).unwrap();
        name
    }

    fn ready(&self, name: &str) {
        std::fs::write(self.data().join(format!("pg_wal/archive_status/{name}.ready")), "").unwrap();
    }
}

fn push(env: &Env, cluster: &FakeCluster, name: &str) -> Output {
    env.cmd().current_dir(cluster.data()).args(["wal-push", &format!("pg_wal/{name}")]).output().unwrap()
}

fn fetch(env: &Env, cluster: &FakeCluster, name: &str, dest: &Path) -> Output {
    env.cmd().current_dir(cluster.data()).arg("wal-fetch").arg(name).arg(dest).output().unwrap()
}

fn open(env: &Env) -> Repository {
    Repository::open(Storage::open_url(&env.repo).unwrap(), env.password.as_bytes()).unwrap()
}

/// Every archived file of the repository: (system id, name) → content.
fn archived(env: &Env) -> Vec<(u64, String, Vec<u8>)> {
    let repo = open(env);
    let listing = repo.list_wal().unwrap();
    assert!(listing.foreign.is_empty(), "{:?}", listing.foreign);
    listing
        .files
        .iter()
        .map(|o| (o.system_id, o.file.name.clone(), repo.get_wal(o.system_id, &o.file).unwrap()))
        .collect()
}

/// Gives a real snapshot (of a small directory) a base backup of `system_id` on `tli` from `start` to `stop`,
/// as a `postgres-physical` source would record it; returns the new snapshot's id.
fn fake_base_backup(env: &Env, system_id: u64, tli: u32, start: &str, stop: &str) -> String {
    let src = env.path("bb-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("PG_VERSION"), "15\n").unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--quiet"]);
    let id = env.snapshot_ids().pop().unwrap();
    let repo = open(env);
    let id = gumvault::format::id::Id::from_hex(&id).unwrap();
    let mut snap = repo.load_snapshot(&id).unwrap();
    snap.base_backups.push(BaseBackup {
        source: "db".into(),
        system_id,
        pg_version: 150018,
        timeline: tli,
        start_lsn: "0/0".into(),
        start_wal: start.into(),
        stop_lsn: "0/0".into(),
        stop_wal: stop.into(),
        stop_time: jiff::Timestamp::now(),
    });
    let new = repo.save_snapshot(&snap).unwrap();
    repo.delete_object(ObjectKind::Snapshot, &id).unwrap();
    new.to_hex()
}

#[test]
fn the_same_file_again_succeeds_and_other_content_is_refused_with_nothing_changed() {
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_001);
    let name = c.segment(1, 2, 1);
    let out = push(&env, &c, &name);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let original = std::fs::read(c.wal(&name)).unwrap();
    assert_eq!(archived(&env), vec![(c.system_id, name.clone(), original.clone())]);

    // Again: from the spool marker, then (fresh cache) by comparing with the stored copy.
    let out = env.cmd().current_dir(c.data()).args(["--json", "wal-push", &format!("pg_wal/{name}")]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["already_pushed"], true, "{report}");
    std::fs::remove_dir_all(&env.cache).unwrap();
    let out = env.cmd().current_dir(c.data()).args(["--json", "wal-push", &format!("pg_wal/{name}")]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["already_pushed"].as_bool(), report["present"].as_u64()), (Some(false), Some(1)), "{report}");

    // Other content under the same name: exit 16, and the repository is byte for byte as it was.
    let before = crate::common::files_under(Path::new(&env.repo));
    let bytes_before: Vec<Vec<u8>> = before.iter().map(|(p, _)| std::fs::read(p).unwrap()).collect();
    std::fs::write(c.wal(&name), c.segment_bytes(c.system_id, 1, 2, 99)).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();
    let out = push(&env, &c, &name);
    assert_eq!(code(&out), gumvault::exit::CONFLICT, "{}", stderr(&out));
    assert!(stderr(&out).contains(&name) && stderr(&out).contains("different content"), "{}", stderr(&out));
    let after = crate::common::files_under(Path::new(&env.repo));
    assert_eq!(before, after, "nothing written or removed");
    assert!(after.iter().zip(&bytes_before).all(|((p, _), b)| &std::fs::read(p).unwrap() == b));
    // A marker never answers for other content either.
    std::fs::write(c.wal(&name), &original).unwrap();
    assert_eq!(code(&push(&env, &c, &name)), 0);
    std::fs::write(c.wal(&name), c.segment_bytes(c.system_id, 1, 2, 99)).unwrap();
    assert_eq!(code(&push(&env, &c, &name)), gumvault::exit::CONFLICT);

    // A segment of another cluster, or not the segment its name says, is refused before anything is stored.
    let other = c.segment(1, 3, 3);
    std::fs::write(c.wal(&other), c.segment_bytes(42, 1, 3, 3)).unwrap();
    let out = push(&env, &c, &other);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("belongs to database system 42"), "{}", stderr(&out));
    std::fs::write(c.wal(&other), c.segment_bytes(c.system_id, 1, 4, 3)).unwrap();
    assert!(stderr(&push(&env, &c, &other)).contains("its name says"));
    assert_eq!(archived(&env).len(), 1);
    let state = gumvault::ops::wal::read_push_state(&env.cache, &env.repo).unwrap().unwrap();
    assert_eq!(state.consecutive_failures, 3, "the second conflict and the two refusals");
    assert!(state.last_failure.unwrap().error.unwrap().contains("its name says"));
}

#[test]
fn a_region_that_lacks_a_file_gets_it_and_a_missing_file_is_told_from_an_unreachable_archive() {
    let env = Env::uninitialised();
    let (a, b) = (env.path("region-a"), env.path("region-b"));
    let mut cmd = env.cmd();
    cmd.env("GUMVAULT_REPO", &a).args(["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    cmd.args(["--region", &format!("a={}", a.display()), "--region", &format!("b={}", b.display())]);
    assert!(cmd.status().unwrap().success());
    let run = |c: &FakeCluster, args: &[&str], extra: &[(&str, &str)]| -> Output {
        let mut cmd = env.cmd();
        cmd.env("GUMVAULT_REPO", &a).current_dir(c.data()).args(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let c = FakeCluster::new(7_300_000_000_000_000_002);
    let name = c.segment(1, 5, 5);
    assert_eq!(code(&run(&c, &["wal-push", &format!("pg_wal/{name}")], &[])), 0);
    let in_b = || crate::common::files_under(&b.join("wal")).len();
    assert_eq!(in_b(), 1, "durable in both regions (min_regions = all)");
    // Region b loses it; a push of the same file (PostgreSQL retrying after a crash) gives it back.
    for (p, _) in crate::common::files_under(&b.join("wal")) {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::remove_dir_all(&env.cache).unwrap();
    let out = run(&c, &["--json", "wal-push", &format!("pg_wal/{name}")], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["written"].as_u64(), report["present"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(in_b(), 1);
    assert_eq!(code(&run(&c, &["check", "--regions", "--read-data"], &[])), 0);

    // Fetching: a good copy in region b serves when region a lost its copy.
    let dest = c.data().join("pg_wal/RECOVERYXLOG");
    for (p, _) in crate::common::files_under(&a.join("wal")) {
        std::fs::remove_file(p).unwrap();
    }
    let out = run(&c, &["wal-fetch", &name, "pg_wal/RECOVERYXLOG"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(c.wal(&name)).unwrap());
    // A file in no region: with min_regions = 2, one region saying so is enough.
    let fast = [("GUMVAULT_WAL_FETCH_RETRIES", "2"), ("GUMVAULT_WAL_FETCH_RETRY_DELAY", "0")];
    assert_eq!(code(&run(&c, &["wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"], &fast)), 1);
    let gone = env.path("region-b.gone");
    std::fs::rename(&b, &gone).unwrap();
    let out = run(&c, &["wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"], &fast);
    assert_eq!(code(&out), 1, "a region answered, and an archived file is in both: {}", stderr(&out));
    // With min_regions = 1 the file might be only in the region that is not there: not "absent" but a failure.
    let out = run(&c, &["--min-regions", "1", "wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"], &fast);
    assert_eq!(code(&out), gumvault::exit::WAL_FETCH_FAILED, "{}", stderr(&out));
    assert!(stderr(&out).contains("after 3 attempts"), "{}", stderr(&out));
    std::fs::rename(&gone, &b).unwrap();
}

#[test]
fn fetch_exits_1_only_for_a_missing_file_and_above_125_for_anything_else() {
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_003);
    let name = c.segment(1, 1, 1);
    assert_eq!(code(&push(&env, &c, &name)), 0);
    let dest = env.path("dest");
    assert_eq!(code(&fetch(&env, &c, "000000010000000000000002", &dest)), 1);
    assert_eq!(code(&fetch(&env, &c, "00000002.history", &dest)), 1);
    assert_eq!(code(&fetch(&env, &c, "not-a-wal-file", &dest)), 1);
    assert!(!dest.exists());
    let fast = |c: &mut Command| {
        c.env("GUMVAULT_WAL_FETCH_RETRIES", "2").env("GUMVAULT_WAL_FETCH_RETRY_DELAY", "1");
    };
    // The repository is not there (an unmounted disk): retried with backoff (1 s, 2 s), then 200.
    let moved = env.path("repo.away");
    std::fs::rename(&env.repo, &moved).unwrap();
    let started = Instant::now();
    let mut cmd = env.cmd();
    fast(&mut cmd);
    let out = cmd.current_dir(c.data()).arg("wal-fetch").arg(&name).arg(&dest).output().unwrap();
    assert_eq!(code(&out), gumvault::exit::WAL_FETCH_FAILED, "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(3), "two retries with backoff: {:?}", started.elapsed());
    assert!(stderr(&out).contains("after 3 attempts") && stderr(&out).contains("no repository"), "{}", stderr(&out));
    std::fs::rename(&moved, &env.repo).unwrap();
    // A wrong password is not retried; a command line or config that does not parse is no "absent" either.
    let started = Instant::now();
    let mut cmd = env.cmd();
    fast(&mut cmd);
    let out =
        cmd.env("GUMVAULT_PASSWORD", "wrong").current_dir(c.data()).arg("wal-fetch").arg(&name).arg(&dest).output();
    assert_eq!(code(&out.unwrap()), gumvault::exit::WAL_FETCH_FAILED);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(code(&env.cmd().current_dir(c.data()).args(["wal-fetch", &name]).output().unwrap()), 200);
    let bad_config = env.path("bad.toml");
    std::fs::write(&bad_config, "[repository\n").unwrap();
    let out = env.cmd().current_dir(c.data()).arg("--config").arg(&bad_config).args(["wal-fetch", &name, "x"]).output();
    assert_eq!(code(&out.unwrap()), 200);
    // A damaged copy is never returned.
    let (path, _) = crate::common::files_under(&Path::new(&env.repo).join("wal")).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 1;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let mut cmd = env.cmd();
    fast(&mut cmd);
    let out = cmd.env("GUMVAULT_WAL_FETCH_RETRIES", "0").current_dir(c.data()).arg("wal-fetch").arg(&name).arg(&dest);
    let out = out.output().unwrap();
    assert_eq!(code(&out), 200, "{}", stderr(&out));
    assert!(stderr(&out).contains("authentication failed"), "{}", stderr(&out));
    assert!(!dest.exists());
}

#[test]
fn pushes_ahead_and_fetches_ahead_answer_later_calls_without_the_repository() {
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_004);
    let names: Vec<String> = (1..=6).map(|n| c.segment(1, n, n)).collect();
    for n in &names[1..] {
        c.ready(n);
    }
    let out = env.cmd().current_dir(c.data()).args(["--json", "wal-push", &format!("pg_wal/{}", names[0])]).output();
    let report: serde_json::Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    assert_eq!(report["ahead_pushed"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(archived(&env).len(), 6);
    // The repository goes away: PostgreSQL's calls for the files pushed ahead still succeed (their markers), a
    // file that was not pushed fails, and the failure is recorded for monitoring.
    let moved = env.path("repo.away");
    std::fs::rename(&env.repo, &moved).unwrap();
    for n in &names[1..] {
        let out = push(&env, &c, n);
        assert_eq!(code(&out), 0, "{n}: {}", stderr(&out));
    }
    let seventh = c.segment(1, 7, 7);
    assert_ne!(code(&push(&env, &c, &seventh)), 0);
    let state = gumvault::ops::wal::read_push_state(&env.cache, &env.repo).unwrap().unwrap();
    assert_eq!((state.consecutive_failures, state.last_failure.unwrap().file), (1, seventh.clone()));
    std::fs::rename(&moved, &env.repo).unwrap();
    assert_eq!(code(&push(&env, &c, &seventh)), 0);
    assert!(!gumvault::ops::wal::read_push_state(&env.cache, &env.repo).unwrap().unwrap().failing());

    // Fetching: the first call learns the segment size and fetches ahead; later ones need no repository.
    let dest = c.data().join("pg_wal/RECOVERYXLOG");
    let out = env.cmd().current_dir(c.data()).args(["--json", "wal-fetch", &names[0], "pg_wal/RECOVERYXLOG"]).output();
    let outcome: serde_json::Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    assert_eq!(outcome["prefetched"], 6, "{outcome}");
    std::fs::rename(&env.repo, &moved).unwrap();
    for n in &names[1..] {
        let out = fetch(&env, &c, n, &dest);
        assert_eq!(code(&out), 0, "{n}: {}", stderr(&out));
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(c.wal(n)).unwrap(), "{n}");
    }
    std::fs::rename(&moved, &env.repo).unwrap();
    // The end of the archive: exit 1, and the spool is emptied.
    assert_eq!(code(&fetch(&env, &c, &WalFile::from_segno(1, 8, MB4).name, &dest)), 1);
    let spool = crate::common::files_under(&env.cache.join("wal"));
    assert!(!spool.iter().any(|(p, _)| p.to_string_lossy().contains("/fetched/")), "{spool:?}");
    let dirs: Vec<PathBuf> = spool.iter().map(|(p, _)| p.clone()).collect();
    for d in dirs {
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o077, 0, "{} is private", d.display());
    }
}

/// A small deterministic generator (the seed makes failures reproducible).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn wal_push_killed_at_random_moments_never_leaves_other_content_and_a_retry_succeeds() {
    const TRIALS: u64 = 52;
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_005);
    let mut rng = Rng(0x5EED_0012);
    let mut killed_midway = 0;
    for trial in 0..TRIALS {
        // Each trial: PostgreSQL asks for the next segment while a few more wait behind it.
        let segno = trial * 3 + 1;
        let names: Vec<String> = (segno..segno + 3).map(|n| c.segment(1, n, n)).collect();
        for n in &names[1..] {
            c.ready(n);
        }
        let delay = Duration::from_millis(rng.below(300));
        let mut child = env
            .cmd()
            .current_dir(c.data())
            .args(["wal-push", &format!("pg_wal/{}", names[0])])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever is stored of this trial's files is exactly what PostgreSQL wrote.
        let repo = open(&env);
        let stored = repo.list_wal().unwrap().files;
        for o in stored.iter().filter(|o| names.contains(&o.file.name)) {
            let content = repo.get_wal(o.system_id, &o.file).unwrap();
            assert_eq!(content, std::fs::read(c.wal(&o.file.name)).unwrap(), "trial {trial}: {} differs", o.file);
        }
        // PostgreSQL retries each file in turn until it succeeds.
        for n in &names {
            let out = push(&env, &c, n);
            assert_eq!(code(&out), 0, "trial {trial}: {n}: {}", stderr(&out));
            let _ = std::fs::remove_file(c.data().join(format!("pg_wal/archive_status/{n}.ready")));
        }
    }
    assert!(killed_midway >= TRIALS / 3, "only {killed_midway} of {TRIALS} kills landed during a push");
    let files = archived(&env);
    assert_eq!(files.len() as u64, TRIALS * 3);
    for (_, name, content) in &files {
        assert_eq!(content, &std::fs::read(c.wal(name)).unwrap());
    }
    fake_base_backup(&env, c.system_id, 1, &WalFile::from_segno(1, 1, MB4).name, &WalFile::from_segno(1, 2, MB4).name);
    let report = env.json(&["check", "--read-data"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["report"]["wal_segments_needed"], TRIALS * 3, "{report}");
}

#[test]
fn prune_removes_wal_before_the_oldest_base_backup_and_keeps_histories_and_other_clusters() {
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_006);
    let names: Vec<String> = (1..=8).map(|n| c.segment(1, n, n)).collect();
    std::fs::write(c.wal("00000002.history"), "1\t0/1E00000\tno recovery target specified\n").unwrap();
    let tl2 = c.segment(2, 7, 70);
    let other = FakeCluster::new(7_300_000_000_000_000_007);
    let theirs = other.segment(1, 1, 1);
    for n in names.iter().chain([&"00000002.history".to_string(), &tl2]) {
        assert_eq!(code(&push(&env, &c, n)), 0, "{n}");
    }
    assert_eq!(code(&push(&env, &other, &theirs)), 0);
    // Without base backups nothing goes.
    let report = env.json(&["prune"]);
    assert_eq!(report["report"]["wal"]["files_deleted"], 0, "{report}");
    let newer = fake_base_backup(&env, c.system_id, 1, &names[5], &names[5]);
    let older = fake_base_backup(&env, c.system_id, 1, &names[3], &names[4]);
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(dry["report"]["wal"]["files_deleted"], 3, "{dry}");
    assert_eq!(archived(&env).len(), 11, "a dry run deletes nothing");
    env.ok(&["prune"]);
    let left: Vec<String> = archived(&env).into_iter().map(|(_, n, _)| n).collect();
    assert!(left.contains(&"00000002.history".to_string()) && left.contains(&theirs) && left.contains(&tl2));
    assert!(!left.contains(&names[2]) && left.contains(&names[3]), "{left:?}");
    assert_eq!(left.len(), 8);
    let check = env.json(&["check"]);
    assert_eq!(check["ok"], true, "{check}");
    // Forgetting the older base backup lets its WAL go too.
    env.ok(&["forget", &older[..12]]);
    env.ok(&["prune"]);
    let left: Vec<String> = archived(&env).into_iter().map(|(_, n, _)| n).collect();
    assert!(!left.contains(&names[4]) && left.contains(&names[5]), "{left:?}");
    assert_eq!(env.json(&["check"])["ok"], true);
    let _ = newer;
}

#[test]
fn check_names_each_gap_and_follows_timeline_switches() {
    let env = Env::new();
    let c = FakeCluster::new(7_300_000_000_000_000_008);
    // Timeline 1 has segments 1..=9; timeline 2 branched off in segment 5 (0/1400100 with 4 MiB segments)
    // and has 5..=10. Recovery from a base backup at segment 2 on timeline 1 reads 2..=4 from timeline 1 and
    // 5..=10 from timeline 2; timeline 1's 5..=9 are not on its way.
    let mut names = Vec::new();
    for n in 1..=9 {
        names.push(c.segment(1, n, n));
    }
    std::fs::write(c.wal("00000002.history"), "1\t0/1400100\tno recovery target specified\n").unwrap();
    names.push("00000002.history".into());
    for n in 5..=10 {
        names.push(c.segment(2, n, 100 + n));
    }
    for n in &names {
        assert_eq!(code(&push(&env, &c, n)), 0, "{n}");
    }
    fake_base_backup(&env, c.system_id, 1, "000000010000000000000002", "000000010000000000000003");
    let report = env.json(&["check"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["report"]["wal_segments_needed"], 9, "{report}");

    let repo = open(&env);
    let drop_wal = |name: &str| {
        let path = repo.wal_path(c.system_id, &WalFile::parse(name).unwrap());
        std::fs::remove_file(Path::new(&env.repo).join(path)).unwrap();
    };
    drop_wal("000000010000000000000006"); // not on the way: no problem
    drop_wal("000000020000000000000007");
    let out = env.run(&["check"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR);
    let text = stderr(&out);
    assert!(text.contains("segment 000000020000000000000007 is missing"), "{text}");
    assert!(!text.contains("000000010000000000000006"), "{text}");
    drop_wal("000000010000000000000003");
    drop_wal("000000010000000000000004");
    drop_wal("000000020000000000000005");
    let text = stderr(&env.run(&["check"]));
    assert!(
        text.contains("segments 000000010000000000000003 to 000000010000000000000004 (2 segments) are missing"),
        "{text}"
    );
    assert!(text.contains("segment 000000020000000000000005 is missing"), "{text}");
    // Without the history file recovery cannot know about timeline 2: the chain then stops at timeline 1's newest
    // segment, and a base backup on timeline 2 names the missing history file.
    drop_wal("00000002.history");
    fake_base_backup(&env, c.system_id, 2, "000000020000000000000008", "000000020000000000000008");
    let text = stderr(&env.run(&["check"]));
    assert!(text.contains("timeline history file 00000002.history is missing"), "{text}");
    // --read-data authenticates every archived file.
    let (path, _) = crate::common::files_under(&Path::new(&env.repo).join("wal")).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let text = stderr(&env.run(&["check", "--read-data"]));
    assert!(text.contains("authentication failed"), "{text}");
}

/// A repository that PostgreSQL (running as `postgres`) can use: its directory, config and password file belong
/// to `postgres`; commands the test runs itself (as root) use a cache of their own.
struct PgArchive {
    dir: TempDir,
    config: PathBuf,
}

impl PgArchive {
    fn new() -> PgArchive {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gumvault.toml");
        std::fs::write(dir.path().join("password"), "pg archive secret").unwrap();
        std::fs::write(
            &config,
            format!(
                "[repository]\nurl = \"{0}/repo\"\npassword = \"file:{0}/password\"\ncache_dir = \"{0}/pg-cache\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(dir.path().join("password"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).status().unwrap().success());
        let a = PgArchive { dir, config };
        let out = a.as_postgres(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        a
    }

    fn gumvault(&self) -> String {
        format!("{} --config {}", env!("CARGO_BIN_EXE_gumvault"), self.config.display())
    }

    fn as_postgres(&self, args: &[&str]) -> Output {
        let mut c = as_pg_user(Path::new(env!("CARGO_BIN_EXE_gumvault")));
        c.arg("--config").arg(&self.config).args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs as root with a cache of its own.
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gumvault"));
        c.arg("--config").arg(&self.config).args(args).env("GUMVAULT_CACHE_DIR", self.dir.path().join("root-cache"));
        c.env_remove("GUMVAULT_REPO").env_remove("GUMVAULT_PASSWORD").stdin(Stdio::null()).output().unwrap()
    }

    fn env(&self) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            repo: self.dir.path().join("repo").to_string_lossy().into_owned(),
            cache: self.dir.path().join("root-cache"),
            password: "pg archive secret".into(),
        }
    }
}

/// Waits until PostgreSQL has archived everything up to `upto` and nothing waits in archive_status.
fn wait_archived(pg: &PgServer, upto: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let last = pg.sql("postgres", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        let ready = std::fs::read_dir(pg.data_dir().join("pg_wal/archive_status"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".ready"))
            .count();
        if last.as_str() >= upto && ready == 0 {
            return;
        }
        assert!(started.elapsed() < within, "archiving did not catch up: last {last}, {ready} waiting\n{}", pg.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn postgresql_archives_through_wal_push_under_pgbench_and_recovers_through_wal_fetch() {
    let archive = PgArchive::new();
    let archiving = PgOptions::default()
        .set("archive_mode", "on")
        .set("archive_command", &format!("{} wal-push %p", archive.gumvault()))
        .set("archive_timeout", "1");
    let pg = PgServer::start_with(&archiving);
    pg.create_db("bench");
    pg.pgbench_init("bench", 1);
    let out = pg.client("pgbench").args(["-n", "-c", "2", "-j", "2", "-T", "6", "bench"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // However slowly pgbench ran on a busy machine, the archive holds a chain of several segments.
    for _ in 0..3 {
        pg.sql("bench", "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now()");
        pg.sql("postgres", "SELECT pg_switch_wal()");
    }
    pg.sql("bench", "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now()");
    let last = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(&pg, &last, Duration::from_secs(120));
    let system_id: u64 = pg.sql("postgres", "SELECT system_identifier FROM pg_control_system()").parse().unwrap();

    // Everything from the first segment on is archived, as PostgreSQL wrote it.
    let env = archive.env();
    let repo = open(&env);
    let summary = gumvault::ops::wal::archive_status(&repo).unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].system_id, summary[0].newest_segment.as_deref()), (system_id, Some(last.as_str())));
    let age = jiff::Timestamp::now().duration_since(summary[0].newest_time.unwrap());
    assert!(age < jiff::SignedDuration::from_secs(60), "{age:?}");
    let first = repo.list_wal().unwrap().files[0].file.name.clone();
    assert_eq!(first, "000000010000000000000001");
    for o in repo.list_wal().unwrap().files {
        if let Ok(on_disk) = std::fs::read(pg.data_dir().join("pg_wal").join(&o.file.name)) {
            assert_eq!(repo.get_wal(system_id, &o.file).unwrap(), on_disk, "{}", o.file);
        }
    }
    let state = gumvault::ops::wal::read_push_state(&archive.dir.path().join("pg-cache"), &env.repo).unwrap().unwrap();
    assert!(!state.failing() && state.last_success.is_some(), "{state:?}");
    // A base backup at the first segment: check follows the whole chain, and reads every file.
    fake_base_backup(&env, system_id, 1, &first, &first);
    let out = archive.run(&["--json", "check", "--read-data"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let needed = report["report"]["wal_segments_needed"].as_u64().unwrap();
    assert!(needed >= 3, "{report}");

    // Recovery: a base backup without WAL of its own replays the archive through wal-fetch and ends at its end.
    let rows_before: i64 = pg.sql("bench", "SELECT count(*) FROM pgbench_history").parse().unwrap();
    recover_from_archive(&pg, &archive, rows_before);
}

/// Takes a base backup without WAL (`-X none`), adds rows, and recovers the backup with `wal-fetch`: every row
/// archived is there. Then the same with the repository gone: PostgreSQL stops (FATAL) instead of promoting.
fn recover_from_archive(pg: &PgServer, archive: &PgArchive, rows_before: i64) {
    let base = archive.dir.path().join("base");
    let out = as_pg_user(&pg.bin_dir().join("pg_basebackup"))
        .env("PGPASSWORD", crate::common::pg::PASSWORD)
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "-X", "none", "-c", "fast", "-D"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    pg.sql("bench", "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 1000)");
    let last = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(pg, &last, Duration::from_secs(60));
    let copy = archive.dir.path().join("base-gone");
    assert!(Command::new("cp").arg("-a").arg(&base).arg(&copy).status().unwrap().success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let recovery = |dir: &Path, config: &str| {
        std::fs::write(dir.join("recovery.signal"), "").unwrap();
        let conf = format!(
            "restore_command = 'GUMVAULT_WAL_FETCH_RETRIES=1 GUMVAULT_WAL_FETCH_RETRY_DELAY=0 {} --config {config} wal-fetch %f %p'\narchive_mode = off\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            env!("CARGO_BIN_EXE_gumvault"),
            archive.dir.path().display()
        );
        std::fs::write(dir.join("postgresql.auto.conf"), conf).unwrap();
        Command::new("chown").arg("-R").arg("postgres:").arg(dir).status().unwrap();
    };
    recovery(&base, &archive.config.to_string_lossy());
    let start = |dir: &Path| {
        as_pg_user(&pg.bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(dir)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "120", "start"])
            .output()
            .unwrap()
    };
    let out = start(&base);
    assert!(out.status.success(), "{}", std::fs::read_to_string(base.join("log")).unwrap_or_default());
    let sql = |q: &str| {
        let out =
            pg.client("psql").env("PGPORT", port.to_string()).args(["-X", "-qAt", "-d", "bench", "-c", q]).output();
        String::from_utf8_lossy(&out.unwrap().stdout).trim().to_string()
    };
    let started = Instant::now();
    while sql("SELECT pg_is_in_recovery()") != "f" {
        assert!(started.elapsed() < Duration::from_secs(120), "{}", std::fs::read_to_string(base.join("log")).unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows: i64 = sql("SELECT count(*) FROM pgbench_history").parse().unwrap();
    assert_eq!(rows, rows_before + 1000);
    let _ = as_pg_user(&pg.bin_dir().join("pg_ctl")).arg("-D").arg(&base).args(["-m", "immediate", "stop"]).output();

    // The repository is unreachable: wal-fetch exits 200 and PostgreSQL aborts recovery rather than starting up.
    let gone = archive.dir.path().join("gone.toml");
    std::fs::write(&gone, std::fs::read_to_string(&archive.config).unwrap().replace("/repo\"", "/no-such-repo\""))
        .unwrap();
    Command::new("chown").arg("postgres:").arg(&gone).status().unwrap();
    recovery(&copy, &gone.to_string_lossy());
    let out = start(&copy);
    let log = std::fs::read_to_string(copy.join("log")).unwrap_or_default();
    assert!(!out.status.success(), "PostgreSQL started without its WAL:\n{log}");
    assert!(log.contains("FATAL"), "{log}");
    assert!(copy.join("recovery.signal").exists(), "recovery did not end");
}

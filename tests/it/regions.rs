//! Multi-region repositories against two real S3-compatible servers on 127.0.0.1 plus a local directory: a
//! region that dies mid-backup, restores with a region down, a damaged copy, a region rebuilt from nothing, and
//! a forget that one region missed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::common::{Env, assert_same_tree, code, files_under, pseudo_random, stderr};

struct Regions {
    env: Env,
    us: Option<S3Server>,
    eu: Option<S3Server>,
    us_root: PathBuf,
    eu_root: PathBuf,
    eu_port: u16,
    local: PathBuf,
}

impl Regions {
    fn start() -> Regions {
        let env = Env::uninitialised();
        let us_root = env.path("s3-us");
        let eu_root = env.path("s3-eu");
        let us = S3Server::start(&us_root, &["backups-us"]);
        let eu = S3Server::start(&eu_root, &["backups-eu"]);
        let eu_port = eu.port;
        let local = env.path("local-region");
        Regions { env, us: Some(us), eu: Some(eu), us_root, eu_root, eu_port, local }
    }

    fn us_url(&self) -> String {
        self.us.as_ref().expect("us running").url("backups-us", "repo")
    }

    fn eu_url(&self) -> String {
        format!("s3://backups-eu/repo?endpoint=http://127.0.0.1:{}&region=us-east-1", self.eu_port)
    }

    /// gumvault opened through the local region's URL (any region's URL opens the whole repository).
    fn cmd(&self) -> Command {
        let mut c = self.env.cmd();
        c.env("GUMVAULT_REPO", &self.local)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("GUMVAULT_STORAGE_RETRIES", "1")
            // A stopped server refuses at once; a live one on a loaded machine may stall for seconds.
            .env("GUMVAULT_STORAGE_IO_TIMEOUT", "20");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run gumvault")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "gumvault {args:?} failed ({}):\n{}", out.status, stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop_eu(&mut self) {
        self.eu = None;
    }

    fn start_eu(&mut self) {
        self.eu = Some(S3Server::start_on(&self.eu_root, &["backups-eu"], self.eu_port));
    }

    fn eu_objects(&self) -> usize {
        let dir = self.eu_root.join("backups-eu/repo/data");
        if dir.exists() { files_under(&dir).len() } else { 0 }
    }

    fn snapshot_count(&self) -> usize {
        let out = self.ok(&["snapshots", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len()
    }

    /// Backs up `src` while the eu server is stopped as soon as it holds its first pack.
    fn backup_losing_eu(&mut self, src: &Path, extra: &[&str]) -> Output {
        let before = self.eu_objects();
        let mut child = self
            .cmd()
            .arg("backup")
            .arg(src)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn backup");
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.eu_objects() == before {
            assert!(Instant::now() < deadline, "the backup wrote nothing to eu");
            assert!(child.try_wait().unwrap().is_none(), "the backup ended before eu got a pack");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop_eu();
        child.wait_with_output().expect("wait for backup")
    }
}

/// A tree of incompressible files, big enough for many 1 MiB packs.
fn make_tree(root: &Path, files: usize, seed: u64) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(root.join(format!("f{i:03}.bin")), pseudo_random(384 << 10, seed * 1000 + i as u64)).unwrap();
    }
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

#[test]
fn a_repository_in_three_regions_survives_losing_damaging_and_rebuilding_one() {
    let mut r = Regions::start();
    let (us, eu, local) = (r.us_url(), r.eu_url(), r.local.display().to_string());
    let out = r
        .cmd()
        .env_remove("GUMVAULT_REPO")
        .args(["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1", "--min-regions", "2"])
        .args(["--region", &format!("us={us}"), "--region", &format!("eu={eu}"), "--region", &format!("local={local}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Every region alone is a complete repository that opens the whole.
    for url in [&us, &eu, &local] {
        let out = r.cmd().env("GUMVAULT_REPO", url).args(["regions"]).output().unwrap();
        assert!(out.status.success(), "opening through {url}: {}", stderr(&out));
    }

    let src1 = r.env.path("src1");
    make_tree(&src1, 12, 1);
    r.ok(&["backup", src1.to_str().unwrap()]);
    r.ok(&["check", "--regions", "--read-data"]);

    // eu dies in the middle of a backup: with 2 of 3 required, the backup completes degraded.
    let src2 = r.env.path("src2");
    make_tree(&src2, 64, 2);
    let src2_started = std::time::SystemTime::now();
    let out = r.backup_losing_eu(&src2, &[]);
    let src2_done = std::time::SystemTime::now();
    assert_eq!(code(&out), 6, "expected a degraded backup:\n{}", stderr(&out));
    assert!(stderr(&out).contains("DEGRADED") && stderr(&out).contains("region eu"), "{}", stderr(&out));
    assert_eq!(r.snapshot_count(), 2);

    // With all 3 required, the same loss fails the backup and leaves no snapshot.
    r.start_eu();
    let src3 = r.env.path("src3");
    make_tree(&src3, 64, 3);
    let out = r.backup_losing_eu(&src3, &["--min-regions", "3"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert_ne!(code(&out), 6);
    assert!(stderr(&out).contains("required"), "{}", stderr(&out));
    assert_eq!(r.snapshot_count(), 2);

    // Restore with eu down reads from the others, even when eu is preferred.
    let target = r.env.path("restore-eu-down");
    r.ok(&["restore", "latest", "--prefer-region", "eu", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src2, &restored(&target, &src2));

    // eu is back: check sees the gaps, sync heals them, and the regions agree byte for byte.
    r.start_eu();
    let out = r.run(&["check", "--regions"]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(stderr(&out).contains("region eu: missing"), "{}", stderr(&out));
    r.ok(&["sync"]);
    r.ok(&["check", "--regions", "--read-data"]);

    // A damaged copy in the first region: restore still gives identical data and names the bad copy; a plain
    // sync (no --read-data) replaces it because the restore remembered it.
    let packs = files_under(&r.us_root.join("backups-us/repo/data"));
    let written_by_src2 = |p: &Path| {
        let t = std::fs::metadata(p).unwrap().modified().unwrap();
        t >= src2_started && t <= src2_done
    };
    let (victim, _) =
        packs.iter().filter(|(p, _)| written_by_src2(p)).max_by_key(|(_, size)| *size).expect("a pack of src2").clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();
    let target = r.env.path("restore-damaged");
    let out = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src2, &restored(&target, &src2));
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr(&out).contains("damaged copy") && stderr(&out).contains(&name), "{}", stderr(&out));
    let out = r.run(&["check", "--regions", "--read-data"]);
    assert_eq!(code(&out), 12);
    assert!(stderr(&out).contains("region us: corrupt"), "{}", stderr(&out));
    r.ok(&["sync"]);
    r.ok(&["check", "--regions", "--read-data"]);

    // The local region loses a pack whose copy in us, the first region read, is damaged: sync streams it from
    // the next region, never the damaged bytes; `sync --read-data` then replaces the damaged copy too.
    let mut bytes = std::fs::read(&victim).unwrap();
    let good = bytes.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();
    let local_copy = r.local.join("data").join(&name[..2]).join(&name);
    std::fs::remove_file(&local_copy).unwrap();
    r.ok(&["sync"]);
    assert!(std::fs::read(&local_copy).unwrap() == good, "the local region got the damaged copy");
    r.ok(&["sync", "--read-data"]);
    assert!(std::fs::read(&victim).unwrap() == good, "sync --read-data replaced the damaged copy");
    r.ok(&["check", "--regions", "--read-data"]);

    // The local region loses everything: sync rebuilds it, and it alone restores every snapshot.
    std::fs::remove_dir_all(&r.local).unwrap();
    std::fs::create_dir_all(&r.local).unwrap();
    let out = r.cmd().env("GUMVAULT_REPO", &us).args(["sync", "--to", "local"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let alone = |args: &[&str]| {
        let out = r.cmd().args(["--single-region"]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?} on the local region alone: {}", stderr(&out));
    };
    alone(&["check", "--read-data"]);
    let ids = r.ok(&["snapshots", "--json"]);
    let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&ids)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for (id, src) in ids.iter().zip([&src1, &src2]) {
        let target = r.env.path(&format!("alone-{}", &id[..8]));
        alone(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_same_tree(src, &restored(&target, src));
    }

    // A forget while eu is down removes the snapshot in us and local; eu catches up at the next sync.
    r.stop_eu();
    let out = r.run(&["forget", &ids[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r.snapshot_count(), 1, "a snapshot left in a lagging region must not come back");
    r.start_eu();
    let out = r.run(&["regions"]);
    assert_eq!(code(&out), 12);
    assert!(String::from_utf8_lossy(&out.stdout).contains("LAGGING"), "{}", String::from_utf8_lossy(&out.stdout));
    r.ok(&["sync"]);
    r.ok(&["check", "--regions", "--read-data"]);
    assert!(!r.eu_root.join("backups-eu/repo/snapshots").join(&ids[0]).exists());
    assert_eq!(r.snapshot_count(), 1);
    r.ok(&["check", "--read-data"]);
}

#[test]
fn region_flags_are_checked() {
    let r = Regions::start();
    let out = r.run(&["init", "--kdf-memory", "8", "--region", "bad name=/tmp/x"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = r.run(&["init", "--kdf-memory", "8", "--min-regions", "2"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("several regions"), "{}", stderr(&out));
    r.ok(&["init", "--kdf-memory", "8"]);
    let out = r.run(&["snapshots", "--region", "eu=/tmp/elsewhere"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no named regions"), "{}", stderr(&out));
}

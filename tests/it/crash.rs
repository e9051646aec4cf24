//! Crash safety: backups and prunes killed with SIGKILL at random moments (seeded) leave a repository that
//! checks clean, in which every snapshot that existed before the crash restores byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Env, pseudo_random, stderr};

const TRIALS: usize = 52;

/// A small deterministic generator (the seed makes failures reproducible).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn fill(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..12 {
        let sub = if i % 3 == 0 { "sub/" } else { "" };
        std::fs::write(dir.join(format!("{sub}f{i}")), pseudo_random(200_000 + (i as usize) * 10_000, seed * 100 + i))
            .unwrap();
    }
}

/// Restores a snapshot and returns the restored copy of `src`.
fn restore(env: &Env, id: &str, src: &Path, n: usize) -> PathBuf {
    let target = env.path(&format!("restore-{n}"));
    let _ = std::fs::remove_dir_all(&target);
    env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    target.join(src.strip_prefix("/").unwrap())
}

fn same_content(a: &Path, b: &Path) -> bool {
    let la = crate::common::listing(a);
    la == crate::common::listing(b)
        && la
            .iter()
            .filter(|(_, l)| l.kind == "file")
            .all(|(p, _)| std::fs::read(a.join(p)).unwrap() == std::fs::read(b.join(p)).unwrap())
}

/// Runs gumvault with `args` and kills it after `after`; returns whether it finished by itself.
fn run_and_kill(env: &Env, args: &[&str], offset: &str, after: Duration) -> bool {
    let mut child = env
        .cmd()
        .env("GUMVAULT_TEST_CLOCK_OFFSET", offset)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            return true;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killing_backup_and_prune_at_random_moments_never_loses_a_snapshot() {
    let env = Env::new();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Every committed snapshot and a copy of what it must restore to.
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    let src = env.path("src");
    let mut state = 0u64;
    // What a snapshot of `src` taken now must restore to: a copy with the same metadata.
    let snapshot_copy = |env: &Env, state: u64| -> PathBuf {
        let copy = env.path(&format!("expected-{state}"));
        let st = std::process::Command::new("cp").arg("-a").arg(&src).arg(&copy).status().unwrap();
        assert!(st.success());
        copy
    };
    fill(&src, state);
    let first = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    expected.insert(first, snapshot_copy(&env, state));

    // How long uninterrupted runs take, to spread the kills over them.
    state += 1;
    fill(&src, state);
    let t = Instant::now();
    let id = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    let backup_time = t.elapsed();
    expected.insert(id, snapshot_copy(&env, state));
    let t = Instant::now();
    env.ok(&["prune"]);
    let prune_time = t.elapsed().max(Duration::from_millis(50));

    let mut clock_hours = 0u64;
    let mut killed = 0;
    for trial in 0..TRIALS {
        // Each trial moves the fake clock on by 4 h: leases of killed runs expire, grace periods pass.
        clock_hours += 4;
        let offset = format!("{clock_hours}h");
        if trial % 2 == 0 {
            state += 1;
            fill(&src, state);
            let after = Duration::from_micros(rng.below(backup_time.as_micros() as u64 * 12 / 10));
            let before = env.snapshot_ids();
            if !run_and_kill(&env, &["backup", src.to_str().unwrap()], &offset, after) {
                killed += 1;
            }
            let now = env.snapshot_ids();
            for id in now.iter().filter(|id| !before.contains(id)) {
                expected.insert(id.clone(), snapshot_copy(&env, state));
            }
        } else {
            // Give prune something to do: forget the oldest snapshot but the first two now and then.
            if expected.len() > 4 && rng.below(2) == 0 {
                let victim = expected.keys().nth(2 + rng.below(expected.len() as u64 - 3) as usize).unwrap().clone();
                let out = env
                    .cmd()
                    .env("GUMVAULT_TEST_CLOCK_OFFSET", &offset)
                    .args(["forget", &victim[..16]])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "forget: {}", stderr(&out));
                expected.remove(&victim);
            }
            let after = Duration::from_micros(rng.below(prune_time.as_micros() as u64 * 12 / 10));
            if !run_and_kill(&env, &["prune", "--max-unused", "0%"], &offset, after) {
                killed += 1;
            }
        }
        let out = env.cmd().env("GUMVAULT_TEST_CLOCK_OFFSET", &offset).arg("check").output().unwrap();
        assert!(out.status.success(), "trial {trial}: check failed after a kill:\n{}", stderr(&out));
        // The oldest, the newest and one random snapshot restore exactly after every crash.
        let ids: Vec<&String> = expected.keys().collect();
        for (n, id) in [ids[0], ids[ids.len() - 1], ids[rng.below(ids.len() as u64) as usize]].into_iter().enumerate() {
            let restored = restore(&env, &id[..16], &src, n);
            assert!(same_content(&restored, &expected[id]), "trial {trial}: snapshot {id} does not restore identical");
        }
    }
    assert!(killed >= TRIALS / 4, "only {killed} of {TRIALS} runs were actually killed; the test would prove little");
    // In the end, with every grace period passed, all surviving snapshots restore and the data verifies.
    let offset = format!("{}h", clock_hours + 100);
    let out = env.cmd().env("GUMVAULT_TEST_CLOCK_OFFSET", &offset).arg("prune").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["check", "--read-data"]);
    for (n, (id, copy)) in expected.iter().enumerate() {
        assert!(same_content(&restore(&env, &id[..16], &src, 10 + n), copy), "snapshot {id} after the final prune");
    }
}

//! A full disk does not wedge the repository: a backup that does not fit fails with a message that says so and
//! leaves nothing behind, a smaller one then succeeds, and forget and prune work on the full disk (the space
//! reserve), so nobody ever has to delete files inside the repository by hand. Every earlier snapshot restores
//! identical throughout.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Env, code, pseudo_random, stderr};

/// A 48 MiB tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf) -> Option<SmallDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"]).arg(&at).status().ok()?;
        ok.success().then_some(SmallDisk(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn used(dir: &Path) -> u64 {
    crate::common::files_under(dir).iter().map(|(_, s)| s).sum()
}

/// A copy of the source as it is now, to compare a later restore of this moment's snapshot with.
fn keep(env: &Env, src: &Path, name: &str) -> PathBuf {
    let copy = env.path(name);
    assert!(Command::new("cp").arg("-a").arg(src).arg(&copy).status().unwrap().success());
    copy
}

/// Restores snapshot `id` and compares it with `expected` (a copy of the source at its time).
fn restore_and_compare(env: &Env, id: &str, src: &Path, expected: &Path, name: &str) {
    let target = env.path(name);
    env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    let restored = target.join(src.strip_prefix("/").unwrap());
    let diff = Command::new("diff").arg("-r").arg(expected).arg(&restored).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    std::fs::remove_dir_all(&target).unwrap();
}

#[test]
fn a_full_disk_fails_cleanly_and_maintenance_still_works() {
    let mut env = Env::uninitialised();
    let Some(disk) = SmallDisk::mount(env.path("disk")) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    env.repo = disk.0.join("repo").to_string_lossy().into_owned();
    env.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("first"), pseudo_random(6 << 20, 1)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = env.snapshot_ids()[0].clone();
    let at_first = keep(&env, &src, "at-first");
    let before = used(Path::new(&env.repo));

    // 60 MiB does not fit.
    std::fs::write(src.join("big"), pseudo_random(60 << 20, 2)).unwrap();
    let out = env.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::STORAGE_FULL, "{}", stderr(&out));
    assert!(stderr(&out).contains("the disk is full") && stderr(&out).contains("free"), "{}", stderr(&out));
    assert_eq!(env.snapshot_count(), 1);
    assert_eq!(used(Path::new(&env.repo)), before, "the failed backup left nothing behind");
    assert!(std::fs::read_dir(disk.0.join("repo/.tmp")).unwrap().next().is_none(), "no temporary files");
    env.ok(&["check", "--read-data"]);
    restore_and_compare(&env, &first, &src, &at_first, "r1");

    // A smaller one fits.
    std::fs::remove_file(src.join("big")).unwrap();
    std::fs::write(src.join("second"), pseudo_random(4 << 20, 3)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let second = env.snapshot_ids()[1].clone();
    let at_second = keep(&env, &src, "at-second");

    // Fill the disk to the last byte, then forget and prune there.
    let filler = disk.0.join("filler");
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=1M"]).arg(format!("of={}", filler.display())).status();
    let out = env.run(&["forget", &first, "--prune"]);
    assert_eq!(code(&out), 0, "forget --prune on a full disk: {}", stderr(&out));
    assert_eq!(env.snapshot_count(), 1);
    restore_and_compare(&env, &second, &src, &at_second, "r2");
    // After the grace period prune deletes the first snapshot's data, which frees room again.
    std::fs::remove_file(&filler).unwrap();
    let out = env.cmd().env("GUMVAULT_TEST_CLOCK_OFFSET", "25h").args(["prune"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    env.ok(&["check", "--read-data"]);
    restore_and_compare(&env, &second, &src, &at_second, "r3");
}

//! Restore as an attacker and a tired operator would try it: root restoring into a target another user prepared
//! (planted directory and file symlinks, with and without --overwrite), modes while files are written, a path
//! that cannot be restored in the middle of a tree, damaged data, a restore killed and run again, and a seeded
//! fuzz of planted trees. Nothing outside the target may change in any of them.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Env, assert_same_tree, code, pseudo_random, stderr};

/// The unprivileged user that prepares targets (Debian's `nobody`).
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Everything about a tree that an escaping restore could change: type, content, mode, owner, mtime.
fn fingerprint(root: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>, u32, u32, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let ft = m.file_type();
        let content = if ft.is_file() {
            std::fs::read(&p).expect("read")
        } else if ft.is_symlink() {
            std::fs::read_link(&p).expect("readlink").into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "link"
        } else {
            "file"
        };
        out.insert(
            p.clone(),
            (kind.to_string(), content, m.mode(), m.uid(), m.mtime_nsec() + m.mtime() * 1_000_000_000),
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Makes `path` (a file, dir or symlink) look as if user `nobody` had made it.
fn give_to_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).expect("lchown");
}

/// A source tree shaped like the attack: `/tmp`-like directory (mode 1777) holding files, one of them 0600.
fn attack_source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("tmp/app")).unwrap();
    std::fs::write(src.join("tmp/app/app.conf"), b"restored config").unwrap();
    std::fs::write(src.join("tmp/app/secret.key"), b"private").unwrap();
    std::fs::set_permissions(src.join("tmp/app/secret.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    src
}

/// A decoy tree outside the target that a planted link points at.
fn decoy(env: &Env) -> PathBuf {
    let d = env.path("decoy");
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(d.join("app/app.conf"), b"the victim's own content").unwrap();
    std::fs::write(d.join("victim"), b"do not touch").unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// The snapshot's path of the source under a target.
fn under(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// An empty target prepared by `nobody`, with the directories above the snapshot's `tmp` in place.
fn prepared_target(env: &Env, src: &Path) -> PathBuf {
    let target = env.path("target");
    let parent = under(&target, src);
    std::fs::create_dir_all(&parent).unwrap();
    let mut p = parent.clone();
    while p.starts_with(&target) {
        give_to_nobody(&p);
        if !p.pop() {
            break;
        }
    }
    target
}

#[test]
fn planted_symlinks_in_the_target_are_never_followed() {
    if !is_root() {
        eprintln!("skipped: restoring as root into a target another user prepared needs root");
        return;
    }
    let env = Env::new();
    let src = attack_source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    for overwrite in [false, true] {
        for planted in ["dir", "file"] {
            let _ = std::fs::remove_dir_all(env.path("target"));
            let _ = std::fs::remove_dir_all(env.path("decoy"));
            let decoy = decoy(&env);
            let target = prepared_target(&env, &src);
            let base = under(&target, &src);
            // A directory link where the snapshot has /tmp, or a file link inside a real tmp/app.
            let link = if planted == "dir" {
                let l = base.join("tmp");
                std::os::unix::fs::symlink(&decoy, &l).unwrap();
                l
            } else {
                std::fs::create_dir_all(base.join("tmp/app")).unwrap();
                give_to_nobody(&base.join("tmp"));
                give_to_nobody(&base.join("tmp/app"));
                let l = base.join("tmp/app/app.conf");
                std::os::unix::fs::symlink(decoy.join("victim"), &l).unwrap();
                l
            };
            give_to_nobody(&link);
            let before = fingerprint(&decoy);
            let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
            if overwrite {
                args.push("--overwrite");
            }
            let out = env.run(&args);
            assert_eq!(fingerprint(&decoy), before, "the decoy changed ({planted} link, overwrite {overwrite})");
            if overwrite {
                assert_eq!(code(&out), 0, "{}", stderr(&out));
                assert_eq!(std::fs::read(base.join("tmp/app/app.conf")).unwrap(), b"restored config");
                assert!(!std::fs::symlink_metadata(base.join("tmp")).unwrap().file_type().is_symlink());
                assert_eq!(std::fs::metadata(base.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
            } else {
                assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{}", stderr(&out));
                let err = stderr(&out);
                assert!(err.contains("symlink") || err.contains("--overwrite"), "{err}");
                assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
            }
        }
    }
}

#[test]
fn a_planted_hard_link_with_the_right_content_is_replaced_not_kept() {
    if !is_root() {
        eprintln!("skipped: restoring as root into a target another user prepared needs root");
        return;
    }
    let env = Env::new();
    let src = attack_source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let source_file = src.join("tmp/app/app.conf");
    let mtime = std::fs::metadata(&source_file).unwrap().modified().unwrap();
    for overwrite in [false, true] {
        let _ = std::fs::remove_dir_all(env.path("target"));
        let _ = std::fs::remove_dir_all(env.path("decoy"));
        // The attacker's file looks exactly like the snapshot's (content, size, mtime), and the target's
        // app.conf is a second name for it: kept as "unchanged", it would stay the attacker's to rewrite.
        let decoy = decoy(&env);
        let theirs = decoy.join("app/app.conf");
        std::fs::write(&theirs, b"restored config").unwrap();
        std::fs::File::options().write(true).open(&theirs).unwrap().set_modified(mtime).unwrap();
        let target = prepared_target(&env, &src);
        let base = under(&target, &src);
        std::fs::create_dir_all(base.join("tmp/app")).unwrap();
        give_to_nobody(&base.join("tmp"));
        give_to_nobody(&base.join("tmp/app"));
        std::fs::hard_link(&theirs, base.join("tmp/app/app.conf")).unwrap();
        let before = fingerprint(&decoy);
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        if overwrite {
            args.push("--overwrite");
        }
        let out = env.run(&args);
        assert_eq!(fingerprint(&decoy), before, "the decoy changed (overwrite {overwrite})");
        let restored = std::fs::symlink_metadata(base.join("tmp/app/app.conf")).unwrap();
        if overwrite {
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            assert_eq!(restored.nlink(), 1, "the restored file is its own");
            assert_ne!(restored.ino(), std::fs::metadata(&theirs).unwrap().ino());
        } else {
            assert_ne!(code(&out), 0, "a second name for another file is not an unchanged file");
            assert!(stderr(&out).contains("app.conf"), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_0600_file_is_never_wider_than_0600_while_it_is_written() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        let f = src.join(format!("dump{i}.sql"));
        std::fs::write(&f, pseudo_random(48 << 20, i)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(src.join("public.txt"), b"public").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    let mut child = env.cmd().args(["restore", "latest", "--target", target.to_str().unwrap()]).spawn().unwrap();
    let mut samples = 0;
    let mut seen_partial = false;
    while child.try_wait().unwrap().is_none() {
        let dir = under(&target, &src);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
                if name.starts_with("dump") {
                    samples += 1;
                    seen_partial |= name.ends_with(".gumvault-partial");
                    assert_eq!(m.mode() & 0o077, 0, "{name} was {:o} while being restored", m.mode() & 0o7777);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(child.wait().unwrap().success());
    assert!(samples > 0, "the restore was sampled");
    eprintln!("sampled modes {samples} times, saw a partial file: {seen_partial}");
    assert_same_tree(&src, &under(&target, &src));
}

#[test]
fn an_unrestorable_path_in_the_middle_leaves_everything_else_restored() {
    let env = Env::new();
    let src = env.path("src");
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(src.join(d).join("deep")).unwrap();
        std::fs::write(src.join(d).join("deep/file"), format!("{d} content")).unwrap();
        std::fs::write(src.join(d).join("top"), format!("{d} top")).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    // A file where the directory b/ belongs, and a directory where c/top belongs.
    let base = under(&target, &src);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("b"), b"in the way").unwrap();
    std::fs::create_dir_all(base.join("c/top")).unwrap();
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap(), "--json"]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failures: Vec<String> = json["summary"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let b = src.join("b").display().to_string();
    let ctop = src.join("c/top").display().to_string();
    assert!(failures.contains(&b) && failures.contains(&ctop), "{failures:?}");
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(std::fs::read_to_string(base.join("a/deep/file")).unwrap(), "a content");
    assert_eq!(std::fs::read_to_string(base.join("c/deep/file")).unwrap(), "c content");
    assert_eq!(std::fs::read(base.join("b")).unwrap(), b"in the way", "what was in the way is left alone");
    assert!(stderr(&out).contains("2 problems"), "{}", stderr(&out));
}

#[test]
fn a_file_whose_data_is_damaged_is_absent_and_the_others_are_whole() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), pseudo_random(6 << 20, 7)).unwrap();
    std::fs::write(src.join("small.txt"), b"small and fine").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Damage the largest pack (the data of big.bin), in the middle.
    let packs = crate::common::files_under(&PathBuf::from(&env.repo).join("data"));
    let (pack, size) = packs.iter().max_by_key(|(_, s)| *s).unwrap().clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(size / 2) as usize] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let target = env.path("target");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&out), gumvault::exit::DATA_ERROR, "{}", stderr(&out));
    assert!(stderr(&out).contains("big.bin") && stderr(&out).contains("not restored"), "{}", stderr(&out));
    let base = under(&target, &src);
    assert!(!base.join("big.bin").exists(), "a damaged file is not left looking whole");
    assert!(!base.join("big.bin.gumvault-partial").exists(), "nor its partial copy");
    assert_eq!(std::fs::read(base.join("small.txt")).unwrap(), b"small and fine");
}

#[test]
fn a_restore_killed_at_random_points_and_run_again_gives_the_source() {
    let env = Env::new();
    let src = env.path("src");
    for d in 0..8 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..6 {
            let size = if f == 0 { 3 << 20 } else { 20_000 + d * 1000 + f };
            std::fs::write(src.join(format!("d{d}/f{f}")), pseudo_random(size, (d * 10 + f) as u64)).unwrap();
        }
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    let mut rng = 0x5eed_u64;
    for round in 0..4 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(5 + (rng >> 33) % 120);
        let mut child = env
            .cmd()
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("round {round}: killed after {delay:?}");
    }
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap(), "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_same_tree(&src, &under(&target, &src));
}

/// A small random tree: names, kinds and contents from a seed.
fn random_tree(root: &Path, seed: u64, names: &[&str]) {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    std::fs::create_dir_all(root).unwrap();
    for depth in 0..3 {
        let dir = (0..depth).fold(root.to_path_buf(), |p, _| p.join(names[(next() % names.len() as u64) as usize]));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..4 {
            let name = dir.join(names[(next() % names.len() as u64) as usize]);
            if name.exists() {
                continue;
            }
            if next() % 3 == 0 {
                std::fs::create_dir_all(&name).unwrap();
            } else {
                std::fs::write(&name, pseudo_random((next() % 3000) as usize, next())).unwrap();
            }
        }
    }
}

#[test]
fn seeded_plantings_in_the_target_never_change_anything_outside_it() {
    if !is_root() {
        eprintln!("skipped: planting as another user needs root");
        return;
    }
    let names = ["a", "b", "etc", "tmp", "x.conf", "lib"];
    let env = Env::new();
    let src = env.path("s");
    random_tree(&src, 42, &names);
    env.ok(&["backup", src.to_str().unwrap()]);
    let snapshot_paths: Vec<PathBuf> = crate::common::listing(&src).into_keys().collect();
    let decoy = decoy(&env);
    let before = fingerprint(&decoy);
    for trial in 0..200u64 {
        let target = env.path(&format!("t{trial}"));
        let base = under(&target, &src);
        std::fs::create_dir_all(&base).unwrap();
        let mut x = trial.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Plant links to the decoy (and to its files) under random names of the snapshot, as nobody.
        let mut planted: Vec<&PathBuf> = Vec::new();
        for _ in 0..(1 + next() % 4) {
            let rel = &snapshot_paths[(next() % snapshot_paths.len() as u64) as usize];
            // Never plant below (or above) another planted link: the planting itself would go through it.
            if planted.iter().any(|p| rel.starts_with(p) || p.starts_with(rel)) {
                continue;
            }
            planted.push(rel);
            let at = base.join(rel);
            if let Some(p) = at.parent() {
                let _ = std::fs::create_dir_all(p);
            }
            let to = if next() % 2 == 0 { decoy.clone() } else { decoy.join("victim") };
            if std::os::unix::fs::symlink(&to, &at).is_ok() {
                give_to_nobody(&at);
            }
        }
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        if next() % 2 == 0 {
            args.push("--overwrite");
        }
        let out = env.run(&args);
        assert!(code(&out) == 0 || code(&out) == gumvault::exit::DATA_ERROR, "trial {trial}: {}", stderr(&out));
        assert_eq!(fingerprint(&decoy), before, "trial {trial} changed the decoy: {}", stderr(&out));
        std::fs::remove_dir_all(&target).unwrap();
    }
}

//! Files that are not what a naive reader expects: sparse files (holes cost neither reading time nor repository
//! space, and restore sparse), and files that keep changing while they are read (read again, then reported).

use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use crate::common::{Env, code, pseudo_random, stderr};

#[test]
fn a_sparse_file_backs_up_and_restores_sparse() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("disk.img");
    let size: u64 = 5 << 30;
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    // 3 MiB of data: at the start, in the middle and just before the end.
    for (i, at) in [0, 2 << 30, size - (1 << 20)].into_iter().enumerate() {
        f.write_all_at(&pseudo_random(1 << 20, i as u64 + 1), at).unwrap();
    }
    drop(f);
    let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(allocated < 16 << 20, "the test file is sparse ({allocated} bytes allocated)");
    let started = Instant::now();
    let out = env.json(&["backup", src.to_str().unwrap()]);
    let took = started.elapsed();
    eprintln!("sparse backup of 5 GiB took {took:?}: {}", out["summary"]);
    assert!(took < Duration::from_secs(20), "holes are not read ({took:?})");
    assert!(out["summary"]["bytes_added"].as_u64().unwrap() < 16 << 20, "{}", out["summary"]);
    let stored = crate::common::stored_bytes(std::path::Path::new(&env.repo));
    assert!(stored < 16 << 20, "the repository holds {stored} bytes");

    let target = env.path("target");
    let started = Instant::now();
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    eprintln!("sparse restore took {:?}", started.elapsed());
    let restored = target.join(path.strip_prefix("/").unwrap());
    let meta = std::fs::metadata(&restored).unwrap();
    assert_eq!(meta.len(), size);
    assert!(meta.blocks() * 512 < 10 << 20, "restored sparse: {} bytes allocated", meta.blocks() * 512);
    let cmp = std::process::Command::new("cmp").arg(&path).arg(&restored).output().unwrap();
    assert!(cmp.status.success(), "content differs: {}", String::from_utf8_lossy(&cmp.stdout));
}

#[test]
fn a_file_that_keeps_changing_while_it_is_read_makes_the_snapshot_incomplete() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("steady.txt"), b"steady").unwrap();
    let busy = src.join("busy.log");
    std::fs::write(&busy, pseudo_random(48 << 20, 3)).unwrap();
    // A writer that keeps changing the file's size (as a log being truncated and rewritten would).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (busy, stop) = (busy.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&busy).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                f.set_len((48 << 20) - (n % 2) * 4096).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let out = env.run(&["backup", src.to_str().unwrap(), "--json"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(code(&out), gumvault::exit::INCOMPLETE, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["incomplete"], true, "{json}");
    let warnings = json["warnings"].to_string();
    assert!(warnings.contains("busy.log") && warnings.contains("changed while it was read"), "{warnings}");
    assert!(!warnings.contains("steady.txt"), "{warnings}");
}

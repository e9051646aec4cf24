//! Shared helpers for end-to-end tests: a temporary repository and the real `gumvault` binary.
#![allow(dead_code)]

pub mod moto;
pub mod pg;
pub mod proxy;
pub mod redis;
pub mod s3;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A temporary directory holding a repository, a catalog cache and scratch space.
pub struct Env {
    pub dir: TempDir,
    pub repo: String,
    pub cache: PathBuf,
    pub password: String,
}

impl Env {
    /// A new, initialised repository (with a cheap key derivation so tests stay fast).
    pub fn new() -> Env {
        let env = Env::uninitialised();
        env.ok(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
        env
    }

    /// Paths and password set, no repository yet.
    pub fn uninitialised() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo").to_string_lossy().into_owned();
        let cache = dir.path().join("cache");
        Env { dir, repo, cache, password: "correct horse battery staple".into() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary with this environment's repository, cache and password.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gumvault"));
        // Nothing from the caller's environment that would change what gumvault does.
        let inherited = std::env::vars_os().map(|(k, _)| k).filter(|k| k.as_encoded_bytes().starts_with(b"GUMVAULT_"));
        for var in inherited {
            c.env_remove(var);
        }
        c.env("GUMVAULT_REPO", &self.repo)
            .env("GUMVAULT_CACHE_DIR", &self.cache)
            .env("GUMVAULT_PASSWORD", &self.password)
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run gumvault")
    }

    /// Runs and asserts exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gumvault {args:?} failed with {}:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with --json and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}\n{out}"))
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshot_ids().len()
    }

    /// Full ids of every snapshot, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let v = self.json(&["snapshots"]);
        v.as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
    }
}

/// Every regular file below `root` with its size, sorted by path.
pub fn files_under(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() { stack.push(e.path()) } else { out.push((e.path(), m.len())) }
        }
    }
    out.sort();
    out
}

/// Bytes a repository holds for its data: every file except the space reserve
/// (`reserve`, 16 MiB of zeros kept so maintenance works on a full disk).
pub fn stored_bytes(repo: &Path) -> u64 {
    files_under(repo).iter().filter(|(p, _)| p != &repo.join("reserve")).map(|(_, size)| size).sum()
}

/// Exit code of an output (panics on signals).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a restore must reproduce for one path.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub kind: &'static str,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub target: Option<PathBuf>,
}

/// Type, permissions, size, mtime (ns) and symlink target of everything under `root`, keyed by relative path.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Listing> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Listing>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        let item = Listing {
            kind,
            mode: meta.permissions().mode() & 0o7777,
            size: if ft.is_file() { meta.size() } else { 0 },
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            target: if ft.is_symlink() { std::fs::read_link(&path).ok() } else { None },
        };
        out.insert(rel, item);
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Asserts two trees are identical in content and metadata (diff -r plus the listing).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let la = listing(a);
    let lb = listing(b);
    assert_eq!(la.len(), lb.len(), "different number of entries");
    for (path, item) in &la {
        assert_eq!(Some(item), lb.get(path), "metadata of {} differs", path.display());
    }
    let diff = Command::new("diff").arg("-r").arg("--no-dereference").arg(a).arg(b).output().expect("run diff");
    assert!(diff.status.success(), "diff -r found differences:\n{}", String::from_utf8_lossy(&diff.stdout));
}

/// A repository in memory with small chunks and packs, so small test data spans many blobs and packs.
pub fn small_repo(
    files_chunks: gumvault::format::chunker::ChunkerParams,
    pack_size: u32,
) -> gumvault::repo::Repository {
    use gumvault::format::chunker::ChunkerParams;
    let mut profiles = gumvault::repo::default_profiles();
    profiles.insert("files".into(), files_chunks);
    profiles.insert("stream".into(), ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 });
    let opts = gumvault::repo::InitOptions {
        kdf: gumvault::format::crypto::KdfParams { memory_kib: 256, iterations: 1, parallelism: 1 },
        pack_size,
        chunker_profiles: profiles,
        ..Default::default()
    };
    let storage = gumvault::storage::Storage::open_url("memory://").expect("memory storage");
    gumvault::repo::Repository::init(storage, b"pw", &opts).expect("init")
}

/// Writes `n` bytes of deterministic pseudo-random data.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

//! Test-only generator of a large repository, for the scale benchmarks (`benches/scale.sh`): writes real packs,
//! index segments, trees and one snapshot through the library, as a backup would, without chunking real files.
//! Every blob is a distinct 64-byte line; a file is 1,000 of them (64 KB, like a file cut into 1,000 chunks), a
//! directory holds 100 files (100,000 blobs), so 20 million blobs are 20,000 files in 200 directories. Usage: `cargo bench --bench gen_repo -- BLOBS` with GUMVAULT_REPO (an initialised local repository)
//! and GUMVAULT_PASSWORD set.

use gumvault::format::blob::BlobKind;
use gumvault::format::id::Id;
use gumvault::format::index::PackEntry;
use gumvault::format::snapshot::{SNAPSHOT_VERSION, Snapshot};
use gumvault::format::tree::{Node, RawName, Tree};
use gumvault::repo::Repository;
use rayon::prelude::*;

/// Blobs per file.
const BLOBS_PER_FILE: u64 = 1_000;
/// Blobs per directory (100 files).
const BLOBS_PER_DIR: u64 = 100 * BLOBS_PER_FILE;
/// Blobs per index segment, as prune writes them.
const SEGMENT_BLOBS: usize = 100_000;

/// Packs blobs of one kind and writes index segments as they fill.
struct Writer<'a> {
    repo: &'a Repository,
    kind: BlobKind,
    pack: gumvault::format::pack::PackWriter,
    waiting: Vec<PackEntry>,
    waiting_blobs: usize,
}

impl<'a> Writer<'a> {
    fn new(repo: &'a Repository, kind: BlobKind) -> Self {
        Writer { repo, kind, pack: repo.new_pack(kind), waiting: Vec::new(), waiting_blobs: 0 }
    }

    fn add(&mut self, id: Id, plain: &[u8]) {
        let (info, sealed) = self.repo.seal_blob(self.kind, id, plain, None);
        self.add_sealed(info, &sealed);
    }

    fn add_sealed(&mut self, info: gumvault::format::blob::BlobInfo, sealed: &[u8]) {
        self.pack.add(info, sealed);
        if self.pack.len() >= self.repo.pack_target(self.kind) {
            self.flush_pack();
        }
    }

    fn flush_pack(&mut self) {
        if self.pack.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut self.pack, self.repo.new_pack(self.kind));
        let entry = self.repo.write_pack(full).expect("write pack");
        self.waiting_blobs += entry.blobs.len();
        self.waiting.push(entry);
        if self.waiting_blobs >= SEGMENT_BLOBS {
            self.flush_index();
        }
    }

    fn flush_index(&mut self) {
        if !self.waiting.is_empty() {
            self.repo.save_index(&std::mem::take(&mut self.waiting)).expect("save index");
            self.waiting_blobs = 0;
        }
    }

    fn finish(mut self) {
        self.flush_pack();
        self.flush_index();
    }
}

fn content(i: u64) -> Vec<u8> {
    let h = blake3::hash(&i.to_le_bytes());
    format!("row {i:012} {}\n", &h.to_hex()[..44]).into_bytes()
}

fn main() {
    // `cargo test --all-targets` runs this target without `--bench`: there is nothing to generate then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let blobs: u64 = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(0);
    if blobs == 0 {
        eprintln!("usage: cargo bench --bench gen_repo -- BLOBS  (GUMVAULT_REPO, GUMVAULT_PASSWORD set)");
        std::process::exit(2);
    }
    let url = std::env::var("GUMVAULT_REPO").expect("GUMVAULT_REPO");
    let password = std::env::var("GUMVAULT_PASSWORD").expect("GUMVAULT_PASSWORD");
    let storage = gumvault::storage::Storage::open_url(&url).expect("storage");
    let repo = Repository::open(storage, password.as_bytes()).expect("open repository");
    let mut data = Writer::new(&repo, BlobKind::Data);
    let mut trees = Writer::new(&repo, BlobKind::Tree);
    let mut dirs = Vec::new();
    let mut start = 0;
    while start < blobs {
        let end = (start + BLOBS_PER_DIR).min(blobs);
        let sealed: Vec<_> = (start..end)
            .into_par_iter()
            .map(|i| {
                let plain = content(i);
                let id = repo.blob_id(&plain);
                repo.seal_blob(BlobKind::Data, id, &plain, None)
            })
            .collect();
        let mut nodes = Vec::new();
        for (f, file) in sealed.chunks(BLOBS_PER_FILE as usize).enumerate() {
            let mut ids = Vec::with_capacity(file.len());
            let mut size = 0;
            for (info, bytes) in file {
                data.add_sealed(*info, bytes);
                ids.push(info.id);
                size += u64::from(info.raw_len);
            }
            nodes.push(Node::file(RawName(format!("f{f:03}").into_bytes()), 0o644, size, ids));
        }
        let tree = Tree::new(nodes).to_bytes();
        let tree_id = repo.blob_id(&tree);
        trees.add(tree_id, &tree);
        dirs.push(Node::dir(RawName(format!("d{:06}", start / BLOBS_PER_DIR).into_bytes()), 0o755, tree_id));
        start = end;
        if dirs.len() % 20 == 0 {
            eprintln!("{end} blobs");
        }
    }
    let root = Tree::new(dirs).to_bytes();
    let root_id = repo.blob_id(&root);
    trees.add(root_id, &root);
    data.finish();
    trees.finish();
    let snap = Snapshot {
        version: SNAPSHOT_VERSION,
        time: jiff::Timestamp::now(),
        host: "generator".into(),
        paths: vec!["/generated".into()],
        tags: vec!["generated".into()],
        tree: root_id,
        parent: None,
        chunker: "files".into(),
        job: None,
        incomplete: false,
        summary: Default::default(),
        base_backups: Vec::new(),
    };
    let id = repo.save_snapshot(&snap).expect("save snapshot");
    println!("snapshot {} with {blobs} data blobs", id.to_hex());
}

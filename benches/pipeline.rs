//! The write and read paths of one blob, stage by stage and end to end: chunk → hash → compress → encrypt, and
//! back. Run with `cargo bench --bench pipeline`; figures are recorded in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gumvault::format::blob::{self, BlobKind};
use gumvault::format::chunker::{Chunker, ChunkerParams, Gear};
use gumvault::format::crypto::MasterKey;

/// Half random, half text-like: compressible roughly like real files and dumps.
fn sample(n: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let line = b"INSERT INTO users VALUES (42, 'user42@example.com', 'Bubble Gum', now());\n";
    (0..n)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            } else {
                line[i % line.len()]
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let key = MasterKey::from_bytes([3; 32]);
    let gear = Gear::new(key.gear_table());
    let data = sample(32 << 20);
    let mut g = c.benchmark_group("write path");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (name, params) in [("files 1 MiB", ChunkerParams::FILES), ("stream 16 KiB", ChunkerParams::STREAM)] {
        g.bench_function(format!("chunk ({name})"), |b| {
            b.iter(|| Chunker::new(&data[..], params, &gear).map(|c| c.unwrap().len()).sum::<usize>())
        });
    }
    g.bench_function("blob id (keyed blake3)", |b| b.iter(|| black_box(key.blob_id(&data))));
    let chunks: Vec<Vec<u8>> = Chunker::new(&data[..], ChunkerParams::STREAM, &gear).map(|c| c.unwrap()).collect();
    for level in [1, 3] {
        g.bench_function(format!("hash+compress(zstd {level})+encrypt, 16 KiB chunks"), |b| {
            let mut comp = zstd::bulk::Compressor::new(level).unwrap();
            b.iter(|| {
                for c in &chunks {
                    let id = key.blob_id(c);
                    black_box(blob::encode(&key, BlobKind::Data, id, c, Some(&mut comp)));
                }
            })
        });
    }
    g.bench_function("encrypt only, 16 KiB chunks", |b| {
        b.iter(|| {
            for c in &chunks {
                black_box(key.seal(b"aad", c.clone()));
            }
        })
    });
    let mut comp = zstd::bulk::Compressor::new(3).unwrap();
    let encoded: Vec<_> =
        chunks.iter().map(|c| blob::encode(&key, BlobKind::Data, key.blob_id(c), c, Some(&mut comp))).collect();
    g.bench_function("decrypt+decompress+verify, 16 KiB chunks", |b| {
        b.iter(|| {
            for (info, sealed) in &encoded {
                black_box(blob::decode(&key, info, sealed).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);

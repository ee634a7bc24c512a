//! Store throughput: verify + write of one piece, and recheck of cached data.
//!
//! Run: `cargo bench --bench store`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use swarm::layout::Layout;
use swarm::store::{hash_blocks, recheck, Storage};
use swarm::types::BLOCK_SIZE;

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn verify_and_write(c: &mut Criterion) {
    const PIECE: u32 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // A few pieces so successive iterations do not rewrite one page range only.
    let pieces = 16u32;
    let layout = Layout::new(PIECE, &[PIECE as u64 * pieces as u64]).unwrap();
    let files = [(PathBuf::from("piece.bin"), layout.total_len())];
    let storage = Storage::open(dir.path(), &files, layout, true).unwrap();
    let data = pseudo_random(PIECE as usize);
    let blocks: Vec<Bytes> = data
        .chunks(BLOCK_SIZE as usize)
        .map(Bytes::copy_from_slice)
        .collect();
    let expected = hash_blocks(&blocks);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Bytes(PIECE as u64));
    let mut piece = 0;
    g.bench_function("verify_write_256KiB", |b| {
        b.iter(|| {
            assert_eq!(hash_blocks(&blocks), expected);
            storage.write_piece(piece, &blocks).unwrap();
            piece = (piece + 1) % pieces;
        })
    });
    g.bench_function("hash_256KiB", |b| b.iter(|| hash_blocks(&blocks)));
    g.finish();
    // Two pieces at once on one core (SHA-NI interleaved): compare its bytes/s with
    // hash_256KiB's.
    let other: Vec<Bytes> = blocks.iter().rev().cloned().collect();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Bytes(2 * PIECE as u64));
    g.bench_function("hash_pair_2x256KiB", |b| {
        b.iter(|| swarm::sha1_pair::digest_pair(&blocks, &other))
    });
    g.finish();
}

fn recheck_throughput(c: &mut Criterion) {
    const TOTAL: u64 = 64 << 20;
    const PIECE: u32 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // Several files so reads cross file boundaries as in real torrents.
    let lens = [TOTAL / 4 - 1000, TOTAL / 4 + 1000, TOTAL / 2];
    let layout = Layout::new(PIECE, &lens).unwrap();
    let files: Vec<_> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| (PathBuf::from(format!("f{i}")), l))
        .collect();
    let storage = Storage::open(dir.path(), &files, layout.clone(), true).unwrap();
    let data = pseudo_random(TOTAL as usize);
    let mut hashes = Vec::new();
    for p in 0..layout.num_pieces() {
        let start = layout.piece_start(p) as usize;
        let piece = &data[start..start + layout.piece_size(p) as usize];
        let blocks = [Bytes::copy_from_slice(piece)];
        hashes.push(hash_blocks(&blocks));
        storage.write_piece(p, &blocks).unwrap();
    }
    let mut g = c.benchmark_group("recheck");
    g.throughput(Throughput::Bytes(TOTAL));
    g.sample_size(10);
    for threads in [1, 2] {
        g.bench_function(format!("64MiB_{threads}_threads"), |b| {
            b.iter(|| {
                let have = recheck(
                    &storage,
                    &hashes,
                    threads,
                    &AtomicU64::new(0),
                    &AtomicBool::new(false),
                )
                .unwrap();
                assert!(have.is_full());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, verify_and_write, recheck_throughput);
criterion_main!(benches);

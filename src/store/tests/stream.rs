//! Tests of streamed pieces (too large to buffer whole) and of rechecking large pieces.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use super::Fixture;
use crate::layout::Layout;
use crate::store::{recheck, spawn, Storage, StoreConfig, StoreEvent, StoreHandle};
use crate::types::{Bitfield, BlockRef, BLOCK_SIZE};

const PATIENCE: Duration = Duration::from_secs(60);

/// Eight blocks per piece; a budget of two blocks and a cap of four: pieces stream.
const PIECE: u32 = 8 * BLOCK_SIZE;
const BUDGET: usize = 2 * BLOCK_SIZE as usize;

fn start(
    storage: Storage,
    hashes: Vec<[u8; 20]>,
    budget: usize,
    cap: usize,
) -> (StoreHandle, mpsc::Receiver<StoreEvent>) {
    let n = storage.layout().num_pieces();
    let (tx, rx) = mpsc::channel(64);
    let config = StoreConfig {
        max_buffer: budget,
        budget_cap: cap,
        hash_threads: 2,
        pool: None,
    };
    let (h, _join) = spawn(
        Arc::new(storage),
        Arc::new(hashes),
        Bitfield::new(n),
        config,
        tx,
    );
    (h, rx)
}

async fn next(events: &mut mpsc::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("store event in time")
        .expect("event channel open")
}

/// Sends a block after reserving its budget, checking the buffer never exceeds `budget`.
async fn send(h: &StoreHandle, peer: u64, b: BlockRef, d: Bytes, budget: usize) {
    let r = tokio::time::timeout(PATIENCE, h.reserve(b.len))
        .await
        .expect("budget frees up: out-of-order blocks must not pin it");
    assert!(
        h.buffered_bytes() <= budget,
        "{} buffered",
        h.buffered_bytes()
    );
    h.write_block(peer, b, d, r).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_pieces_verify_in_any_order_within_a_tiny_budget() {
    let fx = Fixture::with(PIECE, &[300_000, 0, 200_000, 7]);
    let n = fx.layout.num_pieces();
    let (h, mut events) = start(
        fx.open_lazy(true).unwrap(),
        fx.hashes.clone(),
        BUDGET,
        2 * BUDGET,
    );
    // Pieces interleaved, each piece's blocks backwards (every block but the last arrives
    // ahead of the hash), with duplicates, from three peers.
    let mut all: Vec<(BlockRef, Bytes)> = Vec::new();
    let per: Vec<Vec<(BlockRef, Bytes)>> = (0..n).map(|p| fx.blocks(p)).collect();
    for k in 0..8 {
        for blocks in &per {
            if let Some(b) = blocks.iter().rev().nth(k) {
                all.push(b.clone());
            }
        }
    }
    for (i, (b, d)) in all.iter().enumerate() {
        send(&h, i as u64 % 3, *b, d.clone(), BUDGET).await;
        let (db, dd) = &all[i / 2];
        send(&h, 9, *db, dd.clone(), BUDGET).await;
    }
    super::expect_all_verified(&mut events, n).await;
    fx.assert_files_written();
    // Duplicates sent after their piece verified may still be on their way to the task,
    // which drops them (and their reservations) when it gets to them.
    let drained = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while h.buffered_bytes() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    assert!(
        drained.await.is_ok(),
        "{} bytes still buffered",
        h.buffered_bytes()
    );
    // The budget never grows past the cap, however large the engine's wish.
    h.grow_budget(1 << 30);
    assert_eq!(h.try_reserve(u32::MAX).map(|r| r.len()), Some(2 * BUDGET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_streamed_piece_fails_then_downloads_over_itself() {
    let fx = Fixture::with(PIECE, &[3 * PIECE as u64]);
    let (h, mut events) = start(
        fx.open_lazy(true).unwrap(),
        fx.hashes.clone(),
        BUDGET,
        2 * BUDGET,
    );
    let blocks = fx.blocks(1);
    for (i, (b, d)) in blocks.iter().enumerate() {
        let d = if i == 5 {
            Bytes::from(vec![0xAA; d.len()])
        } else {
            d.clone()
        };
        send(&h, i as u64 % 2, *b, d, BUDGET).await;
    }
    match next(&mut events).await {
        StoreEvent::Failed {
            piece: 1,
            mut peers,
        } => {
            peers.sort();
            assert_eq!(peers, [0, 1]);
        }
        other => panic!("unexpected {other:?}"),
    }
    for (b, d) in blocks {
        send(&h, 7, b, d, BUDGET).await;
    }
    assert!(matches!(
        next(&mut events).await,
        StoreEvent::Verified { piece: 1 }
    ));
    assert_eq!(fx.on_disk(1), fx.piece(1));
}

/// A 64 MiB piece (the largest accepted) of zeros, streamed through the default 4 MiB
/// budget and then rechecked: the store never holds more than its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_piece_downloads_and_rechecks_within_the_budget() {
    const BIG: u32 = crate::metainfo::MAX_PIECE_LEN;
    const BUDGET: usize = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let lens = [BIG as u64 + 100];
    let layout = Layout::new(BIG, &lens).unwrap();
    let zeros = Bytes::from(vec![0u8; BLOCK_SIZE as usize]);
    // Piece 0 is 4096 zero blocks; piece 1 is 100 zero bytes.
    let mut h = Sha1::new();
    for _ in 0..BIG / BLOCK_SIZE {
        h.update(&zeros[..]);
    }
    let hashes: Vec<[u8; 20]> = vec![h.finalize().into(), Sha1::digest([0u8; 100]).into()];
    let files = [("big.bin".into(), lens[0])];
    let storage = Storage::open(dir.path(), &files, layout.clone(), true).unwrap();
    let (h, mut events) = start(storage, hashes.clone(), BUDGET, 32 << 20);
    for p in 0..2 {
        for k in 0..layout.blocks_in_piece(p) {
            let b = layout.block(p, k).unwrap();
            send(&h, 1, b, zeros.slice(..b.len as usize), BUDGET).await;
        }
    }
    for _ in 0..2 {
        assert!(matches!(
            next(&mut events).await,
            StoreEvent::Verified { .. }
        ));
    }
    assert_eq!(h.buffered_bytes(), 0);
    drop(h);
    let again = Storage::open(dir.path(), &files, layout, false).unwrap();
    let progress = AtomicU64::new(0);
    let have = recheck(&again, &hashes, 2, &progress, &AtomicBool::new(false)).unwrap();
    assert!(have.is_full());
}

#[test]
fn recheck_of_pieces_larger_than_the_read_buffer() {
    // Pieces of 5 MiB (more than READ_BUF) across three files.
    let piece = 5 << 20;
    let fx = Fixture::with(piece, &[6 << 20, 1, 5 << 20]);
    let s = fx.open(true).unwrap();
    for p in [0, 2] {
        let blocks: Vec<Bytes> = fx.blocks(p).into_iter().map(|(_, d)| d).collect();
        s.write_piece(p, &blocks).unwrap();
    }
    let again = fx.open(true).unwrap();
    let progress = AtomicU64::new(0);
    let have = recheck(&again, &fx.hashes, 2, &progress, &AtomicBool::new(false)).unwrap();
    assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(progress.into_inner(), fx.layout.total_len());
}

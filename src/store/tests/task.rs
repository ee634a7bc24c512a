//! Tests of the store task through its handle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{replace_root_with_file, Fixture};
use crate::store::{spawn, StoreClosed, StoreConfig, StoreError, StoreEvent, StoreHandle};
use crate::types::{Bitfield, BlockRef, BLOCK_SIZE};

/// Generous bound so a broken store fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

struct Running {
    handle: StoreHandle,
    events: mpsc::Receiver<StoreEvent>,
    join: tokio::task::JoinHandle<Bitfield>,
}

fn start(fx: &Fixture, have: Bitfield, max_buffer: usize) -> Running {
    let storage = Arc::new(fx.open(true).unwrap());
    let (tx, events) = mpsc::channel(64);
    let config = StoreConfig {
        max_buffer,
        budget_cap: 1 << 20,
        hash_threads: 2,
        pool: None,
    };
    let (handle, join) = spawn(storage, Arc::new(fx.hashes.clone()), have, config, tx);
    Running {
        handle,
        events,
        join,
    }
}

async fn send(h: &StoreHandle, peer: u64, block: BlockRef, data: Bytes) -> Result<(), StoreClosed> {
    let r = h.reserve(block.len).await;
    h.write_block(peer, block, data, r)
}

async fn next(events: &mut mpsc::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("store event in time")
        .expect("event channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_blocks_with_duplicates_verify_every_piece() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 1 << 20);
    let mut all: Vec<(BlockRef, Bytes)> = (0..n).flat_map(|p| fx.blocks(p)).collect();
    all.reverse();
    let h = &run.handle;
    for (i, (b, d)) in all.iter().enumerate() {
        send(h, i as u64 % 3, *b, d.clone()).await.unwrap();
        // A duplicate of an earlier block and some blocks that are not layout blocks.
        let (db, dd) = &all[i / 2];
        send(h, 99, *db, dd.clone()).await.unwrap();
        let misaligned = BlockRef { offset: 1, ..*b };
        send(h, 98, misaligned, d.clone()).await.unwrap();
        let short = BlockRef { len: 10, ..*b };
        send(h, 98, short, d.slice(..10)).await.unwrap();
    }
    super::expect_all_verified(&mut run.events, n).await;
    fx.assert_files_written();
    assert_eq!(run.handle.buffered_bytes(), 0);
    // Uploads read back what was written, across files.
    let b = BlockRef {
        piece: 0,
        offset: 9000,
        len: 2000,
    };
    assert_eq!(
        run.handle.read_block(b).await.unwrap(),
        &fx.piece(0)[9000..11000]
    );
    let bad = BlockRef {
        piece: n,
        offset: 0,
        len: 1,
    };
    assert!(matches!(
        run.handle.read_block(bad).await,
        Err(StoreError::OutOfRange { .. })
    ));
    drop(run.handle);
    run.join.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_block_fails_with_contributors_and_writes_nothing() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 1 << 20);
    let blocks = fx.blocks(2);
    let mut bad = blocks[1].1.to_vec();
    bad[100] ^= 1;
    send(&run.handle, 7, blocks[0].0, blocks[0].1.clone())
        .await
        .unwrap();
    send(&run.handle, 9, blocks[1].0, Bytes::from(bad))
        .await
        .unwrap();
    match next(&mut run.events).await {
        StoreEvent::Failed { piece, mut peers } => {
            peers.sort();
            assert_eq!((piece, peers), (2, vec![7, 9]));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(fx.on_disk(2).iter().all(|&b| b == 0), "nothing written");
    assert_eq!(run.handle.buffered_bytes(), 0, "blocks dropped");
    // The piece can be downloaded again.
    for (b, d) in blocks {
        send(&run.handle, 11, b, d).await.unwrap();
    }
    assert!(matches!(
        next(&mut run.events).await,
        StoreEvent::Verified { piece: 2 }
    ));
    assert_eq!(fx.on_disk(2), fx.piece(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_of_pieces_we_have_are_ignored() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut have = Bitfield::new(n);
    have.set(0);
    let mut run = start(&fx, have, 1 << 20);
    for (b, _) in fx.blocks(0) {
        // Garbage: would fail the hash if it were considered.
        send(&run.handle, 1, b, Bytes::from(vec![0xAA; b.len as usize]))
            .await
            .unwrap();
    }
    for (b, d) in fx.blocks(1) {
        send(&run.handle, 1, b, d).await.unwrap();
    }
    assert!(matches!(
        next(&mut run.events).await,
        StoreEvent::Verified { piece: 1 }
    ));
    assert_eq!(run.handle.buffered_bytes(), 0);
    assert!(fx.on_disk(0).iter().all(|&b| b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_error_is_fatal_and_stops_the_store() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 1 << 20);
    replace_root_with_file(&fx.root());
    for (b, d) in fx.blocks(1) {
        send(&run.handle, 1, b, d).await.unwrap();
    }
    let err = match next(&mut run.events).await {
        StoreEvent::Fatal(e) => e,
        other => panic!("unexpected {other:?}"),
    };
    let msg = crate::error::error_chain(&err);
    let path = fx.file_path(2).display().to_string();
    assert!(
        msg.starts_with(&format!("opening for writing {path}: ")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("not a directory"), "{msg}");
    let (b, d) = fx.blocks(0).remove(0);
    assert_eq!(send(&run.handle, 1, b, d).await, Err(StoreClosed));
    assert_eq!(run.handle.buffered_bytes(), 0);
    drop(run.handle);
    tokio::time::timeout(PATIENCE, run.join)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_read_the_disk_cannot_serve_is_fatal() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 1 << 20);
    std::fs::remove_file(fx.file_path(0)).unwrap();
    let block = fx.blocks(0).remove(0).0;
    let read = run.handle.read_block(block).await.unwrap_err();
    let StoreEvent::Fatal(told) = next(&mut run.events).await else {
        panic!("expected Fatal")
    };
    assert_eq!(told.to_string(), read.to_string());
    // A request outside the torrent is the peer's fault, not the disk's: nothing is told.
    let bad = BlockRef {
        piece: n,
        offset: 0,
        len: 1,
    };
    assert!(run.handle.read_block(bad).await.is_err());
    assert!(run.events.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_of_a_bad_block_in_a_shared_piece_is_named_once_it_verifies() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 1 << 20);
    // Piece 1 from peers 1 and 2; peer 2's blocks are garbage.
    let blocks = fx.blocks(1);
    assert!(
        blocks.len() >= 2,
        "the fixture's piece 1 has several blocks"
    );
    for (i, (b, d)) in blocks.iter().enumerate() {
        let (peer, data) = if i % 2 == 1 {
            (2, Bytes::from(vec![0xEE; d.len()]))
        } else {
            (1, d.clone())
        };
        send(&run.handle, peer, *b, data).await.unwrap();
    }
    match next(&mut run.events).await {
        StoreEvent::Failed {
            piece: 1,
            mut peers,
        } => {
            peers.sort();
            assert_eq!(peers, [1, 2]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Peer 3 sends it right: verified, and peer 2 is named, not peer 1.
    for (b, d) in fx.blocks(1) {
        send(&run.handle, 3, b, d).await.unwrap();
    }
    assert!(matches!(
        next(&mut run.events).await,
        StoreEvent::Verified { piece: 1 }
    ));
    match next(&mut run.events).await {
        StoreEvent::CorruptSenders { piece: 1, peers } => assert_eq!(peers, [2]),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fx.on_disk(1), fx.piece(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_holds_reservations_until_a_piece_is_written() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let mut run = start(&fx, Bitfield::new(n), 2 * BLOCK_SIZE as usize);
    let blocks = fx.blocks(0);
    let r1 = run.handle.reserve(BLOCK_SIZE).await;
    let r2 = run.handle.reserve(BLOCK_SIZE).await;
    assert_eq!(run.handle.buffered_bytes(), 2 * BLOCK_SIZE as usize);
    assert!(run.handle.try_reserve(1).is_none());
    let h = run.handle.clone();
    let third = tokio::spawn(async move { h.reserve(BLOCK_SIZE).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!third.is_finished(), "budget is spent");
    run.handle
        .write_block(1, blocks[0].0, blocks[0].1.clone(), r1)
        .unwrap();
    run.handle
        .write_block(2, blocks[1].0, blocks[1].1.clone(), r2)
        .unwrap();
    assert!(matches!(
        next(&mut run.events).await,
        StoreEvent::Verified { piece: 0 }
    ));
    let r3 = tokio::time::timeout(PATIENCE, third)
        .await
        .expect("reserve completes once the piece is written")
        .unwrap();
    assert_eq!(r3.len(), BLOCK_SIZE as usize);
    assert_eq!(fx.on_disk(0), fx.piece(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handles_flushes_complete_pieces() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let run = start(&fx, Bitfield::new(n), 1 << 20);
    for p in 0..n {
        for (b, d) in fx.blocks(p) {
            send(&run.handle, 1, b, d).await.unwrap();
        }
    }
    drop(run.handle);
    tokio::time::timeout(PATIENCE, run.join)
        .await
        .unwrap()
        .unwrap();
    for i in 0..fx.files.len() {
        assert_eq!(std::fs::read(fx.file_path(i)).unwrap(), fx.expected_file(i));
    }
    let mut events = run.events;
    let mut count = 0;
    while let Ok(ev) = events.try_recv() {
        assert!(matches!(ev, StoreEvent::Verified { .. }));
        count += 1;
    }
    assert_eq!(count, n);
}

#[tokio::test]
async fn the_budget_grows_and_never_shrinks() {
    let fx = Fixture::new();
    let n = fx.layout.num_pieces();
    let run = start(&fx, Bitfield::new(n), 64 * 1024);
    let h = &run.handle;
    let held = h.try_reserve(64 * 1024).expect("the whole budget");
    assert!(h.try_reserve(1).is_none(), "spent");
    h.grow_budget(96 * 1024);
    let more = h.try_reserve(32 * 1024).expect("the grown part");
    assert!(h.try_reserve(1).is_none());
    assert_eq!(h.buffered_bytes(), 96 * 1024);
    h.grow_budget(16 * 1024); // lower: ignored
    drop((held, more));
    assert_eq!(h.buffered_bytes(), 0);
    assert!(h.try_reserve(96 * 1024).is_some());
}

//! Real sockets on 127.0.0.x: swarm seeding to swarm, many seeders, odd multi-file
//! layouts, a lying peer, resume after a stop, and two leechers trading halves.

mod common;

use std::sync::Arc;

use common::*;
use swarm::session::Mode;
use swarm::types::Bitfield;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seeder_one_leecher() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "movie.bin", &[("", 3 * 1024 * 1024 + 777)], 1);
    let meta = make_torrent(&content, 64 * 1024);
    let seed = Running::seed(&meta, src.path(), ip(2)).await;

    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![seed.addr.unwrap()]).await;
    let summary = leech.finish().await.expect("download failed");
    assert!(summary.complete);
    assert_eq!(summary.stats.downloaded, meta.total_length());
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    let seeded = seed.stop().await;
    assert_eq!(seeded.stats.uploaded, meta.total_length());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_seeders_one_leecher_all_contribute() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "big.bin", &[("", 8 * 1024 * 1024)], 2);
    let meta = make_torrent(&content, 32 * 1024);
    let mut seeds = Vec::new();
    for last in [2, 3, 4] {
        seeds.push(Running::seed(&meta, src.path(), ip(last)).await);
    }
    let out = tempfile::tempdir().unwrap();
    let peers = seeds.iter().map(|s| s.addr.unwrap()).collect();
    let leech = Running::fetch(&meta, out.path(), ip(1), peers).await;
    let summary = leech.finish().await.expect("download failed");
    assert!(summary.complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    let mut total = 0;
    for s in seeds {
        let up = s.stop().await.stats.uploaded;
        assert!(up > 0, "every seeder sent blocks");
        total += up;
    }
    assert!(total >= meta.total_length());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_unaligned_with_short_last_piece() {
    let src = tempfile::tempdir().unwrap();
    let files = [
        ("a/one.txt", 10_000),
        ("a/empty", 0),
        ("a/b/two.bin", 70_001),
        ("three.dat", 33_333),
        ("z/last", 1),
    ];
    let content = make_content(src.path(), "album", &files, 3);
    let meta = make_torrent(&content, 32 * 1024);
    assert!(meta.multi_file);
    assert_ne!(meta.total_length() % meta.piece_length as u64, 0);
    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![seed.addr.unwrap()]).await;
    assert!(leech.finish().await.unwrap().complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    assert!(out.path().join("album/a/empty").exists());
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liar_is_banned_and_output_is_correct() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 2 * 1024 * 1024)], 4);
    let meta = make_torrent(&content, 32 * 1024);
    let data = Arc::new(concat_content(&meta, src.path()));
    let n = meta.num_pieces();
    let liar = FakePeer::start(&meta, data, Bitfield::full(n), Behaviour::Liar, ip(3)).await;
    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let out = tempfile::tempdir().unwrap();
    // The liar is listed first so it is surely asked for blocks.
    let leech = Running::fetch(
        &meta,
        out.path(),
        ip(1),
        vec![liar.addr, seed.addr.unwrap()],
    )
    .await;
    let summary = leech.finish().await.expect("download failed");
    assert!(summary.complete);
    assert!(summary.stats.failed_pieces >= 1, "the liar's pieces failed");
    assert_eq!(summary.stats.peers_banned, 1, "the liar was banned");
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_download_resumes_without_refetching() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "resume.bin", &[("", 4 * 1024 * 1024)], 5);
    let meta = make_torrent(&content, 64 * 1024);
    let n = meta.num_pieces();
    let data = Arc::new(concat_content(&meta, src.path()));
    // A peer that has only the first quarter: the leecher gets exactly that, then waits.
    let mut quarter = Bitfield::new(n);
    for i in 0..n / 4 {
        quarter.set(i);
    }
    let partial = FakePeer::start(&meta, data, quarter, Behaviour::Honest, ip(3)).await;
    let out = tempfile::tempdir().unwrap();
    let mut first = Running::fetch(&meta, out.path(), ip(1), vec![partial.addr]).await;
    let quarter_bytes = meta.total_length() / 4;
    first.wait_verified(quarter_bytes).await;
    let stopped = first.stop().await;
    assert!(!stopped.complete);
    drop(partial);

    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let second = Running::fetch(&meta, out.path(), ip(1), vec![seed.addr.unwrap()]).await;
    let summary = second.finish().await.expect("resume failed");
    assert!(summary.complete);
    assert_eq!(summary.resumed_bytes, quarter_bytes);
    assert_eq!(
        summary.stats.downloaded,
        meta.total_length() - quarter_bytes,
        "verified pieces were not fetched again"
    );
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    seed.stop().await;
}

/// Write the torrent's content into `dir` with every piece not in `keep` zeroed.
fn partial_copy(
    meta: &swarm::metainfo::Metainfo,
    data: &[u8],
    dir: &std::path::Path,
    keep: impl Fn(u32) -> bool,
) {
    let mut copy = data.to_vec();
    for p in 0..meta.num_pieces() {
        if !keep(p) {
            let start = meta.layout.piece_start(p) as usize;
            let end = start + meta.layout.piece_size(p) as usize;
            copy[start..end].fill(0);
        }
    }
    let mut pos = 0;
    for f in &meta.files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &copy[pos..pos + f.length as usize]).unwrap();
        pos += f.length as usize;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_half_leechers_trade_without_a_seeder() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "halves.bin", &[("", 2 * 1024 * 1024 + 5)], 6);
    let meta = make_torrent(&content, 32 * 1024);
    let data = concat_content(&meta, src.path());
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    partial_copy(&meta, &data, a_dir.path(), |p| p % 2 == 0);
    partial_copy(&meta, &data, b_dir.path(), |p| p % 2 == 1);

    let b = Running::start(
        &meta,
        b_dir.path(),
        Mode::Fetch { seed: true },
        ip(3),
        vec![],
        test_config(),
    )
    .await;
    // Both keep seeding after they complete, so neither leaves the other short.
    let mut a = Running::start(
        &meta,
        a_dir.path(),
        Mode::Fetch { seed: true },
        ip(2),
        vec![b.addr.unwrap()],
        test_config(),
    )
    .await;
    let mut b = b;
    a.wait_verified(meta.total_length()).await;
    b.wait_verified(meta.total_length()).await;
    let a_sum = a.stop().await;
    let b_sum = b.stop().await;
    assert!(a_sum.complete && b_sum.complete);
    assert_eq!(hash_tree(&meta, a_dir.path()), hash_tree(&meta, src.path()));
    assert_eq!(hash_tree(&meta, b_dir.path()), hash_tree(&meta, src.path()));
    // Each uploaded the half the other lacked: both directions carried data.
    assert!(a_sum.stats.uploaded > 0 && b_sum.stats.uploaded > 0);
    assert_eq!(
        a_sum.stats.downloaded + b_sum.stats.downloaded,
        meta.total_length()
    );
}

/// Found by interop (every `swarm fetch --peer` against libtorrent took a second longer
/// than its transfer): the `--peer` addresses were dialled only at the driver's first
/// one-second tick. On a paused clock, time moves only when the runtime idles and then
/// jumps to the next timer, so a dial before the first tick arrives at virtual time zero.
#[tokio::test(start_paused = true)]
async fn given_peers_are_dialled_before_the_first_tick() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "x.bin", &[("", 100_000)], 9);
    let meta = make_torrent(&content, 16 * 1024);
    let listener = tokio::net::TcpListener::bind((ip(3), 0)).await.unwrap();
    let peer = listener.local_addr().unwrap();
    let t0 = tokio::time::Instant::now();
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![peer]).await;
    let started = t0.elapsed();
    let (_sock, _) = tokio::time::timeout(TEST_TIMEOUT, listener.accept())
        .await
        .expect("never dialled")
        .unwrap();
    let dialled = t0.elapsed();
    assert!(
        dialled - started < std::time::Duration::from_millis(500),
        "dialled {dialled:?} after start (listening at {started:?}): waited for a tick"
    );
    drop(leech);
}

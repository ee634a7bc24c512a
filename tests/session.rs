//! The session layer on real loopback sockets: many torrents on one port, routing by
//! info-hash, pause/resume/remove, and resume data (trusted when it matches the files,
//! a full recheck when it does not).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarm::config::SessionConfig;
use swarm::metainfo::Metainfo;
use swarm::session::{Mode, Session, Status, Summary, TorrentHandle};
use swarm::snapshot::Phase;
use swarm::state::StateDir;
use swarm::types::{Bitfield, InfoHash, PeerId};
use swarm::wire::Handshake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A session on `bind` with resume data in `state` (if any).
async fn session(bind: std::net::IpAddr, state: Option<&Path>) -> Session {
    let cfg = test_config();
    Session::start(SessionConfig {
        bind,
        state_dir: state.map(Path::to_path_buf),
        ..cfg.session
    })
    .await
    .expect("session did not start")
}

async fn add(
    s: &Session,
    meta: &Arc<Metainfo>,
    dir: &Path,
    mode: Mode,
    peers: Vec<std::net::SocketAddr>,
) -> TorrentHandle {
    let cfg = test_config();
    let spec = spec(
        meta,
        dir,
        mode,
        peers,
        vec![],
        &cfg.torrent,
        cfg.peer_timeout,
    );
    s.add(spec).await.expect("torrent not added")
}

/// Waits until the torrent is past checking (seeding or downloading), or fails.
async fn wait_phase(h: &mut TorrentHandle, want: Phase) {
    tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            if h.snapshot.borrow_and_update().phase == want {
                return;
            }
            if let Status::Finished(r) = &*h.status.borrow() {
                panic!("torrent ended: {:?}", r.as_ref().as_ref().err());
            }
            tokio::select! {
                _ = h.snapshot.changed() => {}
                _ = h.status.changed() => {}
            }
        }
    })
    .await
    .expect("torrent did not reach its phase in time");
}

/// The summary of the torrent's run, once it ends; panics (with the cause) if it failed.
async fn summary(h: &mut TorrentHandle) -> Summary {
    let r = tokio::time::timeout(TEST_TIMEOUT, h.finished())
        .await
        .expect("the torrent did not finish in time")
        .expect("the torrent was removed");
    match &*r {
        Ok(s) => s.clone(),
        Err(e) => panic!("torrent failed: {}", swarm::error::error_chain(e)),
    }
}

async fn wait_status(h: &mut TorrentHandle, want: fn(&Status) -> bool) {
    tokio::time::timeout(TEST_TIMEOUT, async {
        while !want(&h.status.borrow_and_update()) {
            h.status.changed().await.expect("session gone");
        }
    })
    .await
    .expect("status not reached in time");
}

fn content(dir: &Path, name: &str, size: usize, seed: u64) -> Arc<Metainfo> {
    let path = make_content(dir, name, &[("", size)], seed);
    make_torrent(&path, 32 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_seeds_three_torrents_on_one_port() {
    let src = tempfile::tempdir().unwrap();
    let metas: Vec<_> = (0..3)
        .map(|i| {
            content(
                src.path(),
                &format!("t{i}.bin"),
                700_000 + i * 1000,
                40 + i as u64,
            )
        })
        .collect();
    let seeder = session(ip(2), None).await;
    let mut seeds = Vec::new();
    for m in &metas {
        let mut h = add(&seeder, m, src.path(), Mode::Seed, vec![]).await;
        wait_phase(&mut h, Phase::Seeding).await;
        seeds.push(h);
    }
    let at = seeder.local_addr();

    // A handshake for a torrent the session does not have is closed, and counted.
    let mut sock = tokio::net::TcpStream::connect(at).await.unwrap();
    let stranger = Handshake::new(InfoHash([7; 20]), PeerId(*b"-XX0001-strangerxxxx"));
    sock.write_all(&stranger.to_bytes()).await.unwrap();
    let mut buf = [0u8; 68];
    let n = tokio::time::timeout(TEST_TIMEOUT, sock.read(&mut buf))
        .await
        .expect("unknown info-hash not closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "got an answer for an unknown torrent");
    assert_eq!(seeder.stats().await.unknown_info_hash, 1);

    // Every torrent is served on the same port.
    for m in &metas {
        let out = tempfile::tempdir().unwrap();
        let leech = Running::fetch(m, out.path(), ip(1), vec![at]).await;
        assert!(leech.finish().await.expect("download failed").complete);
        assert_eq!(hash_tree(m, out.path()), hash_tree(m, src.path()));
    }
    let stats = seeder.stats().await;
    assert!(stats.routed >= 3, "{stats:?}");
    seeder.shutdown().await;
    for mut h in seeds {
        let s = summary(&mut h).await;
        assert_eq!(
            s.stats.uploaded, s.stats.verified_bytes,
            "each torrent served once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_downloads_one_with_a_liar_both_complete() {
    let src = tempfile::tempdir().unwrap();
    let a = content(src.path(), "a.bin", 1 << 20, 50);
    let b = content(src.path(), "b.bin", 1 << 20, 51);
    // The honest seed is slow (256 KiB/s for both torrents), so B cannot be fetched from
    // it alone before the liar is asked, however loaded the machine.
    let cfg = test_config();
    let seeder = Session::start(SessionConfig {
        bind: ip(2),
        max_upload_rate: Some(256 << 10),
        ..cfg.session
    })
    .await
    .expect("session did not start");
    for m in [&a, &b] {
        let mut h = add(&seeder, m, src.path(), Mode::Seed, vec![]).await;
        wait_phase(&mut h, Phase::Seeding).await;
    }
    // A second "seed" that serves A honestly and garbage for B.
    let fake = |m: &Arc<Metainfo>, behaviour| FakeTorrent {
        meta: m.clone(),
        data: Arc::new(concat_content(m, src.path())),
        has: Bitfield::full(m.num_pieces()),
        behaviour,
    };
    let liar = FakePeer::start_multi(
        vec![fake(&a, Behaviour::Honest), fake(&b, Behaviour::Liar)],
        ip(3),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let leecher = session(ip(1), None).await;
    let peers = vec![seeder.local_addr(), liar.addr];
    let mut ha = add(
        &leecher,
        &a,
        out.path(),
        Mode::Fetch { seed: false },
        peers.clone(),
    )
    .await;
    let mut hb = add(&leecher, &b, out.path(), Mode::Fetch { seed: false }, peers).await;
    let (sa, sb) = (summary(&mut ha).await, summary(&mut hb).await);
    assert!(sa.complete && sb.complete);
    assert_eq!(sa.stats.failed_pieces, 0, "A had no liar");
    assert!(sb.stats.failed_pieces > 0, "B's liar was never asked");
    assert_eq!(hash_tree(&a, out.path()), hash_tree(&a, src.path()));
    assert_eq!(hash_tree(&b, out.path()), hash_tree(&b, src.path()));
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_remove_one_torrent_while_another_runs() {
    let src = tempfile::tempdir().unwrap();
    let a = content(src.path(), "a.bin", 600_000, 60);
    let b = content(src.path(), "b.bin", 600_000, 61);
    let seeder = session(ip(2), None).await;
    let mut sa = add(&seeder, &a, src.path(), Mode::Seed, vec![]).await;
    let mut sb = add(&seeder, &b, src.path(), Mode::Seed, vec![]).await;
    wait_phase(&mut sa, Phase::Seeding).await;
    wait_phase(&mut sb, Phase::Seeding).await;

    // Paused, B takes no connections; A still serves.
    assert!(seeder.pause(b.info_hash).await);
    wait_status(&mut sb, |s| matches!(s, Status::Paused)).await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&a, out.path(), ip(1), vec![seeder.local_addr()]).await;
    assert!(leech.finish().await.unwrap().complete);
    let before = seeder.stats().await.unknown_info_hash;
    let mut cfg = test_config();
    cfg.peer_timeout = Some(Duration::from_secs(2));
    let out_b = tempfile::tempdir().unwrap();
    let mode = Mode::Fetch { seed: false };
    let addr = vec![seeder.local_addr()];
    let refused = Running::start(&b, out_b.path(), mode, ip(1), addr.clone(), cfg).await;
    assert!(refused.finish().await.is_err(), "a paused torrent served");
    assert!(seeder.stats().await.unknown_info_hash > before);

    // Resumed, it serves again.
    assert!(seeder.resume(b.info_hash).await);
    wait_phase(&mut sb, Phase::Seeding).await;
    let leech = Running::fetch(&b, out_b.path(), ip(1), addr).await;
    assert!(leech.finish().await.unwrap().complete);
    assert_eq!(hash_tree(&b, out_b.path()), hash_tree(&b, src.path()));

    // Removed, it is gone; A is untouched.
    assert!(seeder.remove(b.info_hash).await);
    wait_status(&mut sb, |s| matches!(s, Status::Removed)).await;
    assert!(!seeder.resume(b.info_hash).await);
    assert!(matches!(*sa.status.borrow(), Status::Running));
    seeder.shutdown().await;
}

/// What the session's first start-up check hashed.
fn checked(h: &TorrentHandle) -> u64 {
    h.snapshot.borrow().checked_bytes
}

/// Seeds `meta` from `dir` with resume data in `state` until it is seeding; returns the
/// bytes its start-up check hashed, then stops it cleanly.
async fn seed_once(meta: &Arc<Metainfo>, dir: &Path, state: &Path) -> u64 {
    let s = session(ip(2), Some(state)).await;
    let mut h = add(&s, meta, dir, Mode::Seed, vec![]).await;
    wait_phase(&mut h, Phase::Seeding).await;
    let hashed = checked(&h);
    s.shutdown().await;
    hashed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_torrent_restarts_without_reading_its_data() {
    let src = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let meta = content(src.path(), "r.bin", 2 << 20, 70);
    assert_eq!(
        seed_once(&meta, src.path(), state.path()).await,
        meta.total_length()
    );
    // Second start: the record matches the file; nothing is hashed.
    let s = session(ip(2), Some(state.path())).await;
    let mut h = add(&s, &meta, src.path(), Mode::Seed, vec![]).await;
    wait_phase(&mut h, Phase::Seeding).await;
    assert_eq!(checked(&h), 0, "the data was re-hashed");
    // And it serves the right bytes.
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![s.local_addr()]).await;
    assert!(leech.finish().await.unwrap().complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    s.shutdown().await;
}

fn record_path(state: &Path, meta: &Metainfo) -> std::path::PathBuf {
    StateDir::open(state).unwrap().resume_path(&meta.info_hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_match_means_a_full_recheck() {
    type Spoil = fn(record: &Path, data: &Path);
    let cases: [(&str, Spoil); 3] = [
        ("wrong mtime", |_, data| {
            let f = std::fs::File::options().write(true).open(data).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            f.set_modified(t).unwrap();
        }),
        ("truncated record", |record, _| {
            let bytes = std::fs::read(record).unwrap();
            std::fs::write(record, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("garbage record", |record, _| {
            std::fs::write(record, b"d5:helloi1ee garbage \xff\x00").unwrap();
        }),
    ];
    for (what, spoil) in cases {
        let src = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let meta = content(src.path(), "s.bin", 1 << 20, 80);
        seed_once(&meta, src.path(), state.path()).await;
        spoil(&record_path(state.path(), &meta), &src.path().join("s.bin"));
        let hashed = seed_once(&meta, src.path(), state.path()).await;
        assert_eq!(hashed, meta.total_length(), "{what}: no full recheck");
        // The recheck wrote a good record again.
        assert_eq!(
            seed_once(&meta, src.path(), state.path()).await,
            0,
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortened_file_is_rechecked_and_downloaded_again() {
    let src = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let meta = content(src.path(), "cut.bin", 1 << 20, 90);
    let out = tempfile::tempdir().unwrap();
    // A complete download with resume data.
    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let leecher = session(ip(1), Some(state.path())).await;
    let peers = vec![seed.addr.unwrap()];
    let mut h = add(
        &leecher,
        &meta,
        out.path(),
        Mode::Fetch { seed: false },
        peers.clone(),
    )
    .await;
    assert!(summary(&mut h).await.complete);
    leecher.shutdown().await;
    // Someone cuts the file in half: the record no longer matches, the missing half is
    // fetched again, and nothing wrong is trusted.
    let f = std::fs::File::options()
        .write(true)
        .open(out.path().join("cut.bin"))
        .unwrap();
    f.set_len(meta.total_length() / 2).unwrap();
    drop(f);
    let leecher = session(ip(1), Some(state.path())).await;
    let mut h = add(
        &leecher,
        &meta,
        out.path(),
        Mode::Fetch { seed: false },
        peers,
    )
    .await;
    let s = summary(&mut h).await;
    assert!(s.complete);
    assert_eq!(s.resumed_bytes, meta.total_length() / 2);
    assert_eq!(
        s.stats.downloaded,
        meta.total_length() - meta.total_length() / 2
    );
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    leecher.shutdown().await;
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_download_resumes_from_its_record() {
    let src = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let meta = content(src.path(), "half.bin", 2 << 20, 100);
    let n = meta.num_pieces();
    let data = Arc::new(concat_content(&meta, src.path()));
    let mut first_half = Bitfield::new(n);
    (0..n / 2).for_each(|i| {
        first_half.set(i);
    });
    let partial = FakePeer::start(&meta, data, first_half, Behaviour::Honest, ip(3)).await;
    let out = tempfile::tempdir().unwrap();
    let s = session(ip(1), Some(state.path())).await;
    let mode = Mode::Fetch { seed: false };
    let mut h = add(&s, &meta, out.path(), mode, vec![partial.addr]).await;
    let half = meta.layout.piece_start(n / 2);
    tokio::time::timeout(TEST_TIMEOUT, async {
        while h.snapshot.borrow_and_update().stats.verified_bytes < half {
            h.snapshot.changed().await.unwrap();
        }
    })
    .await
    .expect("first half not downloaded");
    s.shutdown().await;
    drop(partial);

    let seed = Running::seed(&meta, src.path(), ip(2)).await;
    let s = session(ip(1), Some(state.path())).await;
    let mut h = add(&s, &meta, out.path(), mode, vec![seed.addr.unwrap()]).await;
    let sum = summary(&mut h).await;
    assert_eq!(checked(&h), 0, "the record was not trusted");
    assert_eq!(sum.resumed_bytes, half);
    assert_eq!(sum.stats.downloaded, meta.total_length() - half);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    s.shutdown().await;
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ratio_goal_counts_earlier_runs() {
    let src = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let meta = content(src.path(), "ratio.bin", 1 << 20, 110);
    // First run: one full copy uploaded.
    let s = session(ip(2), Some(state.path())).await;
    let mut h = add(&s, &meta, src.path(), Mode::Seed, vec![]).await;
    wait_phase(&mut h, Phase::Seeding).await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![s.local_addr()]).await;
    assert!(leech.finish().await.unwrap().complete);
    s.shutdown().await;
    // Second run with a ratio goal of 1: already met, so it ends without uploading.
    let s = session(ip(2), Some(state.path())).await;
    let mut cfg = test_config();
    cfg.torrent.seed_ratio = Some(1.0);
    let spec = spec(
        &meta,
        src.path(),
        Mode::Seed,
        vec![],
        vec![],
        &cfg.torrent,
        None,
    );
    let mut h = s.add(spec).await.unwrap();
    // Not met, it would seed on until the test's timeout.
    let sum = summary(&mut h).await;
    assert!(sum.complete && !sum.stopped);
    assert_eq!(sum.stats.uploaded, 0);
    assert_eq!(sum.before.uploaded, meta.total_length());
    s.shutdown().await;
}

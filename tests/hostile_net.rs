//! Hostile peers on real loopback sockets (issue 11, items 2 and 5): a flood of half-open
//! connections must not keep an honest leecher out, and connections flooding extension
//! messages must not stop an honest download; they are dropped. Scripted attackers bind
//! their own 127.0.0.x source addresses; every wait is bounded, no timing is asserted.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarm::metainfo::Metainfo;
use swarm::session::{Mode, SessionStats};
use swarm::wire::{Handshake, MAX_EXTENDED_FRAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long one attacking connection may live before the test calls it "not dropped":
/// far under the 120 s idle timeout, so a drop is the guard's doing.
const DROP_BOUND: Duration = Duration::from_secs(60);

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(TEST_TIMEOUT, s.connect(to))
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

/// Polls the seed's session counters until `ok` holds (bounded).
async fn wait_stats(seed: &Running, ok: impl Fn(&SessionStats) -> bool) -> SessionStats {
    tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            let s = seed.session.stats().await;
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("session counters never got there")
}

fn torrent(src: &std::path::Path, size: usize) -> Arc<Metainfo> {
    let content = make_content(src, "data.bin", &[("", size)], 11);
    make_torrent(&content, 256 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_leecher_is_served_through_a_half_open_flood() {
    let src = tempfile::tempdir().unwrap();
    let meta = torrent(src.path(), 2 << 20);
    // Long handshake limits, so that every flood connection stays until evicted and the
    // counts below do not depend on how fast this machine is.
    let mut cfg = test_config();
    cfg.session.silent_timeout = Duration::from_secs(100);
    cfg.session.handshake_timeout = Duration::from_secs(100);
    let max = cfg.session.max_half_open;
    let per_ip = cfg.session.max_half_open_per_ip;
    let seed = Running::start(&meta, src.path(), Mode::Seed, ip(1), vec![], cfg).await;
    let at = seed.addr.unwrap();

    // 300 connections that never send a byte, from 50 addresses (6 each, under the
    // per-address cap): the table fills, then each newcomer evicts the oldest.
    let mut flood = Vec::new();
    for i in 0..300u32 {
        flood.push(connect_from(ip(10 + (i % 50) as u8), at).await);
    }
    let s = wait_stats(&seed, |s| s.half_open_evicted >= 300 - max as u64).await;
    assert_eq!(s.half_open_refused, 0, "{s:?}");

    // One address gets no more than its share.
    for _ in 0..per_ip + 3 {
        flood.push(connect_from(ip(250), at).await);
    }
    wait_stats(&seed, |s| s.half_open_refused >= 3).await;

    // The flood is still there: the honest leecher is served all the same.
    Running::fetch_exactly(&meta, src.path(), ip(2), vec![at], test_config()).await;
    let s = seed.session.stats().await;
    assert!(s.routed >= 1, "{s:?}");
    assert!(s.half_open_evicted > 300 - max as u64, "{s:?}");
    drop(flood);
    seed.stop().await;
}

/// One extended message (id 20) frame: `ext` id, then `payload`.
fn ext_frame(ext: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
    f.push(20);
    f.push(ext);
    f.extend_from_slice(payload);
    f
}

/// A valid extension handshake of `len` bytes that is as costly to decode as it can be:
/// a list of tiny integers, one value per three bytes.
fn costly_handshake(len: usize) -> Vec<u8> {
    let mut p = b"d3:zzzl".to_vec();
    while p.len() + 3 + 11 < len {
        p.extend_from_slice(b"i0e");
    }
    p.extend_from_slice(b"e4:reqqi1ee");
    p
}

/// Connects again and again, each time sending the handshake and then `frame` in a loop
/// until the seed drops the connection; returns how many connections were dropped. Each
/// must be dropped within [`DROP_BOUND`].
async fn attacker(
    from: IpAddr,
    at: SocketAddr,
    meta: Arc<Metainfo>,
    frame: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> u32 {
    let mut drops = 0;
    while !stop.load(Ordering::Relaxed) {
        let sock = connect_from(from, at).await;
        let (mut rd, mut wr) = sock.into_split();
        let hs = Handshake::new(
            meta.info_hash,
            swarm::types::PeerId(*b"-EV0001-extfloodxxxx"),
        );
        let write = async {
            let _ = wr.write_all(&hs.to_bytes()).await;
            while wr.write_all(&frame).await.is_ok() {}
        };
        let read = async {
            let mut b = vec![0u8; 64 * 1024];
            while matches!(rd.read(&mut b).await, Ok(n) if n > 0) {}
        };
        let dropped = tokio::time::timeout(DROP_BOUND, async {
            tokio::select! {
                _ = write => {}
                _ = read => {}
            }
        })
        .await;
        assert!(dropped.is_ok(), "attacker from {from} was not dropped");
        drops += 1;
        // Not a busy loop: the seed must also serve the honest leecher on two cores.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_floods_are_dropped_and_the_honest_download_completes() {
    let src = tempfile::tempdir().unwrap();
    let meta = torrent(src.path(), 8 << 20);
    let seed = Running::seed(&meta, src.path(), ip(1)).await;
    let at = seed.addr.unwrap();

    // The worst case of the original report: 256 KiB, four times the cap.
    let over_cap = ext_frame(0, &costly_handshake(256 * 1024));
    // Four (the cap) are accepted, the fifth ends the connection.
    let repeated: Vec<u8> = ext_frame(0, &costly_handshake(MAX_EXTENDED_FRAME - 2));
    let small_flood: Vec<u8> = (0..64).flat_map(|_| ext_frame(3, b"d1:ai1ee")).collect();
    let not_bencode = ext_frame(0, &vec![b'x'; 1000]);
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = [over_cap, repeated, small_flood, not_bencode]
        .into_iter()
        .enumerate()
        .map(|(i, frame)| {
            let (meta, stop) = (meta.clone(), stop.clone());
            tokio::spawn(attacker(ip(20 + i as u8), at, meta, frame, stop))
        })
        .collect();

    Running::fetch_exactly(&meta, src.path(), ip(2), vec![at], test_config()).await;

    stop.store(true, Ordering::Relaxed);
    for (i, a) in attackers.into_iter().enumerate() {
        let drops = tokio::time::timeout(TEST_TIMEOUT, a)
            .await
            .expect("attacker did not stop")
            .expect("attacker failed");
        eprintln!("attacker {i}: dropped {drops} times");
        assert!(drops >= 1, "attacker {i} was never dropped");
    }
    seed.stop().await;
}

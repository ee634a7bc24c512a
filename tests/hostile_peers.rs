//! Hostile peers and a hostile tracker against connection slots and the known-peer list
//! (issue 11, items 1 and 3), on real sockets on 127.0.0.x. Each test scripts the attacker,
//! then checks that the honest party is still served; every wait is bounded.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use common::*;
use swarm::metainfo::Metainfo;
use swarm::session::Mode;
use swarm::types::{Bitfield, PeerId};
use swarm::wire::{self, Handshake, Message};

fn content(pieces: usize) -> (tempfile::TempDir, Arc<Metainfo>) {
    let src = tempfile::tempdir().unwrap();
    let path = make_content(src.path(), "data", &[("data", pieces * 16384)], 11);
    let meta = make_torrent(&path, 16384);
    (src, meta)
}

/// A connection from `from` that completes the handshake, says it has nothing and is
/// interested, and then only sends keep-alives (for as long as the test runs).
async fn squatter(from: IpAddr, to: SocketAddr, meta: Arc<Metainfo>) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let Ok(mut s) = sock.connect(to).await else {
        return;
    };
    let mut id = *b"-SQ0001-squatsquat00";
    rand::Rng::fill(&mut rand::thread_rng(), &mut id[8..]);
    let hs = Handshake::new(meta.info_hash, PeerId(id));
    let mut out = BytesMut::new();
    wire::encode(
        &Message::Bitfield(Bitfield::new(meta.num_pieces())),
        &mut out,
    );
    wire::encode(&Message::Interested, &mut out);
    if s.write_all(&hs.to_bytes()).await.is_err() || s.write_all(&out).await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 64 * 1024];
    let keepalive = [0u8; 4];
    let _ = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            tokio::select! {
                r = s.read(&mut sink) => if !matches!(r, Ok(n) if n > 0) { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if s.write_all(&keepalive).await.is_err() { return }
                }
            }
        }
    })
    .await;
}

/// Waits until the seed has `n` peers connected.
async fn wait_peers(seed: &mut Running, n: usize) {
    tokio::time::timeout(TEST_TIMEOUT, async {
        while seed.snapshot.borrow_and_update().stats.peers_connected < n {
            seed.snapshot.changed().await.unwrap();
        }
    })
    .await
    .expect("squatters did not connect");
}

/// Item 1, as reviewed: 50 idle connections from one IP took every slot of a seed and
/// honest leechers got nothing. Now one IP holds only a few slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_ip_do_not_keep_leechers_out() {
    let (src, meta) = content(64);
    let mut seed = Running::seed(&meta, src.path(), ip(2)).await;
    let at = seed.addr.unwrap();
    let squatters: Vec<_> = (0..50)
        .map(|_| tokio::spawn(squatter(ip(9), at, meta.clone())))
        .collect();
    wait_peers(
        &mut seed,
        swarm::config::TorrentConfig::default().max_peers_per_ip,
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(1), vec![at]).await;
    let summary = leech.finish().await.expect("honest leecher was not served");
    assert_eq!(summary.stats.downloaded, meta.total_length());
    let stats = seed.snapshot.borrow().stats.clone();
    assert!(stats.peers_connected <= stats.peers_seen);
    squatters.iter().for_each(|t| t.abort());
    seed.stop().await;
}

/// Item 1 from many IPs: squatters fill every slot; once they have been useless for the
/// grace, a newcomer evicts one, and the seeding choker's idle-turn rule gets it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatters_from_many_ips_are_evicted_for_an_honest_leecher() {
    let (src, meta) = content(64);
    let mut cfg = test_config();
    cfg.torrent.max_peers = 20;
    cfg.torrent.outbound_reserve = 2;
    cfg.torrent.eviction_grace = Duration::from_secs(2);
    cfg.torrent.idle_turn = Duration::from_secs(1);
    cfg.torrent.rechoke_interval = Duration::from_secs(1);
    let mut seed = Running::start(&meta, src.path(), Mode::Seed, ip(2), vec![], cfg).await;
    let at = seed.addr.unwrap();
    let squatters: Vec<_> = (0..30u8)
        .map(|i| {
            tokio::spawn(squatter(
                IpAddr::from([127, 0, 1, 10 + i]),
                at,
                meta.clone(),
            ))
        })
        .collect();
    wait_peers(&mut seed, 18).await;
    let out = tempfile::tempdir().unwrap();
    let mut leech_cfg = test_config();
    // The seed refuses until a squatter has been useless for its grace: keep knocking.
    leech_cfg.torrent.reconnect_base = Duration::from_millis(500);
    let mode = Mode::Fetch { seed: false };
    let leech = Running::start(&meta, out.path(), mode, ip(1), vec![at], leech_cfg).await;
    let summary = leech.finish().await.expect("honest leecher was not served");
    assert_eq!(summary.stats.downloaded, meta.total_length());
    assert!(seed.snapshot.borrow().stats.peers_evicted >= 1);
    squatters.iter().for_each(|t| t.abort());
    seed.stop().await;
}

/// Item 1 as a leecher: 60 fake seeds that never unchoke, and the real seed listed last.
/// Turnover drops the useless ones and reaches the real seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_that_never_unchoke_do_not_starve_a_leecher() {
    let (src, meta) = content(64);
    let data = Arc::new(concat_content(&meta, src.path()));
    let full = Bitfield::full(meta.num_pieces());
    let mut fakes = Vec::new();
    for i in 0..60u8 {
        let bind = IpAddr::from([127, 0, 2, 10 + i]);
        let (d, f) = (data.clone(), full.clone());
        fakes.push(FakePeer::start(&meta, d, f, Behaviour::NeverUnchoke, bind).await);
    }
    let seed = Running::seed(&meta, src.path(), ip(4)).await;
    let mut peers: Vec<SocketAddr> = fakes.iter().map(|f| f.addr).collect();
    peers.push(seed.addr.unwrap());
    let mut cfg = test_config();
    cfg.torrent.eviction_grace = Duration::from_secs(2);
    cfg.torrent.turnover_interval = Duration::from_secs(2);
    let out = tempfile::tempdir().unwrap();
    let mode = Mode::Fetch { seed: false };
    let leech = Running::start(&meta, out.path(), mode, ip(1), peers, cfg).await;
    let summary = leech
        .finish()
        .await
        .expect("leecher never reached the real seed");
    assert_eq!(summary.stats.downloaded, meta.total_length());
    seed.stop().await;
}

/// A tracker on `bind` that answers every announce with `peers` (compact form).
async fn junk_tracker(
    bind: IpAddr,
    peers: Vec<SocketAddr>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((bind, 0)).await.unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let mut body = Vec::new();
    let mut compact = Vec::new();
    for p in &peers {
        if let SocketAddr::V4(v4) = p {
            compact.extend_from_slice(&v4.ip().octets());
            compact.extend_from_slice(&v4.port().to_be_bytes());
        }
    }
    body.extend_from_slice(format!("d8:intervali1800e5:peers{}:", compact.len()).as_bytes());
    body.extend_from_slice(&compact);
    body.push(b'e');
    let task = tokio::spawn(async move {
        while let Ok(Ok((mut s, _))) = tokio::time::timeout(TEST_TIMEOUT, listener.accept()).await {
            let body = body.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    read_head(&mut s).await?;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    s.write_all(head.as_bytes()).await?;
                    s.write_all(&body).await
                })
                .await;
            });
        }
    });
    (url, task)
}

async fn read_head(s: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Item 3, as reviewed: a tracker listing 1,990 dead addresses that sort before the real
/// seed kept the seed from ever being dialled (address order, ~10 dials a second, failed
/// addresses retried before it). Untried addresses now go first, in random order, and a
/// failed dial frees its attempt at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_listing_dead_addresses_cannot_hide_the_seed() {
    let (src, meta) = content(64);
    let seed = Running::seed(&meta, src.path(), ip(4)).await;
    // Nothing listens on these: each dial is refused at once.
    let mut peers: Vec<SocketAddr> = (1..1991u16)
        .map(|port| SocketAddr::new(ip(3), port))
        .collect();
    peers.push(seed.addr.unwrap());
    let (url, tracker) = junk_tracker(ip(5), peers).await;
    let out = tempfile::tempdir().unwrap();
    let mode = Mode::Fetch { seed: false };
    let leech = Running::start_with_trackers(
        &meta,
        out.path(),
        mode,
        ip(1),
        vec![],
        vec![vec![url]],
        test_config(),
    )
    .await;
    let summary = leech.finish().await.expect("the seed was never dialled");
    assert_eq!(summary.stats.downloaded, meta.total_length());
    tracker.abort();
    seed.stop().await;
}

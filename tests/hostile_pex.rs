//! A PEX flood against a leecher (issue 20, item 5): a peer the leecher dials sends
//! `ut_pex` messages every few milliseconds, each listing a thousand addresses — reserved
//! ones (unspecified, multicast, broadcast, class E, 0/8, port 0), the leecher's own
//! listening address, the attacker itself — and fresh dead loopback addresses. The leecher
//! must finish its download from the honest seed with correct data, keep its known-peer
//! list under its cap, take no more than one sender's PEX budget from the attacker however
//! often it is dropped and re-dialled, never dial a reserved address (a sentinel listens on the port the
//! reserved entries name: a dial to 0.0.0.0 lands on loopback), and dial itself at most
//! once (it learns its own address from that one dial). Loopback only; every wait bounded.

mod common;
mod hostile_support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{hash_tree, make_content, make_torrent, test_config, Running, TEST_TIMEOUT};
use hostile_support::*;
use swarm::session::Mode;
use swarm::wire::OUR_UT_PEX;
use tokio::io::AsyncWriteExt;

/// Addresses in one flood message: far over what the codec looks at (200 a list) and
/// what PEX accepts from one message (100).
const PER_MESSAGE: usize = 1000;
/// Pause between two flood messages: "every few ms", far over the 50 a second the guard
/// allows, so the flood is both a rate and a size attack.
const FLOOD_GAP: Duration = Duration::from_millis(5);
/// Flood messages the leecher must have been sent before the test looks: six times the
/// extension guard's burst (200), so its rate limit is reached, not just its burst, and the
/// leecher drops and re-dials the attacker several times.
const FLOOD_MESSAGES: usize = 1200;
/// Addresses PEX accepts from one sender address per 10-minute period
/// (`PexConfig::max_accept_per_period`), across its reconnections.
const PEX_BUDGET: usize = 200;

/// The `ut_pex` payload: `added` holds `addrs` in compact form (6 bytes each) with one
/// flags byte each, as BEP 11 lays it out.
fn pex_payload(addrs: &[SocketAddrV4]) -> Vec<u8> {
    let mut compact = Vec::with_capacity(addrs.len() * 6);
    for a in addrs {
        compact.extend_from_slice(&a.ip().octets());
        compact.extend_from_slice(&a.port().to_be_bytes());
    }
    let mut p = format!("d5:added{}:", compact.len()).into_bytes();
    p.extend_from_slice(&compact);
    p.extend_from_slice(format!("7:added.f{}:", addrs.len()).as_bytes());
    p.extend(std::iter::repeat_n(0x10u8, addrs.len()));
    p.push(b'e');
    p
}

/// Reserved entries, all naming `port` (where the sentinels listen), plus port-0 ones.
fn reserved(port: u16) -> Vec<SocketAddrV4> {
    let ips = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [224, 0, 0, 1],
        [239, 255, 255, 250],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
    ];
    let mut v: Vec<_> = ips
        .iter()
        .map(|o| SocketAddrV4::new(Ipv4Addr::from(*o), port))
        .collect();
    v.push(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 0));
    v.push(SocketAddrV4::new(Ipv4Addr::new(127, 9, 9, 9), 0));
    v
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("loopback tests are IPv4"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pex_flood_of_reserved_and_own_addresses_is_bounded_and_the_download_completes() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 8 << 20)], 21);
    let meta = make_torrent(&content, 256 * 1024);
    let seed = Running::seed(&meta, src.path(), ip(1)).await;
    let seed_at = seed.addr.unwrap();

    // Sentinels on the port every reserved entry names, on the two loopback addresses a
    // dial to 0.0.0.0 can land on (the leecher binds its dials to 127.0.0.2).
    let sentinel = Sentinel::bind(SocketAddr::new(ip(1), 0)).await.unwrap();
    let port = sentinel.addr.port();
    let sentinel2 = Sentinel::bind(SocketAddr::new(ip(2), port)).await.ok();

    // The leecher's own address, known once it has started; the attacker waits for it.
    let own: Arc<OnceLock<SocketAddrV4>> = Arc::new(OnceLock::new());
    let sent = Arc::new(AtomicUsize::new(0));
    let script: Script = {
        let (own, sent, info_hash) = (own.clone(), sent.clone(), meta.info_hash);
        Arc::new(move |conn, mut s| {
            let (own, sent) = (own.clone(), sent.clone());
            Box::pin(async move {
                if read_exact(&mut s, 68).await.is_none() {
                    return;
                }
                let me = v4(s.local_addr().unwrap());
                let ext_hs = format!("d1:md6:ut_pexi1ee1:pi{}ee", me.port());
                let mut hello = handshake(info_hash, b"pexfloodpexf").to_vec();
                hello.extend(ext_frame(0, ext_hs.as_bytes()));
                if s.write_all(&hello).await.is_err() {
                    return;
                }
                let ok = eventually(TEST_TIMEOUT, || own.get().is_some()).await;
                let own = *own.get().filter(|_| ok).expect("leecher address");
                let (mut rd, mut wr) = s.into_split();
                let read = async {
                    let mut b = vec![0u8; 64 * 1024];
                    while matches!(tokio::io::AsyncReadExt::read(&mut rd, &mut b).await, Ok(n) if n > 0)
                    {
                    }
                };
                let flood = async {
                    for round in 0u32.. {
                        let mut addrs = reserved(port);
                        addrs.extend([own, me]);
                        // Fresh dead loopback addresses each round (127.1.0.0/16 and up):
                        // nothing listens there, so a dial to one is refused at once.
                        let base = (conn as u32) << 20 | round << 10;
                        while addrs.len() < PER_MESSAGE {
                            let n = base + addrs.len() as u32;
                            let ip =
                                Ipv4Addr::new(127, 1 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
                            addrs.push(SocketAddrV4::new(ip, 6881));
                        }
                        let msg = ext_frame(OUR_UT_PEX, &pex_payload(&addrs));
                        if wr.write_all(&msg).await.is_err() {
                            return;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(FLOOD_GAP).await;
                    }
                };
                tokio::select! {
                    _ = read => {}
                    _ = flood => {}
                }
            })
        })
    };
    let attacker = Scripted::start(ip(30), script).await;

    let out = tempfile::tempdir().unwrap();
    let cfg = test_config();
    let max_known = cfg.torrent.max_known_peers;
    let mode = Mode::Fetch { seed: true };
    let peers = vec![attacker.addr, seed_at];
    let mut leech = Running::start(&meta, out.path(), mode, ip(2), peers, cfg).await;
    let own_addr = leech.addr.expect("leecher listens");
    own.set(v4(own_addr)).unwrap();

    // The known-peer list is sampled all along, until the download is done and the flood
    // has run for a while past it.
    let mut worst_known = 0;
    let done = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            let snap = leech.snapshot.borrow_and_update().clone();
            worst_known = worst_known.max(snap.stats.peers_known);
            if snap.stats.verified_bytes >= meta.total_length()
                && sent.load(Ordering::Relaxed) >= FLOOD_MESSAGES
            {
                return snap;
            }
            tokio::select! {
                _ = leech.snapshot.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await
    .expect("the download or the flood did not get there");
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));

    let stats = leech.session.stats().await;
    let (flood_msgs, conns) = (
        sent.load(Ordering::Relaxed),
        attacker.accepted.load(Ordering::Relaxed),
    );
    eprintln!(
        "pex flood: {flood_msgs} messages over {conns} connections; known peers at most \
         {worst_known}; found by pex {}; sentinel hits {} {:?}; incoming {}",
        done.stats.found.pex,
        sentinel.hits(),
        sentinel2.as_ref().map(|s| s.hits()),
        stats.routed,
    );
    assert!(
        worst_known <= max_known,
        "known peers {worst_known} > cap {max_known}"
    );
    // PEX looks at 100 entries of a message, one message per 45 s from a connection, and
    // 200 addresses per period from one sender address however often it reconnects.
    assert!(
        done.stats.found.pex >= 1,
        "the flood never reached PEX: the test tests nothing"
    );
    assert!(
        done.stats.found.pex <= PEX_BUDGET,
        "{} addresses taken from {conns} connections of one address",
        done.stats.found.pex
    );
    assert_eq!(sentinel.hits(), 0, "dialled a reserved address");
    assert_eq!(
        sentinel2.as_ref().map_or(0, |s| s.hits()),
        0,
        "dialled a reserved address"
    );
    // Nobody but the leecher itself has a reason to dial it (the seed is connected to it
    // already and may dial back at most once): one self-dial teaches it its own address.
    assert!(
        stats.routed <= 2,
        "{} incoming connections: dials to itself",
        stats.routed
    );
    drop(attacker);
    leech.stop().await;
    seed.stop().await;
}

//! MSE/PE abuse against a seed's shared port (issue 20, item 5), on loopback. Attackers,
//! each from its own 127.0.0.x and reconnecting for as long as the test runs:
//!
//! - a garbage public key followed by endless "padding" (the sync hash never comes);
//! - a real Diffie-Hellman key (so the seed computes a real secret) followed by garbage;
//! - degenerate keys (0, all ones: not in `2..=P-2`), then silence.
//!
//! The seed's handshake timeouts are set far above the test's bound ([`DROP_BOUND`]), so
//! each drop is the MSE sync limit's doing (the spec's 628 bytes), not a timer. Meanwhile
//! an honest leecher requiring encryption downloads from the same port with correct data.
//! A second test stalls connections mid-handshake against a seed with a short handshake
//! timeout: every stalled slot is closed and counted, and an honest leecher still gets in.

mod common;
mod hostile_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{make_content, make_torrent, test_config, Running, TestConfig};
use hostile_support::*;
use swarm::config::Encryption;
use swarm::session::Mode;
use swarm::wire::dh::KeyPair;
use tokio::io::AsyncWriteExt;

/// How long one attacking connection may live before the test calls it "not dropped":
/// far under the seed's 100 s handshake limits below, so a drop is the sync limit's doing.
const DROP_BOUND: Duration = Duration::from_secs(60);
/// Bytes an endless-padding attacker writes at most before the test calls the seed
/// "still reading": 16 MiB, far above what loopback socket buffers absorb (a few MiB),
/// so a seed that reads padding forever shows as a write that never fails.
const ENDLESS: usize = 16 << 20;

#[derive(Clone, Copy, Debug)]
enum Abuse {
    GarbageKeyEndlessPad,
    RealKeyThenGarbage,
    DegenerateKey(u8),
}

/// One connection of `abuse`; true when the seed dropped it within the bounds.
async fn abuse_once(abuse: Abuse, from: std::net::IpAddr, at: SocketAddr, n: u64) -> bool {
    let Ok(mut s) = try_connect_from(from, at).await else {
        return false;
    };
    // Not 19 first: a first byte of 19 reads as a plaintext handshake, not MSE.
    let noise = |seed: u64, len: usize| {
        let mut b = common::random_bytes(len, seed);
        b[0] |= 0x80;
        b
    };
    let work = async {
        match abuse {
            Abuse::GarbageKeyEndlessPad => {
                s.write_all(&noise(n, 96)).await.ok()?;
                Some(write_until_closed(&mut s, &noise(n + 1, 4096), ENDLESS).await)
            }
            Abuse::RealKeyThenGarbage => {
                let key = KeyPair::generate(&mut rand::thread_rng());
                s.write_all(key.public()).await.ok()?;
                // The seed's Yb (and PadB) arrive; we answer with garbage instead of
                // HASH('req1', S).
                read_exact(&mut s, 96).await?;
                Some(write_until_closed(&mut s, &noise(n, 4096), ENDLESS).await)
            }
            Abuse::DegenerateKey(fill) => {
                s.write_all(&[fill; 96]).await.ok()?;
                drain(&mut s).await;
                Some(true)
            }
        }
    };
    matches!(tokio::time::timeout(DROP_BOUND, work).await, Ok(Some(true)))
}

async fn attacker(abuse: Abuse, from: u8, at: SocketAddr, stop: Arc<AtomicBool>) -> (u32, u32) {
    let (mut dropped, mut kept) = (0, 0);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if abuse_once(abuse, ip(from), at, n).await {
            dropped += 1;
        } else {
            kept += 1;
        }
        // Not a busy loop: the seed must serve the honest leecher on two cores.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (dropped, kept)
}

fn encrypted(mode: Encryption, handshake: Duration) -> TestConfig {
    let mut cfg = test_config();
    cfg.session.encryption = mode;
    cfg.session.handshake_timeout = handshake;
    cfg.session.silent_timeout = handshake;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mse_garbage_and_endless_padding_are_dropped_and_an_encrypted_leecher_is_served() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 8 << 20)], 31);
    let meta = make_torrent(&content, 256 * 1024);
    let cfg = encrypted(Encryption::Prefer, Duration::from_secs(100));
    let seed = Running::start(&meta, src.path(), Mode::Seed, ip(1), vec![], cfg).await;
    let at = seed.addr.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let abuses = [
        Abuse::GarbageKeyEndlessPad,
        Abuse::RealKeyThenGarbage,
        Abuse::DegenerateKey(0),
        Abuse::DegenerateKey(0xff),
    ];
    let attackers: Vec<_> = abuses
        .iter()
        .enumerate()
        .map(|(i, &a)| tokio::spawn(attacker(a, 20 + i as u8, at, stop.clone())))
        .collect();

    // Let every attacker be dropped a few times before the honest leecher comes.
    let bad = wait_bad_handshakes(&seed, 8).await;
    eprintln!("bad handshakes before the leecher: {bad}");

    let lcfg = encrypted(Encryption::Require, Duration::from_secs(10));
    Running::fetch_exactly(&meta, src.path(), ip(2), vec![at], lcfg).await;

    stop.store(true, Ordering::Relaxed);
    for (abuse, a) in abuses.iter().zip(attackers) {
        let (dropped, kept) = tokio::time::timeout(common::TEST_TIMEOUT, a)
            .await
            .expect("attacker did not stop")
            .expect("attacker failed");
        eprintln!("{abuse:?}: dropped {dropped}, not dropped {kept}");
        assert!(dropped >= 1, "{abuse:?} was never dropped");
        assert_eq!(kept, 0, "{abuse:?}: a connection outlived the sync limit");
    }
    let s = seed.session.stats().await;
    assert!(s.routed >= 1, "{s:?}");
    seed.stop().await;
}

/// Waits (bounded) until the seed counted `n` bad handshakes; returns the count.
async fn wait_bad_handshakes(seed: &Running, n: u64) -> u64 {
    tokio::time::timeout(common::TEST_TIMEOUT, async {
        loop {
            let s = seed.session.stats().await;
            if s.bad_handshakes >= n {
                return s.bad_handshakes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("bad handshakes were not counted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mse_handshakes_stopped_midway_time_out_and_free_their_slots() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 1 << 20)], 32);
    let meta = make_torrent(&content, 256 * 1024);
    // A short handshake limit, so the stalled connections are closed during the test.
    let cfg = encrypted(Encryption::Prefer, Duration::from_secs(2));
    let per_ip = cfg.session.max_half_open_per_ip;
    let seed = Running::start(&meta, src.path(), Mode::Seed, ip(1), vec![], cfg).await;
    let at = seed.addr.unwrap();

    // From each of 10 addresses, as many connections as one address may have half-open:
    // a real key and some padding, then nothing.
    let mut stalled = Vec::new();
    for i in 0..10u8 {
        for _ in 0..per_ip {
            let mut s = connect_from(ip(40 + i), at).await;
            let key = KeyPair::generate(&mut rand::thread_rng());
            s.write_all(key.public()).await.unwrap();
            s.write_all(&[0x55; 100]).await.unwrap();
            stalled.push(s);
        }
    }
    let total = stalled.len();
    // Each is closed by the seed (EOF after its Yb/PadB), bounded.
    let mut closed = 0;
    for mut s in stalled {
        if tokio::time::timeout(DROP_BOUND, drain(&mut s))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, total, "stalled handshakes kept open");
    let bad = wait_bad_handshakes(&seed, total as u64).await;
    eprintln!("{total} stalled handshakes, {bad} counted bad");

    // Their slots are free: the same addresses can open them again, and an honest
    // encrypted leecher is served.
    for i in 0..10u8 {
        let _again = connect_from(ip(40 + i), at).await;
    }
    let lcfg = encrypted(Encryption::Require, Duration::from_secs(10));
    Running::fetch_exactly(&meta, src.path(), ip(2), vec![at], lcfg).await;
    let s = seed.session.stats().await;
    assert_eq!(s.half_open_refused, 0, "{s:?}");
    seed.stop().await;
}

//! A connection flood against a seed's shared port (issue 20, item 5), on loopback, from
//! 300 source addresses (127.0.1-3.x): handshakes for an info-hash the seed does not run,
//! full handshakes for the one it does (then gone), and plain connections that send
//! nothing and stay open for the whole flood. Meanwhile an honest leecher downloads with
//! correct data; afterwards the listener still serves a new leecher, and the process's
//! open descriptors come back to where they were before the flood.
//!
//! One test in this file on purpose: descriptors are counted for the whole test process.

mod common;
mod hostile_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{hash_tree, make_content, make_torrent, Running, TEST_TIMEOUT};
use hostile_support::*;
use swarm::types::InfoHash;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Connections of each kind in the flood: together four times the seed's half-open table
/// (256) and six times its peer limit (50).
const PER_KIND: usize = 400;
/// Flood connections in flight at once (two shared cores: enough to overlap, not to starve
/// the honest transfer).
const IN_FLIGHT: usize = 48;

fn source(kind: u8, i: usize) -> IpAddr {
    IpAddr::from([127, 0, kind, 1 + (i % 100) as u8])
}

#[derive(Default)]
struct Outcomes {
    /// Unknown info-hash: closed without a handshake reply.
    unknown_closed: AtomicUsize,
    /// Known info-hash: the seed's handshake came back.
    known_answered: AtomicUsize,
    /// Silent connections accepted (their outcome is the seed's: evicted or timed out).
    silent: AtomicUsize,
}

/// One flood connection of `kind` (1 unknown info-hash, 2 known, 3 silent).
async fn one(
    kind: u8,
    i: usize,
    at: SocketAddr,
    known: InfoHash,
    out: &Outcomes,
) -> Option<tokio::net::TcpStream> {
    let mut s = try_connect_from(source(kind, i), at).await.ok()?;
    match kind {
        1 => {
            let mut other = known.0;
            other[0] ^= 0xff;
            other[19] = i as u8;
            let _ = s
                .write_all(&handshake(InfoHash(other), b"floodunknown"))
                .await;
            // Whatever it says, it must not be a handshake; it ends in EOF.
            if drain(&mut s).await < 68 {
                out.unknown_closed.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        2 => {
            let mut id = *b"floodknown00";
            id[10] = b'0' + (i / 10 % 10) as u8;
            id[11] = b'0' + (i % 10) as u8;
            s.write_all(&handshake(known, &id)).await.ok()?;
            let reply = read_exact(&mut s, 68).await?;
            if reply[28..48] == known.0 {
                out.known_answered.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        _ => {
            out.silent.fetch_add(1, Ordering::Relaxed);
            Some(s)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_the_listener_alive_and_descriptors_at_baseline() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 8 << 20)], 51);
    let meta = make_torrent(&content, 256 * 1024);
    let seed = Running::seed(&meta, src.path(), ip(1)).await;
    let at = seed.addr.unwrap();

    // Warm-up: one download, so the seed's open-file pool and the runtime's threads are
    // what they will be; the baseline is taken after it.
    let warm = tempfile::tempdir().unwrap();
    let first = Running::fetch(&meta, warm.path(), ip(2), vec![at]).await;
    assert!(
        first
            .finish()
            .await
            .expect("warm-up download failed")
            .complete
    );
    let baseline = open_fds();

    let outcomes = Arc::new(Outcomes::default());
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for i in 0..PER_KIND {
        for kind in 1..=3u8 {
            let (out, gate, known) = (outcomes.clone(), gate.clone(), meta.info_hash);
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                one(kind, i, at, known, &out).await
            }));
        }
    }

    // The honest leecher, during the flood.
    let out = tempfile::tempdir().unwrap();
    let leech = Running::fetch(&meta, out.path(), ip(3), vec![at]).await;
    let done = leech
        .finish()
        .await
        .expect("download failed during the flood");
    assert!(done.complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));

    let mut silent = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(TEST_TIMEOUT, t)
            .await
            .expect("flood connection hung")
            .expect("flood task failed");
        silent.extend(r);
    }
    let stats = seed.session.stats().await;
    let (unknown, known, quiet) = (
        outcomes.unknown_closed.load(Ordering::Relaxed),
        outcomes.known_answered.load(Ordering::Relaxed),
        outcomes.silent.load(Ordering::Relaxed),
    );
    let during = open_fds();
    eprintln!(
        "flood: {unknown} unknown closed, {known} known answered, {quiet} silent; \
         fds baseline {baseline}, with the flood {during}; {stats:?}"
    );
    assert_eq!(unknown, PER_KIND, "an unknown info-hash was answered");
    assert_eq!(
        known, PER_KIND,
        "a handshake for our torrent went unanswered"
    );
    assert_eq!(quiet, PER_KIND, "silent connections were not even accepted");
    assert!(stats.unknown_info_hash >= PER_KIND as u64, "{stats:?}");

    // The flood ends: every descriptor it cost comes back.
    drop(silent);
    let back = eventually(TEST_TIMEOUT, || open_fds() <= baseline).await;
    let after = open_fds();
    eprintln!("fds after the flood: {after} (baseline {baseline})");
    assert!(back, "descriptors stayed at {after}, baseline {baseline}");

    // And the listener is alive: a new leecher is served.
    let out2 = tempfile::tempdir().unwrap();
    let again = Running::fetch(&meta, out2.path(), ip(4), vec![at]).await;
    assert!(
        again
            .finish()
            .await
            .expect("download after the flood failed")
            .complete
    );
    assert_eq!(hash_tree(&meta, out2.path()), hash_tree(&meta, src.path()));
    seed.stop().await;
}

//! Metadata bombs (BEP 9, issue 20 item 5), in-process sessions on loopback:
//!
//! - against a magnet leecher, a peer that reconnects with a different `metadata_size`
//!   each time (5 MiB, the real size, the real size + 5) and sends `ut_metadata` data
//!   nobody asked for without end: garbage pieces, the same piece again and again, pieces
//!   past the end, sizes that disagree with its handshake. The leecher must take the
//!   metadata from the honest seed beside it and finish with correct data; the metadata
//!   it tracks never exceeds the cap.
//! - against a seed, a `ut_metadata` request flood (the same piece, pieces past the end):
//!   the seed sends at most a few copies of its metadata to one connection and rejects the
//!   rest, while an honest leecher is served.
//!
//! (A `metadata_size` above the cap is covered by `tests/magnet_hostile.rs`.)

mod common;
mod hostile_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{hash_tree, make_content, make_torrent, spec, test_config, Running, TEST_TIMEOUT};
use hostile_support::*;
use swarm::magnet::Magnet;
use swarm::session::{Content, MagnetSource, Mode, Session};
use swarm::wire::{MAX_METADATA_SIZE, OUR_UT_METADATA};
use tokio::io::AsyncWriteExt;

/// The id our attackers give `ut_metadata` in their extension handshake.
const THEIR_UT_METADATA: u8 = 3;
/// Copies of its metadata a seed sends one connection (`engine::extension`'s
/// `MAX_METADATA_COPIES`, 3) and the few pieces more it allows (8).
const COPIES: usize = 3;
const SPARE: usize = 8;
/// Kinds of metadata bomb, one attacker each (see [`bomb`]).
const BOMBS: usize = 4;

fn data_msg(piece: u32, total: u32, body: &[u8]) -> Vec<u8> {
    let mut p = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
    p.extend_from_slice(body);
    ext_frame(OUR_UT_METADATA, &p)
}

/// The length of metadata piece `piece` of a `total`-byte dictionary.
fn piece_len(total: u32, piece: u32) -> usize {
    (total - piece * 16384).min(16384) as usize
}

/// What bomb `kind` does: the size it advertises, and the next unrequested data message of
/// its endless stream.
fn bomb(kind: usize, real: u32, i: u32) -> (u32, Vec<u8>) {
    let junk = |n: usize| vec![0xa5u8; n];
    match kind % BOMBS {
        // A big (but allowed) size, and garbage for every one of its pieces, in a loop.
        0 => {
            let size = 5 << 20;
            let piece = i % (size / 16384);
            (size, data_msg(piece, size, &junk(piece_len(size, piece))))
        }
        // The real size, and piece 0 over and over (garbage, never asked for).
        1 => (real, data_msg(0, real, &junk(piece_len(real, 0)))),
        // The real size, and pieces past its end.
        2 => (real, data_msg(1000 + i, real, &junk(16384))),
        // One size in the handshake, another in the data.
        _ => (real + 5, data_msg(0, real, &junk(piece_len(real, 0)))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_bomb_does_not_stop_a_magnet_fetch() {
    let src = tempfile::tempdir().unwrap();
    // 1,024 pieces: a 20 KiB info dictionary, two metadata pieces.
    let content = make_content(src.path(), "data.bin", &[("", 16 << 20)], 41);
    let meta = make_torrent(&content, 16384);
    let real = meta.info_bytes.len() as u32;
    let seed = Running::seed(&meta, src.path(), ip(1)).await;
    let seed_at = seed.addr.unwrap();

    // One attacker per kind of bomb, all offered to the leecher with the honest seed: their
    // sizes disagree with each other and with the seed's.
    let sent = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for kind in 0..BOMBS {
        let (sent, info_hash) = (sent.clone(), meta.info_hash);
        let script: Script = Arc::new(move |_conn, mut s| {
            let sent = sent.clone();
            Box::pin(async move {
                if read_exact(&mut s, 68).await.is_none() {
                    return;
                }
                let (size, _) = bomb(kind, real, 0);
                let ext =
                    format!("d1:md11:ut_metadatai{THEIR_UT_METADATA}ee13:metadata_sizei{size}ee");
                let tag = format!("metabomb{kind:04}");
                let mut hello = handshake(info_hash, tag.as_bytes().try_into().unwrap()).to_vec();
                hello.extend(ext_frame(0, ext.as_bytes()));
                if s.write_all(&hello).await.is_err() {
                    return;
                }
                let (mut rd, mut wr) = s.into_split();
                let read = async {
                    let mut b = vec![0u8; 64 * 1024];
                    while matches!(tokio::io::AsyncReadExt::read(&mut rd, &mut b).await, Ok(n) if n > 0)
                    {
                    }
                };
                let flood = async {
                    for i in 0u32.. {
                        let (_, msg) = bomb(kind, real, i);
                        if wr.write_all(&msg).await.is_err() {
                            return;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        if i % 64 == 63 {
                            // Not a busy loop on two shared cores.
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                };
                tokio::select! {
                    _ = read => {}
                    _ = flood => {}
                }
            })
        });
        attackers.push(Scripted::start(ip(30 + kind as u8), script).await);
    }

    let session = Session::start(swarm::config::SessionConfig {
        bind: ip(2),
        ..test_config().session
    })
    .await
    .expect("session did not start");
    let out = tempfile::tempdir().unwrap();
    let cfg = test_config();
    let mode = Mode::Fetch { seed: false };
    let mut peers: Vec<_> = attackers.iter().map(|a| a.addr).collect();
    peers.push(seed_at);
    let mut spec = spec(
        &meta,
        out.path(),
        mode,
        peers,
        vec![],
        &cfg.torrent,
        cfg.peer_timeout,
    );
    let link = Magnet::new(meta.info_hash);
    spec.content = Content::Magnet(Arc::new(MagnetSource::new(link, None)));
    let mut handle = session.add(spec).await.expect("torrent not added");

    // Sample what the fetch tracks while it runs: never more pieces than the cap allows.
    let cap_pieces = MAX_METADATA_SIZE.div_ceil(16384);
    let mut snap = handle.snapshot.clone();
    let mut worst = 0;
    let watch = async {
        loop {
            let now = snap.borrow_and_update().clone();
            if let Some(m) = &now.metadata {
                worst = worst.max(m.pieces_total);
            }
            if snap.changed().await.is_err() {
                // The torrent is gone; `finished` below ends the select.
                std::future::pending::<()>().await;
            }
        }
    };
    let result = tokio::time::timeout(TEST_TIMEOUT, async {
        tokio::select! {
            r = handle.finished() => r,
            _ = watch => unreachable!("the watch never ends"),
        }
    })
    .await
    .expect("magnet fetch did not finish in time");
    let result = result.expect("torrent was removed");
    session.shutdown().await;
    let summary = match &*result {
        Ok(s) => s.clone(),
        Err(e) => panic!("magnet fetch failed: {}", swarm::error::error_chain(e)),
    };
    assert!(summary.complete);
    assert_eq!(hash_tree(&meta, out.path()), hash_tree(&meta, src.path()));
    let msgs = sent.load(Ordering::Relaxed);
    let conns: Vec<usize> = attackers
        .iter()
        .map(|a| a.accepted.load(Ordering::Relaxed))
        .collect();
    eprintln!(
        "metadata bombs: {msgs} data messages, connections {conns:?}; most pieces tracked {worst}"
    );
    assert!(
        conns.iter().all(|&c| c >= 1) && msgs >= 1,
        "a bomb never went off: the test tests nothing"
    );
    assert!(
        worst <= cap_pieces,
        "{worst} metadata pieces tracked, cap {cap_pieces}"
    );
    drop(attackers);
    seed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_request_flood_gets_a_few_copies_and_rejects() {
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "data.bin", &[("", 16 << 20)], 42);
    let meta = make_torrent(&content, 16384);
    let pieces = meta.info_bytes.len().div_ceil(16384);
    let seed = Running::seed(&meta, src.path(), ip(1)).await;
    let at = seed.addr.unwrap();

    // Three flooders, each on one connection: requests for piece 0, for every piece in
    // turn, and for pieces past the end; each reads every reply and counts the data.
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..3u32)
        .map(|kind| {
            let (stop, info_hash) = (stop.clone(), meta.info_hash);
            tokio::spawn(async move {
                let mut s = connect_from(ip(20 + kind as u8), at).await;
                let ext = format!("d1:md11:ut_metadatai{THEIR_UT_METADATA}eee");
                let tag = format!("metaflooder{kind}");
                let mut hello = handshake(info_hash, tag.as_bytes().try_into().unwrap()).to_vec();
                hello.extend(ext_frame(0, ext.as_bytes()));
                s.write_all(&hello).await.unwrap();
                read_exact(&mut s, 68).await.expect("seed's handshake");
                let (mut rd, mut wr) = s.into_split();
                let flood = async {
                    for i in 0u32.. {
                        let piece = match kind {
                            0 => 0,
                            1 => i % pieces as u32,
                            _ => 100 + i,
                        };
                        let req = format!("d8:msg_typei0e5:piecei{piece}ee");
                        // Seed's ut_metadata id is ours to use: the seed says 2.
                        let frames: Vec<u8> = (0..16)
                            .flat_map(|_| ext_frame(OUR_UT_METADATA, req.as_bytes()))
                            .collect();
                        if stop.load(Ordering::Relaxed) || wr.write_all(&frames).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                };
                let (data, rejects) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let count = async {
                    while let Some((id, p)) = read_half_frame(&mut rd).await {
                        if id == 20 && p.first() == Some(&THEIR_UT_METADATA) {
                            let head = String::from_utf8_lossy(&p[1..p.len().min(40)]).into_owned();
                            if head.contains("msg_typei1e") {
                                data.fetch_add(1, Ordering::Relaxed);
                            } else if head.contains("msg_typei2e") {
                                rejects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                };
                // Ends when the test stops the flood or the seed drops the connection.
                tokio::select! {
                    _ = flood => {}
                    _ = count => {}
                }
                (data.into_inner(), rejects.into_inner())
            })
        })
        .collect();

    // The honest leecher is served meanwhile.
    Running::fetch_exactly(&meta, src.path(), ip(2), vec![at], test_config()).await;

    stop.store(true, Ordering::Relaxed);
    for (kind, f) in flooders.into_iter().enumerate() {
        let (data, rejects) = tokio::time::timeout(TEST_TIMEOUT, f)
            .await
            .expect("flooder did not stop")
            .expect("flooder failed");
        eprintln!("request flood {kind}: {data} data, {rejects} rejects");
        assert!(
            data <= COPIES * pieces + SPARE,
            "flood {kind}: {data} copies sent"
        );
        assert!(
            rejects >= 1,
            "flood {kind}: never rejected (the test tests nothing)"
        );
    }
    seed.stop().await;
}

/// [`read_frame`] on a read half: (id, payload) or `None` at the end or past the cap.
async fn read_half_frame(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    loop {
        let mut len = [0u8; 4];
        tokio::time::timeout(WAIT, s.read_exact(&mut len))
            .await
            .ok()?
            .ok()?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        if len > MAX_FRAME {
            return None;
        }
        let mut body = vec![0u8; len];
        tokio::time::timeout(WAIT, s.read_exact(&mut body))
            .await
            .ok()?
            .ok()?;
        return Some((body[0], body[1..].to_vec()));
    }
}

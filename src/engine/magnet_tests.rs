//! The metadata phase: what peers are sent, the fetch over several peers, and the switch to
//! the download on the same connections.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::*;
use crate::bencode::{to_vec, Value};
use crate::metainfo::Metainfo;

const FAST_EXT: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];

/// An info dictionary of a 40,000-byte file in 16 KiB pieces (3 pieces), padded so its
/// metadata takes four 16 KiB pieces.
fn info_dict() -> Vec<u8> {
    let name = "n".repeat(200);
    let pieces = vec![7u8; 60];
    let comment = vec![b'x'; 50_000];
    to_vec(&Value::Dict(vec![
        (b"length", Value::Int(40_000)),
        (b"name", Value::Bytes(name.as_bytes())),
        (b"padding", Value::Bytes(&comment)),
        (b"piece length", Value::Int(16384)),
        (b"pieces", Value::Bytes(&pieces)),
    ]))
}

fn cfg() -> TorrentConfig {
    TorrentConfig {
        rng_seed: 7,
        listen_port: Some(6881),
        ..TorrentConfig::default()
    }
}

fn phase(info: &[u8], now: Instant) -> MetadataPhase {
    let ih = InfoHash(Sha1::digest(info).into());
    MetadataPhase::new(cfg(), ih, now)
}

fn actions(p: &mut MetadataPhase) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action()).collect()
}

fn engine_actions(e: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn connect(p: &mut MetadataPhase, now: Instant, key: PeerKey) {
    p.handle(
        now,
        Event::PeerConnected {
            key,
            addr: format!("127.0.0.{key}:6881").parse().unwrap(),
            peer_id: PeerId([key as u8; 20]),
            reserved: FAST_EXT,
            outbound: true,
        },
    );
}

fn offer(p: &mut MetadataPhase, now: Instant, key: PeerKey, size: usize) {
    let hs = ExtHandshake {
        m: vec![(UT_METADATA.to_string(), 3)],
        metadata_size: Some(size as u32),
        ..ExtHandshake::default()
    };
    p.handle(
        now,
        Event::ExtendedHandshake {
            key,
            handshake: Box::new(hs),
        },
    );
}

/// The metadata requests in `actions`: (peer, piece).
fn requests(actions: &[Action]) -> Vec<(PeerKey, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                key,
                msg: Message::Extended { id: 3, payload },
            } => match MetadataMsg::decode(payload, None) {
                Ok(Some(MetadataMsg::Request { piece })) => Some((*key, piece)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Answers every metadata request, as they come, until none is left.
fn answer_all(p: &mut MetadataPhase, now: Instant, info: &[u8]) {
    loop {
        let asked = requests(&actions(p));
        if asked.is_empty() {
            return;
        }
        for (key, piece) in asked {
            p.handle(
                now,
                Event::Metadata {
                    key,
                    msg: data(info, piece),
                },
            );
        }
    }
}

fn data(info: &[u8], piece: u32) -> MetadataMsg {
    let start = piece as usize * 16384;
    let end = (start + 16384).min(info.len());
    MetadataMsg::Data {
        piece,
        total_size: info.len() as u32,
        data: Bytes::copy_from_slice(&info[start..end]),
    }
}

#[test]
fn peers_see_a_peer_with_nothing_that_speaks_the_extensions() {
    let info = info_dict();
    let now = Instant::now();
    let mut p = phase(&info, now);
    connect(&mut p, now, 1);
    let sent = actions(&mut p);
    let Action::Send {
        msg: Message::Extended { id: 0, payload },
        ..
    } = &sent[0]
    else {
        panic!("{sent:?}");
    };
    let ours = ExtHandshake::decode(payload).unwrap();
    assert_eq!(ours.id_of(UT_METADATA), Some(crate::wire::OUR_UT_METADATA));
    assert_eq!(ours.p, Some(6881));
    assert_eq!(ours.metadata_size, None);
    assert_eq!(
        sent[1],
        Action::Send {
            key: 1,
            msg: Message::HaveNone
        }
    );
    // A request for data is rejected (fast extension); one for metadata too.
    let block = crate::types::BlockRef {
        piece: 0,
        offset: 0,
        len: 16384,
    };
    p.handle(
        now,
        Event::PeerMessage {
            key: 1,
            msg: Message::Request(block),
        },
    );
    assert_eq!(
        actions(&mut p),
        vec![Action::Send {
            key: 1,
            msg: Message::Reject(block)
        }]
    );
    offer(&mut p, now, 1, info.len());
    actions(&mut p);
    p.handle(
        now,
        Event::Metadata {
            key: 1,
            msg: MetadataMsg::Request { piece: 0 },
        },
    );
    let Action::Send {
        msg: Message::Extended { id: 3, payload },
        ..
    } = &actions(&mut p)[0]
    else {
        panic!("no reject");
    };
    assert_eq!(
        MetadataMsg::decode(payload, None).unwrap(),
        Some(MetadataMsg::Reject { piece: 0 })
    );
}

#[test]
fn metadata_comes_from_two_peers_and_the_download_starts_on_their_connections() {
    let info = info_dict();
    assert!(info.len() > 3 * 16384 && info.len() <= 4 * 16384);
    let now = Instant::now();
    let mut p = phase(&info, now);
    for key in [1, 2] {
        connect(&mut p, now, key);
    }
    // Peer 1 is a seed that unchoked us; peer 2 has piece 0 by bitfield (8 bits as the
    // decoder passes it before the piece count is known) and piece 2 by a have.
    p.handle(
        now,
        Event::PeerMessage {
            key: 1,
            msg: Message::HaveAll,
        },
    );
    p.handle(
        now,
        Event::PeerMessage {
            key: 1,
            msg: Message::Unchoke,
        },
    );
    let bf = Bitfield::from_bytes(&[0b1000_0000], 8).unwrap();
    p.handle(
        now,
        Event::PeerMessage {
            key: 2,
            msg: Message::Bitfield(bf),
        },
    );
    p.handle(
        now,
        Event::PeerMessage {
            key: 2,
            msg: Message::Have(2),
        },
    );
    actions(&mut p);
    offer(&mut p, now, 1, info.len());
    offer(&mut p, now, 2, info.len());
    let asked = requests(&actions(&mut p));
    let peers: std::collections::BTreeSet<_> = asked.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        peers.len(),
        2,
        "four pieces asked, two from each peer: {asked:?}"
    );
    assert_eq!(asked.len(), 4);
    assert_eq!(p.progress().serving, 2);
    for (key, piece) in asked {
        assert!(p.take_info().is_none());
        p.handle(
            now,
            Event::Metadata {
                key,
                msg: data(&info, piece),
            },
        );
    }
    answer_all(&mut p, now, &info);
    let got = p.take_info().expect("verified");
    assert_eq!(got, info);

    let meta = Metainfo::from_bytes(&Metainfo::torrent_bytes(&got, &[])).unwrap();
    let layout = meta.layout.clone();
    assert_eq!(layout.num_pieces(), 3);
    let mut e = p.into_engine(now, cfg(), layout, Bitfield::new(3), Bytes::from(got));
    assert_eq!(e.stats().peers_connected, 2);
    let sent = engine_actions(&mut e);
    // Both peers have something we want: interest, and requests to the seed that unchoked.
    for key in [1, 2] {
        assert!(
            sent.contains(&Action::Send {
                key,
                msg: Message::Interested
            }),
            "{sent:?}"
        );
    }
    assert!(sent.iter().any(|a| matches!(
        a,
        Action::Send {
            key: 1,
            msg: Message::Request(_)
        }
    )));
    // Our new extension handshake carries the metadata size, and nobody is told HaveNone
    // twice.
    let sizes: Vec<_> = sent
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                msg: Message::Extended { id: 0, payload },
                ..
            } => ExtHandshake::decode(payload).unwrap().metadata_size,
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![info.len() as u32; 2]);
    assert!(!sent.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::HaveNone,
            ..
        }
    )));
    // The engine now serves the metadata.
    e.handle(
        now,
        Event::Metadata {
            key: 2,
            msg: MetadataMsg::Request { piece: 1 },
        },
    );
    let Action::Send {
        key: 2,
        msg: Message::Extended { id: 3, payload },
    } = &engine_actions(&mut e)[0]
    else {
        panic!("no data");
    };
    assert_eq!(
        MetadataMsg::decode(payload, None).unwrap(),
        Some(data(&info, 1))
    );
}

#[test]
fn a_peer_whose_bitfield_does_not_fit_the_torrent_is_dropped_at_the_switch() {
    let info = info_dict();
    let now = Instant::now();
    let mut p = phase(&info, now);
    for key in [1, 2] {
        connect(&mut p, now, key);
    }
    // Three pieces fit in one byte: two bytes is the wrong length. Peer 2 names piece 9.
    let bf = Bitfield::from_bytes(&[0b1000_0000, 0], 16).unwrap();
    p.handle(
        now,
        Event::PeerMessage {
            key: 1,
            msg: Message::Bitfield(bf),
        },
    );
    p.handle(
        now,
        Event::PeerMessage {
            key: 2,
            msg: Message::Have(9),
        },
    );
    offer(&mut p, now, 1, info.len());
    answer_all(&mut p, now, &info);
    let got = p.take_info().unwrap();
    let meta = Metainfo::from_bytes(&Metainfo::torrent_bytes(&got, &[])).unwrap();
    // A torrent of 3 pieces whose bitfield is one byte: the 16-bit one does not fit.
    let mut e = p.into_engine(
        now,
        cfg(),
        meta.layout.clone(),
        Bitfield::new(3),
        Bytes::from(got),
    );
    let sent = engine_actions(&mut e);
    for key in [1, 2] {
        assert!(
            sent.iter()
                .any(|a| matches!(a, Action::Disconnect { key: k, .. } if *k == key)),
            "peer {key} kept: {sent:?}"
        );
    }
    assert_eq!(e.stats().peers_connected, 0);
}

#[test]
fn a_peer_that_lies_is_dropped_and_another_supplies_the_metadata() {
    let info = info_dict();
    let now = Instant::now();
    let mut p = phase(&info, now);
    connect(&mut p, now, 1);
    offer(&mut p, now, 1, info.len());
    let asked = requests(&actions(&mut p));
    // Peer 1 answers every piece with garbage of the right length, as it is asked.
    let mut asked = asked;
    let mut sent = Vec::new();
    while !asked.is_empty() {
        for (key, piece) in asked {
            let MetadataMsg::Data {
                piece,
                total_size,
                data,
            } = data(&info, piece)
            else {
                unreachable!()
            };
            let junk = Bytes::from(vec![0u8; data.len()]);
            let msg = MetadataMsg::Data {
                piece,
                total_size,
                data: junk,
            };
            p.handle(now, Event::Metadata { key, msg });
        }
        sent = actions(&mut p);
        asked = requests(&sent);
    }
    assert!(
        sent.iter()
            .any(|a| matches!(a, Action::Disconnect { key: 1, .. })),
        "{sent:?}"
    );
    assert!(p.take_info().is_none());
    p.handle(now, Event::PeerDisconnected { key: 1 });
    // It is banned: a new connection from it is refused.
    connect(&mut p, now, 1);
    assert!(actions(&mut p).iter().any(|a| matches!(
        a,
        Action::Disconnect {
            key: 1,
            reason: "banned"
        }
    )));
    connect(&mut p, now, 2);
    offer(&mut p, now, 2, info.len());
    answer_all(&mut p, now, &info);
    assert_eq!(p.take_info(), Some(info));
}

#[test]
fn with_only_given_peers_a_fetch_nobody_serves_gives_up() {
    let info = info_dict();
    let now = Instant::now();
    let mut p = MetadataPhase::new(
        TorrentConfig {
            give_up_after: Some(Duration::from_secs(30)),
            ..cfg()
        },
        InfoHash(Sha1::digest(&info).into()),
        now,
    );
    // A peer that connects but offers no metadata is no contact.
    connect(&mut p, now, 1);
    actions(&mut p);
    for s in 1..=31 {
        p.handle_timeout(now + Duration::from_secs(s));
    }
    let sent = actions(&mut p);
    let reason = sent
        .iter()
        .find_map(|a| match a {
            Action::GiveUp { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("gave up");
    assert!(
        reason.contains("no peer offered the metadata within 30 s"),
        "{reason}"
    );
}

#[test]
fn one_peer_gets_a_few_copies_of_our_metadata_then_rejects() {
    let info = info_dict();
    let now = Instant::now();
    let mut p = phase(&info, now);
    connect(&mut p, now, 1);
    offer(&mut p, now, 1, info.len());
    answer_all(&mut p, now, &info);
    let got = p.take_info().unwrap();
    let meta = Metainfo::from_bytes(&Metainfo::torrent_bytes(&got, &[])).unwrap();
    let mut e = p.into_engine(
        now,
        cfg(),
        meta.layout.clone(),
        Bitfield::new(3),
        Bytes::from(got),
    );
    engine_actions(&mut e);
    let (mut data, mut rejects) = (0, 0);
    for _ in 0..100 {
        e.handle(
            now,
            Event::Metadata {
                key: 1,
                msg: MetadataMsg::Request { piece: 0 },
            },
        );
        for a in engine_actions(&mut e) {
            if let Action::Send {
                msg: Message::Extended { id: 3, payload },
                ..
            } = a
            {
                match MetadataMsg::decode(&payload, None).unwrap() {
                    Some(MetadataMsg::Data { .. }) => data += 1,
                    Some(MetadataMsg::Reject { .. }) => rejects += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    // Four pieces: three copies and eight more, then rejects.
    assert_eq!(data, 3 * 4 + 8);
    assert_eq!(rejects, 100 - data);
}

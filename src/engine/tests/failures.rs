//! Hash failures: strikes, bans, single-source re-downloads.

use super::*;

#[test]
fn liar_is_banned_and_cannot_return() {
    let mut t = T::new(4, &[]);
    t.seed_peer(1);
    assert!(!t
        .failed(0, &[1])
        .iter()
        .any(|a| matches!(a, Action::Disconnect { .. })));
    let a = t.failed(1, &[1]);
    assert!(a.contains(&Action::Disconnect {
        key: 1,
        reason: "sent corrupt data"
    }));
    assert_eq!(t.e.stats().peers_banned, 1);
    let a = t.connect(9, PLAIN);
    assert!(!a.contains(&Action::Disconnect {
        key: 9,
        reason: "banned"
    }));
    // Same IP as peer 1 (127.0.0.1) on another key.
    let mut id = [b'z'; 20];
    id[0] = 1;
    t.e.handle(
        t.now,
        Event::PeerConnected {
            key: 10,
            addr: T::addr(1),
            peer_id: PeerId(id),
            reserved: PLAIN,
            outbound: false,
        },
    );
    assert!(t.drain().contains(&Action::Disconnect {
        key: 10,
        reason: "banned"
    }));
}

/// Found by the swarm simulation: a seed and a liar both serving blocks of the same pieces
/// shared three failures; the honest seed reached the ban limit together with the liar and
/// the leecher was left with no one. Shared failures alone never ban.
#[test]
fn shared_failures_alone_never_ban_an_honest_co_contributor() {
    let mut t = T::new(8, &[]);
    t.seed_peer(1); // honest
    t.seed_peer(2); // liar
    let a: Vec<Action> = (0..3).flat_map(|piece| t.failed(piece, &[1, 2])).collect();
    assert!(
        !a.iter().any(|a| matches!(a, Action::Disconnect { .. })),
        "no one is proven to lie yet"
    );
    assert_eq!(t.e.stats().peers_banned, 0);
    // The liar alone sends a bad piece: now it is banned, and only it.
    let a = t.failed(3, &[2]);
    assert!(a.contains(&Action::Disconnect {
        key: 2,
        reason: "sent corrupt data"
    }));
    assert!(!a.contains(&Action::Disconnect {
        key: 1,
        reason: "sent corrupt data"
    }));
    assert_eq!(t.e.stats().peers_banned, 1);
}

/// Found by the swarm simulation: an honest seed and a liar at equal speed share the
/// blocks of every piece, so every failure is shared and no one is ever proven to lie
/// (the leecher failed piece after piece forever). A piece that failed is re-downloaded
/// from a single peer, so the next failure names its sender.
#[test]
fn failed_piece_is_redownloaded_from_one_peer_only() {
    let mut t = T::new(1, &[]);
    let r1 = t.seed_peer(1);
    assert_eq!(r1.len(), 2);
    // Peer 1 sends the first block and rejects the second, which peer 2 then sends.
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(1)));
    assert!(t.e.block_received(t.now, 1, r1[0]));
    t.msg(1, Message::Reject(r1[1]));
    assert_eq!(requests(&t.msg(2, Message::Unchoke), 2), vec![r1[1]]);
    assert!(t.e.block_received(t.now, 2, r1[1]));
    t.drain();
    let a = t.failed(0, &[1, 2]);
    assert_eq!(requests(&a, 1).len(), 2, "peer 1 re-fetches it all: {a:?}");
    assert!(
        requests(&a, 2).is_empty(),
        "no endgame duplicate to another peer: {a:?}"
    );
    // Peer 1 goes away: the piece is free for peer 2, alone.
    t.e.handle(t.now, Event::PeerDisconnected { key: 1 });
    assert_eq!(requests(&t.drain(), 2).len(), 2);
}

/// Found while fixing the above: requests still out when a piece fails stayed in the
/// peer's set, and their late data was taken into the next attempt at the piece.
#[test]
fn requests_outstanding_when_a_piece_fails_are_cancelled() {
    let mut t = T::new(1, &[]);
    let reqs = t.seed_peer(1);
    assert_eq!(reqs.len(), 2);
    assert!(t.e.block_received(t.now, 1, reqs[0]));
    t.drain();
    // The store failed the piece (say a sibling connection's block was bad) while reqs[1]
    // is still out: it is cancelled, and its late data is refused.
    let a = t.failed(0, &[1]);
    assert!(sent(&a, 1, &Message::Cancel(reqs[1])), "{a:?}");
    let again = requests(&a, 1);
    assert_eq!(again.len(), 2, "the piece is fetched anew: {a:?}");
}

/// A liar whose blocks only ever share pieces with honest ones is never the sole sender of
/// a failure; the store's proof (its blocks differ from the verified piece) bans it alone.
#[test]
fn proven_corrupt_senders_are_banned_at_once_and_only_they() {
    let mut t = T::new(8, &[]);
    t.seed_peer(1); // honest
    t.seed_peer(2); // liar
    t.failed(0, &[1, 2]);
    t.e.handle(
        t.now,
        Event::CorruptSenders {
            piece: 0,
            peers: vec![2],
        },
    );
    let a = t.drain();
    assert!(a.contains(&Action::Disconnect {
        key: 2,
        reason: "sent corrupt data"
    }));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Disconnect { key: 1, .. })));
    assert_eq!(t.e.stats().peers_banned, 1);
    // A proof about a peer already gone bans no one else.
    t.e.handle(
        t.now,
        Event::CorruptSenders {
            piece: 1,
            peers: vec![42],
        },
    );
    assert_eq!(t.e.stats().peers_banned, 1);
}

/// The proof comes when the piece verifies, which may be long after the liar left: its IP
/// is remembered with its key, banned then, and refused when it comes back. A departed
/// peer that never sent a block is not remembered.
#[test]
fn a_proven_liar_that_already_left_is_banned_by_its_ip() {
    let mut t = T::new(8, &[]);
    let reqs = t.seed_peer(2); // the liar, 127.0.0.2
    assert!(t.e.block_received(t.now, 2, reqs[0]));
    t.seed_peer(3); // never sends anything
    t.e.handle(t.now, Event::PeerDisconnected { key: 2 });
    t.e.handle(t.now, Event::PeerDisconnected { key: 3 });
    t.drain();
    t.e.handle(
        t.now,
        Event::CorruptSenders {
            piece: 0,
            peers: vec![2, 3],
        },
    );
    t.drain();
    assert_eq!(t.e.stats().peers_banned, 1);
    // Back from the same IPs, on new keys.
    let back = |t: &mut T, key: PeerKey, from: PeerKey| {
        t.connect_from(key, T::addr(from), PLAIN, false)
            .contains(&Action::Disconnect {
                key,
                reason: "banned",
            })
    };
    assert!(back(&mut t, 10, 2), "the liar's IP is refused");
    assert!(!back(&mut t, 11, 3), "the silent peer's is not");
}

#[test]
fn departed_senders_are_remembered_up_to_a_bound() {
    let mut t = T::new(8, &[]);
    let n = crate::engine::known::MAX_DEPARTED_SENDERS as u64;
    for key in 1..=n + 1 {
        t.e.list.sender_left(key, T::addr(key % 200 + 1).ip());
    }
    assert_eq!(t.e.list.departed_ip(1), None, "the oldest is forgotten");
    assert_eq!(t.e.list.departed_ip(2), Some(T::addr(3).ip()));
    assert_eq!(
        t.e.list.departed_ip(n + 1),
        Some(T::addr((n + 1) % 200 + 1).ip())
    );
}

//! Engine rules, one test each, driven by events on a hand-moved clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::types::BLOCK_SIZE;

const PIECE: u32 = 2 * BLOCK_SIZE;
const FAST: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];
const PLAIN: [u8; 8] = [0; 8];

struct T {
    e: Engine,
    now: Instant,
}

impl T {
    /// `pieces` pieces of two blocks; `have` = pieces we start with.
    fn new(pieces: u32, have: &[u32]) -> T {
        let layout = Layout::new(PIECE, &[pieces as u64 * PIECE as u64]).unwrap();
        let mut bf = Bitfield::new(pieces);
        for &p in have {
            bf.set(p);
        }
        let cfg = Config {
            rng_seed: 7,
            ..Config::default()
        };
        let now = Instant::now();
        T {
            e: Engine::new(cfg, layout, bf, now),
            now,
        }
    }

    fn addr(key: PeerKey) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, key as u8], 6881))
    }

    fn connect(&mut self, key: PeerKey, reserved: [u8; 8]) -> Vec<Action> {
        let mut id = [b'x'; 20];
        id[19] = key as u8;
        self.e.handle(
            self.now,
            Event::PeerConnected {
                key,
                addr: Self::addr(key),
                peer_id: PeerId(id),
                reserved,
                outbound: false,
            },
        );
        self.drain()
    }

    fn msg(&mut self, key: PeerKey, msg: Message) -> Vec<Action> {
        self.e.handle(self.now, Event::PeerMessage { key, msg });
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.e.poll_action()).collect()
    }

    fn advance(&mut self, secs: u64) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            self.e.handle_timeout(self.now);
            out.extend(self.drain());
        }
        out
    }

    /// A seed peer that has unchoked us; returns the requests it got.
    fn seed_peer(&mut self, key: PeerKey) -> Vec<BlockRef> {
        self.connect(key, PLAIN);
        let n = self.e.layout().num_pieces();
        self.msg(key, Message::Bitfield(Bitfield::full(n)));
        requests(&self.msg(key, Message::Unchoke), key)
    }
}

fn requests(actions: &[Action], key: PeerKey) -> Vec<BlockRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                key: k,
                msg: Message::Request(b),
            } if *k == key => Some(*b),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[Action], key: PeerKey, msg: &Message) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Send { key: k, msg: m } if *k == key && m == msg))
}

#[test]
fn interested_then_requests_up_to_initial_depth() {
    let mut t = T::new(8, &[]);
    let a = t.connect(1, PLAIN);
    assert!(a.is_empty(), "nothing to announce with no pieces: {a:?}");
    let a = t.msg(1, Message::Bitfield(Bitfield::full(8)));
    assert!(sent(&a, 1, &Message::Interested));
    assert!(requests(&a, 1).is_empty(), "choked: no requests yet");
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    assert_eq!(reqs.len(), 4, "slow start begins at 4");
    for b in &reqs {
        assert!(t.e.layout().block_index(b).is_some());
    }
}

#[test]
fn fast_peer_gets_have_none_and_extended_handshake() {
    let mut t = T::new(4, &[]);
    let a = t.connect(1, FAST);
    assert!(sent(&a, 1, &Message::HaveNone));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Send {
            msg: Message::Extended { id: 0, .. },
            ..
        }
    )));
    let mut t = T::new(4, &[0, 1, 2, 3]);
    assert!(sent(&t.connect(1, FAST), 1, &Message::HaveAll));
    let mut t = T::new(4, &[2]);
    let a = t.connect(1, PLAIN);
    assert!(a.iter().any(|x| matches!(x, Action::Send { msg: Message::Bitfield(b), .. } if b.get(2) && b.count_ones() == 1)));
}

#[test]
fn blocks_are_accepted_only_when_requested_and_queue_refills() {
    let mut t = T::new(8, &[]);
    let reqs = t.seed_peer(1);
    assert!(t.e.block_received(t.now, 1, reqs[0]));
    let refill = requests(&t.drain(), 1);
    assert!(
        !refill.is_empty(),
        "a block in frees room (slow start grows too)"
    );
    assert!(
        !t.e.block_received(t.now, 1, reqs[0]),
        "duplicate is refused"
    );
    let stranger = BlockRef {
        piece: 7,
        offset: BLOCK_SIZE,
        len: BLOCK_SIZE,
    };
    if !reqs.contains(&stranger) && !refill.contains(&stranger) {
        assert!(
            !t.e.block_received(t.now, 1, stranger),
            "unrequested is refused"
        );
    }
    assert_eq!(t.e.stats().downloaded, BLOCK_SIZE as u64);
    assert!(t.e.stats().wasted >= BLOCK_SIZE as u64);
}

#[test]
fn choke_gives_requests_back_to_other_peers() {
    let mut t = T::new(2, &[]);
    let first = t.seed_peer(1);
    assert_eq!(first.len(), 4, "all 4 blocks of the torrent");
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(2)));
    let none = requests(&t.msg(2, Message::Unchoke), 2);
    assert!(
        none.iter().all(|b| first.contains(b)),
        "only endgame duplicates"
    );
    let a = t.msg(1, Message::Choke);
    let mut again = requests(&a, 2);
    again.extend(none);
    again.sort();
    let mut first = first;
    first.sort();
    again.dedup();
    assert_eq!(again, first, "peer 2 now has every block requested");
}

#[test]
fn disconnect_gives_requests_back() {
    let mut t = T::new(2, &[]);
    let first = t.seed_peer(1);
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(2)));
    t.msg(2, Message::Unchoke);
    t.e.handle(t.now, Event::PeerDisconnected { key: 1 });
    let a = t.drain();
    assert!(!requests(&a, 2).is_empty() || first.len() == 4);
    assert!(
        !t.e.block_received(t.now, 1, first[0]),
        "gone peer's block is refused"
    );
}

#[test]
fn silent_peer_loses_its_requests_after_timeout() {
    let mut t = T::new(2, &[]);
    let reqs = t.seed_peer(1);
    assert_eq!(reqs.len(), 4, "every block of the torrent");
    let a = t.advance(21);
    for b in &reqs {
        assert!(sent(&a, 1, &Message::Cancel(*b)), "cancel {b:?}");
    }
    let snubbed = requests(&a, 1);
    assert!(snubbed.len() <= 1, "a snubbed peer keeps one request");
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(2)));
    let mut re = requests(&t.msg(2, Message::Unchoke), 2);
    re.extend(snubbed);
    assert!(
        reqs.iter().all(|b| re.contains(b)),
        "re-requested elsewhere"
    );
}

#[test]
fn verified_piece_sends_have_and_completion_ends_interest() {
    let mut t = T::new(2, &[]);
    let reqs = t.seed_peer(1);
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::new(2)));
    for b in &reqs {
        t.e.block_received(t.now, 1, *b);
    }
    t.drain();
    t.e.handle(t.now, Event::PieceVerified { piece: 0 });
    let a = t.drain();
    assert!(sent(&a, 2, &Message::Have(0)));
    assert!(!sent(&a, 1, &Message::Have(0)), "the seed has it already");
    t.e.handle(t.now, Event::PieceVerified { piece: 1 });
    let a = t.drain();
    assert!(a.contains(&Action::Complete));
    assert!(
        a.contains(&Action::Disconnect {
            key: 1,
            reason: "both seeds"
        }),
        "{a:?}"
    );
    assert_eq!(t.e.stats().verified_bytes, 2 * PIECE as u64);
}

#[test]
fn not_interested_when_peer_has_nothing_new() {
    let mut t = T::new(2, &[0]);
    t.connect(1, PLAIN);
    let a = t.msg(1, Message::Have(0));
    assert!(!sent(&a, 1, &Message::Interested));
    let a = t.msg(1, Message::Have(1));
    assert!(sent(&a, 1, &Message::Interested));
    t.e.handle(t.now, Event::PieceVerified { piece: 1 });
    assert!(sent(&t.drain(), 1, &Message::NotInterested));
}

#[test]
fn later_bitfield_replaces_the_first() {
    // aria2 sends full bitfields mid-connection.
    let mut t = T::new(4, &[]);
    t.connect(1, PLAIN);
    let mut bf = Bitfield::new(4);
    bf.set(0);
    t.msg(1, Message::Bitfield(bf));
    assert_eq!(t.e.picker.availability(0), 1);
    let mut bf = Bitfield::new(4);
    bf.set(3);
    t.msg(1, Message::Bitfield(bf));
    assert_eq!(t.e.picker.availability(0), 0);
    assert_eq!(t.e.picker.availability(3), 1);
}

#[test]
fn liar_is_banned_and_cannot_return() {
    let mut t = T::new(4, &[]);
    t.seed_peer(1);
    t.e.handle(
        t.now,
        Event::PieceFailed {
            piece: 0,
            peers: vec![1],
        },
    );
    assert!(!t
        .drain()
        .iter()
        .any(|a| matches!(a, Action::Disconnect { .. })));
    t.e.handle(
        t.now,
        Event::PieceFailed {
            piece: 1,
            peers: vec![1],
        },
    );
    let a = t.drain();
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

#[test]
fn serving_follows_choke_state_and_validates_requests() {
    let mut t = T::new(4, &[0, 1, 2, 3]);
    t.connect(1, FAST);
    let a = t.msg(1, Message::Interested);
    assert!(sent(&a, 1, &Message::Unchoke), "a free slot goes at once");
    let b = BlockRef {
        piece: 2,
        offset: 0,
        len: BLOCK_SIZE,
    };
    assert!(t
        .msg(1, Message::Request(b))
        .contains(&Action::Serve { key: 1, block: b }));
    t.e.handle(t.now, Event::Served { key: 1, block: b });
    assert_eq!(t.e.stats().uploaded, BLOCK_SIZE as u64);
    // Past the end of the piece: protocol error, peer dropped.
    let bad = BlockRef {
        piece: 3,
        offset: PIECE - 10,
        len: 20,
    };
    assert!(t
        .msg(1, Message::Request(bad))
        .iter()
        .any(|a| matches!(a, Action::Disconnect { key: 1, .. })));
}

#[test]
fn choked_or_missing_requests_are_rejected_for_fast_peers() {
    let mut t = T::new(4, &[0]);
    t.connect(1, FAST);
    let b = BlockRef {
        piece: 0,
        offset: 0,
        len: BLOCK_SIZE,
    };
    assert!(sent(&t.msg(1, Message::Request(b)), 1, &Message::Reject(b)));
    t.msg(1, Message::Interested);
    let missing = BlockRef { piece: 1, ..b };
    assert!(sent(
        &t.msg(1, Message::Request(missing)),
        1,
        &Message::Reject(missing)
    ));
    // Plain peers get silence instead.
    t.connect(2, PLAIN);
    assert!(t.msg(2, Message::Request(b)).is_empty());
}

#[test]
fn reject_returns_the_block() {
    let mut t = T::new(1, &[]);
    t.connect(1, FAST);
    t.msg(1, Message::HaveAll);
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    t.msg(1, Message::Reject(reqs[0]));
    assert!(!t.e.block_received(t.now, 1, reqs[0]));
}

#[test]
fn dials_known_peers_and_backs_off_after_failure() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.e.handle(t.now, Event::AddPeers(vec![addr, addr]));
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
    t.e.handle(t.now, Event::ConnectFailed { addr });
    assert!(t.drain().is_empty());
    let a = t.advance(1);
    assert!(!a.contains(&Action::Connect { addr }), "backing off");
    let a = t.advance(2);
    assert!(a.contains(&Action::Connect { addr }), "{a:?}");
}

#[test]
fn gives_up_when_nobody_connects() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.e.handle(t.now, Event::AddPeers(vec![addr]));
    t.e.handle(t.now, Event::ConnectFailed { addr });
    let a = t.advance(31);
    assert!(a.iter().any(|a| matches!(a, Action::GiveUp { .. })));
}

#[test]
fn reqq_from_extended_handshake_caps_the_queue() {
    let mut t = T::new(64, &[]);
    t.connect(1, FAST);
    t.msg(
        1,
        Message::Extended {
            id: 0,
            payload: bytes::Bytes::from_static(b"d4:reqqi2ee"),
        },
    );
    t.msg(1, Message::HaveAll);
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    assert_eq!(reqs.len(), 2);
}

#[test]
fn endgame_cancels_the_other_copy() {
    let mut t = T::new(1, &[]);
    let first = t.seed_peer(1);
    assert_eq!(first.len(), 2);
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(1)));
    let dup = requests(&t.msg(2, Message::Unchoke), 2);
    assert!(!dup.is_empty(), "endgame duplicates the outstanding blocks");
    assert!(t.e.block_received(t.now, 2, dup[0]));
    let a = t.drain();
    assert!(sent(&a, 1, &Message::Cancel(dup[0])), "{a:?}");
    assert!(
        !t.e.block_received(t.now, 1, dup[0]),
        "cancelled copy is not taken"
    );
}

#[test]
fn an_address_that_is_ourselves_is_never_dialled_again() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    t.e.handle(t.now, Event::AddPeers(vec![addr]));
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
    t.e.handle(t.now, Event::DialedSelf { addr });
    t.e.handle(t.now, Event::AddPeers(vec![addr]));
    let mut a = t.drain();
    a.extend(t.advance(120));
    assert!(!a.contains(&Action::Connect { addr }), "{a:?}");
}

#[test]
fn upload_queue_tolerates_lag_but_drops_a_flood() {
    let mut t = T::new(4, &[0, 1, 2, 3]);
    t.connect(1, FAST);
    t.msg(1, Message::Interested);
    let reqq = Config::default().our_reqq;
    let b = BlockRef {
        piece: 0,
        offset: 0,
        len: BLOCK_SIZE,
    };
    // Served reports lag behind the wire: up to twice reqq pending is still accepted
    // (handed to the writer within the serve window, the rest queued here).
    let mut served = 0;
    let mut rejected = 0;
    for _ in 0..2 * reqq {
        let a = t.msg(1, Message::Request(b));
        served += a
            .iter()
            .filter(|a| matches!(a, Action::Serve { .. }))
            .count();
        rejected += a
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send {
                        msg: Message::Reject(_),
                        ..
                    }
                )
            })
            .count();
    }
    assert_eq!(rejected, 0);
    assert_eq!(served, Config::default().serve_window.0);
    // Now the queue is full: refusals, and after reqq of them in a row, a disconnect.
    assert!(sent(&t.msg(1, Message::Request(b)), 1, &Message::Reject(b)));
    let mut dropped = false;
    for _ in 0..reqq {
        dropped |= t.msg(1, Message::Request(b)).iter().any(|a| {
            matches!(
                a,
                Action::Disconnect {
                    key: 1,
                    reason: "request flood"
                }
            )
        });
    }
    assert!(dropped);
}

/// Found by the swarm simulation: a seed and a liar both serving blocks of the same pieces
/// shared three failures; the honest seed reached the ban limit together with the liar and
/// the leecher was left with no one. Shared failures alone never ban.
#[test]
fn shared_failures_alone_never_ban_an_honest_co_contributor() {
    let mut t = T::new(8, &[]);
    t.seed_peer(1); // honest
    t.seed_peer(2); // liar
    for piece in 0..3 {
        t.e.handle(
            t.now,
            Event::PieceFailed {
                piece,
                peers: vec![1, 2],
            },
        );
    }
    assert!(
        !t.drain()
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. })),
        "no one is proven to lie yet"
    );
    assert_eq!(t.e.stats().peers_banned, 0);
    // The liar alone sends a bad piece: now it is banned, and only it.
    t.e.handle(
        t.now,
        Event::PieceFailed {
            piece: 3,
            peers: vec![2],
        },
    );
    let a = t.drain();
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
    t.e.handle(
        t.now,
        Event::PieceFailed {
            piece: 0,
            peers: vec![1, 2],
        },
    );
    let a = t.drain();
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
    t.e.handle(
        t.now,
        Event::PieceFailed {
            piece: 0,
            peers: vec![1],
        },
    );
    let a = t.drain();
    assert!(sent(&a, 1, &Message::Cancel(reqs[1])), "{a:?}");
    let again = requests(&a, 1);
    assert_eq!(again.len(), 2, "the piece is fetched anew: {a:?}");
}

/// Found by interop: `swarm seed --peer ADDR` never dialled ADDR (dialing stopped once
/// complete), so a leecher that does not dial loopback peers itself (Transmission) could
/// not get data from a swarm seed.
#[test]
fn a_seed_dials_the_peers_it_is_given() {
    let mut t = T::new(2, &[0, 1]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.e.handle(t.now, Event::AddPeers(vec![addr]));
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
}

/// ...and a seed that dials must not keep reconnecting to another seed.
#[test]
fn a_seed_does_not_redial_another_seed() {
    let mut t = T::new(2, &[0, 1]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.e.handle(t.now, Event::AddPeers(vec![addr]));
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
    t.e.handle(
        t.now,
        Event::PeerConnected {
            key: 9,
            addr,
            peer_id: PeerId([b's'; 20]),
            reserved: FAST,
            outbound: true,
        },
    );
    t.drain();
    let a = t.msg(9, Message::HaveAll);
    assert!(
        a.contains(&Action::Disconnect {
            key: 9,
            reason: "both seeds"
        }),
        "{a:?}"
    );
    t.e.handle(t.now, Event::PeerDisconnected { key: 9 });
    let a = t.advance(120);
    assert!(!a.contains(&Action::Connect { addr }), "{a:?}");
}

fn serves(actions: &[Action], key: PeerKey) -> Vec<BlockRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Serve { key: k, block } if *k == key => Some(*block),
            _ => None,
        })
        .collect()
}

fn rejects(actions: &[Action], key: PeerKey) -> Vec<BlockRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                key: k,
                msg: Message::Reject(b),
            } if *k == key => Some(*b),
            _ => None,
        })
        .collect()
}

/// 64 pieces of two blocks, every block of them as a request.
fn all_blocks(pieces: u32) -> Vec<BlockRef> {
    (0..pieces)
        .flat_map(|piece| {
            [0, BLOCK_SIZE].map(|offset| BlockRef {
                piece,
                offset,
                len: BLOCK_SIZE,
            })
        })
        .collect()
}

#[test]
fn uploads_beyond_the_serve_window_wait_and_follow_served_reports() {
    let all: Vec<u32> = (0..64).collect();
    let mut t = T::new(64, &all);
    t.connect(1, FAST);
    t.msg(1, Message::Interested);
    let mut handed = Vec::new();
    for b in all_blocks(64) {
        handed.extend(serves(&t.msg(1, Message::Request(b)), 1));
    }
    let window = Config::default().serve_window.0;
    assert_eq!(handed.len(), window, "only the window goes to the writer");
    // Each Served report releases one more, in request order.
    t.e.handle(
        t.now,
        Event::Served {
            key: 1,
            block: handed[0],
        },
    );
    let next = serves(&t.drain(), 1);
    assert_eq!(next, vec![all_blocks(64)[window]]);
}

#[test]
fn choking_a_fast_peer_rejects_its_queued_requests() {
    let all: Vec<u32> = (0..64).collect();
    let mut t = T::new(64, &all);
    t.connect(1, FAST);
    t.connect(2, PLAIN);
    t.msg(1, Message::Interested);
    t.msg(2, Message::Interested);
    let blocks = all_blocks(64);
    for b in &blocks {
        t.msg(1, Message::Request(*b));
        t.msg(2, Message::Request(*b));
    }
    let window = Config::default().serve_window.0;
    // Both lose interest: each is choked. The writer still sends what it was handed (it
    // goes out before the Choke); the fast peer gets a Reject for every other request, in
    // order, after the Choke; the plain peer's are dropped silently (BEP 3: void).
    let a = t.msg(1, Message::NotInterested);
    let choke_at = a
        .iter()
        .position(|x| {
            matches!(
                x,
                Action::Send {
                    key: 1,
                    msg: Message::Choke
                }
            )
        })
        .expect("choked");
    let rej = rejects(&a, 1);
    assert_eq!(rej, blocks[window..].to_vec());
    assert!(a[choke_at + 1..]
        .iter()
        .all(|x| !matches!(x, Action::Serve { .. })));
    let a = t.msg(2, Message::NotInterested);
    assert!(sent(&a, 2, &Message::Choke));
    assert!(rejects(&a, 2).is_empty());
    // Served reports for what was handed over release nothing more.
    t.e.handle(
        t.now,
        Event::Served {
            key: 1,
            block: blocks[0],
        },
    );
    assert!(serves(&t.drain(), 1).is_empty());
}

#[test]
fn cancel_drops_a_queued_request_with_a_reject_for_fast_peers() {
    let all: Vec<u32> = (0..64).collect();
    let mut t = T::new(64, &all);
    t.connect(1, FAST);
    t.msg(1, Message::Interested);
    let blocks = all_blocks(64);
    for b in &blocks {
        t.msg(1, Message::Request(*b));
    }
    let window = Config::default().serve_window.0;
    let queued = blocks[window + 3];
    assert_eq!(rejects(&t.msg(1, Message::Cancel(queued)), 1), vec![queued]);
    // Already handed to the writer: it goes out; nothing to say.
    assert!(t.msg(1, Message::Cancel(blocks[0])).is_empty());
    // The cancelled block is never served.
    let mut later = Vec::new();
    for b in &blocks[..window] {
        t.e.handle(t.now, Event::Served { key: 1, block: *b });
        later.extend(serves(&t.drain(), 1));
    }
    assert!(!later.contains(&queued));
    assert_eq!(later.len(), window);
}

#[test]
fn a_peer_that_stops_sending_loses_its_slot_to_others() {
    let mut t = T::new(64, &[]);
    // Three peers trade with us; one slot each would be plenty, so use one regular slot.
    t.e.cfg.upload_slots = 1;
    t.e.choker = Choker::new(ChokerConfig {
        slots: 1,
        optimistic_rechokes: 3,
        newcomer_age: Duration::ZERO,
        newcomer_weight: 1,
        seed_quota: u64::MAX,
        seed_turn: Duration::MAX,
    });
    let mut half = Bitfield::new(64);
    for i in 0..32 {
        half.set(i);
    }
    for key in 1..=3 {
        t.connect(key, FAST);
        t.msg(key, Message::Bitfield(half.clone()));
        t.msg(key, Message::Interested);
    }
    // Peer 1 unchokes us and sends blocks at first, then goes silent with requests open.
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    for b in &reqs[..2] {
        assert!(t.e.block_received(t.now, 1, *b));
    }
    t.drain();
    t.advance(1);
    let a = t.advance(10);
    // Peer 1 is the fastest uploader to us: the regular slot is its.
    assert!(!t.e.peers[&1].am_choking, "{a:?}");
    // 60 s without a block while it has us unchoked: snubbed, choked at a rechoke
    // (unless it happens to be the optimistic pick, which the others outnumber).
    let a = t.advance(70);
    let regular =
        t.e.peers
            .iter()
            .filter(|(k, p)| !p.am_choking && Some(**k) != t.e.choker.optimistic())
            .map(|(k, _)| *k)
            .collect::<Vec<_>>();
    assert!(!regular.contains(&1), "{regular:?} {a:?}");
}

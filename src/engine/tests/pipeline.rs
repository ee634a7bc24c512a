//! The request pipeline: interest, requests, choke, timeouts, verified pieces, endgame.

use super::*;

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
    let a = t.verified(0);
    assert!(sent(&a, 2, &Message::Have(0)));
    assert!(!sent(&a, 1, &Message::Have(0)), "the seed has it already");
    let a = t.verified(1);
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

/// With every piece in progress fully received, only a verified piece makes room for the
/// next: the queue must refill then, not at the next tick (a 1 s stall per window against
/// a fast seeder that has answered every request).
#[test]
fn verified_piece_refills_the_queue_at_once() {
    let cfg = TorrentConfig {
        rng_seed: 7,
        max_buffer: 2 * PIECE as usize,
        ..TorrentConfig::default()
    };
    let mut t = T::with_config(8, &[], cfg);
    let reqs = t.seed_peer(1);
    assert_eq!(reqs.len(), 4, "two pieces of two blocks");
    for b in &reqs {
        assert!(t.e.block_received(t.now, 1, *b));
    }
    assert!(
        requests(&t.drain(), 1).is_empty(),
        "two pieces in progress at most: nothing more to ask yet"
    );
    let more = requests(&t.verified(reqs[0].piece), 1);
    assert!(!more.is_empty(), "room for another piece: ask at once");
    assert!(more.iter().all(|b| !reqs.contains(b)));
}

/// Two peers serving us share the blocks of the pieces in progress: the one asked first
/// (with a deep queue) does not keep them all.
#[test]
fn peers_serving_at_once_share_the_pieces_in_progress() {
    let cfg = TorrentConfig {
        rng_seed: 7,
        max_buffer: 8 * PIECE as usize, // 8 pieces of 2 blocks in progress at most
        initial_queue_depth: 100,
        ..TorrentConfig::default()
    };
    let mut t = T::with_config(64, &[], cfg);
    let first = t.seed_peer(1);
    assert_eq!(
        first.len(),
        16,
        "alone, it may take every block in progress"
    );
    t.connect(2, PLAIN);
    t.msg(2, Message::Bitfield(Bitfield::full(64)));
    assert!(
        requests(&t.msg(2, Message::Unchoke), 2).is_empty(),
        "nothing free yet"
    );
    for b in &first {
        t.e.block_received(t.now, 1, *b);
    }
    let mut pieces: Vec<u32> = first.iter().map(|b| b.piece).collect();
    pieces.dedup();
    let a: Vec<Action> = pieces.into_iter().flat_map(|p| t.verified(p)).collect();
    let (one, two) = (requests(&a, 1).len(), requests(&a, 2).len());
    assert!(one <= 8, "peer 1 is held to about half: {one}");
    assert!(two >= 4, "peer 2 gets its share: {two}");
}

#[test]
fn not_interested_when_peer_has_nothing_new() {
    let mut t = T::new(2, &[0]);
    t.connect(1, PLAIN);
    let a = t.msg(1, Message::Have(0));
    assert!(!sent(&a, 1, &Message::Interested));
    let a = t.msg(1, Message::Have(1));
    assert!(sent(&a, 1, &Message::Interested));
    assert!(sent(&t.verified(1), 1, &Message::NotInterested));
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
fn reject_returns_the_block() {
    let mut t = T::new(1, &[]);
    t.connect(1, FAST);
    t.msg(1, Message::HaveAll);
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    t.msg(1, Message::Reject(reqs[0]));
    assert!(!t.e.block_received(t.now, 1, reqs[0]));
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

//! Super-seeding (BEP 16): offers, the rule for the next offer, and what is served.

use super::*;
use crate::engine::superseed::{OFFERS_PER_PEER, PATIENCE};

fn super_seed(pieces: u32) -> T {
    let all: Vec<u32> = (0..pieces).collect();
    T::with_config(
        pieces,
        &all,
        TorrentConfig {
            rng_seed: 7,
            super_seed: true,
            ..TorrentConfig::default()
        },
    )
}

fn offers(actions: &[Action], key: PeerKey) -> Vec<u32> {
    sent_to(actions, key, |m| match m {
        Message::Have(p) => Some(*p),
        _ => None,
    })
}

fn request(piece: u32) -> Message {
    Message::Request(BlockRef {
        piece,
        offset: 0,
        len: BLOCK_SIZE,
    })
}

#[test]
fn hides_its_pieces_and_offers_one_at_a_time() {
    let mut t = super_seed(8);
    let a = t.connect(1, FAST);
    assert!(sent(&a, 1, &Message::HaveNone), "{a:?}");
    assert!(!sent(&a, 1, &Message::HaveAll));
    let o = offers(&a, 1);
    assert_eq!(o.len(), OFFERS_PER_PEER, "{a:?}");
    let mut d = o.clone();
    d.dedup();
    assert_eq!(d, o, "distinct");
    // A plain peer gets no bitfield at all (it may be omitted when empty), just offers.
    let a = t.connect(2, PLAIN);
    assert!(!a.iter().any(|x| matches!(
        x,
        Action::Send {
            msg: Message::Bitfield(_),
            ..
        }
    )));
    let o2 = offers(&a, 2);
    assert_eq!(o2.len(), OFFERS_PER_PEER);
    assert!(o2.iter().all(|p| !o.contains(p)), "fresh pieces first");
}

#[test]
fn serves_only_offered_pieces() {
    let mut t = super_seed(8);
    let o = offers(&t.connect(1, FAST), 1);
    t.msg(1, Message::HaveNone);
    t.msg(1, Message::Interested);
    let not_offered = (0..8).find(|p| !o.contains(p)).unwrap();
    let a = t.msg(1, request(not_offered));
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::Send {
                msg: Message::Reject(_),
                ..
            }
        )),
        "{a:?}"
    );
    let a = t.msg(1, request(o[0]));
    assert!(
        a.iter().any(|x| matches!(x, Action::Serve { key: 1, .. })),
        "{a:?}"
    );
}

/// A super-seed of 8 pieces with two empty peers: what peer 1 was offered.
fn two_peers() -> (T, Vec<u32>) {
    let mut t = super_seed(8);
    let o1 = offers(&t.connect(1, FAST), 1);
    t.msg(1, Message::HaveNone);
    t.connect(2, FAST);
    t.msg(2, Message::HaveNone);
    (t, o1)
}

#[test]
fn next_offer_waits_until_the_piece_is_seen_elsewhere() {
    let (mut t, o1) = two_peers();
    // Peer 1 got its first offer; peer 2 lacks it: no new offer for peer 1 yet.
    let a = t.msg(1, Message::Have(o1[0]));
    assert!(offers(&a, 1).is_empty(), "{a:?}");
    // Peer 2 shows it has the piece (it got it from peer 1): peer 1 gets the next one.
    let a = t.msg(2, Message::Have(o1[0]));
    let next = offers(&a, 1);
    assert_eq!(next.len(), 1, "{a:?}");
    assert!(!o1.contains(&next[0]));
}

#[test]
fn a_lone_peer_is_not_kept_waiting() {
    let mut t = super_seed(8);
    let o = offers(&t.connect(1, FAST), 1);
    t.msg(1, Message::HaveNone);
    let a = t.msg(1, Message::Have(o[0]));
    assert_eq!(offers(&a, 1).len(), 1, "nobody else to pass it to: {a:?}");
}

#[test]
fn patience_runs_out() {
    let (mut t, o) = two_peers();
    t.msg(1, Message::Have(o[0]));
    let a = t.advance(PATIENCE.as_secs() - 1);
    assert!(offers(&a, 1).is_empty());
    let a = t.advance(2);
    assert_eq!(offers(&a, 1).len(), 1, "{a:?}");
}

#[test]
fn every_piece_is_offered_before_any_twice() {
    let pieces = 3 * OFFERS_PER_PEER as u32;
    let mut t = super_seed(pieces);
    let mut seen = Vec::new();
    for key in 1..=3 {
        seen.extend(offers(&t.connect(key, FAST), key));
    }
    seen.sort();
    assert_eq!(seen, (0..pieces).collect::<Vec<_>>());
    // A later peer is offered a piece offered once already, never one it announced.
    t.connect(4, FAST);
    let mut bf = Bitfield::new(pieces);
    bf.set(0);
    bf.set(1);
    t.msg(4, Message::Bitfield(bf));
    t.msg(1, Message::Have(2));
    t.msg(2, Message::Have(2));
    t.msg(3, Message::Have(2));
    let a = t.advance(PATIENCE.as_secs() + 1);
    let later = offers(&a, 4);
    assert!(later.iter().all(|&p| p == 2), "{later:?}");
}

#[test]
fn off_unless_configured() {
    let mut t = T::new(4, &[0, 1, 2, 3]);
    let a = t.connect(1, FAST);
    assert!(sent(&a, 1, &Message::HaveAll));
    assert!(offers(&a, 1).is_empty());
}

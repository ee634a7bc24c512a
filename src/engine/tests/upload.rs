//! Serving: choke state, request validation, the serve queue, Reject/Cancel, slots.

use super::*;

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
fn upload_queue_tolerates_lag_but_drops_a_flood() {
    let mut t = T::new(4, &[0, 1, 2, 3]);
    t.connect(1, FAST);
    t.msg(1, Message::Interested);
    let reqq = TorrentConfig::default().our_reqq;
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
    assert_eq!(served, TorrentConfig::default().serve_window.0);
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
    sent_to(actions, key, |m| match m {
        Message::Reject(b) => Some(*b),
        _ => None,
    })
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
    let window = TorrentConfig::default().serve_window.0;
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
    let window = TorrentConfig::default().serve_window.0;
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
    let window = TorrentConfig::default().serve_window.0;
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
        idle_turn: Duration::MAX,
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
    assert!(!t.e.peers[&1].choke.am_choking, "{a:?}");
    // 60 s without a block while it has us unchoked: snubbed, choked at a rechoke
    // (unless it happens to be the optimistic pick, which the others outnumber).
    let a = t.advance(70);
    let regular =
        t.e.peers
            .iter()
            .filter(|(k, p)| !p.choke.am_choking && Some(**k) != t.e.choker.optimistic())
            .map(|(k, _)| *k)
            .collect::<Vec<_>>();
    assert!(!regular.contains(&1), "{regular:?} {a:?}");
}

#[test]
fn the_seed_time_goal_counts_time_seeded_in_earlier_runs() {
    let cfg = |secs| TorrentConfig {
        rng_seed: 7,
        seed_time: Some(Duration::from_secs(secs)),
        ..TorrentConfig::default()
    };
    let all: Vec<u32> = (0..4).collect();
    // An hour's goal, 59 minutes of it seeded before: met a minute into this run.
    let mut t = T::with_config(4, &all, cfg(3600));
    t.e.carry_over(Totals {
        seeded: Duration::from_secs(59 * 60),
        ..Totals::default()
    });
    assert!(!t.e.seed_goal_reached(t.now));
    t.advance(59);
    assert!(!t.e.seed_goal_reached(t.now));
    t.advance(1);
    assert!(t.e.seed_goal_reached(t.now));
    // Already seeded past the goal: met at once, but never before this run is complete.
    let mut t = T::with_config(4, &[0, 1, 2], cfg(60));
    t.e.carry_over(Totals {
        seeded: Duration::from_secs(3600),
        ..Totals::default()
    });
    assert!(!t.e.seed_goal_reached(t.now));
    t.verified(3);
    assert!(t.e.seed_goal_reached(t.now));
}

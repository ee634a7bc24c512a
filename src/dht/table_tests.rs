//! Routing table rules on a hand-moved clock, and invariants under random inserts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const ME: NodeId = NodeId([0; 20]);

/// An id sharing exactly `prefix` leading bits with [`ME`] (all zero), told apart by `n`.
fn at(prefix: u32, n: u8) -> NodeId {
    let mut b = [0u8; 20];
    b[19] = n;
    let mut id = NodeId(b);
    if prefix < 160 {
        let (byte, bit) = ((prefix / 8) as usize, prefix % 8);
        id.0[byte] |= 0x80 >> bit;
        // Keep `n` distinct without touching bits before `prefix`.
        if byte < 19 {
            id.0[19] = n;
        }
    }
    id
}

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 6881))
}

#[test]
fn near_buckets_split_far_ones_fill_and_wait() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    // Nine nodes in the far half (first bit differs): the first bucket splits once, the
    // far bucket holds eight and the ninth waits.
    for n in 0..8 {
        assert_eq!(
            t.heard(now, at(0, n), addr(n as u32), Heard::Answered),
            Outcome::Kept
        );
    }
    assert_eq!(t.bucket_count(), 1);
    // Nodes nearer us split the table until they fit.
    for n in 0..8 {
        assert_eq!(
            t.heard(now, at(5, n), addr(100 + n as u32), Heard::Answered),
            Outcome::Kept
        );
    }
    assert!(t.bucket_count() >= 2);
    let far = t.heard(now, at(0, 99), addr(99), Heard::Answered);
    // All eight far nodes answered just now: good, nothing to ping, the newcomer waits.
    assert_eq!(far, Outcome::Waiting { ping: None });
    assert_eq!(t.len(), 16);
    // Sixteen minutes later they are questionable: the stalest is handed out to ping.
    let later = now + Duration::from_secs(16 * 60);
    match t.heard(later, at(0, 98), addr(98), Heard::Answered) {
        Outcome::Waiting {
            ping: Some((id, _)),
        } => assert_eq!(id.0[0] & 0x80, 0x80),
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_node_that_stops_answering_gives_its_place_to_a_replacement() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    t.heard(now, at(6, 1), addr(1), Heard::Answered);
    for n in 0..8 {
        t.heard(now, at(0, n), addr(10 + n as u32), Heard::Answered);
    }
    t.heard(now, at(6, 2), addr(2), Heard::Answered);
    assert!(matches!(
        t.heard(now, at(0, 50), addr(50), Heard::Queried),
        Outcome::Waiting { .. }
    ));
    let victim = at(0, 3);
    t.failed(now, &victim);
    assert!(t.nodes().any(|n| n.id == victim), "one failure is not bad");
    t.failed(now, &victim);
    assert!(!t.nodes().any(|n| n.id == victim));
    assert!(t.nodes().any(|n| n.id == at(0, 50)));
}

#[test]
fn unusable_nodes_are_refused() {
    let now = Instant::now();
    let mut t = RoutingTable::new(
        ME,
        Rules {
            one_per_ip: true,
            allow_local: true,
            prefer_secure: false,
        },
    );
    let refused = [
        (ME, addr(1)),
        (at(0, 1), "10.0.0.1:0".parse().unwrap()),
        (at(0, 1), "0.0.0.0:6881".parse().unwrap()),
        (at(0, 1), "239.1.1.1:6881".parse().unwrap()),
        (at(0, 1), "255.255.255.255:6881".parse().unwrap()),
        (at(0, 1), "[ff02::1]:6881".parse().unwrap()),
    ];
    for (id, a) in refused {
        assert_eq!(
            t.heard(now, id, a, Heard::Answered),
            Outcome::Refused,
            "{a}"
        );
    }
    assert!(t.is_empty());
    // One per IP: a second id from the same IP is refused.
    t.heard(now, at(0, 1), addr(1), Heard::Answered);
    let same_ip: SocketAddr = SocketAddr::new(addr(1).ip(), 7000);
    assert_eq!(
        t.heard(now, at(0, 2), same_ip, Heard::Answered),
        Outcome::Refused
    );
}

#[test]
fn a_restarted_node_replaces_its_old_entry() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    t.heard(now, at(0, 1), addr(1), Heard::Answered);
    t.heard(now, at(3, 9), addr(1), Heard::Answered);
    let ids: Vec<_> = t.nodes().map(|n| n.id).collect();
    assert_eq!(ids, vec![at(3, 9)]);
}

#[test]
fn closest_are_sorted_by_distance_and_skip_bad_nodes() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    for p in 0..6 {
        t.heard(now, at(p, p as u8), addr(p), Heard::Answered);
    }
    let target = at(4, 0);
    let got: Vec<_> = t
        .closest(now, &target, 3)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got[0], at(4, 4));
    let d: Vec<_> = got.iter().map(|id| id.distance(&target)).collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]));
    t.failed(now, &at(4, 4));
    t.failed(now, &at(4, 4));
    assert!(!t
        .closest(now, &target, 8)
        .iter()
        .any(|(id, _)| *id == at(4, 4)));
}

#[test]
fn stale_buckets_are_refreshed_with_an_id_inside_them() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    for n in 0..8 {
        t.heard(now, at(0, n), addr(n as u32), Heard::Answered);
    }
    t.heard(now, at(2, 1), addr(50), Heard::Answered);
    assert!(t.due_refresh(now, &NodeId([0xa5; 20])).is_empty());
    let later = now + REFRESH_AFTER;
    let targets = t.due_refresh(later, &NodeId([0xa5; 20]));
    assert_eq!(targets.len(), t.bucket_count());
    let last = targets.len() - 1;
    for (i, target) in targets.iter().enumerate() {
        if i < last {
            assert_eq!(ME.common_prefix(target), i as u32);
        } else {
            // The last bucket's refresh looks right next to us.
            assert_eq!(ME.common_prefix(target), 159);
        }
    }
    assert!(t.due_refresh(later, &NodeId([0xa5; 20])).is_empty());
}

proptest! {
    #[test]
    fn invariants_hold_under_random_inserts(
        ops in proptest::collection::vec((any::<[u8; 20]>(), 0u32..300, any::<bool>(), any::<bool>()), 1..400)
    ) {
        let now = Instant::now();
        let me = NodeId([0x3c; 20]);
        let mut t = RoutingTable::new(me, Rules::LOCAL);
        for (id, a, answered, fail) in ops {
            let id = NodeId(id);
            let how = if answered { Heard::Answered } else { Heard::Queried };
            t.heard(now, id, addr(a), how);
            if fail {
                t.failed(now, &id);
            }
        }
        prop_assert!(t.bucket_count() <= 160);
        let count = t.bucket_count();
        let mut addrs = HashSet::new();
        for (i, b) in t.buckets.iter().enumerate() {
            prop_assert!(b.nodes.len() <= K);
            prop_assert!(b.replacements.len() <= K);
            for n in &b.nodes {
                prop_assert!(n.id != me);
                let depth = me.common_prefix(&n.id) as usize;
                let in_place = if i + 1 == count { depth >= i } else { depth == i };
                prop_assert!(in_place, "node at depth {} in bucket {}", depth, i);
                prop_assert!(addrs.insert(n.addr), "address twice");
            }
        }
    }
}

#[test]
fn a_verified_id_replaces_an_unverified_stale_one_in_a_full_bucket() {
    let now = Instant::now();
    let rules = Rules {
        prefer_secure: true,
        ..Rules::PUBLIC
    };
    let mut t = RoutingTable::new(ME, rules);
    // Eight public nodes with random (unverified) ids far from us, plus one near us so the
    // far bucket cannot split any more.
    let ip = |n: u8| SocketAddr::from(([203, 0, 113, n], 6881));
    for n in 0..8 {
        assert_eq!(
            t.heard(now, at(0, n), ip(n), Heard::Answered),
            Outcome::Kept
        );
    }
    t.heard(now, at(3, 1), ip(100), Heard::Answered);
    let mut random = [0xffu8; 20];
    random[19] = 3;
    // An address whose BEP 42 id falls in the far bucket (first bit set).
    let (newcomer_ip, secure) = (1..=255u8)
        .map(|n| SocketAddr::from(([198, 51, 100, n], 6881)))
        .map(|a| (a, crate::dht::secure::secure_id(a.ip(), random)))
        .find(|(_, id)| id.0[0] & 0x80 != 0)
        .unwrap();
    // While the members are good, it waits.
    assert!(matches!(
        t.heard(now, secure, newcomer_ip, Heard::Answered),
        Outcome::Waiting { .. }
    ));
    // Once they are stale, it takes the place of one of them.
    let later = now + GOOD_FOR;
    assert_eq!(
        t.heard(later, secure, newcomer_ip, Heard::Answered),
        Outcome::Kept
    );
    assert!(t.nodes().any(|n| n.id == secure));
    assert_eq!(t.nodes().filter(|n| n.id.0[0] & 0x80 != 0).count(), K);
}

#[test]
fn after_joining_every_bucket_is_refreshed_at_once() {
    let now = Instant::now();
    let mut t = RoutingTable::new(ME, Rules::LOCAL);
    for n in 0..8 {
        t.heard(now, at(0, n), addr(n as u32), Heard::Answered);
    }
    t.heard(now, at(2, 1), addr(50), Heard::Answered);
    assert!(t.due_refresh(now, &NodeId([0xa5; 20])).is_empty());
    t.refresh_all_soon();
    assert_eq!(
        t.due_refresh(now, &NodeId([0xa5; 20])).len(),
        t.bucket_count()
    );
    assert!(t.due_refresh(now, &NodeId([0xa5; 20])).is_empty());
}

proptest! {
    /// `closest` selects the nearest without sorting everything: the same answer as a
    /// full sort, for any table and target.
    #[test]
    fn closest_matches_a_full_sort(
        ids in proptest::collection::vec(any::<[u8; 20]>(), 0..200),
        target in any::<[u8; 20]>(),
        n in 0usize..20,
    ) {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId([0x3c; 20]), Rules::LOCAL);
        for (i, id) in ids.iter().enumerate() {
            t.heard(now, NodeId(*id), addr(i as u32), Heard::Answered);
        }
        let target = NodeId(target);
        let mut all: Vec<NodeId> = t.nodes().map(|x| x.id).collect();
        all.sort_by_key(|id| id.distance(&target));
        all.truncate(n);
        let got: Vec<NodeId> = t.closest(now, &target, n).into_iter().map(|(id, _)| id).collect();
        prop_assert_eq!(got, all);
    }
}

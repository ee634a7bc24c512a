//! Connection slots: eviction of useless peers for newcomers, the per-IP cap, the
//! outbound reserve, peer turnover, and giving up on peers that never stay.

use super::*;

/// Small limits so a few peers fill the slots.
fn cfg(max_peers: usize) -> TorrentConfig {
    TorrentConfig {
        rng_seed: 7,
        max_peers,
        outbound_reserve: 0,
        ..TorrentConfig::default()
    }
}

fn disconnected(a: &[Action], key: PeerKey) -> Option<&'static str> {
    a.iter().find_map(|x| match x {
        Action::Disconnect { key: k, reason } if *k == key => Some(*reason),
        _ => None,
    })
}

/// A squatter: handshakes, has nothing, says Interested, then only keep-alives.
fn squat(t: &mut T, key: PeerKey) {
    t.connect(key, FAST);
    t.msg(key, Message::HaveNone);
    t.msg(key, Message::Interested);
}

#[test]
fn squatters_on_a_seed_make_way_for_a_newcomer_after_the_grace() {
    let mut t = T::with_config(4, &[0, 1, 2, 3], cfg(4));
    for k in 1..=4 {
        squat(&mut t, k);
    }
    // Inside the grace the newcomer is refused...
    t.advance(5);
    assert_eq!(disconnected(&t.connect(5, FAST), 5), Some("too many peers"));
    t.e.handle(t.now, Event::PeerDisconnected { key: 5 });
    // ...after it, the longest-useless squatter goes and the newcomer stays.
    for _ in 0..30 {
        t.advance(1);
        t.msg(1, Message::KeepAlive);
    }
    let a = t.connect(6, FAST);
    assert_eq!(disconnected(&a, 6), None, "{a:?}");
    assert!(sent(&a, 6, &Message::HaveAll));
    let evicted: Vec<_> = (1..=4).filter(|k| disconnected(&a, *k).is_some()).collect();
    assert_eq!(evicted.len(), 1, "{a:?}");
    assert_eq!(t.e.stats().peers_evicted, 1);
    assert_eq!(t.e.stats().peers_connected, 4);
}

#[test]
fn a_newcomer_is_refused_while_every_peer_is_useful() {
    let mut t = T::with_config(4, &[0, 1, 2, 3], cfg(2));
    let b = BlockRef {
        piece: 0,
        offset: 0,
        len: BLOCK_SIZE,
    };
    for k in 1..=2 {
        t.connect(k, FAST);
        t.msg(k, Message::HaveNone);
        t.msg(k, Message::Interested);
    }
    for _ in 0..60 {
        t.advance(1);
        for k in 1..=2 {
            t.msg(k, Message::Request(b));
            t.e.handle(t.now, Event::Served { key: k, block: b });
        }
    }
    assert_eq!(disconnected(&t.connect(3, FAST), 3), Some("too many peers"));
    assert_eq!(t.e.stats().peers_evicted, 0);
}

#[test]
fn one_ip_holds_only_a_few_slots() {
    let mut t = T::with_config(4, &[], cfg(50));
    let cap = t.e.cfg.max_peers_per_ip;
    for k in 0..cap + 3 {
        let addr = SocketAddr::from(([127, 0, 0, 9], 1000 + k as u16));
        let a = t.connect_from(k as PeerKey + 1, addr, FAST, false);
        let refused = disconnected(&a, k as PeerKey + 1);
        if k < cap {
            assert_eq!(refused, None);
        } else {
            assert_eq!(refused, Some("too many connections from this IP"));
        }
    }
    assert_eq!(t.e.stats().peers_connected, cap);
}

#[test]
fn inbound_peers_leave_room_to_dial() {
    let mut t = T::with_config(
        4,
        &[],
        TorrentConfig {
            outbound_reserve: 1,
            ..cfg(3)
        },
    );
    assert_eq!(disconnected(&t.connect(1, FAST), 1), None);
    assert_eq!(disconnected(&t.connect(2, FAST), 2), None);
    assert_eq!(disconnected(&t.connect(3, FAST), 3), Some("too many peers"));
    t.e.handle(t.now, Event::PeerDisconnected { key: 3 });
    // The reserved slot is dialled...
    let addr: SocketAddr = "127.0.0.50:7000".parse().unwrap();
    t.add(vec![addr]);
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
    assert_eq!(disconnected(&t.connect_from(4, addr, FAST, true), 4), None);
    assert_eq!(t.e.stats().peers_connected, 3);
}

/// The leecher attack: fake seeds that never unchoke fill every slot. Turnover drops them
/// and dials the addresses not yet tried, the real seed among them.
#[test]
fn turnover_replaces_seeds_that_never_unchoke_with_untried_addresses() {
    let mut t = T::with_config(4, &[], cfg(3));
    for k in 1..=3 {
        t.connect(k, FAST);
        t.msg(k, Message::HaveAll);
    }
    let real: SocketAddr = "127.0.0.60:7000".parse().unwrap();
    t.add(vec![real]);
    assert!(t.drain().is_empty(), "no room to dial yet");
    let a = t.advance(31);
    let dropped: Vec<_> = (1..=3)
        .filter(|k| disconnected(&a, *k) == Some("peer turnover"))
        .collect();
    assert!(!dropped.is_empty(), "{a:?}");
    assert!(a.contains(&Action::Connect { addr: real }), "{a:?}");
}

#[test]
fn turnover_leaves_peers_that_deliver_alone() {
    let mut t = T::with_config(64, &[], cfg(1));
    let reqs = t.seed_peer(1);
    let other: SocketAddr = "127.0.0.60:7000".parse().unwrap();
    t.add(vec![other]);
    let mut pending = reqs;
    for _ in 0..40 {
        t.advance(1);
        if let Some(b) = pending.pop() {
            t.e.block_received(t.now, 1, b);
            pending.extend(requests(&t.drain(), 1));
        }
    }
    assert_eq!(t.e.stats().peers_connected, 1);
    assert_eq!(t.e.stats().peers_evicted, 0);
}

/// Found by the adversarial review: with `--peer-timeout`, a peer that handshakes and then
/// drops us, again and again, kept the download waiting for ever.
#[test]
fn gives_up_when_the_only_peer_keeps_dropping_us() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.add(vec![addr]);
    let mut gave_up = false;
    let mut key = 100;
    for _ in 0..60 {
        if t.drain().contains(&Action::Connect { addr }) || key == 100 {
            key += 1;
            t.connect_from(key, addr, FAST, true);
            t.e.handle(t.now, Event::PeerDisconnected { key });
        }
        let a = t.advance(1);
        gave_up |= a.iter().any(|x| matches!(x, Action::GiveUp { .. }));
        if a.contains(&Action::Connect { addr }) {
            key += 1;
            t.connect_from(key, addr, FAST, true);
            t.e.handle(t.now, Event::PeerDisconnected { key });
        }
    }
    assert!(gave_up);
}

/// Found by benches/hostile/peers.py (squat-many-ips): after eviction let an honest
/// leecher in, it still waited 15-25 s for an upload slot held by squatters that never ask.
#[test]
fn a_seed_takes_back_upload_slots_from_peers_that_never_ask() {
    let mut t = T::with_config(
        4,
        &[0, 1, 2, 3],
        TorrentConfig {
            upload_slots: 1,
            ..cfg(10)
        },
    );
    squat(&mut t, 1);
    squat(&mut t, 2);
    t.advance(2);
    t.connect(3, FAST);
    t.msg(3, Message::HaveNone);
    let a = t.msg(3, Message::Interested);
    assert!(!sent(&a, 3, &Message::Unchoke), "both slots are held");
    let idle = t.e.cfg.idle_turn.as_secs();
    let a = t.advance(idle);
    assert!(sent(&a, 3, &Message::Unchoke), "{a:?}");
}

//! Peer exchange on the engine's connections (`engine/pex.rs`): what goes out in `ut_pex`
//! messages, to whom, and what becomes of what comes in.

use super::*;
use crate::wire::{ExtHandshake, PexFlags as Bits, PexMsg, UT_PEX};

/// The id peers in these tests want `ut_pex` sent under (not ours, to tell them apart).
const THEIR_PEX: u8 = 7;

fn cfg() -> TorrentConfig {
    TorrentConfig {
        rng_seed: 7,
        max_peers: 100,
        max_peers_per_ip: 100,
        ..TorrentConfig::default()
    }
}

fn ext(t: &mut T, key: PeerKey, ut_pex: Option<u8>, port: Option<u16>) -> Vec<Action> {
    let handshake = Box::new(ExtHandshake {
        m: ut_pex
            .map(|id| (UT_PEX.to_owned(), id))
            .into_iter()
            .collect(),
        p: port,
        ..ExtHandshake::default()
    });
    t.e.handle(t.now, Event::ExtendedHandshake { key, handshake });
    t.drain()
}

/// We dialled `key` (at `T::addr(key)`).
fn dialled(t: &mut T, key: PeerKey) {
    t.connect_from(key, T::addr(key), FAST, true);
}

/// The `ut_pex` messages sent to `key`, decoded.
fn pex_to(actions: &[Action], key: PeerKey) -> Vec<PexMsg> {
    sent_to(actions, key, |m| match m {
        Message::Extended { id, payload } if *id == THEIR_PEX => {
            Some(PexMsg::decode(payload).expect("our ut_pex message decodes"))
        }
        _ => None,
    })
}

/// Every extension message but handshakes (id 0), to anyone.
fn any_extended(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Send { msg: Message::Extended { id, .. }, .. } if *id != 0))
        .count()
}

fn v4(a: SocketAddr) -> std::net::SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("v4 expected"),
    }
}

fn received(t: &mut T, key: PeerKey, addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let msg = Box::new(PexMsg {
        added: addrs.iter().map(|a| (v4(*a), Bits(0))).collect(),
        ..PexMsg::default()
    });
    t.e.handle(t.now, Event::Pex { key, msg });
    // Sorted: the known-peer list shuffles equally ranked addresses.
    let mut dials: Vec<SocketAddr> = t
        .drain()
        .into_iter()
        .filter_map(|a| match a {
            Action::Connect { addr } => Some(addr),
            _ => None,
        })
        .collect();
    dials.sort();
    dials
}

fn far(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 1, 0, i], 7000 + i as u16))
}

#[test]
fn lists_listen_addresses_and_seed_flags_but_not_the_recipient() {
    let mut t = T::with_config(4, &[], cfg());
    dialled(&mut t, 1);
    dialled(&mut t, 2);
    dialled(&mut t, 3);
    t.msg(3, Message::Bitfield(Bitfield::full(4)));
    // Inbound: advertised at its `p`, not at the port it dialled from; without `p`, not at all.
    t.connect(4, FAST);
    ext(&mut t, 4, None, Some(7004));
    t.connect(5, FAST);
    ext(&mut t, 2, Some(THEIR_PEX), None);

    let msgs = pex_to(&t.advance(1), 2);
    assert_eq!(msgs.len(), 1, "one message once there is something to say");
    let added = &msgs[0].added;
    let find = |a: SocketAddr| added.iter().find(|(x, _)| *x == v4(a)).map(|(_, f)| *f);
    assert_eq!(added.len(), 3, "{added:?}");
    assert!(find(T::addr(2)).is_none(), "never the recipient itself");
    let one = find(T::addr(1)).expect("a peer we dialled");
    assert!(one.contains(Bits::REACHABLE) && !one.contains(Bits::SEED));
    let three = find(T::addr(3)).expect("a seed we dialled");
    assert!(three.contains(Bits::SEED) && three.contains(Bits::REACHABLE));
    let four = find(SocketAddr::from(([127, 0, 0, 4], 7004))).expect("inbound, at its `p`");
    assert!(
        !four.contains(Bits::REACHABLE),
        "a claimed port is not proven reachable"
    );
    assert!(msgs[0].dropped.is_empty());

    // Nothing changed: nothing more, however long.
    assert!(pex_to(&t.advance(120), 2).is_empty());
}

#[test]
fn at_most_fifty_added_per_message_and_the_rest_a_minute_later() {
    let mut t = T::with_config(4, &[], cfg());
    for key in 1..=60 {
        dialled(&mut t, key);
    }
    ext(&mut t, 60, Some(THEIR_PEX), None);
    let first = pex_to(&t.advance(1), 60);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].added.len(), 50, "capped at 50 added");
    let later = pex_to(&t.advance(60), 60);
    assert_eq!(later.len(), 1, "the rest follows after the interval");
    let mut all: Vec<_> = first[0]
        .added
        .iter()
        .chain(&later[0].added)
        .map(|(a, _)| *a)
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 59, "everyone but the recipient, once each");
    assert!(!all.contains(&v4(T::addr(60))));
}

#[test]
fn a_disconnected_peer_is_reported_dropped() {
    let mut t = T::with_config(4, &[], cfg());
    dialled(&mut t, 1);
    dialled(&mut t, 2);
    ext(&mut t, 2, Some(THEIR_PEX), None);
    let first = pex_to(&t.advance(1), 2);
    assert_eq!(first[0].added.len(), 1);
    t.e.handle(t.now, Event::PeerDisconnected { key: 1 });
    t.drain();
    // Not before the interval is up, then once.
    assert!(pex_to(&t.advance(30), 2).is_empty());
    let next = pex_to(&t.advance(30), 2);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].dropped, vec![v4(T::addr(1))]);
    assert!(next[0].added.is_empty());
}

#[test]
fn received_addresses_are_dialled_and_a_flood_is_ignored() {
    let mut t = T::with_config(4, &[], cfg());
    dialled(&mut t, 1);
    ext(&mut t, 1, Some(THEIR_PEX), None);
    let dials = received(&mut t, 1, &[far(1), far(2), T::addr(1)]);
    assert_eq!(
        dials,
        vec![far(1), far(2)],
        "the sender itself is not dialled again"
    );

    // A second message sooner than the minimum interval: ignored whole, peer kept.
    t.now += Duration::from_secs(10);
    let again = received(&mut t, 1, &[far(3)]);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(t.e.stats().peers_connected, 1);

    // Past the interval, accepted again.
    t.now += Duration::from_secs(40);
    assert_eq!(received(&mut t, 1, &[far(3)]), vec![far(3)]);
}

#[test]
fn withdrawing_and_reopening_ut_pex_does_not_reset_the_limit() {
    let mut t = T::with_config(4, &[], cfg());
    dialled(&mut t, 1);
    dialled(&mut t, 2);
    ext(&mut t, 1, Some(THEIR_PEX), None);
    assert_eq!(received(&mut t, 1, &[far(1)]), vec![far(1)]);
    ext(&mut t, 1, None, None);
    assert!(
        pex_to(&t.advance(1), 1).is_empty(),
        "withdrawn: told nothing"
    );
    assert!(
        received(&mut t, 1, &[far(2)]).is_empty(),
        "withdrawn: not believed"
    );
    ext(&mut t, 1, Some(THEIR_PEX), None);
    assert!(
        received(&mut t, 1, &[far(2)]).is_empty(),
        "still within the interval"
    );
    // Reopened: it gets a full list again (when its send clock allows).
    let msgs = pex_to(&t.advance(1), 1);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].added.len(), 1);
}

#[test]
fn private_torrent_sends_and_accepts_nothing() {
    let mut t = T::with_config(
        4,
        &[],
        TorrentConfig {
            private: true,
            ..cfg()
        },
    );
    dialled(&mut t, 1);
    dialled(&mut t, 2);
    ext(&mut t, 2, Some(THEIR_PEX), None);
    assert_eq!(any_extended(&t.advance(120)), 0);
    assert!(received(&mut t, 2, &[far(1), far(2)]).is_empty());
}

#[test]
fn a_peer_without_ut_pex_gets_nothing() {
    let mut t = T::with_config(4, &[], cfg());
    dialled(&mut t, 1);
    dialled(&mut t, 2);
    dialled(&mut t, 3);
    // 2 sends an extension handshake without ut_pex; 3 none at all.
    ext(&mut t, 2, None, Some(6000));
    assert_eq!(any_extended(&t.advance(120)), 0);
    assert!(received(&mut t, 2, &[far(1)]).is_empty());
}

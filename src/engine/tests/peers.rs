//! Connections: handshake extensions, dialing, back-off, giving up, seeds dialing.

use super::*;

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
fn dials_known_peers_and_backs_off_after_failure() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.add(vec![addr, addr]);
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
    t.add(vec![addr]);
    t.e.handle(t.now, Event::ConnectFailed { addr });
    let a = t.advance(31);
    assert!(a.iter().any(|a| matches!(a, Action::GiveUp { .. })));
}

#[test]
fn reqq_from_extended_handshake_caps_the_queue() {
    let mut t = T::new(64, &[]);
    t.connect(1, FAST);
    let handshake = crate::wire::ExtHandshake::decode(b"d4:reqqi2ee").unwrap();
    t.e.handle(
        t.now,
        Event::ExtendedHandshake {
            key: 1,
            handshake: Box::new(handshake),
        },
    );
    t.msg(1, Message::HaveAll);
    let reqs = requests(&t.msg(1, Message::Unchoke), 1);
    assert_eq!(reqs.len(), 2);
}

#[test]
fn an_address_that_is_ourselves_is_never_dialled_again() {
    let mut t = T::new(4, &[]);
    let addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    t.add(vec![addr]);
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
    t.e.handle(t.now, Event::DialedSelf { addr });
    t.add(vec![addr]);
    let mut a = t.drain();
    a.extend(t.advance(120));
    assert!(!a.contains(&Action::Connect { addr }), "{a:?}");
}

/// Found by interop: `swarm seed --peer ADDR` never dialled ADDR (dialing stopped once
/// complete), so a leecher that does not dial loopback peers itself (Transmission) could
/// not get data from a swarm seed.
#[test]
fn a_seed_dials_the_peers_it_is_given() {
    let mut t = T::new(2, &[0, 1]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.add(vec![addr]);
    assert_eq!(t.drain(), vec![Action::Connect { addr }]);
}

/// ...and a seed that dials must not keep reconnecting to another seed.
#[test]
fn a_seed_does_not_redial_another_seed() {
    let mut t = T::new(2, &[0, 1]);
    let addr: SocketAddr = "127.0.0.5:7000".parse().unwrap();
    t.add(vec![addr]);
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

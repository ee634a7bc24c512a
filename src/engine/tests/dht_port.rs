//! BEP 5 `Port`: sent after the greeting to peers that set the DHT bit, only with a DHT
//! port configured; a peer's `Port` becomes one `Action::DhtNode` per connection.

use super::*;
use crate::engine::magnet::MetadataPhase;
use crate::types::InfoHash;

/// `FAST` plus the DHT bit.
const FAST_DHT: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x05];
const OUR_PORT: u16 = 7001;

fn with_dht(have: &[u32]) -> T {
    let cfg = TorrentConfig {
        rng_seed: 7,
        dht_port: Some(OUR_PORT),
        ..TorrentConfig::default()
    };
    T::with_config(4, have, cfg)
}

fn ports_sent(actions: &[Action], key: PeerKey) -> Vec<u16> {
    sent_to(actions, key, |m| match m {
        Message::Port(p) => Some(*p),
        _ => None,
    })
}

fn dht_nodes(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DhtNode(addr) => Some(*addr),
            _ => None,
        })
        .collect()
}

#[test]
fn port_goes_to_dht_peers_only_after_the_rest_of_the_greeting() {
    let mut t = with_dht(&[0, 1, 2, 3]);
    let greeting = t.connect(1, FAST_DHT);
    let msgs = sent_to(&greeting, 1, |m| Some(m.clone()));
    // The extension handshake and HaveAll first (BEP 6: HaveAll is the first of BEP 3's).
    assert!(matches!(
        msgs.first(),
        Some(Message::Extended { id: 0, .. })
    ));
    assert_eq!(msgs.get(1), Some(&Message::HaveAll));
    assert_eq!(msgs.last(), Some(&Message::Port(OUR_PORT)));
    assert_eq!(ports_sent(&greeting, 1), [OUR_PORT]);

    let plain = t.connect(2, FAST);
    assert!(ports_sent(&plain, 2).is_empty(), "no DHT bit, no Port");
}

#[test]
fn no_dht_port_configured_means_no_port_sent_and_none_used() {
    // The default: no DHT, or a private torrent (the session leaves `dht_port` unset).
    let mut t = T::new(4, &[]);
    let greeting = t.connect(1, FAST_DHT);
    assert!(ports_sent(&greeting, 1).is_empty());
    let got = t.msg(1, Message::Port(6881));
    assert!(dht_nodes(&got).is_empty());
}

#[test]
fn a_peers_port_becomes_one_candidate_node_at_its_ip() {
    let mut t = with_dht(&[]);
    let addr: SocketAddr = "127.0.0.9:51413".parse().unwrap();
    t.connect_from(1, addr, FAST_DHT, false);
    let got = t.msg(1, Message::Port(6882));
    assert_eq!(dht_nodes(&got), ["127.0.0.9:6882".parse().unwrap()]);
    // Repeated (or changed): one per connection.
    assert!(dht_nodes(&t.msg(1, Message::Port(6882))).is_empty());
    assert!(dht_nodes(&t.msg(1, Message::Port(6883))).is_empty());
    // A peer without the DHT bit that sends one anyway still names a node.
    t.connect(2, FAST);
    let got = t.msg(2, Message::Port(6881));
    assert_eq!(dht_nodes(&got), [SocketAddr::new(T::addr(2).ip(), 6881)]);
}

#[test]
fn port_zero_is_no_node_and_uses_up_the_peers_turn() {
    let mut t = with_dht(&[]);
    t.connect(1, FAST_DHT);
    assert!(dht_nodes(&t.msg(1, Message::Port(0))).is_empty());
    assert!(dht_nodes(&t.msg(1, Message::Port(6881))).is_empty());
}

#[test]
fn a_port_from_a_peer_not_connected_is_ignored() {
    let mut t = with_dht(&[]);
    assert!(dht_nodes(&t.msg(42, Message::Port(6881))).is_empty());
}

#[test]
fn the_metadata_phase_sends_and_takes_port_too_and_the_engine_remembers() {
    let cfg = TorrentConfig {
        rng_seed: 7,
        dht_port: Some(OUR_PORT),
        ..TorrentConfig::default()
    };
    let now = Instant::now();
    let mut p = MetadataPhase::new(cfg.clone(), InfoHash([3; 20]), now);
    let addr: SocketAddr = "127.0.0.7:6881".parse().unwrap();
    let event = |key, reserved| Event::PeerConnected {
        key,
        addr: SocketAddr::new([127, 0, 0, key as u8].into(), 6881),
        peer_id: PeerId([key as u8; 20]),
        reserved,
        outbound: true,
    };
    p.handle(now, event(7, FAST_DHT));
    p.handle(now, event(8, FAST));
    let greeting: Vec<Action> = std::iter::from_fn(|| p.poll_action()).collect();
    let msgs = sent_to(&greeting, 7, |m| Some(m.clone()));
    assert_eq!(msgs.last(), Some(&Message::Port(OUR_PORT)));
    assert_eq!(msgs.get(msgs.len() - 2), Some(&Message::HaveNone));
    assert!(ports_sent(&greeting, 8).is_empty());

    let msg = Message::Port(6885);
    p.handle(now, Event::PeerMessage { key: 7, msg });
    let got: Vec<Action> = std::iter::from_fn(|| p.poll_action()).collect();
    assert_eq!(dht_nodes(&got), [SocketAddr::new(addr.ip(), 6885)]);

    // After the switch the connection has had its turn; the other has not.
    let layout = Layout::new(PIECE, &[4 * PIECE as u64]).unwrap();
    let info = bytes::Bytes::from_static(b"d4:name1:xe");
    let mut e = p.into_engine(now, cfg, layout, Bitfield::new(4), info);
    let switched: Vec<Action> = std::iter::from_fn(|| e.poll_action()).collect();
    assert!(
        ports_sent(&switched, 7).is_empty(),
        "sent once, in the phase"
    );
    let msg = Message::Port(6886);
    e.handle(now, Event::PeerMessage { key: 7, msg });
    let msg = Message::Port(6887);
    e.handle(now, Event::PeerMessage { key: 8, msg });
    let got: Vec<Action> = std::iter::from_fn(|| e.poll_action()).collect();
    assert_eq!(dht_nodes(&got), ["127.0.0.8:6887".parse().unwrap()]);
}

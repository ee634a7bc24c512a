//! BEP 5's `Port` message over real sockets (issue 15): a raw peer of ours connects to a
//! `swarm seed` running the DHT, with the DHT bit set. Swarm's handshake must set the bit
//! and its greeting carry `Port(its port)`; the `Port` we send names a UDP socket of ours
//! that swarm knows from nowhere else (its only `--dht-node` is a socket that never
//! answers), so a KRPC query arriving there proves the `Port` reached its DHT node. A
//! private torrent's handshake sets no DHT bit.
//!
//! Loopback only, own `--state-dir`, `--no-lsd`, `--no-trackers`; every wait is bounded.

mod interop;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use interop::*;
use swarm::dht::{Body, Msg};
use swarm::types::{InfoHash, PeerId};
use swarm::wire::{Handshake, Message};

/// How long each wait may take (generous: a loaded machine, a debug build).
const WAIT: Duration = Duration::from_secs(20);

fn info_hash(hex: &str) -> InfoHash {
    let mut ih = [0u8; 20];
    for (i, b) in ih.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    InfoHash(ih)
}

/// `swarm seed TORRENT -d DIR` with the DHT on, bootstrapping only from `sink`.
fn dht_seed(torrent: &Path, dir: &Path, at: SocketAddr, sink: SocketAddr) -> Proc {
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["seed", "--no-lsd", "--no-port-mapping", "--no-trackers"])
        .arg(torrent)
        .arg("-d")
        .arg(dir)
        .args(["--bind", &at.ip().to_string()])
        .args(["--port", &at.port().to_string()])
        .args(["--dht-node", &sink.to_string()]);
    let mut p = Proc::spawn_with_state("swarm seed (DHT)", &mut c);
    wait_listening(&mut p, at);
    p
}

/// Connects as a peer with the DHT bit (or not) and returns the stream and swarm's
/// handshake.
fn connect(at: SocketAddr, ih: InfoHash, dht: bool) -> (TcpStream, Handshake) {
    let mut s = TcpStream::connect_timeout(&at, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let ours = Handshake::new(ih, PeerId(*b"-PT0001-portporttest")).with_dht(dht);
    s.write_all(&ours.to_bytes()).unwrap();
    let mut theirs = [0u8; Handshake::LEN];
    s.read_exact(&mut theirs).unwrap();
    let hs = Handshake::decode(&theirs).unwrap().unwrap();
    (s, hs)
}

/// Reads swarm's messages until a `Port`, within [`WAIT`]: its port.
fn read_port(s: &mut TcpStream) -> u16 {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        assert!(len <= 1 << 20, "a {len}-byte message in the greeting");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        if body.first() == Some(&9) {
            assert_eq!(len, 3, "Port is 3 bytes");
            return u16::from_be_bytes([body[1], body[2]]);
        }
    }
    panic!("no Port message within {WAIT:?}");
}

#[test]
fn port_messages_go_both_ways_and_the_peers_node_gets_a_query() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "p.bin", 64 * 1024, 51);
    let torrent = t.join("p.torrent");
    let hash = swarm_create(&content.path(), &torrent, Some(16384), &[]);

    let sink = UdpSocket::bind(SocketAddr::new(ip(50), 0)).unwrap();
    let at = SocketAddr::new(ip(51), free_port_tcp_udp(ip(51)));
    let mut seed = dht_seed(&torrent, &t.join("src"), at, sink.local_addr().unwrap());

    // Our DHT node: a UDP socket swarm can learn of only from our Port message, on the
    // address our TCP connection comes from (std's connect leaves it 127.0.0.1).
    let ours = UdpSocket::bind(SocketAddr::new(ip(1), 0)).unwrap();
    ours.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut s, theirs) = connect(at, info_hash(&hash), true);
    assert_eq!(s.local_addr().unwrap().ip(), ip(1));
    assert!(theirs.supports_dht(), "swarm's handshake has no DHT bit");
    assert_eq!(
        read_port(&mut s),
        at.port(),
        "swarm's Port names its DHT port"
    );

    let mut out = BytesMut::new();
    swarm::wire::encode(&Message::HaveNone, &mut out);
    swarm::wire::encode(&Message::Port(ours.local_addr().unwrap().port()), &mut out);
    s.write_all(&out).unwrap();

    let end = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    let query = loop {
        assert!(
            Instant::now() < end,
            "swarm's node never queried the node our Port named\n{}",
            seed.logs()
        );
        match ours.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, at, "a datagram from someone else");
                break Msg::decode(&buf[..n]).expect("swarm sends KRPC");
            }
            Err(_) => continue,
        }
    };
    assert!(
        matches!(query.body, Body::Query { .. }),
        "swarm sent {:?}",
        query.body
    );
    assert!(seed.try_status().is_none());
    drop(s);
    drop(sink);
}

#[test]
fn a_private_torrents_handshake_sets_no_dht_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "q.bin", 64 * 1024, 52);
    let torrent = t.join("q.torrent");
    let o = swarm_cmd()
        .arg("create")
        .arg(content.path())
        .arg("-o")
        .arg(&torrent)
        .args(["--private", "--force"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hash = swarm_info_hash(&torrent);

    let sink = UdpSocket::bind(SocketAddr::new(ip(53), 0)).unwrap();
    let at = SocketAddr::new(ip(54), free_port_tcp_udp(ip(54)));
    let _seed = dht_seed(&torrent, &t.join("src"), at, sink.local_addr().unwrap());
    let (_s, theirs) = connect(at, info_hash(&hash), true);
    assert!(
        !theirs.supports_dht(),
        "a private torrent advertised the DHT"
    );
    assert!(theirs.supports_extended() && theirs.supports_fast());
}

/// The node addresses in a swarm node cache file (`STATE_DIR/dht/nodes`, see
/// `session/dht_cache.rs`: a 12-byte magic, our id, then family byte, id, compact address).
fn cached_nodes(state: &Path) -> Vec<SocketAddr> {
    let bytes = std::fs::read(state.join("dht").join("nodes")).unwrap_or_default();
    let mut rest = bytes.get(b"swarm-dht 1\n".len() + 20..).unwrap_or_default();
    let mut out = Vec::new();
    while let Some((&family, tail)) = rest.split_first() {
        let n = if family == 4 { 26 } else { 38 };
        let Some(entry) = tail.get(..n) else { break };
        if family == 4 {
            let ip: [u8; 4] = entry[20..24].try_into().unwrap();
            let port = u16::from_be_bytes([entry[24], entry[25]]);
            out.push(SocketAddr::new(ip.into(), port));
        }
        rest = &tail[n..];
    }
    out
}

/// Two swarms with the DHT on whose only `--dht-node`s are sockets that never answer: the
/// only way either learns the other's node is the `Port` message on their peer
/// connection. Each answers the other's query, so each saves the other in its node cache
/// (only nodes that answered are saved), which is read once both have stopped.
#[test]
fn two_swarms_learn_each_others_node_from_port_messages_only() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let content = Content::single(&t.join("src"), "two.bin", 4 * MIB, 53);
    let torrent = t.join("two.torrent");
    swarm_create(&content.path(), &torrent, Some(16384), &[]);

    let sink_a = UdpSocket::bind(SocketAddr::new(ip(55), 0)).unwrap();
    let sink_b = UdpSocket::bind(SocketAddr::new(ip(56), 0)).unwrap();
    let a = SocketAddr::new(ip(57), free_port_tcp_udp(ip(57)));
    let b = SocketAddr::new(ip(58), free_port_tcp_udp(ip(58)));
    let mut seed = dht_seed(&torrent, &t.join("src"), a, sink_a.local_addr().unwrap());

    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["fetch", "--no-lsd", "--no-port-mapping", "--no-trackers"])
        .arg(&torrent)
        .arg("-o")
        .arg(t.join("out"))
        .args(["--bind", &b.ip().to_string()])
        .args(["--port", &b.port().to_string()])
        .args(["--peer", &a.to_string()])
        .args(["--dht-node", &sink_b.local_addr().unwrap().to_string()]);
    let mut fetch = Proc::spawn_with_state("swarm fetch (DHT)", &mut c);
    swarm_finish(&mut fetch);
    content.assert_same_in(&t.join("out"), "fetch");
    // B saved its cache as it stopped; A saves it when stopped now.
    assert!(
        seed.stop_with("INT", WAIT).is_some(),
        "the seed did not stop"
    );
    let a_knows = cached_nodes(seed.state_dir().unwrap());
    let b_knows = cached_nodes(fetch.state_dir().unwrap());
    say(&format!(
        "dht port: A cached {a_knows:?}, B cached {b_knows:?}"
    ));
    assert!(
        b_knows.contains(&a),
        "B never added A's node: {b_knows:?}\n{}",
        fetch.logs()
    );
    assert!(
        a_knows.contains(&b),
        "A never added B's node: {a_knows:?}\n{}",
        seed.logs()
    );
    drop((sink_a, sink_b));
}

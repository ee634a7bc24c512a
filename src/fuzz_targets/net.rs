//! Network-message targets: KRPC (DHT), tracker replies (HTTP and UDP), and the requests
//! `swarm tracker` parses (HTTP and UDP).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dht::krpc::{MAX_NODES, MAX_TID, MAX_TOKEN, MAX_VALUES};
use crate::dht::{Body, Msg, Query};
use crate::tracker::{self, udp::Family, MAX_INTERVAL, MAX_PEERS};
use crate::tracker_server::http::{head_end, parse_request, percent_decode, Request, MAX_SCRAPE};
use crate::tracker_server::registry::{Limits, Registry};
use crate::tracker_server::udp::UdpTracker;
use crate::types::InfoHash;

/// KRPC datagrams: caps on what is kept, and encode → decode gives the same message.
pub fn krpc(data: &[u8]) {
    let Ok(m) = Msg::decode(data) else {
        return;
    };
    assert!(m.tid.len() <= MAX_TID);
    if let Body::Response { response: r, .. } = &m.body {
        assert!(r.nodes.len() <= MAX_NODES && r.nodes6.len() <= MAX_NODES);
        assert!(r.values.len() <= MAX_VALUES);
        assert!(r.token.as_ref().is_none_or(|t| t.len() <= MAX_TOKEN));
    }
    let again = Msg::decode(&m.encode()).expect("our own message decodes");
    match (&m.body, &again.body) {
        // An unknown method is kept only as a lossy, shortened name for the 204 reply and
        // the log, so its name need not survive; everything else must.
        (
            Body::Query {
                id: a,
                query: Query::Other { method },
            },
            Body::Query {
                id: b,
                query: Query::Other { .. },
            },
        ) => {
            assert_eq!(a, b);
            assert!(
                method.len() <= 3 * 32,
                "32 bytes at most, each at worst U+FFFD"
            );
            assert_eq!(
                (&again.tid, again.ip, again.read_only),
                (&m.tid, m.ip, m.read_only)
            );
        }
        _ => assert_eq!(again, m),
    }
}

/// The info-hash the `tracker_http` scrape seeds answer for.
pub const SCRAPE_HASH: InfoHash = InfoHash([0x22; 20]);

/// HTTP tracker bodies. First byte even: an announce reply; odd: a scrape reply for
/// [`SCRAPE_HASH`]. The peer list and the interval stay within their caps.
pub fn tracker_http(data: &[u8]) {
    let [mode, body @ ..] = data else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(a) = tracker::http::parse_announce(body) {
            assert!(a.peers.len() <= MAX_PEERS);
            assert!(a.interval <= MAX_INTERVAL);
            assert!(a.min_interval.is_none_or(|m| m <= MAX_INTERVAL));
        }
    } else {
        let _ = tracker::http::parse_scrape(body, &SCRAPE_HASH);
    }
}

/// The transaction id the `tracker_udp` seeds carry.
pub const UDP_TXID: u32 = 0x1234_5678;

/// UDP tracker replies (BEP 15) to a request with [`UDP_TXID`]. First byte: 0 connect,
/// 1 announce over IPv4, 2 over IPv6, 3 scrape (second byte: hashes asked).
pub fn tracker_udp(data: &[u8]) {
    let [mode, n, reply @ ..] = data else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = tracker::udp::parse_connect(reply, UDP_TXID);
        }
        1 | 2 => {
            let family = if mode % 4 == 1 {
                Family::V4
            } else {
                Family::V6
            };
            if let Ok(a) = tracker::udp::parse_announce(reply, UDP_TXID, family) {
                assert!(a.peers.len() <= MAX_PEERS);
                assert!(a.interval <= MAX_INTERVAL);
            }
        }
        _ => {
            if let Ok(s) = tracker::udp::parse_scrape(reply, UDP_TXID, usize::from(*n)) {
                assert!(s.len() <= usize::from(*n));
            }
        }
    }
}

/// `swarm tracker`'s HTTP request heads: the head's end is found as the connection loop
/// finds it, then parsed; a scrape names at most [`MAX_SCRAPE`] hashes.
pub fn tracker_server_http(data: &[u8]) {
    let head = match head_end(data, 0) {
        Some((end, used)) => {
            assert!(end < used && used <= data.len());
            &data[..end]
        }
        None => data,
    };
    if let Ok(Request::Scrape(hashes)) = parse_request(head) {
        assert!(hashes.len() <= MAX_SCRAPE);
    }
    let _ = percent_decode(data);
}

/// `swarm tracker`'s UDP front end: the input is a series of datagrams, each one length
/// byte then its bytes, all from one client into one registry. A connection id of eight
/// zero bytes stands for the valid one (the fuzzer cannot compute the keyed hash).
pub fn tracker_server_udp(data: &[u8]) {
    let epoch = Instant::now();
    let server = UdpTracker::new([9; 16], epoch);
    let reg = Mutex::new(Registry::with_seed(
        Duration::from_secs(1800),
        Limits::default(),
        1,
    ));
    let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 9), 6881));
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (packet, tail) = tail.split_at(n);
        rest = tail;
        let mut packet = packet.to_vec();
        if packet.len() >= 8 && packet[..8] == [0; 8] {
            packet[..8].copy_from_slice(&server.connection_id(from, epoch).to_be_bytes());
        }
        let _ = server.handle(&packet, from, &reg, epoch);
    }
}

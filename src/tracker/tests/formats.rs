//! Fixture and property tests of the pure HTTP and UDP formats.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;

use crate::tracker::udp::{self, Family};
use crate::tracker::{http, AnnounceParams, Event, ScrapeStats, TrackerError, MAX_PEERS};
use crate::types::{InfoHash, PeerId};

const TX: u32 = 0x1234_5678;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../fixtures/tracker/", $name)).as_slice()
    };
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn params() -> AnnounceParams {
    AnnounceParams {
        info_hash: InfoHash([0xaa; 20]),
        peer_id: PeerId(*b"-SW0100-abcdefghijkl"),
        port: 6881,
        uploaded: 10,
        downloaded: 20,
        left: 30,
        event: Event::Started,
        numwant: 50,
        key: 0xdead_beef,
    }
}

#[test]
fn http_compact() {
    let r = http::parse_announce(fixture!("http_compact.bencode")).unwrap();
    assert_eq!(r.interval, Duration::from_secs(1800));
    assert_eq!(r.min_interval, Some(Duration::from_secs(900)));
    assert_eq!((r.complete, r.incomplete), (Some(5), Some(3)));
    assert_eq!(r.peers, addrs(&["10.0.0.1:6881", "192.168.1.20:51413"]));
    assert_eq!(r.warning, None);
}

#[test]
fn http_peers6_and_port_zero_dropped() {
    let r = http::parse_announce(fixture!("http_peers6.bencode")).unwrap();
    assert_eq!(
        r.peers,
        addrs(&["10.0.0.2:6882", "[2001:db8::1]:6881", "[2001:db8::2]:6882"])
    );
}

#[test]
fn http_dictionary_peers_keep_only_usable_entries() {
    let r = http::parse_announce(fixture!("http_dict_peers.bencode")).unwrap();
    assert_eq!(r.interval, Duration::from_secs(1200));
    assert_eq!(r.peers, addrs(&["10.0.0.3:6883", "[2001:db8::7]:6884"]));
}

#[test]
fn http_failure_reason_is_an_error_with_the_text() {
    match http::parse_announce(fixture!("http_failure.bencode")) {
        Err(TrackerError::Failure(msg)) => assert_eq!(msg, "torrent not registered"),
        other => panic!("{other:?}"),
    }
    let e = http::parse_announce(fixture!("http_failure.bencode")).unwrap_err();
    assert_eq!(e.to_string(), "failure reason: torrent not registered");
}

#[test]
fn http_bencode_error_shows_its_cause_once() {
    let e = http::parse_announce(b"d5:peers").unwrap_err();
    assert!(matches!(e, TrackerError::Bencode(_)), "{e:?}");
    assert_eq!(e.to_string(), "response is not bencode");
    let line = crate::error::error_chain(&e);
    assert!(line.starts_with("response is not bencode: "), "{line}");
    assert_eq!(line.matches("not bencode").count(), 1, "{line}");
}

#[test]
fn http_warning_and_tracker_id() {
    let r = http::parse_announce(fixture!("http_warning.bencode")).unwrap();
    assert_eq!(r.warning.as_deref(), Some("announce interval too short"));
    assert_eq!(r.tracker_id.as_deref(), Some(&b"t-42"[..]));
    assert!(r.peers.is_empty());
}

#[test]
fn http_malformed_bodies_are_errors() {
    for body in [
        fixture!("http_truncated.bencode"),
        fixture!("http_not_dict.bencode"),
        fixture!("http_html.txt"),
        b"".as_slice(),
        b"d5:peersi3ee".as_slice(),
        b"d14:failure reasoni1ee".as_slice(),
    ] {
        assert!(http::parse_announce(body).is_err(), "{body:?}");
    }
}

#[test]
fn http_nonsensical_interval_is_clamped_and_the_peers_kept() {
    use crate::tracker::{MAX_INTERVAL, MIN_INTERVAL};
    let r = http::parse_announce(fixture!("http_negative_interval.bencode")).unwrap();
    assert_eq!(r.interval, MIN_INTERVAL);
    assert_eq!(r.peers, addrs(&["10.0.0.1:6881", "192.168.1.20:51413"]));

    let peers = b"5:peers6:\x0a\x00\x00\x01\x1a\xe1";
    let body = |fields: &[u8]| [b"d".as_slice(), fields, peers, b"e"].concat();
    let one_peer = addrs(&["10.0.0.1:6881"]);
    for (fields, interval, min) in [
        // Negative: the floor.
        (
            &b"8:intervali-5e12:min intervali-1e"[..],
            MIN_INTERVAL,
            Some(MIN_INTERVAL),
        ),
        // 2^32 and far beyond: the ceiling.
        (
            b"8:intervali4294967296e12:min intervali4294967296e",
            MAX_INTERVAL,
            Some(MAX_INTERVAL),
        ),
        (b"8:intervali9223372036854775807e", MAX_INTERVAL, None),
        // Not an integer: the default (no floor for `min interval`).
        (b"8:interval4:1800", http::DEFAULT_INTERVAL, None),
        (
            b"8:intervalle12:min intervald1:ai1ee",
            http::DEFAULT_INTERVAL,
            None,
        ),
        // Zero and in range.
        (
            b"8:intervali0e12:min intervali60e",
            MIN_INTERVAL,
            Some(Duration::from_secs(60)),
        ),
        (b"8:intervali900e", Duration::from_secs(900), None),
    ] {
        let body = body(fields);
        let r = http::parse_announce(&body)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&body)));
        assert_eq!(r.interval, interval, "{:?}", String::from_utf8_lossy(&body));
        assert_eq!(r.min_interval, min, "{:?}", String::from_utf8_lossy(&body));
        assert_eq!(r.peers, one_peer);
    }
}

#[test]
fn peer_entries_past_the_cap_are_counted_not_kept() {
    // Distinct, usable addresses: exactly the first MAX_PEERS are kept.
    let n = MAX_PEERS + 1234;
    let mut compact = Vec::with_capacity(n * 6);
    for i in 0..n as u32 {
        compact.extend_from_slice(&(0x0a00_0000 + i + 1).to_be_bytes());
        compact.extend_from_slice(&6881u16.to_be_bytes());
    }
    let body = [
        format!("d8:intervali60e5:peers{}:", compact.len()).as_bytes(),
        &compact,
        b"e",
    ]
    .concat();
    let r = http::parse_announce(&body).unwrap();
    assert_eq!(r.peers.len(), MAX_PEERS);
    assert_eq!(r.peers_dropped, 1234);

    // Port 0 entries do not count towards the cap, and are not emitted.
    let zero = [10, 0, 0, 1, 0, 0];
    let body = [b"d5:peers12:".as_slice(), &zero, &zero, b"e"].concat();
    let r = http::parse_announce(&body).unwrap();
    assert!(r.peers.is_empty());
    assert_eq!(r.peers_dropped, 0);
}

#[test]
fn http_huge_peer_list_is_capped() {
    let r = http::parse_announce(fixture!("http_huge_peers.bencode")).unwrap();
    assert_eq!(r.peers.len(), MAX_PEERS);
    // 30,000 bytes = 5,000 entries.
    assert_eq!(r.peers_dropped, 5000 - MAX_PEERS);
    assert_eq!(r.peers[0], "10.0.0.1:1001".parse().unwrap());
}

#[test]
fn http_scrape() {
    let body = fixture!("http_scrape.bencode");
    let stats = http::parse_scrape(body, &InfoHash([0xaa; 20])).unwrap();
    let want = ScrapeStats {
        complete: 7,
        downloaded: 40,
        incomplete: 2,
    };
    assert_eq!(stats, want);
    assert!(http::parse_scrape(body, &InfoHash([0xbb; 20])).is_err());
    assert!(matches!(
        http::parse_scrape(fixture!("http_failure.bencode"), &InfoHash([0xaa; 20])),
        Err(TrackerError::Failure(_))
    ));
    assert!(http::parse_scrape(fixture!("http_compact.bencode"), &InfoHash([0; 20])).is_err());
}

#[test]
fn url_encodes_every_byte_exactly() {
    let mut hash = [0u8; 20];
    let mut expected_all = String::new();
    for b in 0..=255u8 {
        let mut s = String::new();
        http::percent_encode(&[b], &mut s);
        let literal = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        let want = if literal {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        assert_eq!(s, want, "byte {b:#04x}");
        expected_all.push_str(&want);
    }
    let mut all = String::new();
    http::percent_encode(&(0..=255u8).collect::<Vec<_>>(), &mut all);
    assert_eq!(all, expected_all);

    hash[..4].copy_from_slice(&[0x00, 0x7e, 0x20, 0xff]);
    hash[4..8].copy_from_slice(b"aZ.-");
    let mut p = params();
    p.info_hash = InfoHash(hash);
    let url = http::announce_url("http://t.example/announce", &p, None).unwrap();
    let zeros = "%00".repeat(12);
    assert_eq!(
        url,
        format!(
            "http://t.example/announce?info_hash=%00~%20%FFaZ.-{zeros}\
             &peer_id=-SW0100-abcdefghijkl&port=6881&uploaded=10&downloaded=20&left=30\
             &compact=1&numwant=50&key=deadbeef&event=started"
        )
    );
}

#[test]
fn url_keeps_existing_query_and_echoes_tracker_id() {
    let mut p = params();
    p.event = Event::None;
    let url = http::announce_url("https://t.example/a?passkey=xyz", &p, Some(b"id 1")).unwrap();
    assert!(
        url.starts_with("https://t.example/a?passkey=xyz&info_hash="),
        "{url}"
    );
    assert!(url.ends_with("&key=deadbeef&trackerid=id%201"), "{url}");
    assert!(!url.contains("event="));
    let url = http::announce_url("http://t/a?x=1&", &p, None).unwrap();
    assert!(url.starts_with("http://t/a?x=1&info_hash="), "{url}");
    assert!(matches!(
        http::announce_url("ftp://t/a", &p, None),
        Err(TrackerError::UnsupportedScheme(_))
    ));
    assert!(http::announce_url("http://t/a#frag", &p, None).is_err());
}

#[test]
fn scrape_url_follows_bep48() {
    let cases = [
        ("http://t/announce", Some("http://t/scrape")),
        (
            "http://t/x/announce.php?k=1",
            Some("http://t/x/scrape.php?k=1"),
        ),
        ("http://t/announce?a=/b", Some("http://t/scrape?a=/b")),
        ("http://t/a", None),
        ("http://t/announce/x", None),
        ("http://t/x%064announce", None),
        ("http://announce", None),
        ("http://t", None),
    ];
    for (announce, want) in cases {
        assert_eq!(http::scrape_url(announce).as_deref(), want, "{announce}");
    }
    assert_eq!(
        http::scrape_request_url("http://t/scrape?k=1", &InfoHash([0xff; 20])).unwrap(),
        format!("http://t/scrape?k=1&info_hash={}", "%FF".repeat(20))
    );
}

#[test]
fn udp_requests_have_bep15_layout() {
    let c = udp::connect_request(TX);
    assert_eq!(&c[..8], &0x0417_2710_1980u64.to_be_bytes());
    assert_eq!(&c[8..], &[0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    let a = udp::announce_request(7, TX, &params());
    assert_eq!(a.len(), 98);
    assert_eq!(&a[..8], &7u64.to_be_bytes());
    assert_eq!(&a[8..12], &1u32.to_be_bytes());
    assert_eq!(&a[16..36], &[0xaa; 20]);
    assert_eq!(&a[56..64], &20u64.to_be_bytes(), "downloaded");
    assert_eq!(&a[64..72], &30u64.to_be_bytes(), "left");
    assert_eq!(&a[72..80], &10u64.to_be_bytes(), "uploaded");
    assert_eq!(&a[80..84], &2u32.to_be_bytes(), "event started");
    assert_eq!(&a[88..92], &0xdead_beefu32.to_be_bytes(), "key");
    assert_eq!(&a[92..96], &50i32.to_be_bytes(), "numwant");
    assert_eq!(&a[96..], &6881u16.to_be_bytes());
    let s = udp::scrape_request(7, TX, &[InfoHash([1; 20]); 100]);
    assert_eq!(s.len(), 16 + 20 * udp::MAX_SCRAPE_HASHES);
}

#[test]
fn udp_responses_parse() {
    let id = udp::parse_connect(fixture!("udp_connect.bin"), TX).unwrap();
    assert_eq!(id, 0x0102_0304_0506_0708);

    let r = udp::parse_announce(fixture!("udp_announce_v4.bin"), TX, Family::V4).unwrap();
    assert_eq!(r.interval, Duration::from_secs(1800));
    assert_eq!((r.complete, r.incomplete), (Some(3), Some(2)));
    assert_eq!(r.peers, addrs(&["10.0.0.1:6881", "10.0.0.2:6882"]));

    let r = udp::parse_announce(fixture!("udp_announce_v6.bin"), TX, Family::V6).unwrap();
    assert_eq!(
        r.peers,
        addrs(&["[2001:db8::1]:6881", "[2001:db8::2]:6882"])
    );

    let s = udp::parse_scrape(fixture!("udp_scrape.bin"), TX, 1).unwrap();
    assert_eq!(
        s,
        [ScrapeStats {
            complete: 7,
            downloaded: 40,
            incomplete: 2
        }]
    );

    match udp::parse_announce(fixture!("udp_error.bin"), TX, Family::V4) {
        Err(TrackerError::Failure(msg)) => assert_eq!(msg, "unregistered torrent"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        udp::parse_connect(fixture!("udp_error.bin"), TX),
        Err(TrackerError::Failure(_))
    ));
}

#[test]
fn udp_malformed_packets_are_errors() {
    assert!(matches!(
        udp::parse_connect(fixture!("udp_wrong_txid.bin"), TX),
        Err(TrackerError::TransactionMismatch)
    ));
    assert!(matches!(
        udp::parse_connect(fixture!("udp_connect.bin"), TX + 1),
        Err(TrackerError::TransactionMismatch)
    ));
    assert!(udp::parse_connect(fixture!("udp_truncated.bin"), TX).is_err());
    assert!(udp::parse_connect(b"", TX).is_err());
    assert!(matches!(
        udp::parse_announce(fixture!("udp_wrong_action.bin"), TX, Family::V4),
        Err(TrackerError::Malformed(_))
    ));
    assert!(udp::parse_announce(fixture!("udp_announce_short.bin"), TX, Family::V4).is_err());
    assert!(udp::parse_announce(fixture!("udp_connect.bin"), TX, Family::V4).is_err());
    assert!(udp::parse_scrape(fixture!("udp_connect.bin"), TX, 1).is_err());
    assert!(udp::parse_scrape(&fixture!("udp_scrape.bin")[..10], TX, 1).is_err());
    // A v4 response read as v6 still cannot panic, and a partial tail is ignored.
    let r = udp::parse_announce(fixture!("udp_announce_v4.bin"), TX, Family::V6).unwrap();
    assert!(r.peers.len() <= 1);
}

#[test]
fn udp_huge_peer_list_is_capped() {
    let r = udp::parse_announce(fixture!("udp_huge_announce.bin"), TX, Family::V4).unwrap();
    assert_eq!(r.peers.len(), MAX_PEERS);
    assert_eq!(
        r.peers.len() + r.peers_dropped,
        (fixture!("udp_huge_announce.bin").len() - 20) / 6
    );
}

#[test]
fn udp_interval_is_clamped() {
    use crate::tracker::{MAX_INTERVAL, MIN_INTERVAL};
    for (secs, want) in [
        (0u32, MIN_INTERVAL),
        (5, MIN_INTERVAL),
        (1200, Duration::from_secs(1200)),
        (u32::MAX, MAX_INTERVAL),
    ] {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&TX.to_be_bytes());
        b.extend_from_slice(&secs.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
        let r = udp::parse_announce(&b, TX, Family::V4).unwrap();
        assert_eq!(r.interval, want, "{secs}");
        assert_eq!(r.peers, addrs(&["10.0.0.1:6881"]));
    }
}

proptest! {
    #[test]
    fn http_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = http::parse_announce(&body);
        let _ = http::parse_scrape(&body, &InfoHash([0; 20]));
    }

    #[test]
    fn http_parser_never_panics_on_near_valid_bodies(
        cut in 0usize..100,
        flip in 0usize..100,
        byte in any::<u8>(),
    ) {
        for fx in [fixture!("http_compact.bencode"), fixture!("http_dict_peers.bencode"),
                   fixture!("http_peers6.bencode")] {
            let mut body = fx.to_vec();
            let i = flip % body.len();
            body[i] = byte;
            body.truncate(cut.max(1).min(body.len()));
            let _ = http::parse_announce(&body);
        }
    }

    #[test]
    fn udp_parsers_never_panic(
        buf in proptest::collection::vec(any::<u8>(), 0..200),
        txid in any::<u32>(),
        n in 0usize..200,
    ) {
        let _ = udp::parse_connect(&buf, txid);
        let _ = udp::parse_announce(&buf, txid, Family::V4);
        let _ = udp::parse_announce(&buf, txid, Family::V6);
        let _ = udp::parse_scrape(&buf, txid, n);
        // With a matching header, the body parsers see arbitrary bytes too.
        for action in 0..4u32 {
            let mut b = action.to_be_bytes().to_vec();
            b.extend_from_slice(&txid.to_be_bytes());
            b.extend_from_slice(&buf);
            let _ = udp::parse_connect(&b, txid);
            let _ = udp::parse_announce(&b, txid, Family::V6);
            let _ = udp::parse_scrape(&b, txid, n);
        }
    }
}

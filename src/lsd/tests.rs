//! LSD codec and policy on a virtual clock; arbitrary bytes into the parser.

use std::net::SocketAddrV6;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::policy::Bucket;
use super::*;

fn ih(b: u8) -> InfoHash {
    InfoHash([b; 20])
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HEX_A: &str = "0123456789abcdef0123456789abcdef01234567";

fn hash_of(hex: &str) -> InfoHash {
    InfoHash::from_hex_bytes(hex.as_bytes()).unwrap()
}

#[test]
fn build_is_the_bep14_text() {
    let m = build(Family::V4, 6881, &[hash_of(HEX_A)], Cookie(0x1a2b));
    assert_eq!(
        String::from_utf8(m).unwrap(),
        format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
             Infohash: {HEX_A}\r\ncookie: 00001a2b\r\n\r\n\r\n"
        )
    );
    let m6 = String::from_utf8(build(Family::V6, 1, &[ih(1)], Cookie(0))).unwrap();
    assert!(m6.contains("\r\nHost: [ff15::efc0:988f]:6771\r\n"), "{m6}");
    assert_eq!(Family::V6.group().to_string(), "[ff15::efc0:988f]:6771");
    assert_eq!(Family::V4.group().to_string(), "239.192.152.143:6771");
}

#[test]
fn build_parse_round_trip_and_size_cap() {
    let hashes: Vec<InfoHash> = (1..=40).map(ih).collect();
    for family in [Family::V4, Family::V6] {
        let m = build(family, 65535, &hashes, Cookie(u32::MAX));
        assert!(m.len() <= MAX_BUILT, "{} bytes", m.len());
        let a = parse(&m).unwrap();
        assert_eq!(a.port, 65535);
        assert_eq!(a.cookie, Some(Cookie(u32::MAX)));
        assert_eq!(a.info_hashes, hashes[..MAX_PER_ANNOUNCE]);
    }
    // One more hash would pass the 1400 bytes.
    let over = build(
        Family::V6,
        65535,
        &hashes[..MAX_PER_ANNOUNCE],
        Cookie(u32::MAX),
    )
    .len()
        + 52;
    assert!(over > MAX_BUILT);
}

#[test]
fn real_world_datagrams() {
    // libtorrent / qBittorrent: lowercase hex, `cookie` in lowercase hex without padding.
    let lt = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 8999\r\n\
         Infohash: {HEX_A}\r\ncookie: 3c1f0d2\r\n\r\n\r\n"
    );
    let a = parse(lt.as_bytes()).unwrap();
    assert_eq!((a.port, a.cookie), (8999, Some(Cookie(0x3c1f0d2))));
    assert_eq!(a.info_hashes, [hash_of(HEX_A)]);
    // Transmission: uppercase hex, no cookie.
    let tr = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n\
         Infohash: {}\r\n\r\n\r\n",
        HEX_A.to_uppercase()
    );
    let a = parse(tr.as_bytes()).unwrap();
    assert_eq!((a.port, a.cookie), (51413, None));
    assert_eq!(a.info_hashes, [hash_of(HEX_A)]);
    // Shouting header names, `Cookie`, extra headers, spaces, bare LF, HTTP/1.0.
    let odd = format!(
        "bt-search  *  HTTP/1.0\nHOST: [ff15::efc0:988f]:6771\nX-Extra: whatever\n\
         INFOHASH:   {HEX_A}  \nPORT:6881\nCookie: ABCDEF12\n\n"
    );
    let a = parse(odd.as_bytes()).unwrap();
    assert_eq!((a.port, a.cookie), (6881, Some(Cookie(0xabcdef12))));
    // Several hashes, a duplicate, a v2-length one and an all-zero one skipped.
    let multi = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 1\r\n\
         Infohash: {HEX_A}\r\nInfohash: {}\r\nInfohash: {HEX_A}\r\nInfohash: {}\r\n\
         Infohash: {}\r\n\r\n\r\n",
        "ff".repeat(20),
        "ab".repeat(32),
        "0".repeat(40)
    );
    let a = parse(multi.as_bytes()).unwrap();
    assert_eq!(a.info_hashes, [hash_of(HEX_A), InfoHash([0xff; 20])]);
    // A cookie that is no hex number cannot be ours.
    let c = lt.replace("cookie: 3c1f0d2", "cookie: not-hex");
    assert_eq!(parse(c.as_bytes()).unwrap().cookie, None);
}

#[test]
fn malformed_datagrams_are_refused() {
    use LsdParseError::*;
    let ok = |port: &str, hash: &str| {
        format!("BT-SEARCH * HTTP/1.1\r\nHost: x\r\nPort: {port}\r\nInfohash: {hash}\r\n\r\n\r\n")
    };
    let long_line = format!("BT-SEARCH * HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(300));
    let many_headers = format!("BT-SEARCH * HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(49));
    let many_hashes = format!(
        "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n{}\r\n",
        "Infohash: x\r\n".repeat(31)
    );
    let cases: Vec<(Vec<u8>, LsdParseError)> = vec![
        (vec![], Unterminated),
        (vec![b'a'; 1501], TooLong),
        (b"M-SEARCH * HTTP/1.1\r\n\r\n".to_vec(), BadRequestLine),
        (b"BT-SEARCH / HTTP/1.1\r\n\r\n".to_vec(), BadRequestLine),
        (b"BT-SEARCH * HTTP/2.0\r\n\r\n".to_vec(), BadRequestLine),
        (
            b"BT-SEARCH * HTTP/1.1 extra\r\n\r\n".to_vec(),
            BadRequestLine,
        ),
        (
            ok("6881", HEX_A)
                .replace("\r\n\r\n\r\n", "\r\n")
                .into_bytes(),
            Unterminated,
        ),
        (
            ok("6881", HEX_A).replace("Host: x", "Host x").into_bytes(),
            BadHeader,
        ),
        (
            ok("6881", HEX_A)
                .replace("Host: x", "Host: \u{e9}")
                .into_bytes(),
            BadHeader,
        ),
        (ok("0", HEX_A).into_bytes(), BadPort),
        (ok("65536", HEX_A).into_bytes(), BadPort),
        (ok("-1", HEX_A).into_bytes(), BadPort),
        (ok("", HEX_A).into_bytes(), BadPort),
        (ok("6881 6882", HEX_A).into_bytes(), BadPort),
        (ok("99999999999999999999", HEX_A).into_bytes(), BadPort),
        (ok("1\r\nPort: 2", HEX_A).into_bytes(), DuplicatePort),
        (
            ok("1", HEX_A).replace("Port: 1\r\n", "").into_bytes(),
            NoPort,
        ),
        (ok("1", &HEX_A[1..]).into_bytes(), NoInfohash),
        (ok("1", &HEX_A.replace('0', "g")).into_bytes(), NoInfohash),
        (long_line.into_bytes(), LineTooLong),
        (many_headers.into_bytes(), TooManyHeaders),
        (many_hashes.into_bytes(), TooManyInfohashes),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            parse(&bytes),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_misses(
        port in "[0-9 -]{0,8}",
        hash in "[0-9a-fA-Fg ]{0,44}",
        cookie in "[0-9a-zA-Z]{0,12}",
        cut in 0usize..200,
    ) {
        let s = format!("BT-SEARCH * HTTP/1.1\r\nPort: {port}\r\nInfohash: {hash}\r\ncookie: {cookie}\r\n\r\n");
        let _ = parse(&s.as_bytes()[..cut.min(s.len())]);
        if let Ok(a) = parse(s.as_bytes()) {
            prop_assert!(a.port != 0 && !a.info_hashes.is_empty());
        }
    }
}

// ---- policy ----

fn lsd() -> Lsd {
    Lsd::new(LsdConfig::default(), Cookie(0x5eed))
}

fn from() -> SocketAddr {
    "192.168.1.20:6771".parse().unwrap()
}

fn announce_of(hashes: &[InfoHash], port: u16, cookie: u32) -> Vec<u8> {
    build(Family::V4, port, hashes, Cookie(cookie))
}

#[test]
fn announces_on_start_then_every_five_minutes() {
    let t0 = Instant::now();
    let mut l = lsd();
    assert_eq!(l.next_deadline(), None);
    assert!(l.add(t0, ih(1), false));
    assert_eq!(l.next_deadline(), Some(t0));
    assert_eq!(l.poll_announce(t0), Some(vec![ih(1)]));
    assert_eq!(l.poll_announce(t0), None);
    assert_eq!(l.next_deadline(), Some(t0 + secs(300)));
    assert_eq!(l.poll_announce(t0 + secs(299)), None);
    assert_eq!(l.poll_announce(t0 + secs(300)), Some(vec![ih(1)]));
}

#[test]
fn due_torrents_are_batched_and_datagrams_spaced() {
    let t0 = Instant::now();
    let mut l = lsd();
    for b in 1..=30 {
        l.add(t0, ih(b), false);
    }
    let first = l.poll_announce(t0).unwrap();
    assert_eq!(first.len(), MAX_PER_ANNOUNCE);
    assert_eq!(
        l.poll_announce(t0),
        None,
        "a second datagram in the same second"
    );
    assert_eq!(l.next_deadline(), Some(t0 + secs(1)));
    let second = l.poll_announce(t0 + secs(1)).unwrap();
    assert_eq!(second.len(), 5);
    let mut all: Vec<_> = first.into_iter().chain(second).collect();
    all.sort();
    assert_eq!(all, (1..=30).map(ih).collect::<Vec<_>>());
    // A torrent added later joins the next datagram at once (the gap has passed).
    l.add(t0 + secs(10), ih(99), false);
    assert_eq!(l.poll_announce(t0 + secs(10)), Some(vec![ih(99)]));
}

#[test]
fn a_torrent_is_announced_at_most_once_a_minute_even_when_readded() {
    let t0 = Instant::now();
    let mut l = lsd();
    l.add(t0, ih(1), false);
    assert!(l.poll_announce(t0).is_some());
    l.remove(&ih(1));
    l.add(t0 + secs(5), ih(1), false);
    assert_eq!(l.poll_announce(t0 + secs(5)), None);
    assert_eq!(l.next_deadline(), Some(t0 + secs(60)));
    assert_eq!(l.poll_announce(t0 + secs(60)), Some(vec![ih(1)]));
}

#[test]
fn private_torrents_are_never_announced_nor_reported() {
    let t0 = Instant::now();
    let mut l = lsd();
    assert!(!l.add(t0, ih(7), true));
    assert_eq!(l.next_deadline(), None);
    assert_eq!(l.poll_announce(t0 + secs(3600)), None);
    let got = l
        .receive(t0, from(), &announce_of(&[ih(7)], 6881, 1))
        .unwrap();
    assert!(got.is_empty());
}

#[test]
fn receive_reports_our_torrents_with_the_source_ip_and_announced_port() {
    let t0 = Instant::now();
    let mut l = lsd();
    l.add(t0, ih(1), false);
    l.add(t0, ih(2), false);
    let got = l
        .receive(t0, from(), &announce_of(&[ih(1), ih(3), ih(2)], 51413, 7))
        .unwrap();
    let peer: SocketAddr = "192.168.1.20:51413".parse().unwrap();
    assert_eq!(got, vec![(ih(1), peer), (ih(2), peer)]);
    // libtorrent's resends 2 and 4 s later: nothing new.
    assert!(l
        .receive(t0 + secs(2), from(), &announce_of(&[ih(1)], 51413, 7))
        .unwrap()
        .is_empty());
    // After the window, reported again.
    assert_eq!(
        l.receive(t0 + secs(60), from(), &announce_of(&[ih(1)], 51413, 7))
            .unwrap(),
        vec![(ih(1), peer)]
    );
    // v4-mapped and scoped v6 sources.
    let mapped: SocketAddr = "[::ffff:10.0.0.9]:6771".parse().unwrap();
    let got = l
        .receive(t0, mapped, &announce_of(&[ih(2)], 7000, 7))
        .unwrap();
    assert_eq!(got[0].1.to_string(), "10.0.0.9:7000");
    let scoped = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 6771, 0, 3));
    let got = l
        .receive(t0, scoped, &announce_of(&[ih(2)], 7000, 7))
        .unwrap();
    assert_eq!(got[0].1.to_string(), "[fe80::1%3]:7000");
}

#[test]
fn own_cookie_malformed_and_unusable_sources_are_dropped() {
    let t0 = Instant::now();
    let mut l = lsd();
    l.add(t0, ih(1), false);
    let own = build(Family::V6, 6881, &[ih(1)], l.cookie());
    assert_eq!(l.receive(t0, from(), &own), Err(LsdDrop::Own));
    assert_eq!(
        l.receive(t0, from(), b"GET / HTTP/1.1\r\n\r\n"),
        Err(LsdDrop::Malformed(LsdParseError::BadRequestLine))
    );
    let unspecified: SocketAddr = "0.0.0.0:6771".parse().unwrap();
    assert_eq!(
        l.receive(t0, unspecified, &announce_of(&[ih(1)], 6881, 1)),
        Err(LsdDrop::Unusable)
    );
}

#[test]
fn a_flooding_source_is_capped_and_refills_slowly() {
    let t0 = Instant::now();
    let mut l = lsd();
    for b in 1..=100 {
        l.add(t0, ih(b), false);
    }
    // One datagram per torrent, as libtorrent sends them: 16 get through at once.
    let mut reported = 0;
    let mut limited = 0;
    for b in 1..=100 {
        match l.receive(t0, from(), &announce_of(&[ih(b)], 6881, 1)) {
            Ok(v) => reported += v.len(),
            Err(LsdDrop::RateLimited) => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((reported, limited), (16, 84));
    // Another source is not affected.
    let other: SocketAddr = "192.168.1.21:6771".parse().unwrap();
    assert_eq!(
        l.receive(t0, other, &announce_of(&[ih(50)], 6881, 2))
            .unwrap()
            .len(),
        1
    );
    // Refill: one token per 5 s.
    assert_eq!(
        l.receive(t0 + secs(4), from(), &announce_of(&[ih(50)], 6881, 1)),
        Err(LsdDrop::RateLimited)
    );
    assert_eq!(
        l.receive(t0 + secs(5), from(), &announce_of(&[ih(50)], 6881, 1))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        l.receive(t0 + secs(6), from(), &announce_of(&[ih(51)], 6881, 1)),
        Err(LsdDrop::RateLimited)
    );
    assert_eq!(
        l.receive(t0 + secs(20), from(), &announce_of(&[ih(51)], 6881, 1))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn source_table_is_bounded() {
    let t0 = Instant::now();
    let cfg = LsdConfig {
        max_sources: 4,
        source_burst: 1,
        ..LsdConfig::default()
    };
    let mut l = Lsd::new(cfg, Cookie(1));
    l.add(t0, ih(1), false);
    let src = |i: u8| SocketAddr::from(([10, 0, 0, i], 6771));
    for i in 1..=4 {
        assert_eq!(
            l.receive(t0, src(i), &announce_of(&[ih(1)], 6881, 2))
                .unwrap()
                .len(),
            1
        );
    }
    // Table full of sources with empty buckets: a fifth is refused...
    assert_eq!(
        l.receive(t0, src(5), &announce_of(&[ih(1)], 6881, 2)),
        Err(LsdDrop::RateLimited)
    );
    // ...until their buckets refill and they can be forgotten.
    assert_eq!(
        l.receive(t0 + secs(5), src(5), &announce_of(&[ih(1)], 6881, 2))
            .unwrap()
            .len(),
        1
    );
    assert!(l.source_count() <= 4);
}

#[test]
fn bucket_refills_in_whole_tokens_without_drift() {
    let t0 = Instant::now();
    let mut b = Bucket {
        tokens: 0,
        since: t0,
    };
    b.refill(t0 + Duration::from_millis(12_500), 10, secs(5));
    assert_eq!(b.tokens, 2);
    b.refill(t0 + secs(15), 10, secs(5));
    assert_eq!(b.tokens, 3);
    b.refill(t0 + secs(10_000), 10, secs(5));
    assert_eq!(b.tokens, 10);
}

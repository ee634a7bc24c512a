//! Magnet parsing: real-world links, malformed ones (each error naming its part),
//! round-trips, and arbitrary text that must never panic.

use super::*;
use proptest::prelude::*;

const BBB: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
const SINTEL: &str = "08ada5a7a6183aae1e09d831df6748d566095a10";

fn ih(hex: &str) -> InfoHash {
    match Magnet::parse(&format!("magnet:?xt=urn:btih:{hex}")) {
        Ok(m) => m.info_hash,
        Err(e) => panic!("{hex}: {e}"),
    }
}

fn err(link: &str) -> MagnetError {
    match Magnet::parse(link) {
        Ok(m) => panic!("{link} parsed: {m:?}"),
        Err(e) => e,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn webtorrent_big_buck_bunny() {
    // As published by webtorrent.io: `+` for spaces, encoded tracker URLs, a `ws`.
    let m = Magnet::parse(
        "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=Big+Buck+Bunny\
         &tr=udp%3A%2F%2Fexplodie.org%3A6969&tr=udp%3A%2F%2Ftracker.coppersurfer.tk%3A6969\
         &tr=wss%3A%2F%2Ftracker.openwebtorrent.com\
         &ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F",
    )
    .unwrap();
    assert_eq!(m.info_hash.to_hex(), BBB);
    assert_eq!(m.name.as_deref(), Some("Big Buck Bunny"));
    assert_eq!(
        m.trackers,
        [
            "udp://explodie.org:6969",
            "udp://tracker.coppersurfer.tk:6969",
            "wss://tracker.openwebtorrent.com"
        ]
    );
    assert!(m.peers.is_empty() && m.peer_hosts.is_empty());
}

#[test]
fn hex_any_case_and_base32_any_case_agree() {
    let h = ih(SINTEL);
    assert_eq!(h.to_hex(), SINTEL);
    assert_eq!(ih(&SINTEL.to_ascii_uppercase()), h);
    assert_eq!(ih("BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQQ"), h);
    assert_eq!(ih("bcw2lj5gda5k4hqj3ay56z2i2vtaswqq"), h);
    assert_eq!(ih("3WBFL3G4PSSV7MF37AJSHWDQMLNR63I4").to_hex(), BBB);
    // The same hash twice, once in each form, is one hash.
    let m = Magnet::parse(&format!(
        "magnet:?xt.1=urn:btih:{SINTEL}&xt.2=urn:btih:BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQQ"
    ))
    .unwrap();
    assert_eq!(m.info_hash, h);
    // Scheme and URN prefix in any case.
    assert_eq!(
        Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{SINTEL}"))
            .unwrap()
            .info_hash,
        h
    );
}

#[test]
fn hybrid_links_use_btih_and_v2_only_is_refused() {
    // libtorrent's bittorrent-v1-v2-hybrid-test torrent.
    let m = Magnet::parse(
        "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
         &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb\
         &dn=bittorrent-v1-v2-hybrid-test",
    )
    .unwrap();
    assert_eq!(
        m.info_hash.to_hex(),
        "631a31dd0a46257d5078c0dee4e66e26f73e42ac"
    );
    assert_eq!(m.name.as_deref(), Some("bittorrent-v1-v2-hybrid-test"));
    let e = err("magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e&dn=bittorrent-v2-test");
    assert_eq!(e, MagnetError::V2Only);
    assert!(e
        .to_string()
        .contains("BitTorrent v2-only links are not supported"));
}

#[test]
fn peers_v4_v6_and_hosts() {
    let m = Magnet::parse(&format!(
        "magnet:?xt=urn:btih:{BBB}&x.pe=1.2.3.4:5&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A6881\
         &x.pe=[::1]:7&x.pe=seed.example.org:51413&x.pe=1.2.3.4:5&x.pe="
    ))
    .unwrap();
    assert_eq!(
        m.peers,
        [
            addr("1.2.3.4:5"),
            addr("[2001:db8::1]:6881"),
            addr("[::1]:7")
        ]
    );
    assert_eq!(m.peer_hosts, ["seed.example.org:51413"]);
}

#[test]
fn trackers_in_order_deduplicated_and_dn_decoded() {
    let m = Magnet::parse(&format!(
        "magnet:?tr=http%3A%2F%2Fa%2Fannounce&xt=urn:btih:{BBB}&tr.1=udp://b:80\
         &tr=http://a/announce&tr=&dn=caf%C3%A9%20%26%20cr%C3%A8me%2B1&unknown=%zz"
    ))
    .unwrap();
    assert_eq!(m.trackers, ["http://a/announce", "udp://b:80"]);
    assert_eq!(m.name.as_deref(), Some("café & crème+1"));
    // Not UTF-8 in a name is shown, replaced; empty means none; the last `dn` wins.
    let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{BBB}&dn=%FFa")).unwrap();
    assert_eq!(m.name.as_deref(), Some("\u{FFFD}a"));
    let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{BBB}&dn=a&dn=")).unwrap();
    assert_eq!(m.name, None);
}

#[test]
fn malformed_links_name_their_part() {
    let b = format!("magnet:?xt=urn:btih:{BBB}");
    let table: Vec<(String, MagnetError, &str)> = vec![
        ("http://x/".into(), MagnetError::NotMagnet, "magnet:?"),
        (
            "magnet:xt=urn:btih:x".into(),
            MagnetError::NotMagnet,
            "magnet:?",
        ),
        (
            "magnet:?dn=x".into(),
            MagnetError::NoInfoHash,
            "xt=urn:btih:",
        ),
        (
            "magnet:?xt=urn:sha1:ABC".into(),
            MagnetError::NoInfoHash,
            "xt",
        ),
        (
            format!("magnet:?xt=urn:btih:{}", &BBB[..39]),
            MagnetError::BadHashLength { len: 39 },
            "xt:",
        ),
        (
            "magnet:?xt=urn:btih:".into(),
            MagnetError::BadHashLength { len: 0 },
            "xt:",
        ),
        (
            format!("magnet:?xt=urn:btih:{}g", &BBB[..39]),
            MagnetError::BadHex { pos: 40 },
            "not hex",
        ),
        (
            "magnet:?xt=urn:btih:BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQ1".into(),
            MagnetError::BadBase32 { pos: 32 },
            "base32",
        ),
        (
            format!("magnet:?xt=urn:btih:{BBB}&xt=urn:btih:{SINTEL}"),
            MagnetError::ConflictingHashes {
                first: ih(BBB),
                second: ih(SINTEL),
            },
            "two different",
        ),
        (
            format!("{b}&dn=100%"),
            MagnetError::BadPercent { part: "dn", pos: 4 },
            "dn:",
        ),
        (
            format!("{b}&tr=http%3"),
            MagnetError::BadPercent { part: "tr", pos: 5 },
            "tr:",
        ),
        (
            "magnet:?xt=urn%3btih%3".into(),
            MagnetError::BadPercent {
                part: "xt",
                pos: 10,
            },
            "xt:",
        ),
        (
            format!("{b}&tr=%FF"),
            MagnetError::NotUtf8 { part: "tr" },
            "tr:",
        ),
        (
            format!("{b}&x.pe=1.2.3.4"),
            MagnetError::BadPort {
                peer: "\"1.2.3.4\"".into(),
            },
            "x.pe: bad port",
        ),
        (
            format!("{b}&x.pe=1.2.3.4:0"),
            MagnetError::BadPort {
                peer: "\"1.2.3.4:0\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=1.2.3.4:65536"),
            MagnetError::BadPort {
                peer: "\"1.2.3.4:65536\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=1.2.3.4:%2B80"),
            MagnetError::BadPort {
                peer: "\"1.2.3.4:+80\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=::1:80"),
            MagnetError::BadPeer {
                peer: "\"::1:80\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=[nope]:80"),
            MagnetError::BadPeer {
                peer: "\"[nope]:80\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=01.2.3.4:80"),
            MagnetError::BadPeer {
                peer: "\"01.2.3.4:80\"".into(),
            },
            "x.pe",
        ),
        (
            format!("{b}&x.pe=a%20b:80"),
            MagnetError::BadPeer {
                peer: "\"a b:80\"".into(),
            },
            "x.pe",
        ),
    ];
    for (link, want, needle) in table {
        let e = err(&link);
        assert_eq!(e, want, "{link}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{link}: {msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'), "{msg:?}");
    }
}

#[test]
fn hostile_sizes_are_capped() {
    let b = format!("magnet:?xt=urn:btih:{BBB}");
    let long = format!("{b}&dn={}", "a".repeat(MAX_LINK));
    assert!(matches!(err(&long), MagnetError::TooLong { .. }));
    let field = format!("{b}&dn={}", "%41".repeat(MAX_FIELD + 1));
    assert_eq!(
        err(&field),
        MagnetError::FieldTooLong {
            part: "dn",
            max: MAX_FIELD
        }
    );
    let at_cap = format!("{b}&dn={}", "a".repeat(MAX_FIELD));
    assert_eq!(
        Magnet::parse(&at_cap).unwrap().name.unwrap().len(),
        MAX_FIELD
    );

    let trackers = |n: usize| (0..n).fold(b.clone(), |s, i| s + &format!("&tr=udp://t{i}:1"));
    assert_eq!(
        Magnet::parse(&trackers(MAX_TRACKERS))
            .unwrap()
            .trackers
            .len(),
        MAX_TRACKERS
    );
    assert_eq!(
        err(&trackers(MAX_TRACKERS + 1)),
        MagnetError::TooMany {
            part: "tr",
            max: MAX_TRACKERS
        }
    );
    let peers = |n: usize| {
        (0..n).fold(b.clone(), |s, i| {
            s + &format!("&x.pe=10.0.{}.{}:1&x.pe=h{i}:2", i / 256, i % 256)
        })
    };
    let m = Magnet::parse(&peers(MAX_PEERS / 2)).unwrap();
    assert_eq!(m.peers.len() + m.peer_hosts.len(), MAX_PEERS);
    assert_eq!(
        err(&(peers(MAX_PEERS / 2) + "&x.pe=9.9.9.9:9")),
        MagnetError::TooMany {
            part: "x.pe",
            max: MAX_PEERS
        }
    );
    // An error quoting a long value stays short.
    let e = err(&format!("{b}&x.pe={}", "a".repeat(3000))).to_string();
    assert!(e.len() < 200, "{e}");
}

#[test]
fn to_uri_is_readable_and_round_trips() {
    let mut m = Magnet::new(ih(BBB));
    m.name = Some("Big Buck & Bunny+ 100%".into());
    m.trackers = vec![
        "udp://explodie.org:6969".into(),
        "http://t/a?x=1&y=2".into(),
    ];
    m.peers = vec![addr("1.2.3.4:5"), addr("[2001:db8::1]:6881")];
    m.peer_hosts = vec!["seed.example:7".into()];
    let uri = m.to_uri();
    assert!(
        uri.starts_with(&format!("magnet:?xt=urn:btih:{BBB}&dn=Big%20Buck%20%26")),
        "{uri}"
    );
    assert!(uri.contains("&tr=udp://explodie.org:6969&"), "{uri}");
    assert_eq!(Magnet::parse(&uri).unwrap(), m);
    assert_eq!(
        Magnet::new(ih(BBB)).to_uri(),
        format!("magnet:?xt=urn:btih:{BBB}")
    );
}

#[test]
fn is_magnet_checks_the_scheme_only() {
    assert!(is_magnet("magnet:?xt=1"));
    assert!(is_magnet("Magnet:"));
    assert!(!is_magnet("magnet"));
    assert!(!is_magnet("x.torrent"));
    assert!(!is_magnet("magnét:"));
}

/// A magnet within the invariants the module docs state.
fn arb_magnet() -> impl Strategy<Value = Magnet> {
    let text = "\\PC{1,40}";
    let host = "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,3}";
    (
        any::<[u8; 20]>(),
        proptest::option::of(text),
        proptest::collection::vec(text, 0..8),
        proptest::collection::vec(any::<SocketAddr>(), 0..8),
        proptest::collection::vec((host, 1u16..), 0..4),
    )
        .prop_map(|(h, name, trackers, peers, hosts)| {
            let mut m = Magnet::new(InfoHash(h));
            m.name = name;
            for t in trackers {
                if !m.trackers.contains(&t) {
                    m.trackers.push(t);
                }
            }
            for p in peers {
                // What a link can carry: no port 0, no IPv6 flow or scope.
                let p = SocketAddr::new(p.ip(), p.port().max(1));
                if !m.peers.contains(&p) {
                    m.peers.push(p);
                }
            }
            for (h, port) in hosts {
                let h = format!("{h}:{port}");
                if !m.peer_hosts.contains(&h) {
                    m.peer_hosts.push(h);
                }
            }
            m
        })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = Magnet::parse(&s);
        let _ = Magnet::parse(&format!("magnet:?{s}"));
    }

    #[test]
    fn arbitrary_fields_never_panic(
        parts in proptest::collection::vec(
            ("(xt|dn|tr|x\\.pe|tr\\.[0-9]|zz)", "[%+:\\[\\]a-fA-F0-9.ur nbthm:]{0,50}"),
            0..12,
        )
    ) {
        let q: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = Magnet::parse(&format!("magnet:?{}", q.join("&")));
    }

    #[test]
    fn parse_of_to_uri_is_identity(m in arb_magnet()) {
        let uri = m.to_uri();
        prop_assert_eq!(Magnet::parse(&uri), Ok(m), "{}", uri);
    }
}

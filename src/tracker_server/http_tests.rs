use super::*;
use crate::tracker_server::registry::Event;
use crate::tracker_server::registry::Limits;
use crate::types::InfoHash;
use proptest::prelude::*;

const HASH: &str = "%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13%ff";

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: tracker\r\nUser-Agent: test").into_bytes()
}

fn announce_target(extra: &str) -> String {
    format!("/announce?info_hash={HASH}&peer_id=-SW0100-abcdefghijkl&port=6881&left=10{extra}")
}

fn reg() -> Mutex<Registry> {
    Mutex::new(Registry::with_seed(
        Duration::from_secs(1800),
        Limits::default(),
        3,
    ))
}

fn body(resp: &[u8]) -> &[u8] {
    let (_, end) = head_end(resp, 0).unwrap();
    &resp[end..]
}

fn failure(resp: &[u8]) -> String {
    let b = body(resp);
    let v = bencode::decode(b).unwrap();
    v.get(b"failure reason")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn parses_a_full_announce() {
    let head = get(&announce_target(
        "&uploaded=0&downloaded=5&compact=1&numwant=30&event=started&key=abc&ip=1.2.3.4",
    ));
    let Request::Announce(q) = parse_request(&head).unwrap() else {
        panic!("not an announce")
    };
    let mut expected = [0u8; 20];
    for (i, b) in expected.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    expected[19] = 0xff;
    assert_eq!(q.info_hash, InfoHash(expected));
    assert_eq!(&q.peer_id.0, b"-SW0100-abcdefghijkl");
    assert_eq!((q.port, q.left, q.numwant), (6881, 10, Some(30)));
    assert_eq!(q.event, Event::Started);
    assert!(q.compact && !q.no_peer_id);
}

#[test]
fn defaults_and_variants() {
    let Request::Announce(q) = parse_request(&get(&announce_target(""))).unwrap() else {
        panic!()
    };
    assert_eq!((q.event, q.numwant, q.compact), (Event::None, None, true));
    let Request::Announce(q) =
        parse_request(&get(&announce_target("&compact=0&no_peer_id=1&numwant=-1"))).unwrap()
    else {
        panic!()
    };
    assert!(!q.compact && q.no_peer_id && q.numwant.is_none());
    // Bare LF line endings are tolerated.
    let lf = format!("GET {} HTTP/1.0\nHost: x", announce_target(""));
    assert!(parse_request(lf.as_bytes()).is_ok());
}

#[test]
fn percent_decoding_is_bytewise_and_strict() {
    assert_eq!(percent_decode(b"a%20b+%FF").unwrap(), b"a b+\xff");
    assert_eq!(percent_decode(b"%4"), Err(HttpError::BadPercent));
    assert_eq!(percent_decode(b"%"), Err(HttpError::BadPercent));
    assert_eq!(percent_decode(b"%G1"), Err(HttpError::BadPercent));
    assert_eq!(percent_decode(b"%+1"), Err(HttpError::BadPercent));
    let bad = get(&announce_target("").replace("%0a", "%0z"));
    assert_eq!(parse_request(&bad), Err(HttpError::BadPercent));
}

#[test]
fn rejects_bad_announces() {
    let cases: &[(&str, HttpError)] = &[
        (
            "/announce?info_hash=abc&peer_id=-SW0100-abcdefghijkl&port=1&left=0",
            HttpError::BadLength {
                param: "info_hash",
                len: 3,
            },
        ),
        (
            &format!("/announce?info_hash={HASH}&peer_id=short&port=1&left=0"),
            HttpError::BadLength {
                param: "peer_id",
                len: 5,
            },
        ),
        (
            "/announce?peer_id=-SW0100-abcdefghijkl&port=1&left=0",
            HttpError::Missing("info_hash"),
        ),
        (
            &format!("/announce?info_hash={HASH}&port=1&left=0"),
            HttpError::Missing("peer_id"),
        ),
        (
            &format!("/announce?info_hash={HASH}&peer_id=-SW0100-abcdefghijkl&left=0"),
            HttpError::Missing("port"),
        ),
        (
            &format!("/announce?info_hash={HASH}&peer_id=-SW0100-abcdefghijkl&port=1"),
            HttpError::Missing("left"),
        ),
        (&announce_target("&port=2"), HttpError::Duplicate("port")),
        (
            &announce_target("&numwant=x"),
            HttpError::BadNumber("numwant"),
        ),
        (
            &announce_target("&uploaded=-5"),
            HttpError::BadNumber("uploaded"),
        ),
        (&announce_target("&event=exploded"), HttpError::BadEvent),
        (
            &announce_target("").replace("port=6881", "port=0"),
            HttpError::BadPort,
        ),
        (
            &announce_target("").replace("port=6881", "port=65536"),
            HttpError::BadPort,
        ),
        (
            &announce_target("").replace("left=10", "left=99999999999999999999999"),
            HttpError::BadNumber("left"),
        ),
        ("/scrape", HttpError::FullScrape),
        (
            "/scrape?info_hash=%00",
            HttpError::BadLength {
                param: "info_hash",
                len: 1,
            },
        ),
        ("/", HttpError::NotFound),
        ("/announce.php", HttpError::NotFound),
    ];
    for (target, err) in cases {
        assert_eq!(parse_request(&get(target)).as_ref(), Err(err), "{target}");
    }
}

#[test]
fn rejects_bad_heads() {
    let cases: &[(&[u8], HttpError)] = &[
        (b"", HttpError::BadRequestLine),
        (b"GET /announce", HttpError::BadRequestLine),
        (b"GET /announce HTTP/1.1 extra", HttpError::BadRequestLine),
        (b"GET  /announce HTTP/1.1", HttpError::BadRequestLine),
        (b"GET /announce HTTP/2.0", HttpError::BadRequestLine),
        (b"POST /announce HTTP/1.1", HttpError::BadMethod),
        (b"GET /ann\x7fce HTTP/1.1", HttpError::BadChar),
        (
            b"GET /scrape HTTP/1.1\r\nno colon here",
            HttpError::BadHeader,
        ),
        (b"GET /scrape HTTP/1.1\r\n folded: x", HttpError::BadHeader),
    ];
    for (head, err) in cases {
        assert_eq!(parse_request(head).as_ref(), Err(err), "{head:?}");
    }
    let huge = get(&format!("/scrape?{}", "a".repeat(MAX_HEAD)));
    assert_eq!(parse_request(&huge), Err(HttpError::HeadTooLarge));
}

#[test]
fn head_end_finds_terminators() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Some((14, 18)));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\n", 0), Some((14, 16)));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n", 0), None);
    // A terminator split across two reads is still found when scanning from the join.
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 16), Some((14, 18)));
}

#[test]
fn scrape_lists_hashes() {
    let two = format!("/scrape?info_hash={HASH}&info_hash={}", "%00".repeat(20));
    let Request::Scrape(h) = parse_request(&get(&two)).unwrap() else {
        panic!()
    };
    assert_eq!(h.len(), 2);
    assert_eq!(h[1], InfoHash([0; 20]));
    let many = format!(
        "/scrape?{}",
        "info_hash=aaaaaaaaaaaaaaaaaaaa&".repeat(MAX_SCRAPE + 1)
    );
    assert_eq!(parse_request(&get(&many)), Err(HttpError::TooManyHashes));
}

#[test]
fn respond_compact_dict_and_failure() {
    let r = reg();
    let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    let b: SocketAddr = "[2001:db8::1]:1000".parse().unwrap();
    let first = respond(&get(&announce_target("")), a, &r, Instant::now());
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let v = bencode::decode(body(&first)).unwrap();
    assert_eq!(v.get(b"interval").unwrap().as_int(), Some(1800));
    assert_eq!(v.get(b"min interval").unwrap().as_int(), Some(450));
    assert_eq!(v.get(b"peers").unwrap().as_bytes(), Some(&b""[..]));

    let target = announce_target("").replace("-SW0100-abcdefghijkl", "-SW0100-zzzzzzzzzzzz");
    let resp = respond(&get(&target), b, &r, Instant::now());
    let v = bencode::decode(body(&resp)).unwrap();
    // The announcer's own port (6881), not the connection's, with the source ip.
    assert_eq!(
        v.get(b"peers").unwrap().as_bytes(),
        Some(&[10, 0, 0, 1, 0x1a, 0xe1][..])
    );
    assert_eq!(v.get(b"incomplete").unwrap().as_int(), Some(2));

    let resp = respond(&get(&format!("{target}&compact=0")), b, &r, Instant::now());
    let v = bencode::decode(body(&resp)).unwrap();
    let list = v.get(b"peers").unwrap().as_list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].get(b"ip").unwrap().as_str(), Some("10.0.0.1"));
    assert_eq!(list[0].get(b"port").unwrap().as_int(), Some(6881));
    assert_eq!(
        list[0].get(b"peer id").unwrap().as_bytes(),
        Some(&b"-SW0100-abcdefghijkl"[..])
    );

    // The v4 peer sees the v6 one in peers6.
    let resp = respond(&get(&announce_target("")), a, &r, Instant::now());
    let v = bencode::decode(body(&resp)).unwrap();
    let p6 = v.get(b"peers6").unwrap().as_bytes().unwrap();
    assert_eq!(p6.len(), 18);

    let resp = respond(&get("/announce?port=1"), a, &r, Instant::now());
    assert!(resp.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(failure(&resp), "missing parameter info_hash");
    let resp = respond(b"DELETE / HTTP/1.1", a, &r, Instant::now());
    assert!(resp.starts_with(b"HTTP/1.1 405 "));
    assert_eq!(failure(&resp), "only GET is supported");
}

#[test]
fn respond_scrape() {
    let r = reg();
    let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    respond(&get(&announce_target("")), a, &r, Instant::now());
    let resp = respond(
        &get(&format!("/scrape?info_hash={HASH}")),
        a,
        &r,
        Instant::now(),
    );
    let v = bencode::decode(body(&resp)).unwrap();
    let files = v.get(b"files").unwrap().as_dict().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(files[0].1.get(b"complete").unwrap().as_int(), Some(0));
}

proptest! {
    #[test]
    fn arbitrary_heads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_request(&bytes);
        let _ = head_end(&bytes, bytes.len() / 2);
        let r = reg();
        let resp = respond(&bytes, "127.0.0.1:1".parse().unwrap(), &r, Instant::now());
        prop_assert!(resp.starts_with(b"HTTP/1.1 "));
    }

    #[test]
    fn near_valid_queries_never_panic(
        tail in "[a-z_=&%0-9A-F+-]{0,200}",
    ) {
        let head = get(&format!("/announce?{tail}"));
        let _ = parse_request(&head);
        let head = get(&format!("/scrape?{tail}"));
        let _ = parse_request(&head);
    }
}

#[test]
fn scrape_repeating_a_hash_answers_each_swarm_once() {
    let r = reg();
    let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    respond(&get(&announce_target("")), a, &r, Instant::now());
    let other = "%00".repeat(20);
    let q = format!("/scrape?info_hash={HASH}&info_hash={other}&info_hash={HASH}&info_hash={HASH}");
    let resp = respond(&get(&q), a, &r, Instant::now());
    // Valid bencode (the decoder refuses repeated or unsorted keys), one entry per swarm.
    let v = bencode::decode(body(&resp)).unwrap();
    let files = v.get(b"files").unwrap().as_dict().unwrap();
    assert_eq!(files.len(), 2);
    let ours = v
        .get(b"files")
        .unwrap()
        .get(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 0xff,
        ])
        .unwrap();
    assert_eq!(ours.get(b"incomplete").unwrap().as_int(), Some(1));
}

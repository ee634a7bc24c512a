use super::*;
use crate::tracker_server::registry::Limits;
use proptest::prelude::*;

fn reg() -> Mutex<Registry> {
    Mutex::new(Registry::with_seed(
        Duration::from_secs(1800),
        Limits::default(),
        5,
    ))
}

fn tracker(t0: Instant) -> UdpTracker {
    UdpTracker::new([9; 16], t0)
}

fn connect_req(tid: u32) -> Vec<u8> {
    let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
    p.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p
}

fn announce_req(conn: u64, tid: u32, peer: u8, left: u64, event: u32, port: u16) -> Vec<u8> {
    let mut p = conn.to_be_bytes().to_vec();
    p.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&[7; 20]); // info_hash
    p.extend_from_slice(&[peer; 20]); // peer_id
    p.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    p.extend_from_slice(&left.to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    p.extend_from_slice(&event.to_be_bytes());
    p.extend_from_slice(&[1, 2, 3, 4]); // ip: ignored
    p.extend_from_slice(&0u32.to_be_bytes()); // key
    p.extend_from_slice(&(-1i32).to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    assert_eq!(p.len(), ANNOUNCE_LEN);
    p
}

fn scrape_req(conn: u64, tid: u32, hashes: &[[u8; 20]]) -> Vec<u8> {
    let mut p = conn.to_be_bytes().to_vec();
    p.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    for h in hashes {
        p.extend_from_slice(h);
    }
    p
}

fn connect(t: &UdpTracker, r: &Mutex<Registry>, from: SocketAddr, now: Instant) -> u64 {
    let reply = t.handle(&connect_req(42), from, r, now).unwrap();
    assert_eq!(reply.len(), 16);
    assert_eq!(be_u32(&reply, 0), ACTION_CONNECT);
    assert_eq!(be_u32(&reply, 4), 42);
    be_u64(&reply, 8)
}

fn error_msg(reply: &[u8]) -> String {
    assert_eq!(be_u32(reply, 0), ACTION_ERROR);
    String::from_utf8_lossy(&reply[8..]).into_owned()
}

#[test]
fn connect_announce_scrape_v4() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:5001".parse().unwrap();
    let ca = connect(&t, &r, a, t0);
    let cb = connect(&t, &r, b, t0);
    assert_ne!(ca, cb);

    let reply = t
        .handle(&announce_req(ca, 1, 1, 100, 2, 6881), a, &r, t0)
        .unwrap();
    assert_eq!(reply.len(), 20);
    assert_eq!(be_u32(&reply, 0), ACTION_ANNOUNCE);
    assert_eq!(be_u32(&reply, 4), 1);
    assert_eq!(be_u32(&reply, 8), 1800);
    assert_eq!((be_u32(&reply, 12), be_u32(&reply, 16)), (1, 0));

    let reply = t
        .handle(&announce_req(cb, 2, 2, 0, 2, 6882), b, &r, t0)
        .unwrap();
    assert_eq!((be_u32(&reply, 12), be_u32(&reply, 16)), (1, 1));
    assert_eq!(&reply[20..], &[10, 0, 0, 1, 0x1a, 0xe1]);

    let reply = t
        .handle(&scrape_req(cb, 3, &[[7; 20], [8; 20]]), b, &r, t0)
        .unwrap();
    assert_eq!(reply.len(), 8 + 24);
    assert_eq!(be_u32(&reply, 0), ACTION_SCRAPE);
    // seeders, completed, leechers
    assert_eq!(
        (be_u32(&reply, 8), be_u32(&reply, 12), be_u32(&reply, 16)),
        (1, 0, 1)
    );
    assert_eq!(&reply[20..], &[0; 12]);

    // completed, then stopped.
    t.handle(&announce_req(ca, 4, 1, 0, 1, 6881), a, &r, t0)
        .unwrap();
    let reply = t.handle(&scrape_req(ca, 5, &[[7; 20]]), a, &r, t0).unwrap();
    assert_eq!(be_u32(&reply, 12), 1, "downloaded");
    t.handle(&announce_req(ca, 6, 1, 0, 3, 6881), a, &r, t0)
        .unwrap();
    let reply = t
        .handle(&announce_req(cb, 7, 2, 0, 0, 6882), b, &r, t0)
        .unwrap();
    assert_eq!(reply.len(), 20, "stopped peer is gone");
}

#[test]
fn v6_replies_carry_18_byte_peers() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let a: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    let b: SocketAddr = "[2001:db8::2]:5000".parse().unwrap();
    let v4: SocketAddr = "10.0.0.9:5000".parse().unwrap();
    let ca = connect(&t, &r, a, t0);
    let cb = connect(&t, &r, b, t0);
    let c4 = connect(&t, &r, v4, t0);
    t.handle(&announce_req(ca, 1, 1, 1, 2, 7000), a, &r, t0)
        .unwrap();
    t.handle(&announce_req(c4, 1, 3, 1, 2, 7000), v4, &r, t0)
        .unwrap();
    let reply = t
        .handle(&announce_req(cb, 2, 2, 1, 2, 7001), b, &r, t0)
        .unwrap();
    assert_eq!(reply.len(), 20 + 18, "only the v6 peer");
    assert_eq!(
        &reply[20..36],
        &a.ip()
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(&reply[36..], &7000u16.to_be_bytes());
    // Counts cover both families.
    assert_eq!(be_u32(&reply, 12), 3);
}

#[test]
fn mapped_v4_source_is_v4() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
    let plain: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let cm = connect(&t, &r, mapped, t0);
    let cp = connect(&t, &r, plain, t0);
    t.handle(&announce_req(cm, 1, 1, 1, 2, 7000), mapped, &r, t0)
        .unwrap();
    let reply = t
        .handle(&announce_req(cp, 1, 2, 1, 2, 7000), plain, &r, t0)
        .unwrap();
    assert_eq!(&reply[20..], &[10, 0, 0, 1, 0x1b, 0x58]);
}

#[test]
fn connection_ids_bind_source_and_window() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let other_ip: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let other_port: SocketAddr = "10.0.0.1:5001".parse().unwrap();
    let id = connect(&t, &r, a, t0);
    let req = announce_req(id, 1, 1, 1, 2, 6881);
    assert!(t.handle(&req, other_ip, &r, t0).is_none());
    assert!(t.handle(&req, other_port, &r, t0).is_none());
    assert!(t
        .handle(&announce_req(id ^ 1, 1, 1, 1, 2, 6881), a, &r, t0)
        .is_none());
    // Another secret gives other ids.
    assert_ne!(UdpTracker::new([8; 16], t0).connection_id(a, t0), id);
    // Valid in its window and the next, not after.
    assert!(t.handle(&req, a, &r, t0 + WINDOW).is_some());
    assert!(t.handle(&req, a, &r, t0 + WINDOW * 2).is_none());
    // An id from a later window is not accepted now either.
    let future = t.connection_id(a, t0 + WINDOW * 5);
    assert!(t
        .handle(&announce_req(future, 1, 1, 1, 2, 6881), a, &r, t0)
        .is_none());
}

#[test]
fn bad_packets_are_dropped_or_refused() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    for len in 0..16 {
        assert!(t.handle(&connect_req(1)[..len], a, &r, t0).is_none());
    }
    let mut no_magic = connect_req(1);
    no_magic[0] = 1;
    assert!(t.handle(&no_magic, a, &r, t0).is_none());
    let id = connect(&t, &r, a, t0);

    let short = &announce_req(id, 9, 1, 1, 2, 6881)[..97];
    let reply = t.handle(short, a, &r, t0).unwrap();
    assert_eq!(be_u32(&reply, 4), 9);
    assert!(error_msg(&reply).contains("98"));
    let e = t
        .handle(&announce_req(id, 9, 1, 1, 4, 6881), a, &r, t0)
        .unwrap();
    assert_eq!(error_msg(&e), "unknown event");
    let e = t
        .handle(&announce_req(id, 9, 1, 1, 2, 0), a, &r, t0)
        .unwrap();
    assert!(error_msg(&e).contains("port"));
    let mut unknown = scrape_req(id, 9, &[]);
    unknown[11] = 7;
    assert_eq!(
        error_msg(&t.handle(&unknown, a, &r, t0).unwrap()),
        "unknown action"
    );
    let e = t.handle(&scrape_req(id, 9, &[]), a, &r, t0).unwrap();
    assert!(error_msg(&e).contains("20-byte"));
    let mut ragged = scrape_req(id, 9, &[[1; 20]]);
    ragged.push(0);
    assert!(error_msg(&t.handle(&ragged, a, &r, t0).unwrap()).contains("20-byte"));
    let many = scrape_req(id, 9, &[[1; 20]; MAX_SCRAPE + 1]);
    assert!(error_msg(&t.handle(&many, a, &r, t0).unwrap()).contains("at most"));
    assert!(t
        .handle(&scrape_req(id, 9, &[[1; 20]; MAX_SCRAPE]), a, &r, t0)
        .is_some());
    // BEP 41 options after the fixed announce are ignored.
    let mut opts = announce_req(id, 9, 1, 1, 2, 6881);
    opts.extend_from_slice(&[2, 3, b'/', b'a', b'b', 0]);
    assert_eq!(
        be_u32(&t.handle(&opts, a, &r, t0).unwrap(), 0),
        ACTION_ANNOUNCE
    );
}

#[test]
fn numwant_is_capped_per_family() {
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    for i in 0..300u32 {
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5000));
        let id = connect(&t, &r, from, t0);
        let mut p = announce_req(id, 1, 0, 1, 2, 6881);
        p[36..40].copy_from_slice(&i.to_be_bytes()); // distinct peer ids
        t.handle(&p, from, &r, t0).unwrap();
    }
    let from: SocketAddr = "10.2.0.1:5000".parse().unwrap();
    let id = connect(&t, &r, from, t0);
    let mut p = announce_req(id, 1, 0xee, 1, 2, 6881);
    let reply = t.handle(&p, from, &r, t0).unwrap();
    assert_eq!((reply.len() - 20) / 6, 50, "default");
    p[92..96].copy_from_slice(&1000i32.to_be_bytes());
    let reply = t.handle(&p, from, &r, t0).unwrap();
    assert_eq!((reply.len() - 20) / 6, MAX_PEERS_V4);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        valid_id in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let (t, r) = (tracker(t0), reg());
        let from: SocketAddr = if v6 { "[::1]:9".parse().unwrap() } else { "127.0.0.1:9".parse().unwrap() };
        if valid_id && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&t.connection_id(from, t0).to_be_bytes());
        }
        if let Some(reply) = t.handle(&bytes, from, &r, t0) {
            prop_assert!(reply.len() >= 8);
            prop_assert!(reply.len() <= 20 + 18 * MAX_PEERS_V6.max(MAX_PEERS_V4));
        }
    }
}

#[test]
fn scrape_repeating_a_hash_answers_in_request_order() {
    // BEP 15 answers by position: a repeated hash gets a repeated (identical) entry, which
    // is well-formed; the reply stays one entry per requested hash.
    let t0 = Instant::now();
    let (t, r) = (tracker(t0), reg());
    let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let c = connect(&t, &r, a, t0);
    t.handle(&announce_req(c, 1, 1, 100, 2, 6881), a, &r, t0)
        .unwrap();
    let reply = t
        .handle(&scrape_req(c, 3, &[[7; 20], [8; 20], [7; 20]]), a, &r, t0)
        .unwrap();
    assert_eq!(reply.len(), 8 + 3 * 12);
    assert_eq!(&reply[8..20], &reply[32..44]);
    assert_eq!(be_u32(&reply, 16), 1, "leechers of the repeated swarm");
}

//! `swarm tracker` on real loopback sockets (port 0): announces over HTTP and UDP see each
//! other (compact and dictionary replies), scrape counts, `stopped` removes, shutdown, the CLI.
//! Requests are built by hand so these tests do not depend on the tracker client.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swarm::bencode;
use swarm::tracker_server::registry::Limits;
use swarm::tracker_server::{self, HttpLimits, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

const HASH: [u8; 20] =
    *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\xff";

fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

type Started = (
    SocketAddr,
    SocketAddr,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

async fn start() -> Started {
    start_with(ServerConfig::default()).await
}

/// `cfg` served on loopback port 0 (its addresses are replaced).
async fn start_with(cfg: ServerConfig) -> Started {
    let lo = SocketAddr::from(([127, 0, 0, 1], 0));
    let cfg = ServerConfig {
        http: Some(lo),
        udp: Some(lo),
        ..cfg
    };
    let server: Server = tracker_server::bind(cfg).await.unwrap();
    let (http, udp) = (server.http_addr().unwrap(), server.udp_addr().unwrap());
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(server.run(rx));
    (http, udp, tx, task)
}

/// One HTTP GET; returns (status code, body).
async fn http_get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    http_get_from(addr, target, [127, 0, 0, 1]).await
}

/// One HTTP GET from a connection bound to `ip`.
async fn http_get_from(addr: SocketAddr, target: &str, ip: [u8; 4]) -> (u16, Vec<u8>) {
    let mut s = tcp_from(addr, ip).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&resp[9..12]).unwrap().parse().unwrap();
    (status, resp[end + 4..].to_vec())
}

async fn tcp_from(addr: SocketAddr, ip: [u8; 4]) -> std::io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind((ip, 0).into())?;
    sock.connect(addr).await
}

fn announce_url(peer: u8, port: u16, left: u64, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        pct(&HASH),
        pct(&[peer; 20])
    )
}

#[tokio::test]
async fn http_announces_see_each_other() {
    let (http, _, stop, task) = start().await;
    let (st, body) = http_get(http, &announce_url(b'a', 7001, 100, "&event=started")).await;
    assert_eq!(st, 200);
    let v = bencode::decode(&body).unwrap();
    assert_eq!(v.get(b"peers").unwrap().as_bytes(), Some(&b""[..]));

    let (_, body) = http_get(
        http,
        &announce_url(b'b', 7002, 0, "&event=started&compact=1"),
    )
    .await;
    let v = bencode::decode(&body).unwrap();
    assert_eq!(
        v.get(b"peers").unwrap().as_bytes(),
        Some(&[127, 0, 0, 1, 0x1b, 0x59][..])
    );
    assert_eq!(v.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(v.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(v.get(b"interval").unwrap().as_int(), Some(1800));

    let (_, body) = http_get(http, &announce_url(b'a', 7001, 100, "&compact=0")).await;
    let v = bencode::decode(&body).unwrap();
    let list = v.get(b"peers").unwrap().as_list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].get(b"ip").unwrap().as_str(), Some("127.0.0.1"));
    assert_eq!(list[0].get(b"port").unwrap().as_int(), Some(7002));
    assert_eq!(
        list[0].get(b"peer id").unwrap().as_bytes(),
        Some(&[b'b'; 20][..])
    );

    let scrape = format!("/scrape?info_hash={}", pct(&HASH));
    let (_, body) = http_get(http, &scrape).await;
    let v = bencode::decode(&body).unwrap();
    let f = v.get(b"files").unwrap().get(&HASH).unwrap();
    assert_eq!(f.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(f.get(b"incomplete").unwrap().as_int(), Some(1));

    http_get(http, &announce_url(b'b', 7002, 0, "&event=stopped")).await;
    let (_, body) = http_get(http, &announce_url(b'a', 7001, 100, "")).await;
    let v = bencode::decode(&body).unwrap();
    assert_eq!(v.get(b"peers").unwrap().as_bytes(), Some(&b""[..]));
    assert_eq!(v.get(b"complete").unwrap().as_int(), Some(0));

    // Errors come back as a failure reason.
    let (st, body) = http_get(http, "/announce?info_hash=short").await;
    assert_eq!(st, 200);
    let v = bencode::decode(&body).unwrap();
    assert!(v.get(b"failure reason").unwrap().as_str().is_some());

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn http_oversized_head_is_refused() {
    let (http, _, stop, _task) = start().await;
    let mut s = TcpStream::connect(http).await.unwrap();
    let junk = vec![b'a'; 9000];
    // The server may close before reading it all; only the status matters.
    let _ = s.write_all(b"GET /scrape?").await;
    let _ = s.write_all(&junk).await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    assert!(
        resp.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    stop.send(true).unwrap();
}

struct Udp {
    sock: UdpSocket,
    conn: u64,
}

impl Udp {
    async fn connect(server: SocketAddr) -> Udp {
        Self::connect_from(server, [127, 0, 0, 1]).await
    }

    /// A client whose datagrams come from `ip` (any 127.0.0.0/8 address is local).
    async fn connect_from(server: SocketAddr, ip: [u8; 4]) -> Udp {
        let sock = UdpSocket::bind(SocketAddr::from((ip, 0))).await.unwrap();
        sock.connect(server).await.unwrap();
        let mut req = 0x0417_2710_1980u64.to_be_bytes().to_vec();
        req.extend_from_slice(&0u32.to_be_bytes());
        req.extend_from_slice(&77u32.to_be_bytes());
        let reply = Self::call(&sock, &req).await;
        assert_eq!(&reply[..8], &[0, 0, 0, 0, 0, 0, 0, 77]);
        let conn = u64::from_be_bytes(reply[8..16].try_into().unwrap());
        Udp { sock, conn }
    }

    async fn call(sock: &UdpSocket, req: &[u8]) -> Vec<u8> {
        sock.send(req).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("no udp reply")
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn header(&self, action: u32) -> Vec<u8> {
        let mut p = self.conn.to_be_bytes().to_vec();
        p.extend_from_slice(&action.to_be_bytes());
        p.extend_from_slice(&5u32.to_be_bytes());
        p
    }

    /// Returns (interval, leechers, seeders, compact peers).
    async fn announce(
        &self,
        peer: u8,
        left: u64,
        event: u32,
        port: u16,
    ) -> (u32, u32, u32, Vec<u8>) {
        self.announce_in(HASH, [peer; 20], left, event, port).await
    }

    /// Announce `peer_id` in swarm `hash`; returns (interval, leechers, seeders, peers).
    async fn announce_in(
        &self,
        hash: [u8; 20],
        peer_id: [u8; 20],
        left: u64,
        event: u32,
        port: u16,
    ) -> (u32, u32, u32, Vec<u8>) {
        let mut p = self.header(1);
        p.extend_from_slice(&hash);
        p.extend_from_slice(&peer_id);
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&left.to_be_bytes());
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&event.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&(-1i32).to_be_bytes());
        p.extend_from_slice(&port.to_be_bytes());
        let r = Self::call(&self.sock, &p).await;
        assert_eq!(&r[..8], &[0, 0, 0, 1, 0, 0, 0, 5], "{r:?}");
        let u = |i: usize| u32::from_be_bytes(r[i..i + 4].try_into().unwrap());
        (u(8), u(12), u(16), r[20..].to_vec())
    }

    /// Returns (seeders, completed, leechers).
    async fn scrape(&self) -> (u32, u32, u32) {
        self.scrape_of(HASH).await
    }

    async fn scrape_of(&self, hash: [u8; 20]) -> (u32, u32, u32) {
        let mut p = self.header(2);
        p.extend_from_slice(&hash);
        let r = Self::call(&self.sock, &p).await;
        let u = |i: usize| u32::from_be_bytes(r[i..i + 4].try_into().unwrap());
        assert_eq!(u(0), 2);
        (u(8), u(12), u(16))
    }
}

#[tokio::test]
async fn udp_announces_see_each_other() {
    let (http, udp, stop, task) = start().await;
    let a = Udp::connect(udp).await;
    let b = Udp::connect(udp).await;
    let (interval, leech, seed, peers) = a.announce(b'a', 100, 2, 7001).await;
    assert_eq!((interval, leech, seed), (1800, 1, 0));
    assert!(peers.is_empty());
    let (_, leech, seed, peers) = b.announce(b'b', 100, 2, 7002).await;
    assert_eq!((leech, seed), (2, 0));
    assert_eq!(peers, [127, 0, 0, 1, 0x1b, 0x59]);
    // b finishes.
    b.announce(b'b', 0, 1, 7002).await;
    assert_eq!(a.scrape().await, (1, 1, 1));
    // The same registry serves HTTP: an HTTP peer sees both UDP peers.
    let (_, body) = http_get(http, &announce_url(b'c', 7003, 5, "")).await;
    let v = bencode::decode(&body).unwrap();
    assert_eq!(v.get(b"peers").unwrap().as_bytes().unwrap().len(), 12);
    // a stops: b no longer sees it.
    a.announce(b'a', 100, 3, 7001).await;
    let (_, leech, seed, peers) = b.announce(b'b', 0, 0, 7002).await;
    assert_eq!((leech, seed), (1, 1));
    assert_eq!(peers, [127, 0, 0, 1, 0x1b, 0x5b], "only the HTTP peer");

    // A wrong connection id gets no answer.
    let bad = Udp {
        sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        conn: a.conn,
    };
    bad.sock.connect(udp).await.unwrap();
    bad.sock.send(&bad.header(2)).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_millis(300), bad.sock.recv(&mut buf)).await;
    assert!(r.is_err(), "wrong connection id must be dropped");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn cli_prints_bound_addresses() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .args([
            "--max-peers-per-source",
            "100",
            "--max-torrents-per-source",
            "10",
        ])
        .args(["--max-peers", "1000", "--max-torrents", "100"])
        .args(["--http-connections-per-source", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut l1, mut l2) = (String::new(), String::new());
    out.read_line(&mut l1).unwrap();
    out.read_line(&mut l2).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(l1.starts_with("http tracker on http://127.0.0.1:"), "{l1}");
    assert!(l1.trim_end().ends_with("/announce"), "{l1}");
    assert!(l2.starts_with("udp tracker on udp://127.0.0.1:"), "{l2}");
}

#[test]
fn cli_needs_something_to_serve() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["tracker", "--no-http", "--no-udp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to serve"));
}

// Hostile clients (issue 11): a scripted attacker from one loopback address, honest
// parties from others. Outcomes only; every wait is bounded.

const BOUND: Duration = Duration::from_secs(60);

fn nth(n: u32, fill: u8) -> [u8; 20] {
    let mut h = [fill; 20];
    h[..4].copy_from_slice(&n.to_be_bytes());
    h
}

#[tokio::test]
async fn udp_attacker_filling_the_caps_does_not_shut_out_honest_peers() {
    // Quotas as large as the caps: one source can fill the whole tracker.
    let cfg = ServerConfig {
        limits: Limits {
            max_peers: 300,
            max_swarms: 30,
            max_peers_per_source: 300,
            max_swarms_per_source: 30,
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let (_, udp, stop, _task) = start_with(cfg).await;
    let evil = Udp::connect_from(udp, [127, 0, 0, 2]).await;
    let (a, b) = (
        Udp::connect_from(udp, [127, 0, 0, 3]).await,
        Udp::connect_from(udp, [127, 0, 0, 4]).await,
    );
    let honest_meet = |hash: [u8; 20]| {
        let (a, b) = (&a, &b);
        async move {
            a.announce_in(hash, [b'a'; 20], 9, 2, 7001).await;
            let (_, leech, _, peers) = b.announce_in(hash, [b'b'; 20], 9, 2, 7002).await;
            assert_eq!(leech, 2, "both honest peers stored");
            assert_eq!(peers, [127, 0, 0, 3, 0x1b, 0x59]);
            let (_, _, _, peers) = a.announce_in(hash, [b'a'; 20], 9, 0, 7001).await;
            assert_eq!(peers, [127, 0, 0, 4, 0x1b, 0x5a]);
        }
    };
    // Peer cap: 600 announces (each answered OK, else `announce_in` fails) over 10 swarms.
    for n in 0..600u32 {
        evil.announce_in(nth(n % 10, 1), nth(n, b'x'), 1, 2, 1000 + n as u16)
            .await;
    }
    let mut stored = 0;
    for h in 0..10 {
        stored += evil.scrape_of(nth(h, 1)).await.2;
    }
    assert_eq!(stored, 300, "the attacker filled the peer cap");
    tokio::time::timeout(BOUND, honest_meet(nth(1, 2)))
        .await
        .unwrap();
    // Swarm cap: 100 new torrents.
    for n in 0..100u32 {
        evil.announce_in(nth(n, 3), nth(n, b'y'), 1, 2, 1000).await;
    }
    let mut live = 0;
    for h in 0..100 {
        live += u32::from(evil.scrape_of(nth(h, 3)).await.2 > 0);
    }
    assert!(
        live >= 28,
        "the attacker holds (nearly) every swarm: {live}"
    );
    tokio::time::timeout(BOUND, honest_meet(nth(2, 2)))
        .await
        .unwrap();
    // The first honest swarm, shared by two sources, survived the swarm flood.
    assert_eq!(a.scrape_of(nth(1, 2)).await, (0, 0, 2));
    stop.send(true).unwrap();
}

#[tokio::test]
async fn udp_completed_counts_once_per_stored_leecher() {
    let (_, udp, stop, _task) = start().await;
    let evil = Udp::connect_from(udp, [127, 0, 0, 2]).await;
    for n in 0..50u32 {
        evil.announce_in(HASH, nth(n, b'z'), 0, 1, 2000).await;
        evil.announce_in(HASH, nth(n, b'z'), 0, 3, 2000).await;
    }
    let honest = Udp::connect_from(udp, [127, 0, 0, 3]).await;
    honest.announce(b'h', 100, 2, 7001).await;
    for _ in 0..3 {
        honest.announce(b'h', 0, 1, 7001).await;
    }
    assert_eq!(
        honest.scrape().await,
        (1, 1, 0),
        "one download, counted once"
    );
    stop.send(true).unwrap();
}

#[tokio::test]
async fn http_slowloris_from_one_address_does_not_starve_others() {
    let (http, _, stop, _task) = start().await;
    let mut held = Vec::new();
    for _ in 0..400 {
        if let Ok(mut s) = tcp_from(http, [127, 0, 0, 2]).await {
            let _ = s.write_all(b"GET /announce?info_hash=").await;
            held.push(s);
        }
    }
    let target = announce_url(b'h', 7001, 1, "");
    let honest = http_get_from(http, &target, [127, 0, 0, 3]);
    let (st, body) = tokio::time::timeout(BOUND, honest).await.unwrap();
    assert_eq!(st, 200);
    assert!(bencode::decode(&body).unwrap().get(b"peers").is_some());
    // Beyond its share, the attacker's connections were answered 503 and closed at once.
    let mut busy = 0;
    for s in &mut held {
        let mut buf = [0u8; 32];
        if let Ok(Ok(n)) = tokio::time::timeout(BOUND, s.read(&mut buf)).await {
            busy += usize::from(buf[..n].starts_with(b"HTTP/1.1 503"));
        }
    }
    assert!(busy >= held.len() - 40, "{busy} of {} refused", held.len());
    stop.send(true).unwrap();
}

#[tokio::test]
async fn http_full_table_gives_up_the_heaviest_sources_oldest() {
    let cfg = ServerConfig {
        // Nothing frees itself within the test: only eviction can make room.
        http_limits: HttpLimits {
            max_connections: 16,
            max_per_source: 8,
            head_timeout: Duration::from_secs(600),
        },
        ..ServerConfig::default()
    };
    let (http, _, stop, _task) = start_with(cfg).await;
    let mut held = Vec::new();
    for ip in [[127, 0, 0, 2], [127, 0, 0, 5]] {
        for _ in 0..8 {
            let mut s = tcp_from(http, ip).await.unwrap();
            s.write_all(b"GET /scrape?").await.unwrap();
            held.push(s);
        }
    }
    let target = announce_url(b'h', 7001, 1, "");
    let honest = http_get_from(http, &target, [127, 0, 0, 3]);
    let (st, _) = tokio::time::timeout(BOUND, honest).await.unwrap();
    assert_eq!(st, 200);
    stop.send(true).unwrap();
}

#[tokio::test]
async fn http_scrape_repeating_a_hash_is_valid_bencode() {
    let (http, _, stop, _task) = start().await;
    http_get(http, &announce_url(b'a', 7001, 5, "")).await;
    let h = pct(&HASH);
    let (_, body) = http_get(http, &format!("/scrape?info_hash={h}&info_hash={h}")).await;
    // The decoder refuses repeated dictionary keys.
    let v = bencode::decode(&body).unwrap();
    assert_eq!(v.get(b"files").unwrap().as_dict().unwrap().len(), 1);
    stop.send(true).unwrap();
}

/// End-to-end UDP announce rate on loopback (a figure, not an assertion):
/// `cargo test --release --test tracker_server -- --ignored --nocapture udp_load`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn udp_load() {
    let (_, udp, stop, _task) = start().await;
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 20_000;
    let t0 = Instant::now();
    let mut js = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        js.spawn(async move {
            let u = Udp::connect(udp).await;
            for i in 0..PER_CLIENT {
                u.announce(c as u8, i as u64, 0, 7000 + c as u16).await;
            }
        });
    }
    while let Some(r) = js.join_next().await {
        r.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = CLIENTS * PER_CLIENT;
    println!(
        "udp_load: {n} announces from {CLIENTS} clients in {secs:.2} s = {:.0} announces/s, mean RTT {:.1} µs",
        n as f64 / secs,
        secs * 1e6 * CLIENTS as f64 / n as f64
    );
    stop.send(true).unwrap();
}

/// Sequential announce round-trip on loopback, one client (a figure, not an assertion):
/// `cargo test --release --test tracker_server -- --ignored --nocapture announce_rtt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn announce_rtt() {
    let (http, udp, stop, _task) = start().await;
    const N: u32 = 5_000;
    let target = announce_url(b'r', 7000, 1, "");
    let t0 = Instant::now();
    for _ in 0..N {
        http_get(http, &target).await;
    }
    let http_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let u = Udp::connect(udp).await;
    let t0 = Instant::now();
    for _ in 0..N {
        u.announce(b'u', 1, 0, 7001).await;
    }
    let udp_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    println!("announce_rtt: http {http_us:.1} µs (new connection each), udp {udp_us:.1} µs");
    stop.send(true).unwrap();
}

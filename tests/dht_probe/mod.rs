//! The DHT probe of `tests/dht_hostile.rs`: a raw UDP socket on its own loopback address
//! that counts bytes both ways and replies per transaction id, the `swarm seed` it probes,
//! and the seed's peak memory. Every read is bounded by a socket timeout.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::interop::*;
use swarm::dht::{Body, Msg, NodeId, Query};

/// How long a probe waits for the replies to what it sent (a reply on loopback takes
/// microseconds; this only bounds a test whose node is dead).
pub const QUIET: Duration = Duration::from_secs(1);

/// A raw UDP socket on its own loopback address that counts every byte both ways and
/// every reply per transaction id.
pub struct Probe {
    pub sock: UdpSocket,
    pub node: SocketAddr,
    pub sent: usize,
    pub received: usize,
    pub replies: BTreeMap<Vec<u8>, Vec<Msg>>,
    /// Datagrams that did not decode as KRPC (the node never sends such).
    pub garbage: usize,
    pub next_tid: u32,
    /// Bytes of each query sent, by transaction id, and the largest reply received and
    /// the largest reply-to-query size ratio.
    pub query_len: BTreeMap<Vec<u8>, usize>,
    pub biggest: usize,
    pub worst_ratio: f64,
}

impl Probe {
    pub fn new(last: u8, node: SocketAddr) -> Probe {
        Probe::at(ip(last), node)
    }

    pub fn at(from: IpAddr, node: SocketAddr) -> Probe {
        let sock = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Probe {
            sock,
            node,
            sent: 0,
            received: 0,
            replies: BTreeMap::new(),
            garbage: 0,
            next_tid: 0,
            query_len: BTreeMap::new(),
            biggest: 0,
            worst_ratio: 0.0,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.node).unwrap();
        self.sent += bytes.len();
    }

    pub fn tid(&mut self) -> Vec<u8> {
        self.next_tid += 1;
        self.next_tid.to_be_bytes().to_vec()
    }

    /// Sends `query` (read-only) with a fresh transaction id, which it returns.
    pub fn query(&mut self, query: Query) -> Vec<u8> {
        let tid = self.tid();
        let msg = Msg {
            tid: tid.clone(),
            body: Body::Query {
                id: NodeId([0x42; 20]),
                query,
            },
            ip: None,
            read_only: true,
        };
        let bytes = msg.encode();
        self.query_len.insert(tid.clone(), bytes.len());
        self.send_raw(&bytes);
        tid
    }

    /// Reads until nothing has come for [`QUIET`] (at most `limit` in all).
    pub fn drain(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end && last.elapsed() < QUIET {
            if self.recv_one(&mut buf) {
                last = Instant::now();
            }
        }
    }

    /// Reads until the reply to `tid` is in (true) or `limit` has passed.
    pub fn await_reply(&mut self, tid: &[u8], limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        while !self.replies.contains_key(tid) && Instant::now() < end {
            self.recv_one(&mut buf);
        }
        self.replies.contains_key(tid)
    }

    /// One datagram (or a read timeout: false), recorded.
    pub fn recv_one(&mut self, buf: &mut [u8]) -> bool {
        match self.sock.recv_from(buf) {
            Ok((n, from)) => {
                assert_eq!(from, self.node, "a datagram from someone else");
                self.received += n;
                self.biggest = self.biggest.max(n);
                match Msg::decode(&buf[..n]) {
                    Ok(m) => {
                        if let Some(q) = self.query_len.get(&m.tid) {
                            self.worst_ratio = self.worst_ratio.max(n as f64 / *q as f64);
                        }
                        self.replies.entry(m.tid.clone()).or_default().push(m)
                    }
                    Err(_) => self.garbage += 1,
                }
                true
            }
            Err(e) if is_timeout(&e) => false,
            Err(e) => panic!("probe receive failed: {e}"),
        }
    }

    /// Pings until one is answered (each ping with its own transaction id), within `limit`.
    pub fn ping_answered(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let tid = self.query(Query::Ping);
            self.drain(Duration::from_millis(500).min(QUIET));
            if self.replies.contains_key(&tid) {
                return true;
            }
        }
        false
    }

    pub fn replies_total(&self) -> usize {
        self.replies.values().map(Vec::len).sum()
    }

    /// Every reply answers a query we sent, each at most once, and the node sent us no
    /// more bytes than we sent it.
    pub fn assert_no_amplification(&self, what: &str) {
        assert_eq!(
            self.garbage, 0,
            "{what}: the node sent undecodable datagrams"
        );
        for (tid, msgs) in &self.replies {
            assert_eq!(
                msgs.len(),
                1,
                "{what}: transaction {tid:?} answered {} times",
                msgs.len()
            );
            let n = u32::from_be_bytes(tid.as_slice().try_into().expect("one of our tids"));
            assert!(
                n >= 1 && n <= self.next_tid,
                "{what}: a reply to a query never sent"
            );
        }
        assert!(
            self.received <= self.sent,
            "{what}: received {} bytes for {} sent",
            self.received,
            self.sent
        );
    }
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A `swarm seed` with its DHT on `127.0.0.41`, whose only `--dht-node` is `sink` (ours,
/// never answering), so its table stays empty and it queries nobody; returns the process,
/// the node's address and the sink.
pub fn dht_seed(t: &std::path::Path) -> (Proc, SocketAddr, UdpSocket) {
    let content = Content::single(&t.join("src"), "h.bin", 64 * 1024, 41);
    let torrent = t.join("h.torrent");
    swarm_create(&content.path(), &torrent, Some(16384), &[]);
    let sink = UdpSocket::bind(SocketAddr::new(ip(40), 0)).unwrap();
    let node = SocketAddr::new(ip(41), free_port_tcp_udp(ip(41)));
    let mut c = swarm_cmd();
    c.arg("-v")
        .args(["seed", "--no-lsd", "--no-port-mapping", "--no-trackers"])
        .arg(&torrent)
        .arg("-d")
        .arg(t.join("src"))
        .args(["--bind", &node.ip().to_string()])
        .args(["--port", &node.port().to_string()])
        .args(["--dht-node", &sink.local_addr().unwrap().to_string()]);
    let mut seed = Proc::spawn_with_state("swarm seed (DHT)", &mut c);
    wait_listening(&mut seed, node);
    (seed, node, sink)
}

/// Peak resident memory (`VmHWM`) of process `pid`, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

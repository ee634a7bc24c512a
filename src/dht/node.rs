//! Our DHT node, sans-IO: the routing table, token secrets, transactions, lookups and the
//! peers others announce to us, driven by datagrams and `now`. The UDP edge feeds
//! [`Node::receive`] and [`Node::handle_timeout`], sends what [`Node::poll_transmit`]
//! gives, and hands [`Event`]s (peers found for an info-hash) to the torrents.
//!
//! What it answers (BEP 5): `ping`; `find_node` with the 8 closest nodes; `get_peers` with
//! a token and the peers stored for that info-hash, or the closest nodes; `announce_peer`
//! with a valid token is stored (at the packet's source port with `implied_port`); any
//! other method gets error 204. Queries are answered only within a rate per source address
//! and in total, so a spoofed flood cannot turn us into an amplifier: one reply per
//! accepted query, each reply a bounded size.
//!
//! What it asks: lookups ([`super::lookup`]) for the info-hashes torrents want
//! ([`Node::get_peers`], then `announce_peer` to the closest nodes that gave tokens), a
//! lookup of our own id at bootstrap, and bucket refreshes.
//!
//! Invariants: every table is capped — transactions ([`MAX_TRANSACTIONS`]), lookups
//! ([`MAX_LOOKUPS`]), stored info-hashes and peers ([`DhtConfig`]), rate-limit sources
//! ([`MAX_SOURCES`]), outgoing queue ([`MAX_OUTGOING`]); a response counts only if it
//! comes from the address its query went to, with its transaction id.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::id::NodeId;
use super::krpc::{Body, Msg, Query, Response, Want};
use super::lookup::{Kind, Lookup, QUERY_TIMEOUT};
use super::table::{Heard, Outcome, RoutingTable, Rules, K};
use super::token::Tokens;

/// Queries of ours awaiting an answer at once.
pub const MAX_TRANSACTIONS: usize = 512;

/// Lookups running at once (torrents beyond wait for a later tick).
pub const MAX_LOOKUPS: usize = 16;

/// Source addresses whose query rate is tracked (the oldest is forgotten first).
pub const MAX_SOURCES: usize = 4096;

/// Datagrams queued to send; more are dropped (the edge sends them at once normally).
pub const MAX_OUTGOING: usize = 1024;

/// How long a stored peer lasts without a new announce (BEP 5 suggests 30 minutes;
/// libtorrent keeps 45).
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);

/// Distinct nodes that must name the same external address before we believe it.
pub const EXTERNAL_VOTES: usize = 5;

/// Different external addresses voted for at once (a liar's votes cannot grow this).
const MAX_VOTED_ADDRESSES: usize = 8;

/// How often the node wants [`Node::handle_timeout`] at least.
const TICK: Duration = Duration::from_secs(1);

/// The node's limits and manners.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// One routing-table entry per IP address (off for loopback tests).
    pub one_per_ip: bool,
    /// Accept nodes and peers at loopback, private and link-local addresses (see
    /// [`Rules::allow_local`]; on only for a DHT of local nodes).
    pub allow_local: bool,
    /// Info-hashes whose announced peers we store.
    pub max_stored_hashes: usize,
    /// Peers stored per info-hash; a `get_peers` reply carries at most
    /// [`super::krpc::MAX_VALUES`] of them.
    pub max_peers_per_hash: usize,
    /// Queries answered per source address per second, and the burst (libtorrent answers
    /// about 5 a second per source).
    pub per_source_rate: f64,
    pub per_source_burst: f64,
    /// Queries answered per second in total.
    pub total_rate: f64,
    /// Seed of the node's random choices (transaction ids, refresh targets).
    pub rng_seed: u64,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            one_per_ip: true,
            allow_local: false,
            max_stored_hashes: 2000,
            max_peers_per_hash: 200,
            per_source_rate: 5.0,
            per_source_burst: 20.0,
            total_rate: 500.0,
            rng_seed: rand::random(),
        }
    }
}

/// Something for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lookup for `info_hash` found these peers.
    Peers {
        info_hash: NodeId,
        peers: Vec<SocketAddr>,
    },
    /// The lookup for `info_hash` finished; `announced` to this many nodes.
    LookupDone {
        info_hash: NodeId,
        queries: u32,
        announced: usize,
    },
}

/// Why we sent a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A bootstrap address whose id we do not know yet.
    Bootstrap,
    /// Part of lookup `n`.
    Lookup(u64),
    /// Checking a questionable node.
    Ping,
    Announce,
}

#[derive(Debug, Clone)]
struct Txn {
    to: SocketAddr,
    node: Option<NodeId>,
    purpose: Purpose,
    sent: Instant,
}

struct Running {
    lookup: Lookup,
    /// Announce on this port when done (`None`: only look).
    announce: Option<u16>,
    /// Peers already reported.
    reported: usize,
}

/// A token bucket per source address.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Our DHT node (see the module docs).
pub struct Node {
    cfg: DhtConfig,
    id: NodeId,
    rules: Rules,
    /// Our external address once enough nodes agree on it (BEP 42 `ip` in their answers).
    external: Option<std::net::IpAddr>,
    /// Address → the nodes that said it is ours (capped; see [`Node::vote`]).
    votes: BTreeMap<std::net::IpAddr, std::collections::BTreeSet<NodeId>>,
    /// IPv4 nodes.
    table: RoutingTable,
    /// IPv6 nodes (BEP 32: a table of their own, same id).
    table6: RoutingTable,
    tokens: Tokens,
    rng: StdRng,
    next_tid: u16,
    txns: BTreeMap<u16, Txn>,
    next_lookup: u64,
    lookups: BTreeMap<u64, Running>,
    /// info-hash → peer → when it announced.
    stored: BTreeMap<NodeId, BTreeMap<SocketAddr, Instant>>,
    sources: BTreeMap<std::net::IpAddr, Bucket>,
    total: Bucket,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    last_tick: Instant,
    /// Our first lookup of our own id has finished (see `finish`).
    joined: bool,
    /// Queries answered and refused (rate), for the figures and `doctor`.
    pub answered: u64,
    pub refused: u64,
}

impl Node {
    pub fn new(cfg: DhtConfig, id: NodeId, now: Instant) -> Node {
        let mut rng = StdRng::seed_from_u64(cfg.rng_seed);
        let tokens = Tokens::new(now, rng.gen());
        let rules = Rules {
            one_per_ip: cfg.one_per_ip,
            allow_local: cfg.allow_local,
            // A DHT of local nodes has no external addresses to verify ids against.
            prefer_secure: !cfg.allow_local,
        };
        Node {
            rules,
            external: None,
            votes: BTreeMap::new(),
            table: RoutingTable::new(id, rules),
            table6: RoutingTable::new(id, rules),
            tokens,
            next_tid: rng.gen(),
            rng,
            id,
            txns: BTreeMap::new(),
            next_lookup: 0,
            lookups: BTreeMap::new(),
            stored: BTreeMap::new(),
            sources: BTreeMap::new(),
            total: Bucket {
                tokens: cfg.total_rate,
                at: now,
            },
            out: VecDeque::new(),
            events: VecDeque::new(),
            last_tick: now,
            joined: false,
            answered: 0,
            refused: 0,
            cfg,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Our external address, once [`EXTERNAL_VOTES`] nodes agree on it.
    pub fn external_ip(&self) -> Option<std::net::IpAddr> {
        self.external
    }

    /// Node `from` says we are at `ip`. Once [`EXTERNAL_VOTES`] distinct nodes agree, that
    /// is our external address; if our id is not valid for it (BEP 42), we take one that
    /// is and rebuild the routing tables around it (libtorrent does the same).
    fn vote(&mut self, from: NodeId, ip: std::net::IpAddr) {
        if self.external.is_some() || crate::pex::is_local(ip) {
            return;
        }
        if !self.votes.contains_key(&ip) && self.votes.len() >= MAX_VOTED_ADDRESSES {
            return;
        }
        let voters = self.votes.entry(ip).or_default();
        if voters.len() < EXTERNAL_VOTES {
            voters.insert(from);
        }
        if voters.len() < EXTERNAL_VOTES {
            return;
        }
        self.external = Some(ip);
        self.votes.clear();
        if !super::secure::is_secure(&self.id, ip) {
            let id = super::secure::secure_id(ip, self.rng.gen());
            tracing::info!(%ip, "external address known: taking a BEP 42 node id");
            self.change_id(id);
        }
    }

    /// Our id changes: the tables are rebuilt around it (every node keeps its standing).
    fn change_id(&mut self, id: NodeId) {
        self.id = id;
        for table in [&mut self.table, &mut self.table6] {
            let mut fresh = RoutingTable::new(id, self.rules);
            fresh.absorb(table);
            *table = fresh;
        }
    }

    /// The IPv4 routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Nodes in both tables.
    pub fn len(&self) -> usize {
        self.table.len() + self.table6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The IPv6 routing table (BEP 32).
    pub fn table6(&self) -> &RoutingTable {
        &self.table6
    }

    fn table_for(&mut self, addr: &SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.table
        } else {
            &mut self.table6
        }
    }

    /// A query to `id` failed (whichever table holds it).
    fn node_failed(&mut self, now: Instant, id: &NodeId) {
        self.table.failed(now, id);
        self.table6.failed(now, id);
    }

    /// The nodes of both tables nearest `target`, nearest first.
    fn closest_all(&self, now: Instant, target: &NodeId, n: usize) -> Vec<(NodeId, SocketAddr)> {
        let mut all = self.table.closest(now, target, n);
        all.extend(self.table6.closest(now, target, n));
        all.sort_by_key(|(id, _)| id.distance(target));
        all.truncate(n);
        all
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn next_deadline(&self) -> Instant {
        self.last_tick + TICK
    }

    /// Asks each address (ids unknown) for the nodes nearest our id; their answers fill
    /// the table and start a lookup of our own id.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        let target = self.id;
        let rules = self.rules;
        for a in addrs.iter().filter(|a| rules.admits(a)) {
            let q = Query::FindNode {
                target,
                want: Want::default(),
            };
            self.query(now, *a, None, q, Purpose::Bootstrap);
        }
    }

    /// Looks `info_hash` up; peers found come as [`Event::Peers`]; with `announce`, we then
    /// announce ourselves on that port to the closest nodes. False when too many lookups run.
    pub fn get_peers(&mut self, now: Instant, info_hash: NodeId, announce: Option<u16>) -> bool {
        self.start_lookup(now, info_hash, Kind::GetPeers, announce)
    }

    fn start_lookup(
        &mut self,
        now: Instant,
        target: NodeId,
        kind: Kind,
        announce: Option<u16>,
    ) -> bool {
        if self.lookups.len() >= MAX_LOOKUPS {
            return false;
        }
        let seeds = self.closest_all(now, &target, 2 * K);
        let n = self.next_lookup;
        self.next_lookup += 1;
        self.lookups.insert(
            n,
            Running {
                lookup: Lookup::new(target, kind, Some(self.id), self.rules, seeds),
                announce,
                reported: 0,
            },
        );
        self.drive(now);
        true
    }

    /// A datagram from `from`.
    pub fn receive(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(msg) = Msg::decode(datagram) else {
            // Malformed: no reply (a reply to garbage is an amplifier's first step).
            return;
        };
        match msg.body {
            Body::Query { id, query } => {
                if !self.allow(now, from) {
                    self.refused += 1;
                    return;
                }
                if !msg.read_only {
                    self.heard(now, id, from, Heard::Queried);
                }
                self.answer(now, from, msg.tid, query);
            }
            Body::Response { id, response } => {
                self.response(now, from, &msg.tid, id, response, msg.ip)
            }
            Body::Error { .. } => {
                if let Some(txn) = self.take_txn(&msg.tid, from) {
                    if let (Purpose::Lookup(n), Some(node)) = (txn.purpose, txn.node) {
                        if let Some(r) = self.lookups.get_mut(&n) {
                            r.lookup.failed(node);
                        }
                    }
                }
            }
        }
        self.drive(now);
    }

    /// Time passed: timeouts, token rotation, refreshes, lookups.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u16> = self
            .txns
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.sent) >= QUERY_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for tid in expired {
            if let Some(t) = self.txns.remove(&tid) {
                if let Some(node) = t.node {
                    self.node_failed(now, &node);
                    if let Purpose::Lookup(n) = t.purpose {
                        if let Some(r) = self.lookups.get_mut(&n) {
                            r.lookup.failed(node);
                        }
                    }
                }
            }
        }
        if now < self.last_tick + TICK {
            self.drive(now);
            return;
        }
        self.last_tick = now;
        if self.tokens.due(now) {
            let secret = self.rng.gen();
            self.tokens.rotate(now, secret);
        }
        for peers in self.stored.values_mut() {
            peers.retain(|_, at| now.saturating_duration_since(*at) < PEER_TTL);
        }
        self.stored.retain(|_, peers| !peers.is_empty());
        let fill = NodeId(self.rng.gen());
        let mut targets = Vec::new();
        for table in [&mut self.table, &mut self.table6] {
            if !table.is_empty() {
                targets.extend(table.due_refresh(now, &fill));
            }
        }
        for target in targets {
            self.start_lookup(now, target, Kind::FindNode, None);
        }
        self.drive(now);
    }

    fn heard(&mut self, now: Instant, id: NodeId, from: SocketAddr, how: Heard) {
        if let Outcome::Waiting {
            ping: Some((node, addr)),
        } = self.table_for(&from).heard(now, id, from, how)
        {
            let pinging = self.txns.values().any(|t| t.node == Some(node));
            if !pinging {
                self.query(now, addr, Some(node), Query::Ping, Purpose::Ping);
            }
        }
    }

    fn response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        id: NodeId,
        r: Response,
        our_ip: Option<SocketAddr>,
    ) {
        let Some(txn) = self.take_txn(tid, from) else {
            return;
        };
        if let Some(ip) = our_ip {
            self.vote(id, ip.ip());
        }
        if txn.node.is_some_and(|n| n != id) {
            // Another node answers at that address now: the old one is gone.
            if let Some(old) = txn.node {
                self.node_failed(now, &old);
                self.node_failed(now, &old);
            }
        }
        self.heard(now, id, from, Heard::Answered);
        let nodes: Vec<(NodeId, SocketAddr)> = r
            .nodes
            .iter()
            .map(|(id, a)| (*id, SocketAddr::V4(*a)))
            .chain(r.nodes6.iter().map(|(id, a)| (*id, SocketAddr::V6(*a))))
            .collect();
        match txn.purpose {
            Purpose::Bootstrap => {
                // Their nodes seed a lookup of our own id, which fills the near buckets.
                let target = self.id;
                if !self
                    .lookups
                    .values()
                    .any(|r| r.lookup.target() == target && r.announce.is_none())
                {
                    self.start_lookup(now, target, Kind::FindNode, None);
                }
                if let Some(run) = self
                    .lookups
                    .values_mut()
                    .find(|r| r.lookup.target() == target)
                {
                    for (id, a) in nodes {
                        run.lookup.add_candidate(id, a);
                    }
                }
            }
            Purpose::Lookup(n) => {
                if let Some(run) = self.lookups.get_mut(&n) {
                    run.lookup.answered(id, from, nodes, r.values, r.token);
                }
            }
            Purpose::Ping | Purpose::Announce => {}
        }
    }

    fn take_txn(&mut self, tid: &[u8], from: SocketAddr) -> Option<Txn> {
        let key = u16::from_be_bytes(tid.try_into().ok()?);
        // Only from the address the query went to: a spoofed answer changes nothing.
        if self.txns.get(&key)?.to != from {
            return None;
        }
        self.txns.remove(&key)
    }

    fn query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node: Option<NodeId>,
        q: Query,
        purpose: Purpose,
    ) -> bool {
        if self.txns.len() >= MAX_TRANSACTIONS {
            return false;
        }
        let tid = loop {
            self.next_tid = self.next_tid.wrapping_add(1);
            if !self.txns.contains_key(&self.next_tid) {
                break self.next_tid;
            }
        };
        self.txns.insert(
            tid,
            Txn {
                to,
                node,
                purpose,
                sent: now,
            },
        );
        let msg = Msg {
            tid: tid.to_be_bytes().to_vec(),
            body: Body::Query {
                id: self.id,
                query: q,
            },
            ip: None,
            read_only: false,
        };
        self.send(to, msg.encode());
        true
    }

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.out.len() < MAX_OUTGOING {
            self.out.push_back((to, bytes));
        }
    }
}

#[path = "node_serve.rs"]
mod serve;

#[path = "node_drive.rs"]
mod drive;

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;

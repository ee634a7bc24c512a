//! A deterministic simulated mainline DHT of our own [`Node`]s, shared by
//! `tests/dht_sim.rs` (1,000 nodes) and `benches/dht.rs` (10,000 nodes). No sockets, no
//! real time: the clock is a count of microseconds after one `Instant`, moved only by the
//! event queue.
//!
//! Model:
//! - **Events** sit in one queue ordered by `(time, sequence number)`, so the same seed
//!   always runs the same way.
//! - **Links**: each pair of nodes has one latency, uniform in `[min, max]` ms, drawn from a
//!   hash of the seed and the two addresses (symmetric, stable, nothing stored). Each
//!   datagram is lost with probability `loss`, independently.
//! - **Nodes** live in slots that are never reused; slot `i` has address
//!   `10.a.b.c:6881` from `i`, so every node has its own IP (the default `one_per_ip` table
//!   stays on). A node that leaves is dropped at once: datagrams to it vanish, it never
//!   answers again (what a crashed or departed peer looks like).
//! - **Deadlines**: each node's `handle_timeout` runs at its `next_deadline()`.
//! - **Observation** uses only the public API: `Event`s from `poll_event`, and, for nodes
//!   on the watch list, the `announce_peer` queries they send (decoded with
//!   [`Msg::decode`]) — the nodes a `get_peers` lookup converged on.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::dht::node::{DhtConfig, Event, Node};
use swarm::dht::{Body, Msg, NodeId, Query};

/// The simulation's parameters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    /// Probability that one datagram is lost.
    pub loss: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            min_latency_ms: 10,
            max_latency_ms: 100,
            loss: 0.01,
        }
    }
}

enum Ev {
    Deliver {
        to: SocketAddr,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Tick(usize),
}

struct Slot {
    node: Option<Node>,
    id: NodeId,
    joined_us: u64,
    /// When to bootstrap again if the table is still empty (the edge in `session/dht.rs`
    /// retries with back-off; the node itself sends one `find_node` per address).
    retry_us: u64,
}

/// How often an empty table bootstraps again here (the edge starts at
/// `cache::BOOTSTRAP_FIRST` and doubles; a fixed period is enough for the model).
const RETRY_US: u64 = 10_000_000;

/// A lookup being watched: when it started, and the nodes announced to when it finished.
#[derive(Debug, Clone)]
pub struct Watched {
    pub started_us: u64,
    pub done_us: Option<u64>,
    pub queries: u32,
    pub announced_to: Vec<NodeId>,
    pub peers: Vec<SocketAddr>,
    /// The lookup queried its own node (`find_node`/`get_peers` sent to our own address).
    pub queried_self: bool,
}

/// The simulated network.
pub struct Sim {
    cfg: SimConfig,
    base: Instant,
    pub now_us: u64,
    rng: StdRng,
    slots: Vec<Slot>,
    at: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    /// Lookups watched, by (slot, info-hash).
    pub watched: HashMap<(usize, NodeId), Watched>,
    watch: HashSet<usize>,
    /// Datagrams sent by each slot, and in total; lost in transit.
    pub sent: Vec<u64>,
    pub datagrams: u64,
    pub lost: u64,
    /// Bootstraps repeated because a table was still empty.
    pub retries: u64,
}

pub fn addr(slot: usize) -> SocketAddr {
    SocketAddr::from((
        [10, (slot >> 16) as u8, (slot >> 8) as u8, slot as u8],
        6881,
    ))
}

fn slot_of(a: &SocketAddr) -> Option<usize> {
    match a {
        SocketAddr::V4(v4) if v4.port() == 6881 => {
            let o = v4.ip().octets();
            (o[0] == 10).then(|| ((o[1] as usize) << 16) | ((o[2] as usize) << 8) | o[3] as usize)
        }
        _ => None,
    }
}

/// splitmix64: a stable hash for the per-link latency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        Sim {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            base: Instant::now(),
            now_us: 0,
            slots: Vec::new(),
            at: HashMap::new(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            watched: HashMap::new(),
            watch: HashSet::new(),
            sent: Vec::new(),
            datagrams: 0,
            lost: 0,
            retries: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.now_us)
    }

    fn at_us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_micros() as u64
    }

    fn schedule(&mut self, t_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t_us, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn latency_us(&self, a: usize, b: usize) -> u64 {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let h = mix(self.cfg.seed ^ mix((lo << 32) | hi));
        let span = self.cfg.max_latency_ms - self.cfg.min_latency_ms + 1;
        (self.cfg.min_latency_ms + h % span) * 1000
    }

    /// A new node with a random id, bootstrapped from the nodes in `from`.
    pub fn join(&mut self, from: &[usize]) -> usize {
        let slot = self.slots.len();
        let id = NodeId(self.rng.gen());
        let cfg = DhtConfig {
            rng_seed: self.cfg.seed ^ mix(slot as u64),
            // The simulated addresses are private (10/8): allowed, one node per IP kept.
            allow_local: true,
            ..DhtConfig::default()
        };
        let mut node = Node::new(cfg, id, self.now());
        let addrs: Vec<SocketAddr> = from.iter().map(|s| addr(*s)).collect();
        node.bootstrap(self.now(), &addrs);
        self.slots.push(Slot {
            node: Some(node),
            id,
            joined_us: self.now_us,
            retry_us: self.now_us + RETRY_US,
        });
        self.sent.push(0);
        self.at.insert(addr(slot), slot);
        self.flush(slot);
        let next = self.now_us + 1_000_000;
        self.schedule(next, Ev::Tick(slot));
        slot
    }

    /// The node in `slot` is gone for good.
    pub fn leave(&mut self, slot: usize) {
        self.slots[slot].node = None;
        self.at.remove(&addr(slot));
        self.watch.remove(&slot);
    }

    pub fn is_live(&self, slot: usize) -> bool {
        self.slots[slot].node.is_some()
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|s| self.is_live(*s)).collect()
    }

    pub fn live_count(&self) -> usize {
        self.at.len()
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn random_live(&mut self) -> usize {
        loop {
            let s = self.rng.gen_range(0..self.slots.len());
            if self.is_live(s) {
                return s;
            }
        }
    }

    pub fn random_id(&mut self) -> NodeId {
        NodeId(self.rng.gen())
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub fn id(&self, slot: usize) -> NodeId {
        self.slots[slot].id
    }

    pub fn node(&self, slot: usize) -> Option<&Node> {
        self.slots[slot].node.as_ref()
    }

    /// The `n` live nodes closest to `target`, nearest first, `except` left out.
    pub fn true_closest(&self, target: &NodeId, n: usize, except: usize) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .at
            .values()
            .filter(|s| **s != except)
            .map(|s| self.slots[*s].id)
            .collect();
        ids.sort_by_key(|id| id.distance(target));
        ids.truncate(n);
        ids
    }

    /// Why a lookup may have missed `m`: its age, how many live tables hold it, and whether
    /// one of `answered` holds it.
    pub fn miss(&self, m: &NodeId, answered: &[NodeId]) -> (f64, usize, bool) {
        let slot = self.at.values().copied().find(|s| self.slots[*s].id == *m);
        let age = slot.map_or(0.0, |s| {
            (self.now_us - self.slots[s].joined_us) as f64 / 1e6
        });
        let mut known = 0;
        let mut near = false;
        for s in self.at.values() {
            let Some(n) = self.slots[*s].node.as_ref() else {
                continue;
            };
            if n.table().nodes().any(|x| x.id == *m) {
                known += 1;
                near |= answered.contains(&self.slots[*s].id);
            }
        }
        (age, known, near)
    }

    /// Mean fraction of each live node's true 8 closest that its table holds (over at most
    /// 1,000 nodes, to keep a 10,000-node run quick).
    pub fn neighbourhood(&self) -> f64 {
        let mut live = self.live();
        live.truncate(1000);
        let mut sum = 0.0;
        for s in &live {
            let me = self.slots[*s].id;
            let truth = self.true_closest(&me, 8, *s);
            let t = self.slots[*s].node.as_ref().expect("live").table();
            sum += truth
                .iter()
                .filter(|id| t.nodes().any(|n| n.id == **id))
                .count() as f64
                / 8.0;
        }
        sum / live.len() as f64
    }

    /// Starts a watched `get_peers` lookup at `slot`; false when the node refuses (too many
    /// lookups running).
    pub fn get_peers(&mut self, slot: usize, ih: NodeId, announce: Option<u16>) -> bool {
        let now = self.now();
        self.watch.insert(slot);
        self.watched.insert(
            (slot, ih),
            Watched {
                started_us: self.now_us,
                done_us: None,
                queries: 0,
                announced_to: Vec::new(),
                peers: Vec::new(),
                queried_self: false,
            },
        );
        let Some(node) = self.slots[slot].node.as_mut() else {
            return false;
        };
        let ok = node.get_peers(now, ih, announce);
        self.flush(slot);
        ok
    }

    /// Runs until the watched lookup is done or `limit_us` of virtual time passed; the
    /// lookup's record.
    pub fn wait_lookup(&mut self, slot: usize, ih: NodeId, limit_us: u64) -> Watched {
        let end = self.now_us + limit_us;
        while self.now_us < end {
            if self.watched[&(slot, ih)].done_us.is_some() {
                break;
            }
            if !self.step(end) {
                break;
            }
        }
        // The announces go out in the same flush as the LookupDone event.
        self.watched[&(slot, ih)].clone()
    }

    /// Runs the clock for `us` microseconds.
    pub fn run_for(&mut self, us: u64) {
        let end = self.now_us + us;
        while self.step(end) {}
        self.now_us = end;
    }

    /// Processes the next event if it is due by `end`; false when none is.
    fn step(&mut self, end: u64) -> bool {
        let Some(Reverse((t, seq))) = self.queue.peek().copied() else {
            return false;
        };
        if t > end {
            return false;
        }
        self.queue.pop();
        self.now_us = self.now_us.max(t);
        let now = self.now();
        match self.events.remove(&seq).expect("scheduled") {
            Ev::Deliver { to, from, bytes } => {
                if let Some(&j) = self.at.get(&to) {
                    if let Some(n) = self.slots[j].node.as_mut() {
                        n.receive(now, from, &bytes);
                        self.flush(j);
                    }
                }
            }
            Ev::Tick(s) => {
                if let Some(n) = self.slots[s].node.as_mut() {
                    n.handle_timeout(now);
                    if n.table().is_empty() && self.now_us >= self.slots[s].retry_us {
                        let boot = (0..self.slots.len())
                            .map(|_| self.rng.gen_range(0..self.slots.len()))
                            .find(|b| *b != s && self.slots[*b].node.is_some());
                        let n = self.slots[s].node.as_mut().expect("live");
                        n.bootstrap(now, &boot.map(addr).into_iter().collect::<Vec<_>>());
                        self.slots[s].retry_us = self.now_us + RETRY_US;
                        self.retries += 1;
                    }
                    let n = self.slots[s].node.as_mut().expect("live");
                    let deadline = n.next_deadline();
                    let next = self.at_us(deadline).max(self.now_us + 1000);
                    self.flush(s);
                    self.schedule(next, Ev::Tick(s));
                }
            }
        }
        true
    }

    /// Sends what `slot` has to send, and takes its events.
    fn flush(&mut self, slot: usize) {
        let from = addr(slot);
        let watched = self.watch.contains(&slot);
        loop {
            let Some(n) = self.slots[slot].node.as_mut() else {
                return;
            };
            let Some((to, bytes)) = n.poll_transmit() else {
                break;
            };
            self.sent[slot] += 1;
            self.datagrams += 1;
            if watched {
                self.observe(slot, to, &bytes);
            }
            if self.rng.gen::<f64>() < self.cfg.loss {
                self.lost += 1;
                continue;
            }
            let Some(dest) = slot_of(&to) else { continue };
            let t = self.now_us + self.latency_us(slot, dest);
            self.schedule(t, Ev::Deliver { to, from, bytes });
        }
        while let Some(ev) = self.slots[slot].node.as_mut().and_then(Node::poll_event) {
            if !watched {
                continue;
            }
            match ev {
                Event::Peers { info_hash, peers } => {
                    if let Some(w) = self.watched.get_mut(&(slot, info_hash)) {
                        w.peers.extend(peers);
                    }
                }
                Event::LookupDone {
                    info_hash, queries, ..
                } => {
                    if let Some(w) = self.watched.get_mut(&(slot, info_hash)) {
                        w.done_us = Some(self.now_us);
                        w.queries = queries;
                    }
                }
            }
        }
    }

    /// A datagram from a watched node: announces and self-queries are recorded.
    fn observe(&mut self, slot: usize, to: SocketAddr, bytes: &[u8]) {
        let Ok(msg) = Msg::decode(bytes) else { return };
        let Body::Query { query, .. } = msg.body else {
            return;
        };
        let to_id = slot_of(&to).map(|s| self.slots[s].id);
        match query {
            Query::AnnouncePeer { info_hash, .. } => {
                if let (Some(w), Some(id)) = (self.watched.get_mut(&(slot, info_hash)), to_id) {
                    w.announced_to.push(id);
                }
            }
            Query::GetPeers { info_hash, .. } if to == addr(slot) => {
                if let Some(w) = self.watched.get_mut(&(slot, info_hash)) {
                    w.queried_self = true;
                }
            }
            _ => {}
        }
    }
}

/// Min, median, p95 and max of `xs` (sorted here).
pub fn summary(xs: &mut [f64]) -> (f64, f64, f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    xs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (xs[0], at(0.5), at(0.95), xs[xs.len() - 1])
}

/// One run: `nodes` join `join_gap_ms` apart (each bootstrapped from one random earlier
/// node), the network settles for `settle_s`, then `lookups` lookups of random targets
/// from random nodes, each after `churn` nodes left and as many new ones joined. Before
/// them, `pairs` nodes announce an info-hash each; after them, another node looks each up.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub sim: SimConfig,
    pub nodes: usize,
    pub join_gap_ms: u64,
    pub settle_s: u64,
    pub lookups: usize,
    pub churn: usize,
    pub pairs: usize,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Per finished lookup: how many of the true 8 closest live nodes it announced to.
    pub hits: Vec<usize>,
    /// Per finished lookup: queries sent, and virtual milliseconds to `LookupDone`.
    pub queries: Vec<f64>,
    pub millis: Vec<f64>,
    /// Lookups that did not finish within their time limit, or were refused.
    pub unfinished: usize,
    /// Per true-closest node a lookup missed: its age (virtual s), how many live tables
    /// hold it, and whether one of the nodes the lookup announced to holds it.
    pub misses: Vec<(f64, usize, bool)>,
    /// Lookups that sent a query to their own node.
    pub queried_self: usize,
    /// Announces found by another node, of `pairs`.
    pub found: usize,
    pub left: usize,
    pub joined: usize,
    pub live_at_end: usize,
    pub datagrams: u64,
    pub lost: u64,
    /// Datagrams sent by the busiest node, and the median node, over the whole run.
    pub max_sent: u64,
    pub median_sent: u64,
    pub virtual_s: f64,
    /// Routing tables of the live nodes at the end: mean nodes, most buckets.
    pub mean_table: f64,
    /// Live nodes with an empty table at the end; bootstraps repeated.
    pub empty_tables: usize,
    pub retries: u64,
    /// After settling: mean fraction of each node's own 8 closest that its table holds.
    pub neighbourhood: f64,
    pub max_buckets: usize,
}

/// How long a lookup may take, virtually, before it counts as unfinished.
const LOOKUP_LIMIT_US: u64 = 120_000_000;

impl Scenario {
    pub fn run(&self) -> Report {
        let mut sim = Sim::new(self.sim.clone());
        let mut r = Report::default();
        for i in 0..self.nodes {
            let from = if i == 0 {
                Vec::new()
            } else {
                vec![sim.rng().gen_range(0..i)]
            };
            sim.join(&from);
            sim.run_for(self.join_gap_ms * 1000);
        }
        sim.run_for(self.settle_s * 1_000_000);
        r.neighbourhood = sim.neighbourhood();
        // Announces, before the churn.
        let mut pairs = Vec::new();
        for k in 0..self.pairs {
            let ih = sim.random_id();
            let a = sim.random_live();
            let port = 7000 + k as u16;
            if sim.get_peers(a, ih, Some(port)) {
                sim.wait_lookup(a, ih, LOOKUP_LIMIT_US);
            }
            pairs.push((ih, a, port));
        }
        for _ in 0..self.lookups {
            for _ in 0..self.churn {
                let gone = sim.random_live();
                sim.leave(gone);
                r.left += 1;
                let boot = sim.random_live();
                sim.join(&[boot]);
                r.joined += 1;
            }
            sim.run_for(500_000);
            let looker = sim.random_live();
            let target = sim.random_id();
            if !sim.get_peers(looker, target, Some(6881)) {
                r.unfinished += 1;
                continue;
            }
            let w = sim.wait_lookup(looker, target, LOOKUP_LIMIT_US);
            let Some(done) = w.done_us else {
                r.unfinished += 1;
                continue;
            };
            let truth = sim.true_closest(&target, 8, looker);
            r.hits.push(
                truth
                    .iter()
                    .filter(|id| w.announced_to.contains(id))
                    .count(),
            );
            for m in truth.iter().filter(|id| !w.announced_to.contains(id)) {
                r.misses.push(sim.miss(m, &w.announced_to));
            }
            r.queries.push(w.queries as f64);
            r.millis.push((done - w.started_us) as f64 / 1000.0);
            r.queried_self += usize::from(w.queried_self);
        }
        // Another node looks each announced info-hash up, after the churn.
        for (ih, a, port) in pairs {
            let b = loop {
                let b = sim.random_live();
                if b != a {
                    break b;
                }
            };
            if sim.get_peers(b, ih, None) {
                let w = sim.wait_lookup(b, ih, LOOKUP_LIMIT_US);
                let want = SocketAddr::new(addr(a).ip(), port);
                r.found += usize::from(w.peers.contains(&want));
            }
        }
        r.live_at_end = sim.live_count();
        let live = sim.live();
        let tables: Vec<_> = live
            .iter()
            .filter_map(|s| sim.node(*s))
            .map(|n| n.table())
            .collect();
        r.mean_table = tables.iter().map(|t| t.len()).sum::<usize>() as f64 / tables.len() as f64;
        r.max_buckets = tables.iter().map(|t| t.bucket_count()).max().unwrap_or(0);
        r.empty_tables = tables.iter().filter(|t| t.is_empty()).count();
        r.retries = sim.retries;
        r.datagrams = sim.datagrams;
        r.lost = sim.lost;
        let mut sent = sim.sent.clone();
        sent.sort_unstable();
        r.max_sent = sent.last().copied().unwrap_or(0);
        r.median_sent = sent.get(sent.len() / 2).copied().unwrap_or(0);
        r.virtual_s = sim.now_us as f64 / 1e6;
        r
    }
}

impl Report {
    /// The figures, one per line.
    pub fn print(&self, label: &str) {
        let n = self.hits.len();
        let exact = self.hits.iter().filter(|h| **h == 8).count();
        let mean = self.hits.iter().sum::<usize>() as f64 / (8 * n.max(1)) as f64;
        let (qmin, qmed, q95, qmax) = summary(&mut self.queries.clone());
        let (tmin, tmed, t95, tmax) = summary(&mut self.millis.clone());
        let empty = self.queries.iter().filter(|q| **q == 0.0).count();
        println!(
            "[{label}] lookups finished {n} ({empty} sent no query at all), unfinished {}",
            self.unfinished
        );
        println!(
            "[{label}] true 8 closest live nodes reached: mean {:.1}%, all 8 in {exact}/{n}",
            100.0 * mean
        );
        println!("[{label}] queries per lookup: min {qmin} median {qmed} p95 {q95} max {qmax}");
        println!(
            "[{label}] virtual ms per lookup: min {tmin:.0} median {tmed:.0} p95 {t95:.0} max {tmax:.0}"
        );
        println!(
            "[{label}] churn: {} left, {} joined, {} live at end; announces found {}; \
             lookups that queried themselves {}",
            self.left, self.joined, self.live_at_end, self.found, self.queried_self
        );
        println!(
            "[{label}] datagrams {} (lost {}), per node sent: median {} max {}, virtual {:.0} s",
            self.datagrams, self.lost, self.median_sent, self.max_sent, self.virtual_s
        );
        let young = self.misses.iter().filter(|m| m.0 < 60.0).count();
        let told = self.misses.iter().filter(|m| m.2).count();
        let mut known: Vec<f64> = self.misses.iter().map(|m| m.1 as f64).collect();
        let (kmin, kmed, _, kmax) = summary(&mut known);
        println!(
            "[{label}] misses {}: joined < 60 s before {young}; held by an answering node {told}; \
             tables holding a missed node: min {kmin} median {kmed} max {kmax}",
            self.misses.len()
        );
        println!(
            "[{label}] routing tables at the end: mean {:.0} nodes, at most {} buckets; \
             after settling, a node's own 8 closest in its table: {:.1}%; empty tables {} \
             (bootstraps repeated {})",
            self.mean_table,
            self.max_buckets,
            100.0 * self.neighbourhood,
            self.empty_tables,
            self.retries
        );
    }

    /// Mean fraction of the true 8 closest reached.
    pub fn hit_fraction(&self) -> f64 {
        self.hits.iter().sum::<usize>() as f64 / (8 * self.hits.len().max(1)) as f64
    }
}

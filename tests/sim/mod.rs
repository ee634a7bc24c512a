//! A deterministic in-memory swarm: N real [`Engine`]s wired together by a discrete-event
//! simulator on a virtual clock. No sockets, no tokio, no real time: the clock starts at one
//! `Instant::now()` and only ever moves forward by `Duration`s taken from the event queue.
//!
//! Model (what the harness plays, in place of the driver, the connections and the store):
//! - **Events** sit in one queue ordered by `(time, sequence number)`, so equal times are
//!   processed in the order they were scheduled: the same scenario always runs the same way.
//! - **Uplink**: each node has one upload capacity (bytes/s) shared by all its connections.
//!   Every connection has a FIFO of outgoing messages; the uplink sends one message at a
//!   time, round-robin over connections with something queued (fair sharing at message
//!   granularity, as TCP flows on one bottleneck roughly are). A message occupies the uplink
//!   for `encoded size / capacity` and arrives `latency` after it has been sent. Downlinks
//!   are not limited.
//! - **Connect** `{addr}`: both sides get `PeerConnected` after 3 × latency (TCP handshake
//!   plus the BitTorrent handshake), the dialer outbound and the listener inbound, each with
//!   its own key, the other's peer id and the FAST|EXTENDED reserved bits. A dial to a node
//!   that is absent or has left fails after 2 × latency.
//! - **Serve** `{key, block}` queues a Piece on that connection; when the uplink has sent it,
//!   the server gets `Served` and the receiver, `latency` later, `block_received`. Block
//!   bytes are never carried: the engine does not see data.
//! - **Store**: accepted blocks are counted per piece; when a piece is whole it is "hashed"
//!   ([`HASH_TIME`] later) and the receiver gets `PieceVerified`, or `PieceFailed` with the
//!   contributing keys when any block came from a node marked as a liar.
//! - **Disconnect** `{key}` ends the connection: the side that asked forgets it at once (and
//!   gets `PeerDisconnected`, as the driver's closing connection reports), the other side
//!   `latency` later; data still queued on either side is dropped.
//! - **Deadlines**: each engine's `handle_timeout` runs at its `next_deadline()`.
//! - **Discovery**: node `i` is given the addresses of nodes `0..i` at start (as a tracker
//!   returns the peers that announced before), so each pair has exactly one connection.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swarm::config::TorrentConfig;
use swarm::engine::{Action, Engine, Event, PeerKey, PeerSource};
use swarm::layout::Layout;
use swarm::snapshot::Stats;
use swarm::types::{Bitfield, BlockRef, PeerId};
use swarm::wire::Message;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// FAST (BEP 6) and EXTENDED (BEP 10) bits, as our handshake sets them.
pub const RESERVED: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];

/// Simulated SHA-1 + write time of one piece (about 1 GB/s; only orders events).
pub const HASH_TIME: Duration = Duration::from_micros(250);

/// One node of a scenario.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Starts with every piece.
    pub seed: bool,
    /// Upload capacity in bytes/s, shared by all its connections.
    pub upload: u64,
    /// Every block it serves is corrupt (receivers' hash checks fail).
    pub liar: bool,
    /// Disconnect from everyone and stop once it has uploaded at least this many bytes
    /// and the nodes that stay hold every piece between them (a distributed copy), so
    /// that the rest of the swarm can still finish without it.
    pub leave_after_upload: Option<u64>,
    /// A seed that super-seeds (BEP 16).
    pub super_seed: bool,
    /// Downloads in piece order (`--sequential`).
    pub sequential: bool,
}

impl NodeSpec {
    pub fn seed(upload: u64) -> Self {
        NodeSpec {
            seed: true,
            upload,
            liar: false,
            leave_after_upload: None,
            super_seed: false,
            sequential: false,
        }
    }

    pub fn leecher(upload: u64) -> Self {
        NodeSpec {
            seed: false,
            ..Self::seed(upload)
        }
    }

    pub fn liar(upload: u64) -> Self {
        NodeSpec {
            liar: true,
            ..Self::seed(upload)
        }
    }
}

/// A whole simulated swarm.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub size: u64,
    pub piece_len: u32,
    /// One-way latency of every link.
    pub latency: Duration,
    pub nodes: Vec<NodeSpec>,
    /// Virtual time after which the run stops, finished or not.
    pub time_limit: Duration,
    /// Base of every node's `TorrentConfig::rng_seed` (node `i` gets `seed * 1000 + i`).
    pub seed: u64,
}

/// What one node did.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    pub seed: bool,
    pub liar: bool,
    /// Virtual time of the engine's `Complete` action.
    pub finished: Option<Duration>,
    /// When it left (see [`NodeSpec::leave_after_upload`]).
    pub left: Option<Duration>,
    pub gave_up: Option<String>,
    pub stats: Stats,
    /// Piece bytes the harness delivered to it (whether its engine accepted them or not).
    pub delivered: u64,
    pub pieces: u32,
    /// Pieces in the order its engine was told they were verified.
    pub verified: Vec<u32>,
    /// The engine's cap on pieces in progress at once.
    pub max_partials: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub size: u64,
    pub nodes: Vec<NodeReport>,
    /// Virtual time when the run ended.
    pub end: Duration,
    /// The time limit was hit before every leecher finished.
    pub timed_out: bool,
    /// Piece bytes sent (uplink finished them) but dropped because the connection closed
    /// while they were in the air.
    pub lost_in_flight: u64,
    /// Events processed.
    pub events: u64,
    /// Piece bytes sent but still in the air when the run ended.
    pub in_the_air: u64,
}

impl Report {
    pub fn leechers(&self) -> impl Iterator<Item = (usize, &NodeReport)> {
        self.nodes.iter().enumerate().filter(|(_, n)| !n.seed)
    }

    /// Panics with each node's progress unless every leecher completed.
    pub fn assert_all_complete(&self) {
        let stuck: Vec<usize> = self
            .leechers()
            .filter(|(_, n)| n.finished.is_none())
            .map(|(i, _)| i)
            .collect();
        assert!(
            stuck.is_empty() && !self.timed_out,
            "leechers {stuck:?} did not complete by {:?} (timed out: {}):\n{}",
            self.end,
            self.timed_out,
            self.table()
        );
    }

    /// One line per node, for failure messages and eprintln.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let role = if n.liar {
                "liar"
            } else if n.seed {
                "seed"
            } else {
                "leech"
            };
            s += &format!(
                "  #{i:<2} {role:<5} pieces {:>5} finished {:>10} left {:>10} down {:>10} up {:>10} wasted {:>9} failed {} banned {} peers {}{}\n",
                n.pieces,
                fmt_opt(n.finished),
                fmt_opt(n.left),
                n.stats.downloaded,
                n.stats.uploaded,
                n.stats.wasted,
                n.stats.failed_pieces,
                n.stats.peers_banned,
                n.stats.peers_connected,
                n.gave_up.as_ref().map(|r| format!(" GAVE UP: {r}")).unwrap_or_default(),
            );
        }
        s
    }
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.3}s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

/// Something on the wire of one connection.
#[derive(Debug, Clone)]
enum Out {
    Msg(Message),
    Piece(BlockRef),
}

impl Out {
    fn wire_len(&self) -> u64 {
        match self {
            Out::Msg(m) => m.encoded_len() as u64,
            Out::Piece(b) => 13 + b.len as u64,
        }
    }
}

#[derive(Debug)]
enum Ev {
    Timer {
        node: usize,
    },
    Connect {
        dialer: usize,
        dialer_key: PeerKey,
        listener: usize,
        listener_key: PeerKey,
        addr: SocketAddr,
    },
    ConnectFailed {
        node: usize,
        addr: SocketAddr,
    },
    UplinkDone {
        node: usize,
    },
    Deliver {
        node: usize,
        key: PeerKey,
        what: Out,
    },
    Closed {
        node: usize,
        key: PeerKey,
    },
    Hashed {
        node: usize,
        piece: u32,
    },
}

/// The store's view of a piece being received.
#[derive(Debug, Default)]
struct Pending {
    offsets: BTreeSet<u32>,
    contributors: BTreeSet<PeerKey>,
    bad: bool,
    hashing: bool,
}

#[derive(Debug, Default)]
struct Uplink {
    queues: BTreeMap<PeerKey, VecDeque<Out>>,
    current: Option<(PeerKey, Out)>,
    cursor: PeerKey,
}

struct Node {
    spec: NodeSpec,
    engine: Engine,
    addr: SocketAddr,
    peer_id: PeerId,
    next_key: PeerKey,
    /// The deadline a Timer event is queued for.
    timer: Option<Instant>,
    uplink: Uplink,
    pending: BTreeMap<u32, Pending>,
    finished: Option<Duration>,
    left: Option<Duration>,
    gave_up: Option<String>,
    delivered: u64,
    verified: Vec<u32>,
}

/// The simulator. Build with [`Sim::new`], then [`Sim::run`].
pub struct Sim {
    t0: Instant,
    now: Instant,
    latency: Duration,
    limit: Duration,
    size: u64,
    nodes: Vec<Node>,
    by_addr: BTreeMap<SocketAddr, usize>,
    /// `(node, key)` → `(other node, its key)`, for open connections.
    links: BTreeMap<(usize, PeerKey), (usize, PeerKey)>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    events: u64,
    lost_in_flight: u64,
    unfinished: usize,
}

pub fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 6881))
}

impl Sim {
    pub fn new(sc: &Scenario) -> Sim {
        let t0 = Instant::now();
        let layout = Layout::new(sc.piece_len, &[sc.size]).expect("scenario layout");
        let n = layout.num_pieces();
        let nodes: Vec<Node> = sc
            .nodes
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let cfg = TorrentConfig {
                    rng_seed: sc.seed * 1000 + i as u64,
                    super_seed: spec.super_seed,
                    sequential: spec.sequential,
                    ..TorrentConfig::default()
                };
                let have = if spec.seed {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                };
                let mut id = *b"-SW0100-sim-00000000";
                id[12..].copy_from_slice(format!("{i:08}").as_bytes());
                Node {
                    spec: spec.clone(),
                    engine: Engine::new(cfg, layout.clone(), have, t0),
                    addr: node_addr(i),
                    peer_id: PeerId(id),
                    next_key: 1,
                    timer: None,
                    uplink: Uplink::default(),
                    pending: BTreeMap::new(),
                    finished: None,
                    left: None,
                    gave_up: None,
                    delivered: 0,
                    verified: Vec::new(),
                }
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        let unfinished = sc.nodes.iter().filter(|s| !s.seed).count();
        let mut sim = Sim {
            t0,
            now: t0,
            latency: sc.latency,
            limit: sc.time_limit,
            size: sc.size,
            nodes,
            by_addr,
            links: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            events: 0,
            lost_in_flight: 0,
            unfinished,
        };
        for i in 0..sim.nodes.len() {
            let earlier: Vec<SocketAddr> = (0..i).map(node_addr).collect();
            if !earlier.is_empty() {
                sim.nodes[i].engine.handle(
                    t0,
                    Event::AddPeers {
                        addrs: earlier,
                        source: PeerSource::Tracker,
                    },
                );
            }
            sim.after(i);
        }
        sim
    }

    /// Run until every leecher completed or the time limit passed.
    pub fn run(mut self) -> Report {
        let deadline = self.t0 + self.limit;
        let mut timed_out = false;
        while self.unfinished > 0 {
            let Some(((at, _), ev)) = self.queue.pop_first() else {
                // Nothing can happen any more: a stall.
                timed_out = true;
                break;
            };
            if at > deadline {
                timed_out = true;
                self.now = deadline;
                break;
            }
            debug_assert!(at >= self.now, "time went backwards");
            self.now = at;
            self.events += 1;
            self.dispatch(ev);
        }
        self.report(timed_out)
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn report(self, timed_out: bool) -> Report {
        let end = self.now - self.t0;
        Report {
            size: self.size,
            end,
            timed_out,
            lost_in_flight: self.lost_in_flight,
            events: self.events,
            in_the_air: self
                .queue
                .values()
                .map(|ev| match ev {
                    Ev::Deliver {
                        what: Out::Piece(b),
                        ..
                    } => b.len as u64,
                    _ => 0,
                })
                .sum(),
            nodes: self
                .nodes
                .into_iter()
                .map(|n| NodeReport {
                    seed: n.spec.seed,
                    liar: n.spec.liar,
                    finished: n.finished,
                    left: n.left,
                    gave_up: n.gave_up,
                    stats: n.engine.stats(),
                    delivered: n.delivered,
                    pieces: n.engine.have().count_ones(),
                    max_partials: Engine::max_partials(
                        &TorrentConfig::default(),
                        n.engine.layout(),
                    ),
                    verified: n.verified,
                })
                .collect(),
        }
    }

    fn live(&self, node: usize) -> bool {
        self.nodes[node].left.is_none()
    }

    fn dispatch(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Timer { node } => {
                if !self.live(node) || self.nodes[node].timer != Some(now) {
                    return;
                }
                self.nodes[node].timer = None;
                self.nodes[node].engine.handle_timeout(now);
                self.after(node);
            }
            Ev::Connect {
                dialer,
                dialer_key,
                listener,
                listener_key,
                addr,
            } => {
                if !self.live(dialer) {
                    return;
                }
                if !self.live(listener) {
                    self.nodes[dialer]
                        .engine
                        .handle(now, Event::ConnectFailed { addr });
                    self.after(dialer);
                    return;
                }
                self.links
                    .insert((dialer, dialer_key), (listener, listener_key));
                self.links
                    .insert((listener, listener_key), (dialer, dialer_key));
                let (d_addr, d_id) = (self.nodes[dialer].addr, self.nodes[dialer].peer_id);
                let l_id = self.nodes[listener].peer_id;
                self.nodes[listener].engine.handle(
                    now,
                    Event::PeerConnected {
                        key: listener_key,
                        addr: d_addr,
                        peer_id: d_id,
                        reserved: RESERVED,
                        outbound: false,
                    },
                );
                self.nodes[dialer].engine.handle(
                    now,
                    Event::PeerConnected {
                        key: dialer_key,
                        addr,
                        peer_id: l_id,
                        reserved: RESERVED,
                        outbound: true,
                    },
                );
                self.after(listener);
                self.after(dialer);
            }
            Ev::ConnectFailed { node, addr } => {
                if self.live(node) {
                    self.nodes[node]
                        .engine
                        .handle(now, Event::ConnectFailed { addr });
                    self.after(node);
                }
            }
            Ev::UplinkDone { node } => self.uplink_done(node),
            Ev::Deliver { node, key, what } => self.deliver(node, key, what),
            Ev::Closed { node, key } => {
                if self.live(node) && self.links.remove(&(node, key)).is_some() {
                    self.nodes[node].uplink.queues.remove(&key);
                    self.nodes[node]
                        .engine
                        .handle(now, Event::PeerDisconnected { key });
                    self.after(node);
                }
            }
            Ev::Hashed { node, piece } => {
                if !self.live(node) {
                    return;
                }
                let p = self.nodes[node]
                    .pending
                    .remove(&piece)
                    .expect("hashed piece is pending");
                let ev = if p.bad {
                    Event::PieceFailed {
                        piece,
                        peers: p.contributors.into_iter().collect(),
                    }
                } else {
                    self.nodes[node].verified.push(piece);
                    Event::PieceVerified { piece }
                };
                self.nodes[node].engine.handle(now, ev);
                self.after(node);
            }
        }
    }

    fn deliver(&mut self, node: usize, key: PeerKey, what: Out) {
        let now = self.now;
        let Some(&(from, _)) = self.links.get(&(node, key)) else {
            if let Out::Piece(b) = what {
                self.lost_in_flight += b.len as u64;
            }
            return;
        };
        match what {
            Out::Msg(msg) => {
                self.nodes[node]
                    .engine
                    .handle(now, Event::PeerMessage { key, msg });
            }
            Out::Piece(block) => {
                let bad = self.nodes[from].spec.liar;
                let n = &mut self.nodes[node];
                n.delivered += block.len as u64;
                if n.engine.block_received(now, key, block) {
                    let blocks = n.engine.layout().blocks_in_piece(block.piece) as usize;
                    let p = n.pending.entry(block.piece).or_default();
                    assert!(
                        !p.hashing,
                        "node {node}: block {block:?} accepted while its piece is being hashed"
                    );
                    assert!(
                        p.offsets.insert(block.offset),
                        "node {node}: block {block:?} accepted twice"
                    );
                    p.contributors.insert(key);
                    p.bad |= bad;
                    if p.offsets.len() == blocks {
                        p.hashing = true;
                        let at = now + HASH_TIME;
                        self.schedule(
                            at,
                            Ev::Hashed {
                                node,
                                piece: block.piece,
                            },
                        );
                    }
                }
            }
        }
        self.after(node);
    }

    /// Carry out everything `node`'s engine asked for, then keep its timer queued.
    fn after(&mut self, node: usize) {
        while let Some(action) = self.nodes[node].engine.poll_action() {
            if !self.live(node) {
                continue;
            }
            self.route(node, action);
        }
        if !self.live(node) {
            return;
        }
        let deadline = self.nodes[node].engine.next_deadline().max(self.now);
        if self.nodes[node].timer != Some(deadline) {
            self.nodes[node].timer = Some(deadline);
            self.schedule(deadline, Ev::Timer { node });
        }
    }

    fn route(&mut self, node: usize, action: Action) {
        let now = self.now;
        let lat = self.latency;
        match action {
            Action::Connect { addr } => match self.by_addr.get(&addr).copied() {
                Some(other) if other != node && self.live(other) => {
                    let dialer_key = self.nodes[node].next_key;
                    self.nodes[node].next_key += 1;
                    let listener_key = self.nodes[other].next_key;
                    self.nodes[other].next_key += 1;
                    self.schedule(
                        now + 3 * lat,
                        Ev::Connect {
                            dialer: node,
                            dialer_key,
                            listener: other,
                            listener_key,
                            addr,
                        },
                    );
                }
                _ => self.schedule(now + 2 * lat, Ev::ConnectFailed { node, addr }),
            },
            Action::Send { key, msg } => self.enqueue(node, key, Out::Msg(msg)),
            Action::Serve { key, block } => self.enqueue(node, key, Out::Piece(block)),
            Action::Disconnect { key, .. } => {
                if let Some((other, other_key)) = self.links.remove(&(node, key)) {
                    self.nodes[node].uplink.queues.remove(&key);
                    self.schedule(
                        now + lat,
                        Ev::Closed {
                            node: other,
                            key: other_key,
                        },
                    );
                    // The driver's connection reports its own close too (a no-op for the
                    // engine, which forgot the peer when it asked).
                    self.nodes[node]
                        .engine
                        .handle(now, Event::PeerDisconnected { key });
                }
            }
            Action::Complete => {
                let n = &mut self.nodes[node];
                if n.finished.is_none() {
                    n.finished = Some(now - self.t0);
                    if !n.spec.seed {
                        self.unfinished -= 1;
                    }
                }
            }
            Action::GiveUp { reason } => {
                self.nodes[node].gave_up = Some(reason);
            }
            // The model has no store budget: the engine's own cap on pieces in progress
            // (which grows with it) is what bounds the data in flight.
            Action::GrowBuffer { .. } => {}
            // The simulated swarm runs no DHT (no `dht_port` is configured).
            Action::DhtNode(_) => {}
        }
    }

    fn enqueue(&mut self, node: usize, key: PeerKey, out: Out) {
        if !self.links.contains_key(&(node, key)) {
            return;
        }
        let up = &mut self.nodes[node].uplink;
        up.queues.entry(key).or_default().push_back(out);
        if up.current.is_none() {
            self.start_next(node);
        }
    }

    /// Put the next message on `node`'s uplink: round-robin over connections.
    fn start_next(&mut self, node: usize) {
        let up = &mut self.nodes[node].uplink;
        debug_assert!(up.current.is_none());
        up.queues.retain(|_, q| !q.is_empty());
        let next = up
            .queues
            .range(up.cursor + 1..)
            .next()
            .or_else(|| up.queues.iter().next())
            .map(|(k, _)| *k);
        let Some(key) = next else {
            return;
        };
        let out = up
            .queues
            .get_mut(&key)
            .and_then(|q| q.pop_front())
            .expect("non-empty queue");
        up.cursor = key;
        let bytes = out.wire_len() as u128;
        up.current = Some((key, out));
        let nanos = bytes * 1_000_000_000 / self.nodes[node].spec.upload.max(1) as u128;
        let at = self.now + Duration::from_nanos(nanos as u64);
        self.schedule(at, Ev::UplinkDone { node });
    }

    fn uplink_done(&mut self, node: usize) {
        if !self.live(node) {
            return;
        }
        let now = self.now;
        let Some((key, out)) = self.nodes[node].uplink.current.take() else {
            return;
        };
        if let Some(&(other, other_key)) = self.links.get(&(node, key)) {
            let served = match &out {
                Out::Piece(b) => Some(*b),
                Out::Msg(_) => None,
            };
            self.schedule(
                now + self.latency,
                Ev::Deliver {
                    node: other,
                    key: other_key,
                    what: out,
                },
            );
            if let Some(block) = served {
                self.nodes[node]
                    .engine
                    .handle(now, Event::Served { key, block });
                self.after(node);
                self.maybe_leave(node);
            }
        }
        if self.live(node) && self.nodes[node].uplink.current.is_none() {
            self.start_next(node);
        }
    }

    fn maybe_leave(&mut self, node: usize) {
        let Some(limit) = self.nodes[node].spec.leave_after_upload else {
            return;
        };
        if !self.live(node)
            || self.nodes[node].engine.stats().uploaded < limit
            || !self.others_hold_every_piece(node)
        {
            return;
        }
        let now = self.now;
        self.nodes[node].left = Some(now - self.t0);
        self.nodes[node].uplink = Uplink::default();
        let keys: Vec<(PeerKey, (usize, PeerKey))> = self
            .links
            .range((node, 0)..(node + 1, 0))
            .map(|(&(_, k), &v)| (k, v))
            .collect();
        for (key, (other, other_key)) in keys {
            self.links.remove(&(node, key));
            self.schedule(
                now + self.latency,
                Ev::Closed {
                    node: other,
                    key: other_key,
                },
            );
        }
    }

    /// Whether the live nodes other than `node` have verified every piece between them.
    fn others_hold_every_piece(&self, node: usize) -> bool {
        let n = self.nodes[node].engine.layout().num_pieces();
        let mut union = Bitfield::new(n);
        for (i, other) in self.nodes.iter().enumerate() {
            if i != node && other.left.is_none() {
                for p in other.engine.have().iter_ones() {
                    union.set(p);
                }
            }
        }
        union.is_full()
    }
}

/// A scenario of one seed and `leechers` leechers, all with the same upload capacity.
pub fn one_seed(leechers: usize, size: u64, piece_len: u32, upload: u64) -> Scenario {
    let mut nodes = vec![NodeSpec::seed(upload)];
    nodes.extend((0..leechers).map(|_| NodeSpec::leecher(upload)));
    Scenario {
        size,
        piece_len,
        latency: Duration::from_millis(5),
        nodes,
        time_limit: Duration::from_secs(600),
        seed: 1,
    }
}

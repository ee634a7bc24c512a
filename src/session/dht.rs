//! The DHT's UDP edge (BEP 5): one per session, started by the session task when
//! `SessionConfig::dht` is on. It owns one UDP socket on the session's listen port (the
//! TCP port's number, on `SessionConfig::bind`), the clock and the sans-IO
//! [`crate::dht::node::Node`]; the session task tells it which torrents run
//! ([`DhtEdge::join`], [`DhtEdge::leave`]) and which nodes peers named in `Port` messages
//! ([`DhtEdge::add_node`]), and takes the peers its lookups find ([`found`]) to their
//! torrents' runs ([`route`]).
//!
//! Bootstrap: the node cache of the last run (`STATE_DIR/dht/nodes`, see [`super::dht_cache`]),
//! then `--dht-node`s or else the default routers (resolved with a timeout). While the
//! routing table stays empty, bootstrap is retried with a doubling back-off.
//!
//! Invariants:
//! - Only running, non-private torrents are looked up and announced (a magnet not yet
//!   fetched counts as public: its link is all we know); a lookup starts only once the
//!   table has a node, and a running torrent is looked up again every
//!   [`dht_cache::RELOOKUP`] (sooner while lookups find nobody).
//! - Every datagram is hostile: at most [`MAX_PACKET`] + 1 bytes are read (a longer one is
//!   truncated and so refused by the decoder); the node bounds everything else.
//! - Found peers wait in a bounded queue ([`FOUND_QUEUE`]); when the session is busy the
//!   rest are dropped (the next lookup finds them again). `Port` candidates are
//!   remembered in a bounded set so a peer repeating its `Port` costs no extra query.
//! - The node cache is written atomically, every [`SAVE_EVERY`] and when the edge stops.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::dht_cache::{self as cache, Backoff};
use crate::dht::krpc::MAX_PACKET;
use crate::dht::node::{DhtConfig, Event, Node};
use crate::dht::NodeId;
use crate::engine::PeerSource;
use crate::net::driver::Control;
use crate::types::InfoHash;

/// The routers a first run bootstraps from when no `--dht-node` is given (the old
/// `router.bittorrent.com` and `router.utorrent.com` are unreliable or gone).
const DEFAULT_ROUTERS: [&str; 2] = ["dht.transmissionbt.com:6881", "dht.libtorrent.org:25401"];

/// How long resolving the routers may take (a resolver without network can hang long).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Batches of found peers queued for the session task; more are dropped.
const FOUND_QUEUE: usize = 64;

/// The node cache is saved this often while running (and at stop): a crash then loses at
/// most this much of the table's news.
const SAVE_EVERY: Duration = Duration::from_secs(10 * 60);

/// `Port` candidates remembered (so each is asked once); the oldest go first.
const MAX_CANDIDATES: usize = 256;

/// After a failed receive, wait this long before the next (a persistent error must not
/// spin the task).
const RECV_BACKOFF: Duration = Duration::from_millis(100);

/// How long stopping may take to save the node cache.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Peers a lookup found for one torrent.
pub(super) type Found = (InfoHash, Vec<SocketAddr>);

/// The node's figures, for `SessionStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct DhtStats {
    pub nodes: usize,
    pub answered: u64,
    pub refused: u64,
}

enum Cmd {
    Join {
        info_hash: InfoHash,
        private: bool,
    },
    Leave(InfoHash),
    /// Sent by `DhtEdge::add_node`: a node a peer named in its BEP 5 `Port` message.
    AddNode(SocketAddr),
    Stop(oneshot::Sender<()>),
}

/// The session's handle to its DHT task; dropping it stops the task (without saving:
/// [`DhtEdge::stop`] saves).
pub(super) struct DhtEdge {
    cmds: mpsc::UnboundedSender<Cmd>,
    found: mpsc::Receiver<Found>,
    stats: watch::Receiver<DhtStats>,
    task: JoinHandle<()>,
}

impl DhtEdge {
    /// Binds UDP `bind:port` and starts the node. `None` when the socket cannot be opened
    /// (logged): the torrents run on their other sources.
    pub(super) fn start(
        bind: IpAddr,
        port: u16,
        announce_port: Arc<AtomicU16>,
        given: Vec<SocketAddr>,
        state_root: Option<PathBuf>,
    ) -> Option<DhtEdge> {
        let sock = match Sockets::open(bind, port) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(port, error = %e, "the DHT is off: cannot open its UDP port");
                return None;
            }
        };
        let cache_path = state_root.map(|r| r.join("dht").join("nodes"));
        let cached = cache_path.as_deref().and_then(load);
        let (id, cached) = match cached {
            Some((id, nodes)) => (id, nodes),
            None => (NodeId(rand::random()), Vec::new()),
        };
        // A DHT of local nodes (`--dht-node` on loopback or a private address: tests, a lab,
        // a LAN) shares IP addresses and lives at local ones; the internet's does neither.
        let local = given.iter().any(|a| crate::pex::is_local(a.ip()));
        let cfg = DhtConfig {
            one_per_ip: !local,
            allow_local: local,
            ..DhtConfig::default()
        };
        let now = Instant::now();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (found_tx, found) = mpsc::channel(FOUND_QUEUE);
        let (stats_tx, stats) = watch::channel(DhtStats::default());
        let edge = Edge {
            node: Node::new(cfg, id, now),
            announce_port,
            given,
            cached,
            cache_path,
            torrents: BTreeMap::new(),
            candidates: BTreeSet::new(),
            bootstrap: Backoff::new(cache::BOOTSTRAP_FIRST, cache::BOOTSTRAP_MAX),
            bootstrap_at: now,
            save_at: now + SAVE_EVERY,
            found: found_tx,
            stats: stats_tx,
        };
        tracing::debug!(%id, port, "DHT node starting");
        let task = tokio::spawn(run(edge, sock, cmd_rx));
        Some(DhtEdge {
            cmds,
            found,
            stats,
            task,
        })
    }

    /// A torrent's run started: look it up and announce it, unless private.
    pub(super) fn join(&self, info_hash: InfoHash, private: bool) {
        let _ = self.cmds.send(Cmd::Join { info_hash, private });
    }

    /// A torrent's run ended: stop looking it up.
    pub(super) fn leave(&self, info_hash: InfoHash) {
        let _ = self.cmds.send(Cmd::Leave(info_hash));
    }

    /// A peer's `Port` message (BEP 5) named a node at this address.
    pub(super) fn add_node(&self, addr: SocketAddr) {
        let _ = self.cmds.send(Cmd::AddNode(addr));
    }

    pub(super) fn stats(&self) -> DhtStats {
        *self.stats.borrow()
    }

    /// Saves the node cache and ends the task (bounded by [`STOP_TIMEOUT`]).
    pub(super) async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, rx).await;
        }
    }
}

impl Drop for DhtEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next peers found; never ready without an edge (or once its task has gone).
pub(super) async fn found(edge: &mut Option<DhtEdge>) -> Found {
    if let Some(edge) = edge {
        if let Some(found) = edge.found.recv().await {
            return found;
        }
    }
    std::future::pending().await
}

/// Hands found peers to their torrent's run: `control` gives its control queue when it
/// runs (and is not stopping); otherwise, or when the queue is full, they are dropped.
pub(super) fn route(found: Found, control: Option<&mpsc::Sender<Control>>) {
    let (ih, addrs) = found;
    let Some(tx) = control else {
        tracing::debug!(info_hash = %ih, "DHT peers for a torrent not running; dropped");
        return;
    };
    tracing::debug!(info_hash = %ih, peers = addrs.len(), "DHT peers found");
    let msg = Control::AddPeers {
        addrs,
        source: PeerSource::Dht,
    };
    if tx.try_send(msg).is_err() {
        tracing::debug!(info_hash = %ih, "torrent is not taking peers; DHT peers dropped");
    }
}

/// A running torrent's lookup schedule.
struct Torrent {
    due: Instant,
    /// Whether its current lookup found a peer.
    found: bool,
    /// Waits after lookups that found nobody.
    empty: Backoff,
}

struct Edge {
    node: Node,
    /// The TCP port our announces name (the listen port, or the one a router maps to it).
    announce_port: Arc<AtomicU16>,
    given: Vec<SocketAddr>,
    cached: Vec<(NodeId, SocketAddr)>,
    cache_path: Option<PathBuf>,
    torrents: BTreeMap<InfoHash, Torrent>,
    candidates: BTreeSet<SocketAddr>,
    bootstrap: Backoff,
    bootstrap_at: Instant,
    save_at: Instant,
    found: mpsc::Sender<Found>,
    stats: watch::Sender<DhtStats>,
}

async fn run(mut e: Edge, sock: Sockets, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    // One more byte than the decoder takes, so a longer datagram shows as too long.
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut buf6 = vec![0u8; MAX_PACKET + 1];
    let (resolved_tx, mut resolved) = mpsc::unbounded_channel::<Vec<SocketAddr>>();
    loop {
        let deadline = e.deadline();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Stop(done)) => {
                    e.save().await;
                    let _ = done.send(());
                    return;
                }
                Some(cmd) => e.command(cmd),
            },
            r = sock.recv_from(&mut buf, &mut buf6) => match r {
                Ok((datagram, from)) => e.node.receive(Instant::now(), from, datagram),
                Err(err) => {
                    // ICMP port unreachable from a node that is gone shows up here on
                    // some systems; it says nothing about our socket.
                    tracing::trace!(error = %err, "DHT receive failed");
                    tokio::time::sleep(RECV_BACKOFF).await;
                }
            },
            Some(addrs) = resolved.recv() => {
                tracing::debug!(routers = ?addrs, "DHT routers resolved");
                e.node.bootstrap(Instant::now(), &addrs);
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                e.tick(Instant::now(), &resolved_tx);
            }
        }
        e.after(Instant::now(), &sock).await;
    }
}

impl Edge {
    fn deadline(&self) -> Instant {
        let mut at = self
            .node
            .next_deadline()
            .min(self.bootstrap_at)
            .min(self.save_at);
        if !self.node.is_empty() {
            if let Some(due) = self.torrents.values().map(|t| t.due).min() {
                at = at.min(due);
            }
        }
        at
    }

    fn command(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Join { info_hash, private } => {
                if private {
                    tracing::debug!(%info_hash, "private torrent: no DHT");
                    return;
                }
                self.torrents.insert(
                    info_hash,
                    Torrent {
                        due: now,
                        found: false,
                        empty: Backoff::new(cache::EMPTY_FIRST, cache::RELOOKUP),
                    },
                );
            }
            Cmd::Leave(info_hash) => {
                self.torrents.remove(&info_hash);
            }
            Cmd::AddNode(addr) => {
                if self.candidates.contains(&addr) {
                    return;
                }
                if self.candidates.len() >= MAX_CANDIDATES {
                    self.candidates.pop_first();
                }
                self.candidates.insert(addr);
                self.node.bootstrap(now, &[addr]);
            }
            Cmd::Stop(_) => {}
        }
    }

    fn tick(&mut self, now: Instant, resolved: &mpsc::UnboundedSender<Vec<SocketAddr>>) {
        self.node.handle_timeout(now);
        if now >= self.bootstrap_at {
            if self.node.is_empty() {
                self.bootstrap_now(now, resolved);
                self.bootstrap_at = now + self.bootstrap.next();
            } else {
                self.bootstrap.reset();
                // Checked again later: a table can empty when every node has gone.
                self.bootstrap_at = now + cache::BOOTSTRAP_MAX;
            }
        }
        if now >= self.save_at {
            self.save_at = now + SAVE_EVERY;
            let bytes = self.cache_bytes();
            if let Some(path) = self.cache_path.clone() {
                tokio::task::spawn_blocking(move || save_to(&path, &bytes));
            }
        }
        if self.node.is_empty() {
            return;
        }
        for (ih, t) in self.torrents.iter_mut().filter(|(_, t)| t.due <= now) {
            if self.node.get_peers(
                now,
                NodeId(ih.0),
                Some(self.announce_port.load(Ordering::Relaxed)),
            ) {
                t.found = false;
                // Rescheduled when the lookup is done; this only bounds a lost one.
                t.due = now + cache::RELOOKUP;
            } else {
                t.due = now + cache::LOOKUP_RETRY;
            }
        }
    }

    /// Asks the cached nodes, then the given ones or the default routers.
    fn bootstrap_now(&mut self, now: Instant, resolved: &mpsc::UnboundedSender<Vec<SocketAddr>>) {
        let mut addrs: Vec<SocketAddr> = self.cached.iter().map(|(_, a)| *a).collect();
        addrs.extend(&self.given);
        addrs.extend(&self.candidates);
        tracing::debug!(nodes = addrs.len(), "DHT bootstrap");
        self.node.bootstrap(now, &addrs);
        if self.given.is_empty() {
            let tx = resolved.clone();
            tokio::spawn(async move {
                let addrs = resolve_routers().await;
                if !addrs.is_empty() {
                    let _ = tx.send(addrs);
                }
            });
        }
    }

    /// Sends what the node queued, hands its events on, publishes its figures.
    async fn after(&mut self, now: Instant, sock: &Sockets) {
        while let Some((to, bytes)) = self.node.poll_transmit() {
            if let Err(err) = sock.send_to(&bytes, to).await {
                tracing::trace!(%to, error = %err, "DHT send failed");
            }
        }
        while let Some(ev) = self.node.poll_event() {
            match ev {
                Event::Peers { info_hash, peers } => {
                    let ih = InfoHash(info_hash.0);
                    let Some(t) = self.torrents.get_mut(&ih) else {
                        continue;
                    };
                    t.found = true;
                    if self.found.try_send((ih, peers)).is_err() {
                        tracing::debug!(info_hash = %ih, "session busy; DHT peers dropped");
                    }
                }
                Event::LookupDone {
                    info_hash,
                    queries,
                    announced,
                } => {
                    let ih = InfoHash(info_hash.0);
                    tracing::debug!(info_hash = %ih, queries, announced, "DHT lookup done");
                    if let Some(t) = self.torrents.get_mut(&ih) {
                        t.due = now
                            + if t.found {
                                t.empty.reset();
                                cache::RELOOKUP
                            } else {
                                t.empty.next()
                            };
                    }
                }
            }
        }
        let stats = DhtStats {
            nodes: self.node.len(),
            answered: self.node.answered,
            refused: self.node.refused,
        };
        self.stats
            .send_if_modified(|s| std::mem::replace(s, stats) != stats);
    }

    /// The cache file's bytes: our id and the nodes that have answered us.
    fn cache_bytes(&self) -> Vec<u8> {
        let nodes: Vec<(NodeId, SocketAddr)> = self
            .node
            .table()
            .nodes()
            .chain(self.node.table6().nodes())
            .filter(|n| n.answered.is_some())
            .map(|n| (n.id, n.addr))
            .take(cache::MAX_CACHED)
            .collect();
        cache::encode(self.node.id(), &nodes)
    }

    async fn save(&self) {
        let Some(path) = self.cache_path.clone() else {
            return;
        };
        let bytes = self.cache_bytes();
        let _ = tokio::task::spawn_blocking(move || save_to(&path, &bytes)).await;
    }
}

/// The node's UDP sockets: IPv4 and IPv6 (BEP 32), each on the listen port's number. On
/// an unspecified `--bind` both (the IPv6 one v6-only, skipped where IPv6 is unavailable);
/// on a specific address only that family.
struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    fn open(bind: IpAddr, port: u16) -> io::Result<Sockets> {
        let any4 = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        let (v4, v6) = match bind {
            b if b.is_unspecified() => {
                let v4 = open(SocketAddr::new(any4, port))?;
                let v6 = open(SocketAddr::new(any6, port))
                    .map_err(|e| tracing::debug!(error = %e, "no IPv6 DHT socket"))
                    .ok();
                (Some(v4), v6)
            }
            IpAddr::V4(_) => (Some(open(SocketAddr::new(bind, port))?), None),
            IpAddr::V6(_) => (None, Some(open(SocketAddr::new(bind, port))?)),
        };
        Ok(Sockets { v4, v6 })
    }

    /// The next datagram from either socket (each reads into its own buffer).
    async fn recv_from<'a>(
        &self,
        buf4: &'a mut [u8],
        buf6: &'a mut [u8],
    ) -> io::Result<(&'a [u8], SocketAddr)> {
        tokio::select! {
            r = recv(self.v4.as_ref(), buf4) => r,
            r = recv(self.v6.as_ref(), buf6) => r,
        }
    }

    async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        let sock = if to.is_ipv4() { &self.v4 } else { &self.v6 };
        match sock {
            Some(s) => s.send_to(bytes, to).await,
            None => Err(io::ErrorKind::AddrNotAvailable.into()),
        }
    }
}

async fn recv<'a>(
    sock: Option<&UdpSocket>,
    buf: &'a mut [u8],
) -> io::Result<(&'a [u8], SocketAddr)> {
    match sock {
        Some(s) => {
            let (n, from) = s.recv_from(buf).await?;
            Ok((&buf[..n.min(buf.len())], from))
        }
        None => std::future::pending().await,
    }
}

fn open(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        // The IPv4 socket takes IPv4; this one IPv6 only (no mapped addresses).
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The cached id and nodes, if the file is there and valid (anything else is ignored and
/// rewritten at the next save).
fn load(path: &std::path::Path) -> Option<(NodeId, Vec<(NodeId, SocketAddr)>)> {
    let bytes = match crate::state::read_capped(path, cache::MAX_CACHE_FILE) {
        Ok(b) => b?,
        Err(e) => {
            tracing::debug!(error = %crate::error::error_chain(&e), "DHT node cache ignored");
            return None;
        }
    };
    let decoded = cache::decode(&bytes);
    if decoded.is_none() {
        tracing::debug!(path = %path.display(), "DHT node cache is damaged; ignored");
    }
    decoded
}

fn save_to(path: &std::path::Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        if let Err(e) = builder.create(dir) {
            tracing::debug!(error = %e, "cannot create the DHT cache directory");
            return;
        }
    }
    if let Err(e) = crate::state::write_atomic(path, bytes) {
        tracing::debug!(error = %crate::error::error_chain(&e), "saving the DHT node cache failed");
    }
}

/// The default routers' addresses; those that do not resolve in time are skipped.
async fn resolve_routers() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for host in DEFAULT_ROUTERS {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(host)).await {
            Ok(Ok(addrs)) => out.extend(addrs.filter(SocketAddr::is_ipv4)),
            Ok(Err(e)) => tracing::debug!(host, error = %e, "DHT router does not resolve"),
            Err(_) => tracing::debug!(host, "resolving a DHT router timed out"),
        }
    }
    out
}

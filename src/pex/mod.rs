//! Peer exchange policy (ut_pex, BEP 11), sans-IO: what to tell each peer and what to
//! believe of what peers tell us. The `ut_pex` wire codec lives in `wire/`; the edge
//! translates its compact `added`/`added6`/`dropped`/`dropped6` lists to and from the plain
//! [`SocketAddr`] + [`PexFlags`] used here.
//!
//! What [`Pex`] owns, for one torrent:
//!
//! - **The live set**: the peers we are connected to whose listening address is known and
//!   whose connection completed a handshake (BEP 11: "a peer must only be included in an
//!   added field once a connection is successfully established"), fed by
//!   [`Pex::connected`] / [`Pex::disconnected`].
//! - **Per recipient** (a connected peer that advertised `ut_pex`, keyed by the edge's
//!   connection key `K`): the set it was last told. Each message is the diff of the live set
//!   against that set: at most [`PexConfig::max_added`] added and [`PexConfig::max_dropped`]
//!   dropped; whatever does not fit goes in the next one.
//! - **Per sender**: when it last had a message accepted and how many addresses it has had
//!   accepted this period.
//!
//! Invariants:
//! - A private torrent (BEP 27) is silent both ways: nothing is recorded, nothing is sent,
//!   every received message is refused.
//! - Two messages to one peer are at least [`PexConfig::send_interval`] apart; a message is
//!   never empty; a peer is never told about its own address.
//! - `told ⊆ live ∪ (addresses not yet reported dropped)`: it only ever holds addresses that
//!   were in the live set, so every map is bounded by the connections the engine allows.
//! - From one peer, at most [`PexConfig::max_accept_per_message`] entries of a message are
//!   looked at and at most [`PexConfig::max_accept_per_period`] addresses are accepted per
//!   [`PexConfig::accept_period`]; a message sooner than [`PexConfig::min_recv_interval`]
//!   after the last accepted one is ignored whole. The period's budget belongs to the
//!   sender's IP address, not its connection: a peer that closes and reconnects carries on
//!   with what it had left (kept for at most [`MAX_DEPARTED`] departed addresses), so a
//!   flooder cannot buy a fresh 200 addresses with every reconnection. The interval rule
//!   stays per connection: an honest peer's first message on a new connection is its full
//!   list, which we want. Accepted addresses are dialable
//!   (`engine::is_dialable`), and local ones (loopback, private, link-local) only from a
//!   peer that is itself local — so a remote peer cannot make us scan our own network.
//! - Received `dropped` lists are not used: a hostile peer could otherwise make us forget
//!   good addresses; the known-peer list has its own back-off for dead ones.
//!
//! Time comes in as `now`; nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::engine::is_dialable;
use crate::wire::ut_pex::PexFlags as Bits;

#[cfg(test)]
mod tests;

/// What we know of a peer, as the BEP 11 `added.f` byte carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PexFlags {
    /// 0x01: prefers encryption (its extension handshake's `e`).
    pub encryption: bool,
    /// 0x02: seed / upload-only.
    pub seed: bool,
    /// 0x04: supports uTP.
    pub utp: bool,
    /// 0x10: we reached it by an outgoing connection, so it is reachable.
    pub connectable: bool,
}

impl PexFlags {
    /// The `added.f` byte (bits we do not model, such as holepunch 0x08, are left clear);
    /// the bit values are the codec's (`wire::ut_pex::PexFlags`).
    pub fn to_bits(self) -> u8 {
        let bit = |on: bool, flag: Bits| if on { flag.0 } else { 0 };
        bit(self.encryption, Bits::ENCRYPTION)
            | bit(self.seed, Bits::SEED)
            | bit(self.utp, Bits::UTP)
            | bit(self.connectable, Bits::REACHABLE)
    }

    /// From an `added.f` byte; unknown bits are ignored.
    pub fn from_bits(bits: u8) -> Self {
        let b = Bits(bits);
        PexFlags {
            encryption: b.contains(Bits::ENCRYPTION),
            seed: b.contains(Bits::SEED),
            utp: b.contains(Bits::UTP),
            connectable: b.contains(Bits::REACHABLE),
        }
    }
}

/// Departed senders whose accept budget is remembered (see the module docs). 1,024: far
/// above the peers one torrent connects to within an accept period (at most a few hundred
/// with the default limits), so only a flood of distinct addresses evicts, and then the
/// oldest period goes first. One entry is an IP address and two numbers.
pub const MAX_DEPARTED: usize = 1024;

/// A sender's accept budget: when its period began and how many addresses it had
/// accepted in it. Held by its connection, and by its IP address once that closes.
#[derive(Debug, Clone, Copy)]
struct Budget {
    period_start: Instant,
    period_accepted: usize,
}

impl Budget {
    fn fresh(now: Instant) -> Budget {
        Budget {
            period_start: now,
            period_accepted: 0,
        }
    }
}

/// The numbers PEX is tuned by.
#[derive(Debug, Clone)]
pub struct PexConfig {
    /// Least time between two messages to one peer. 60 s: BEP 11 and the Azureus/µTorrent
    /// "peer exchange conventions" (no more than one message a minute); libtorrent's too.
    pub send_interval: Duration,
    /// Added peers per message. 50: the same conventions (50 added in all, v4 and v6).
    pub max_added: usize,
    /// Dropped peers per message. 50: the same conventions.
    pub max_dropped: usize,
    /// A message sooner than this after the last accepted one from the same peer is ignored.
    /// 45 s: the conventions ask receivers to tolerate messages "just under a minute" apart
    /// (timers jitter); 45 s leaves that slack and still caps a flood at ~1.3 a minute.
    pub min_recv_interval: Duration,
    /// Entries of one received message looked at (v4 and v6 together). 100: what libtorrent
    /// sends at most (`max_peer_entries`), twice the conventions' 50.
    pub max_accept_per_message: usize,
    /// Addresses accepted from one peer per [`Self::accept_period`]. 200 per 10 min: an honest
    /// peer's first full list (≤ 100) plus its churn fits; a flooder adds ≤ 1,200 an hour to
    /// a known-peer list that is bounded anyway.
    pub max_accept_per_period: usize,
    pub accept_period: Duration,
}

impl Default for PexConfig {
    fn default() -> Self {
        PexConfig {
            send_interval: Duration::from_secs(60),
            max_added: 50,
            max_dropped: 50,
            min_recv_interval: Duration::from_secs(45),
            max_accept_per_message: 100,
            max_accept_per_period: 200,
            accept_period: Duration::from_secs(600),
        }
    }
}

/// One `ut_pex` message to send, before the edge splits it into v4 and v6 lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    pub added: Vec<(SocketAddr, PexFlags)>,
    pub dropped: Vec<SocketAddr>,
}

/// Why a received message was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PexRefused {
    #[error("peer exchange is off for a private torrent")]
    Private,
    #[error("peer exchange message from a peer that did not open peer exchange")]
    NotOpen,
    #[error("peer exchange message sooner than the minimum interval")]
    TooFrequent,
}

/// Per-recipient and per-sender state of one peer that speaks `ut_pex`.
#[derive(Debug)]
struct PeerPex {
    /// Its address (the recipient is never told about itself).
    addr: SocketAddr,
    /// What it was told is live: added and not yet reported dropped.
    told: BTreeSet<SocketAddr>,
    /// Earliest time of the next message to it.
    next_send: Instant,
    /// The live set's generation when its diff was last found empty (or fully sent).
    synced: u64,
    /// Whether it currently takes `ut_pex` (its latest extension handshake lists it); a
    /// peer that withdrew it keeps its entry, so toggling cannot reset the receive limits.
    open: bool,
    /// When a message from it was last accepted.
    last_accepted: Option<Instant>,
    budget: Budget,
}

/// The PEX policy of one torrent (see the module docs).
#[derive(Debug)]
pub struct Pex<K> {
    cfg: PexConfig,
    private: bool,
    live: BTreeMap<SocketAddr, PexFlags>,
    /// Bumped on every change of `live`, so an idle recipient costs nothing until it changes.
    generation: u64,
    peers: BTreeMap<K, PeerPex>,
    /// Accept budgets of closed connections, by IP (at most [`MAX_DEPARTED`]).
    departed: BTreeMap<IpAddr, Budget>,
}

impl<K: Ord + Copy> Pex<K> {
    pub fn new(cfg: PexConfig, private: bool) -> Self {
        Pex {
            cfg,
            private,
            live: BTreeMap::new(),
            generation: 1,
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
        }
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    /// A connection completed its handshake and `addr` is where the peer listens (for an
    /// incoming connection: its IP with the port of its extension handshake's `p`; the edge
    /// does not call this when that port is unknown). Called again for a live address, it
    /// updates the flags future messages carry (no new message: BEP 11 cannot re-flag a
    /// peer already added).
    pub fn connected(&mut self, addr: SocketAddr, flags: PexFlags) {
        if self.private || !is_dialable(&addr) {
            return;
        }
        if self.live.insert(addr, flags).is_none() {
            self.generation += 1;
        }
    }

    /// The connection to `addr` (as given to [`Self::connected`]) closed.
    pub fn disconnected(&mut self, addr: SocketAddr) {
        if self.live.remove(&addr).is_some() {
            self.generation += 1;
        }
    }

    /// Peer `key` (at `addr`) advertised `ut_pex`: it gets a first message as soon as there
    /// is something to say, then at most one per interval. Calling it again updates `addr`
    /// (a later extension handshake may give another listen port); after
    /// [`Self::withdraw`] it starts over with a full list, but its send clock and receive
    /// limits carry on.
    pub fn open(&mut self, now: Instant, key: K, addr: SocketAddr) {
        if self.private {
            return;
        }
        let departed = &mut self.departed;
        let peer = self.peers.entry(key).or_insert_with(|| {
            // A reconnecting sender carries on with its address's budget.
            let budget = departed.remove(&addr.ip()).unwrap_or(Budget::fresh(now));
            PeerPex {
                addr,
                told: BTreeSet::new(),
                next_send: now,
                synced: 0,
                open: true,
                last_accepted: None,
                budget,
            }
        });
        if peer.addr != addr {
            peer.addr = addr;
            peer.synced = 0;
        }
        if !peer.open {
            peer.open = true;
            peer.told.clear();
            peer.synced = 0;
        }
    }

    /// Peer `key` withdrew `ut_pex` (a later extension handshake with id 0 or without it):
    /// nothing more is sent to it and its messages are refused until it opens again.
    pub fn withdraw(&mut self, key: K) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.open = false;
            peer.told.clear();
        }
    }

    /// Peer `key`'s connection closed. What it used of its accept budget stays with its
    /// IP address (the larger use, when several connections of one address close).
    pub fn close(&mut self, key: K) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        let keep = peer.budget;
        if keep.period_accepted == 0 {
            return;
        }
        let ip = peer.addr.ip();
        match self.departed.get_mut(&ip) {
            Some(d) if d.period_accepted >= keep.period_accepted => {}
            Some(d) => *d = keep,
            None => {
                if self.departed.len() >= MAX_DEPARTED {
                    let oldest = self
                        .departed
                        .iter()
                        .min_by_key(|(_, d)| d.period_start)
                        .map(|(ip, _)| *ip);
                    if let Some(oldest) = oldest {
                        self.departed.remove(&oldest);
                    }
                }
                self.departed.insert(ip, keep);
            }
        }
    }

    /// The live set: listening addresses and their flags.
    pub fn live(&self) -> impl Iterator<Item = (SocketAddr, PexFlags)> + '_ {
        self.live.iter().map(|(a, f)| (*a, *f))
    }

    /// The earliest time [`Self::poll_send`] may have a message; `None` while nothing changed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| p.open && p.synced != self.generation)
            .map(|p| p.next_send)
            .min()
    }

    /// The next message due at `now`, if any; call until `None`.
    pub fn poll_send(&mut self, now: Instant) -> Option<(K, PexMessage)> {
        let generation = self.generation;
        for (&key, peer) in self.peers.iter_mut() {
            if !peer.open || peer.synced == generation || peer.next_send > now {
                continue;
            }
            let msg = diff(&self.cfg, &self.live, peer);
            let complete =
                msg.added.len() < self.cfg.max_added && msg.dropped.len() < self.cfg.max_dropped;
            if complete {
                peer.synced = generation;
            }
            if msg.added.is_empty() && msg.dropped.is_empty() {
                continue;
            }
            for (a, _) in &msg.added {
                peer.told.insert(*a);
            }
            for a in &msg.dropped {
                peer.told.remove(a);
            }
            peer.next_send = now + self.cfg.send_interval;
            return Some((key, msg));
        }
        None
    }

    /// A `ut_pex` message from peer `key` (connected from `from`) listed `added` (v4 and v6
    /// together, in message order). Returns the addresses to add to the known-peer list
    /// with source PEX, deduplicated, at most the configured caps.
    pub fn receive(
        &mut self,
        now: Instant,
        key: K,
        from: SocketAddr,
        added: impl IntoIterator<Item = (SocketAddr, PexFlags)>,
    ) -> Result<Vec<(SocketAddr, PexFlags)>, PexRefused> {
        if self.private {
            return Err(PexRefused::Private);
        }
        let cfg = &self.cfg;
        let peer = self
            .peers
            .get_mut(&key)
            .filter(|p| p.open)
            .ok_or(PexRefused::NotOpen)?;
        if let Some(last) = peer.last_accepted {
            if now.saturating_duration_since(last) < cfg.min_recv_interval {
                return Err(PexRefused::TooFrequent);
            }
        }
        peer.last_accepted = Some(now);
        if now.saturating_duration_since(peer.budget.period_start) >= cfg.accept_period {
            peer.budget = Budget::fresh(now);
        }
        let budget = cfg
            .max_accept_per_period
            .saturating_sub(peer.budget.period_accepted);
        let from_local = is_local(from.ip());
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (addr, flags) in added.into_iter().take(cfg.max_accept_per_message) {
            if out.len() >= budget {
                break;
            }
            if !is_dialable(&addr) || (is_local(addr.ip()) && !from_local) || addr == from {
                continue;
            }
            if seen.insert(addr) {
                out.push((addr, flags));
            }
        }
        peer.budget.period_accepted += out.len();
        Ok(out)
    }
}

/// What `peer` has not been told: live addresses it does not know (itself excluded), and
/// addresses it knows that are no longer live; each list capped.
fn diff(cfg: &PexConfig, live: &BTreeMap<SocketAddr, PexFlags>, peer: &PeerPex) -> PexMessage {
    let added = live
        .iter()
        .filter(|(a, _)| **a != peer.addr && !peer.told.contains(*a))
        .take(cfg.max_added)
        .map(|(a, f)| (*a, *f))
        .collect();
    let dropped = peer
        .told
        .iter()
        .filter(|a| !live.contains_key(*a) || **a == peer.addr)
        .take(cfg.max_dropped)
        .copied()
        .collect();
    PexMessage { added, dropped }
}

/// Loopback, private (RFC 1918, IPv6 ULA `fc00::/7`) and link-local addresses: they only
/// mean something on the network of whoever names them.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

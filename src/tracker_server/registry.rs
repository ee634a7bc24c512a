//! The tracker's memory: swarms keyed by info-hash, and the peers announcing in each.
//!
//! Pure: no I/O, no clock (every call takes `now`), no spawning. One [`Registry`] is owned by
//! the server and called under one short lock that is never held across an `.await`.
//!
//! Invariants and caps (all in [`Limits`], all enforced on insert):
//! - at most `max_swarms` swarms and `max_peers` peers in total, at most `max_peers_per_swarm`
//!   in one swarm; per [`Source`] (an IPv4 address or an IPv6 /64) at most
//!   `max_peers_per_source` stored peers and `max_swarms_per_source` swarms created.
//! - a full table never shuts newcomers out (policy in `evict.rs`): a source at its own quota
//!   replaces its own oldest entry; otherwise the source holding most loses its oldest entry
//!   (a peer; or a swarm it created that holds no peer of another source). So one source can
//!   never hold more than its quota, and a newcomer displaces only whoever holds most.
//! - `Ok` from [`Registry::announce`] means the announcer is stored; a peer that cannot be
//!   stored (a zero cap, or every swarm of the heaviest creator shared) gets an error.
//! - `downloaded` counts a `completed` only from a peer stored as a leecher before, at most
//!   once per stored peer: fresh peer ids cannot inflate it without first being stored, and
//!   the source quota bounds how many a source has stored.
//! - a peer is keyed by (peer id, address): the same id from another address is another peer.
//!   IPv4 and IPv6 peers live in separate tables so each family is sampled on its own.
//! - a peer not heard from for `peer_timeout` is expired. Expiry is amortised: every
//!   announce examines a few peers of its own swarm, and [`Registry::sweep`] (called by the
//!   server on a timer with a work budget) walks all swarms round-robin. A swarm left with no
//!   peers is removed (its `downloaded` count goes with it). Expired peers not yet swept are
//!   never handed out.
//! - seeders/leechers/foreign counts and the per-source counts are maintained on every
//!   insert, update and removal, so they are exact for the stored peers without a scan.
//!
//! Memory: a stored peer costs about 250 to 400 bytes (an 80-byte table slot, its hash-index
//! entry, an 80-byte entry in its source's queue, and slack), so the default caps bound the
//! registry near 400 MB (1,000,000 peers) plus a few hundred bytes per swarm and per source.
//! Hash maps use std's randomly keyed SipHash, so chosen peer ids or info-hashes cannot
//! degrade lookups.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::quota::{Queued, Source, Sources};
use super::slab::Slab;
use super::swarm::{Cutoff, Peer, PeerKey, Swarm};
use crate::types::{InfoHash, PeerId};

/// Caps and defaults of a registry. Every number says where it comes from.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Swarms kept at once (100,000: a large public tracker's active torrents fit in this).
    pub max_swarms: usize,
    /// Peers kept in one swarm, both families together (10,000: far more than any client
    /// will ever connect to; libtorrent caps a torrent at a few hundred connections).
    pub max_peers_per_swarm: usize,
    /// Peers kept in the whole tracker (1,000,000: at most about 400 MB).
    pub max_peers: usize,
    /// Peers one source may have stored (20,000: a seedbox announcing 20,000 torrents, or a
    /// large NAT's users; 2 % of `max_peers`, so one source fills at most a fiftieth).
    pub max_peers_per_source: usize,
    /// Live swarms one source may have created (10,000: a seedbox adding 10,000 new
    /// torrents; 10 % of `max_swarms`).
    pub max_swarms_per_source: usize,
    /// Most peers handed out in one reply (200: libtorrent's session-wide peer count).
    pub max_numwant: usize,
    /// Peers handed out when the client does not say (50: BEP 3's customary default).
    pub default_numwant: usize,
    /// Peers examined for expiry in the announcer's swarm on each announce.
    pub sweep_per_announce: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_swarms: 100_000,
            max_peers_per_swarm: 10_000,
            max_peers: 1_000_000,
            max_peers_per_source: 20_000,
            max_swarms_per_source: 10_000,
            max_numwant: 200,
            default_numwant: 50,
            sweep_per_announce: 4,
        }
    }
}

/// What an announce says about the announcer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A regular, periodic announce.
    None,
    Started,
    /// The download finished (counted in `downloaded` once per stored peer).
    Completed,
    /// The peer leaves: it is removed.
    Stopped,
}

/// One announce, already validated by the HTTP or UDP front end.
#[derive(Clone, Debug)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The connection's source address (the `ip` parameter is ignored, like opentracker).
    pub addr: SocketAddr,
    /// Bytes the peer still needs; 0 means a seed.
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` for the default. Capped at [`Limits::max_numwant`].
    pub numwant: Option<usize>,
    /// Also return peers of the other address family (HTTP can carry both; a UDP reply only
    /// carries the family the request came over).
    pub both_families: bool,
}

/// A peer handed out in a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub addr: SocketAddr,
}

/// The answer to an announce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnounceReply {
    /// IPv4 peers (random sample, never the announcer).
    pub peers: Vec<PeerInfo>,
    /// IPv6 peers.
    pub peers6: Vec<PeerInfo>,
    /// Seeders in the swarm.
    pub complete: u32,
    /// Leechers in the swarm.
    pub incomplete: u32,
    pub interval: Duration,
    pub min_interval: Duration,
}

/// Scrape counts of one swarm (all zero for an unknown info-hash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeCounts {
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// Why an announce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("tracker is full: too many torrents")]
    TooManySwarms,
    #[error("too many torrents created from your address")]
    SourceSwarmQuota,
    #[error("tracker is full: peer not stored")]
    NotStored,
}

/// A queued peer entry: the swarm and key it was stored under.
type PeerRef = (InfoHash, PeerKey);

fn peer_live(swarms: &Slab<InfoHash, Swarm>, &((ih, key), seq): &Queued<PeerRef>) -> bool {
    swarms
        .get(&ih)
        .and_then(|w| w.get(&key))
        .is_some_and(|p| p.seq == seq)
}

fn swarm_live(swarms: &Slab<InfoHash, Swarm>, &(ih, seq): &Queued<InfoHash>) -> bool {
    swarms.get(&ih).is_some_and(|w| w.seq == seq)
}

/// All swarms. See the module docs for the caps, the quotas and the expiry scheme.
#[derive(Debug)]
pub struct Registry {
    swarms: Slab<InfoHash, Swarm>,
    peers: usize,
    sources: Sources<PeerRef>,
    /// Next insertion number for a peer or swarm.
    seq: u64,
    limits: Limits,
    interval: Duration,
    min_interval: Duration,
    peer_timeout: Duration,
    /// Global sweep position (index into `swarms`).
    cursor: usize,
    rng: StdRng,
}

impl Registry {
    /// A registry telling clients to announce every `interval`; peers silent for two
    /// intervals plus a minute are expired (one lost announce is forgiven).
    pub fn new(interval: Duration, limits: Limits) -> Self {
        Self::with_rng(interval, limits, StdRng::from_entropy())
    }

    /// Like [`Registry::new`] with a seeded RNG, for tests and benches.
    pub fn with_seed(interval: Duration, limits: Limits, seed: u64) -> Self {
        Self::with_rng(interval, limits, StdRng::seed_from_u64(seed))
    }

    fn with_rng(interval: Duration, limits: Limits, rng: StdRng) -> Self {
        Registry {
            swarms: Slab::new(),
            peers: 0,
            sources: Sources::new(),
            seq: 0,
            limits,
            interval,
            // A quarter interval: a client short of peers may come back sooner, not
            // continuously.
            min_interval: interval / 4,
            peer_timeout: interval
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(60)),
            cursor: 0,
            rng,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn peer_timeout(&self) -> Duration {
        self.peer_timeout
    }

    /// Swarms currently held.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers currently held across all swarms.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    /// Peers stored for the source of `ip` (an IPv4 address or an IPv6 /64).
    pub fn source_peers(&self, ip: IpAddr) -> usize {
        self.sources.peers(Source::of(ip))
    }

    /// Live swarms created by the source of `ip`.
    pub fn source_swarms(&self, ip: IpAddr) -> usize {
        self.sources.swarms(Source::of(ip))
    }

    /// Sources currently holding a peer or a swarm.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    fn cutoff(&self, now: Instant) -> Cutoff {
        // `None` early in the monotonic clock's life (shortly after boot): nothing can be
        // that old yet.
        now.checked_sub(self.peer_timeout)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Record an announce and answer it with a random sample of the other peers. `Ok` means
    /// the announcer is stored (or, for `stopped`, removed); a peer that cannot be stored gets
    /// an error saying so.
    pub fn announce(&mut self, a: &Announce, now: Instant) -> Result<AnnounceReply, RegistryError> {
        let cutoff = self.cutoff(now);
        let ih = a.info_hash;
        let key = PeerKey {
            peer_id: a.peer_id,
            addr: a.addr,
        };
        let want = a
            .numwant
            .unwrap_or(self.limits.default_numwant)
            .min(self.limits.max_numwant);
        let mut reply = AnnounceReply {
            interval: self.interval,
            min_interval: self.min_interval,
            ..AnnounceReply::default()
        };

        if a.event == Event::Stopped {
            self.remove_peer(&ih, &key, None);
            if let Some(c) = self.swarms.get(&ih).map(Swarm::counts) {
                (reply.complete, reply.incomplete) = (c.complete, c.incomplete);
            }
            return Ok(reply);
        }

        if let Some(si) = self.swarms.position(&ih) {
            self.sweep_swarm(si, cutoff, self.limits.sweep_per_announce);
        }
        let seed = a.left == 0;
        let known = match self.swarms.get_mut(&ih) {
            Some(swarm) => match swarm.table(&a.addr).get_mut(&key) {
                Some(p) => {
                    p.last_seen = now;
                    let was_seed = std::mem::replace(&mut p.seed, seed);
                    // Counted once per stored peer, and only for one that was stored as a
                    // leecher before: a fresh id saying `completed` counts nothing.
                    let count = a.event == Event::Completed && p.leeched && !p.counted;
                    p.counted |= count;
                    p.leeched |= !seed;
                    swarm.seeders = swarm.seeders - u32::from(was_seed) + u32::from(seed);
                    swarm.downloaded = swarm.downloaded.saturating_add(u32::from(count));
                    true
                }
                None => false,
            },
            None => false,
        };
        if !known {
            if let Err(e) = self.store_new(ih, key, seed, now) {
                self.drop_swarm_if_empty(&ih);
                return Err(e);
            }
        }

        let Some(swarm) = self.swarms.get(&ih) else {
            return Err(RegistryError::NotStored);
        };
        let c = swarm.counts();
        (reply.complete, reply.incomplete) = (c.complete, c.incomplete);
        let (own, other) = if a.addr.is_ipv4() {
            (&swarm.v4, &swarm.v6)
        } else {
            (&swarm.v6, &swarm.v4)
        };
        let mut mine = Vec::new();
        sample(&mut self.rng, own, &key, cutoff, want, &mut mine);
        let mut theirs = Vec::new();
        if a.both_families {
            let rest = want - mine.len();
            sample(&mut self.rng, other, &key, cutoff, rest, &mut theirs);
        }
        if a.addr.is_ipv4() {
            (reply.peers, reply.peers6) = (mine, theirs);
        } else {
            (reply.peers6, reply.peers) = (mine, theirs);
        }
        Ok(reply)
    }

    /// Store a peer not yet in swarm `ih`, creating the swarm and evicting as the quotas say.
    fn store_new(
        &mut self,
        ih: InfoHash,
        key: PeerKey,
        seed: bool,
        now: Instant,
    ) -> Result<(), RegistryError> {
        let src = key.source();
        if self.swarms.position(&ih).is_none() {
            self.make_swarm_room(src)?;
            let seq = self.next_seq();
            self.swarms.insert_new(ih, Swarm::new(src, seq));
            let swarms = &self.swarms;
            self.sources
                .swarm_added(src, (ih, seq), |q| swarm_live(swarms, q));
        }
        self.make_peer_room(&ih, src)?;
        let seq = self.next_seq();
        let swarm = self.swarms.get_mut(&ih).ok_or(RegistryError::NotStored)?;
        swarm.insert(
            key,
            Peer {
                seed,
                last_seen: now,
                seq,
                leeched: !seed,
                counted: false,
            },
        );
        self.peers += 1;
        let swarms = &self.swarms;
        self.sources
            .peer_added(src, ((ih, key), seq), |q| peer_live(swarms, q));
        Ok(())
    }

    /// Remove one peer with all bookkeeping; its swarm goes too if left empty, unless it is
    /// `keep`. Returns whether the peer was there.
    fn remove_peer(&mut self, ih: &InfoHash, key: &PeerKey, keep: Option<&InfoHash>) -> bool {
        let Some(si) = self.swarms.position(ih) else {
            return false;
        };
        if self.swarms.items[si].1.remove(key).is_none() {
            return false;
        }
        self.peers -= 1;
        self.sources.peer_removed(key.source());
        if keep != Some(ih) {
            self.drop_swarm_if_empty(ih);
        }
        true
    }

    fn drop_swarm_if_empty(&mut self, ih: &InfoHash) {
        if let Some(si) = self.swarms.position(ih) {
            if self.swarms.items[si].1.len() == 0 {
                self.remove_swarm_at(si);
            }
        }
    }

    /// Remove a whole swarm with all bookkeeping (its `downloaded` count goes with it).
    fn remove_swarm_at(&mut self, si: usize) {
        let (_, w) = self.swarms.remove_at(si);
        for (k, _) in w.v4.items.iter().chain(&w.v6.items) {
            self.sources.peer_removed(k.source());
        }
        self.peers -= w.len();
        self.sources.swarm_removed(w.creator);
    }

    /// Expire up to `budget` peers of swarm `si` (the swarm stays, even if emptied).
    /// Returns (examined, removed).
    fn sweep_swarm(&mut self, si: usize, cutoff: Cutoff, budget: usize) -> (usize, usize) {
        let mut gone = Vec::new();
        let examined = self.swarms.items[si].1.sweep(cutoff, budget, &mut gone);
        for k in &gone {
            self.sources.peer_removed(k.source());
        }
        self.peers -= gone.len();
        (examined, gone.len())
    }

    /// Counts for each info-hash, in order (zeros for unknown ones).
    pub fn scrape(&self, hashes: &[InfoHash]) -> Vec<ScrapeCounts> {
        hashes
            .iter()
            .map(|h| self.swarms.get(h).map(Swarm::counts).unwrap_or_default())
            .collect()
    }

    /// Examine up to `budget` peers for expiry, walking swarms round-robin from where the
    /// last call stopped, and drop swarms left empty. Returns the peers removed.
    pub fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let cutoff = self.cutoff(now);
        let mut left = budget;
        let mut removed_total = 0;
        // Each visited swarm costs at least one unit, so this ends even if all are empty.
        while left > 0 && self.swarms.len() > 0 {
            if self.cursor >= self.swarms.len() {
                self.cursor = 0;
            }
            let n = self.swarms.items[self.cursor].1.len();
            let (examined, removed) = self.sweep_swarm(self.cursor, cutoff, left.min(n.max(1)));
            left -= examined.max(1);
            removed_total += removed;
            if self.swarms.items[self.cursor].1.len() == 0 {
                self.remove_swarm_at(self.cursor);
            } else {
                self.cursor += 1;
            }
        }
        removed_total
    }
}

/// Append to `out` up to `want` live peers of `table` (never `me`), chosen at random.
fn sample(
    rng: &mut StdRng,
    table: &Slab<PeerKey, Peer>,
    me: &PeerKey,
    cutoff: Cutoff,
    want: usize,
    out: &mut Vec<PeerInfo>,
) {
    let n = table.len();
    if want == 0 || n == 0 {
        return;
    }
    let mut push = |(k, p): &(PeerKey, Peer)| {
        if k != me && !p.expired(cutoff) && out.len() < want {
            out.push(PeerInfo {
                peer_id: k.peer_id,
                addr: k.addr,
            });
        }
    };
    if n <= want.saturating_add(1) {
        table.items.iter().for_each(&mut push);
        return;
    }
    // Distinct random slots, O(want) (Floyd's algorithm); one extra makes up for skipping
    // ourselves.
    for i in rand::seq::index::sample(rng, n, want.saturating_add(1)) {
        push(&table.items[i]);
    }
}

/// An address as the tracker stores it: IPv4-mapped IPv6 (`::ffff:a.b.c.d`, seen on
/// dual-stack sockets) becomes plain IPv4 so one peer is not stored under two families.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[path = "evict.rs"]
mod evict;

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;

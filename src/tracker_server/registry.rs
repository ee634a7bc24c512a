//! The tracker's memory: swarms keyed by info-hash, and the peers announcing in each.
//!
//! Pure: no I/O, no clock (every call takes `now`), no spawning. One [`Registry`] is owned by
//! the server and called under one short lock that is never held across an `.await`.
//!
//! Invariants and caps (all in [`Limits`], all enforced on insert):
//! - at most `max_swarms` swarms and `max_peers` peers in total, at most `max_peers_per_swarm`
//!   in one swarm. A full swarm or a full tracker still *answers* an announce (peer list and
//!   counts) but does not store the new peer until others stop or expire; refusing newcomers
//!   is O(1) and cannot be used to push out peers that are already there. A new swarm is not
//!   created when the tracker holds `max_swarms`: the announce gets a failure.
//! - a peer is keyed by (peer id, address): the same id from another address is another peer.
//!   IPv4 and IPv6 peers live in separate tables so each family is sampled on its own.
//! - a peer not heard from for `peer_timeout` is expired. Expiry is amortised: every
//!   announce examines a few peers of its own swarm, and [`Registry::sweep`] (called by the
//!   server on a timer with a work budget) walks all swarms round-robin. A swarm left with no
//!   peers is removed (its `downloaded` count goes with it). Expired peers not yet swept are
//!   never handed out.
//! - seeders/leechers counts are maintained on every insert, update and removal, so they are
//!   exact for the stored peers without a scan.
//!
//! Memory: a stored peer costs about 150 to 250 bytes (an 80-byte table slot, its hash-index
//! entry, and vector slack), so the default caps bound the registry near 250 MB (1,000,000
//! peers) plus a few hundred bytes per swarm. Hash maps use std's randomly keyed SipHash, so
//! chosen peer ids or info-hashes cannot degrade lookups.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::slab::Slab;
use crate::types::{InfoHash, PeerId};

/// Caps and defaults of a registry. Every number says where it comes from.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Swarms kept at once (100,000: a large public tracker's active torrents fit in this).
    pub max_swarms: usize,
    /// Peers kept in one swarm, both families together (10,000: far more than any client
    /// will ever connect to; libtorrent caps a torrent at a few hundred connections).
    pub max_peers_per_swarm: usize,
    /// Peers kept in the whole tracker (1,000,000: at most about 250 MB).
    pub max_peers: usize,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PeerKey {
    peer_id: PeerId,
    addr: SocketAddr,
}

#[derive(Clone, Copy, Debug)]
struct Peer {
    seed: bool,
    last_seen: Instant,
}

/// Peers last seen before this instant are expired (`None`: none are).
type Cutoff = Option<Instant>;

impl Peer {
    fn expired(&self, cutoff: Cutoff) -> bool {
        cutoff.is_some_and(|c| self.last_seen < c)
    }
}

/// One torrent's peers and counters.
#[derive(Debug)]
struct Swarm {
    v4: Slab<PeerKey, Peer>,
    v6: Slab<PeerKey, Peer>,
    seeders: u32,
    downloaded: u32,
    /// Sweep position over `v4` then `v6` (index into their concatenation).
    cursor: usize,
}

impl Swarm {
    fn new() -> Self {
        Swarm {
            v4: Slab::new(),
            v6: Slab::new(),
            seeders: 0,
            downloaded: 0,
            cursor: 0,
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn table(&mut self, addr: &SocketAddr) -> &mut Slab<PeerKey, Peer> {
        if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    fn counts(&self) -> ScrapeCounts {
        let total = self.len() as u32;
        ScrapeCounts {
            complete: self.seeders,
            downloaded: self.downloaded,
            incomplete: total - self.seeders,
        }
    }

    fn remove(&mut self, key: &PeerKey) -> bool {
        match self.table(&key.addr).remove(key) {
            Some(p) => {
                self.seeders -= u32::from(p.seed);
                true
            }
            None => false,
        }
    }

    /// Examine up to `budget` peers at the cursor; remove those last seen before `cutoff`.
    /// Returns (peers examined, peers removed).
    fn sweep(&mut self, cutoff: Cutoff, budget: usize) -> (usize, usize) {
        let mut removed = 0;
        let mut examined = 0;
        while examined < budget && self.len() > 0 {
            if self.cursor >= self.len() {
                self.cursor = 0;
            }
            let n4 = self.v4.len();
            let (table, i) = if self.cursor < n4 {
                (&mut self.v4, self.cursor)
            } else {
                (&mut self.v6, self.cursor - n4)
            };
            examined += 1;
            if table.items[i].1.expired(cutoff) {
                // Swap-remove brings an unexamined peer into slot `i`: keep the cursor.
                let (_, p) = table.remove_at(i);
                self.seeders -= u32::from(p.seed);
                removed += 1;
            } else {
                self.cursor += 1;
            }
        }
        (examined, removed)
    }
}

/// All swarms. See the module docs for the caps and the expiry scheme.
#[derive(Debug)]
pub struct Registry {
    swarms: Slab<InfoHash, Swarm>,
    peers: usize,
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

    fn cutoff(&self, now: Instant) -> Cutoff {
        // `None` early in the monotonic clock's life (shortly after boot): nothing can be
        // that old yet.
        now.checked_sub(self.peer_timeout)
    }

    /// Record an announce and answer it with a random sample of the other peers.
    pub fn announce(&mut self, a: &Announce, now: Instant) -> Result<AnnounceReply, RegistryError> {
        let cutoff = self.cutoff(now);
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
            if let Some(si) = self.swarms.position(&a.info_hash) {
                let swarm = &mut self.swarms.items[si].1;
                if swarm.remove(&key) {
                    self.peers -= 1;
                }
                let c = swarm.counts();
                (reply.complete, reply.incomplete) = (c.complete, c.incomplete);
                if swarm.len() == 0 {
                    self.swarms.remove_at(si);
                }
            }
            return Ok(reply);
        }

        let si = match self.swarms.position(&a.info_hash) {
            Some(si) => si,
            None => {
                if self.swarms.len() >= self.limits.max_swarms {
                    return Err(RegistryError::TooManySwarms);
                }
                self.swarms.insert_new(a.info_hash, Swarm::new());
                self.swarms.len() - 1
            }
        };
        let swarm = &mut self.swarms.items[si].1;
        let (_, removed) = swarm.sweep(cutoff, self.limits.sweep_per_announce);
        self.peers -= removed;

        let seed = a.left == 0;
        match swarm.table(&a.addr).get_mut(&key) {
            Some(p) => {
                p.last_seen = now;
                let was_seed = std::mem::replace(&mut p.seed, seed);
                swarm.seeders = swarm.seeders - u32::from(was_seed) + u32::from(seed);
                if a.event == Event::Completed && !was_seed {
                    swarm.downloaded = swarm.downloaded.saturating_add(1);
                }
            }
            None => {
                let room = swarm.len() < self.limits.max_peers_per_swarm
                    && self.peers < self.limits.max_peers;
                if room {
                    swarm.table(&a.addr).insert_new(
                        key,
                        Peer {
                            seed,
                            last_seen: now,
                        },
                    );
                    swarm.seeders += u32::from(seed);
                    self.peers += 1;
                    if a.event == Event::Completed {
                        swarm.downloaded = swarm.downloaded.saturating_add(1);
                    }
                }
            }
        }

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
            sample(
                &mut self.rng,
                other,
                &key,
                cutoff,
                want - mine.len(),
                &mut theirs,
            );
        }
        if a.addr.is_ipv4() {
            (reply.peers, reply.peers6) = (mine, theirs);
        } else {
            (reply.peers6, reply.peers) = (mine, theirs);
        }
        // A swarm created for a peer that could not be stored must not linger empty.
        if self.swarms.items[si].1.len() == 0 {
            self.swarms.remove_at(si);
        }
        Ok(reply)
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
            let swarm = &mut self.swarms.items[self.cursor].1;
            let n = swarm.len();
            let (examined, removed) = swarm.sweep(cutoff, left.min(n.max(1)));
            left -= examined.max(1);
            removed_total += removed;
            self.peers -= removed;
            if swarm.len() == 0 {
                self.swarms.remove_at(self.cursor);
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

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;

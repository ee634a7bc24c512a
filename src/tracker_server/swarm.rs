//! One torrent's peers and counters, as the registry stores them.
//!
//! Invariants: `seeders` is the number of stored peers with `seed`; `foreign` is the number of
//! stored peers whose [`Source`] is not `creator`; both are maintained on every insert,
//! update and removal, so counts are exact without a scan. The registry keeps the
//! per-source and global counts; every removal here hands back the removed key so it can.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;

use super::quota::Source;
use super::registry::ScrapeCounts;
use super::slab::Slab;
use crate::types::PeerId;

/// Peers looked at to choose whom a full swarm evicts (256: enough that a source holding a
/// few percent of the swarm shows up in the sample; cheap next to the announce itself).
pub(crate) const VICTIM_SCAN: usize = 256;

/// A stored peer is keyed by (peer id, address): the same id from another address is
/// another peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeerKey {
    pub(crate) peer_id: PeerId,
    pub(crate) addr: SocketAddr,
}

impl PeerKey {
    pub(crate) fn source(&self) -> Source {
        Source::of(self.addr.ip())
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub(crate) seed: bool,
    pub(crate) last_seen: Instant,
    /// Registry-wide insertion number: tells a live peer from a stale queue entry.
    pub(crate) seq: u64,
    /// Stored as a leecher at some point: only such a peer's `completed` counts.
    pub(crate) leeched: bool,
    /// Its `completed` was counted in `downloaded` (at most once per stored peer).
    pub(crate) counted: bool,
}

/// Peers last seen before this instant are expired (`None`: none are).
pub(crate) type Cutoff = Option<Instant>;

impl Peer {
    pub(crate) fn expired(&self, cutoff: Cutoff) -> bool {
        cutoff.is_some_and(|c| self.last_seen < c)
    }
}

#[derive(Debug)]
pub(crate) struct Swarm {
    pub(crate) v4: Slab<PeerKey, Peer>,
    pub(crate) v6: Slab<PeerKey, Peer>,
    pub(crate) seeders: u32,
    pub(crate) downloaded: u32,
    /// Who created it (charged against that source's swarm quota).
    pub(crate) creator: Source,
    /// Stored peers of other sources: while non-zero, the creator's quota cannot evict it.
    pub(crate) foreign: u32,
    /// Registry-wide creation number: tells a live swarm from a stale queue entry.
    pub(crate) seq: u64,
    /// Sweep position over `v4` then `v6` (index into their concatenation).
    cursor: usize,
}

impl Swarm {
    pub(crate) fn new(creator: Source, seq: u64) -> Self {
        Swarm {
            v4: Slab::new(),
            v6: Slab::new(),
            seeders: 0,
            downloaded: 0,
            creator,
            foreign: 0,
            seq,
            cursor: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(crate) fn table(&mut self, addr: &SocketAddr) -> &mut Slab<PeerKey, Peer> {
        if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    pub(crate) fn get(&self, key: &PeerKey) -> Option<&Peer> {
        if key.addr.is_ipv4() {
            self.v4.get(key)
        } else {
            self.v6.get(key)
        }
    }

    pub(crate) fn counts(&self) -> ScrapeCounts {
        let total = self.len() as u32;
        ScrapeCounts {
            complete: self.seeders,
            downloaded: self.downloaded,
            incomplete: total - self.seeders,
        }
    }

    pub(crate) fn insert(&mut self, key: PeerKey, peer: Peer) {
        self.seeders += u32::from(peer.seed);
        self.foreign += u32::from(key.source() != self.creator);
        self.table(&key.addr).insert_new(key, peer);
    }

    fn removed(&mut self, key: &PeerKey, p: &Peer) {
        self.seeders -= u32::from(p.seed);
        self.foreign -= u32::from(key.source() != self.creator);
    }

    pub(crate) fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let p = self.table(&key.addr).remove(key)?;
        self.removed(key, &p);
        Some(p)
    }

    /// Examine up to `budget` peers at the cursor; remove those last seen before `cutoff`,
    /// pushing their keys to `removed`. Returns the peers examined.
    pub(crate) fn sweep(
        &mut self,
        cutoff: Cutoff,
        budget: usize,
        removed: &mut Vec<PeerKey>,
    ) -> usize {
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
                let (k, p) = table.remove_at(i);
                self.removed(&k, &p);
                removed.push(k);
            } else {
                self.cursor += 1;
            }
        }
        examined
    }

    /// The peer to evict from this full swarm so that `newcomer` can be stored: the oldest
    /// peer of the source holding most peers here, unless `newcomer` holds at least as many,
    /// in which case its own oldest (a source at its share replaces its own). Only run when
    /// the swarm is full; looks at every peer of a swarm of up to [`VICTIM_SCAN`] peers and
    /// at that many random ones of a larger swarm, so an announce into a full swarm costs a
    /// bounded amount of work (the heaviest source dominates any large enough sample).
    pub(crate) fn victim(&self, newcomer: Source, rng: &mut StdRng) -> Option<PeerKey> {
        let all = || self.v4.items.iter().chain(&self.v6.items);
        let n = self.len();
        let picked: Vec<&(PeerKey, Peer)> = if n <= VICTIM_SCAN {
            all().collect()
        } else {
            let n4 = self.v4.len();
            rand::seq::index::sample(rng, n, VICTIM_SCAN)
                .into_iter()
                .map(|i| {
                    if i < n4 {
                        &self.v4.items[i]
                    } else {
                        &self.v6.items[i - n4]
                    }
                })
                .collect()
        };
        // Per source: (peers seen, oldest seq, its key).
        let mut by: HashMap<Source, (usize, u64, PeerKey)> = HashMap::new();
        for (k, p) in picked {
            let e = by.entry(k.source()).or_insert((0, p.seq, *k));
            e.0 += 1;
            if p.seq < e.1 {
                (e.1, e.2) = (p.seq, *k);
            }
        }
        let own = by.get(&newcomer).map_or(0, |e| e.0);
        // Heaviest; among equals the one with the oldest peer (first come, first replaced).
        let (_, &(n, _, key)) = by
            .iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))?;
        if n > own {
            Some(key)
        } else {
            by.get(&newcomer).map(|e| e.2)
        }
    }
}

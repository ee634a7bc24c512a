//! Who makes room when a table is full: the quota and eviction policy of the registry.
//!
//! The rule, for peers and for swarms alike: a source at its own quota replaces its own
//! oldest entry; a full table takes the oldest entry of the source holding most (the
//! newcomer's own if it holds as many). Swarms are only evicted while they hold no peer of a
//! source other than their creator, so a torrent other people use is never dropped to make
//! room. Every search is bounded ([`SWARM_SEARCH`], the swarm's victim sample), so a full
//! table costs a bounded amount of work per announce.

use super::*;

/// Entries of one source's swarm queue examined in one search for an evictable swarm (so an
/// announce costs bounded work even when a source's swarms are all shared).
const SWARM_SEARCH: usize = 1024;

impl Registry {
    /// Make room for one more swarm created by `src`: a source at its quota replaces its own
    /// oldest unshared swarm; a full table loses the oldest unshared swarm of the source that
    /// created most (or `src`'s own if that is `src`).
    pub(super) fn make_swarm_room(&mut self, src: Source) -> Result<(), RegistryError> {
        let l = &self.limits;
        if l.max_swarms == 0 || l.max_swarms_per_source == 0 {
            return Err(RegistryError::TooManySwarms);
        }
        // Each round evicts one swarm; two rounds meet both caps.
        for _ in 0..3 {
            let own = self.sources.swarms(src);
            if own >= self.limits.max_swarms_per_source {
                if !self.evict_swarm_of(src) {
                    return Err(RegistryError::SourceSwarmQuota);
                }
            } else if self.swarms.len() >= self.limits.max_swarms {
                let victim = match self.sources.heaviest_by_swarms() {
                    Some((h, n)) if h != src && n > own => h,
                    _ => src,
                };
                if !self.evict_swarm_of(victim) && (victim == src || !self.evict_swarm_of(src)) {
                    return Err(RegistryError::TooManySwarms);
                }
            } else {
                return Ok(());
            }
        }
        Err(RegistryError::TooManySwarms)
    }

    /// Remove the oldest swarm created by `s` that holds no peers of other sources.
    fn evict_swarm_of(&mut self, s: Source) -> bool {
        let budget = self.sources.swarm_queue_len(s).min(SWARM_SEARCH);
        for _ in 0..budget {
            let Some((ih, seq)) = self.sources.pop_swarm(s) else {
                return false;
            };
            let Some(si) = self.swarms.position(&ih) else {
                continue; // stale
            };
            let w = &self.swarms.items[si].1;
            if w.seq != seq {
                continue; // stale: the info-hash was removed and created again
            }
            if w.foreign == 0 {
                self.remove_swarm_at(si);
                return true;
            }
            self.sources.requeue_swarm(s, (ih, seq));
        }
        false
    }

    /// Make room for one more peer of `src` in swarm `ih` (which stays, even if emptied).
    pub(super) fn make_peer_room(
        &mut self,
        ih: &InfoHash,
        src: Source,
    ) -> Result<(), RegistryError> {
        let l = &self.limits;
        if l.max_peers == 0 || l.max_peers_per_swarm == 0 || l.max_peers_per_source == 0 {
            return Err(RegistryError::NotStored);
        }
        // Each round evicts one peer; three rounds meet all three caps.
        for _ in 0..4 {
            let swarm = self.swarms.get(ih).ok_or(RegistryError::NotStored)?;
            let own = self.sources.peers(src);
            let evicted = if swarm.len() >= self.limits.max_peers_per_swarm {
                match swarm.victim(src, &mut self.rng) {
                    Some(k) => self.remove_peer(ih, &k, Some(ih)),
                    None => false,
                }
            } else if own >= self.limits.max_peers_per_source {
                self.evict_oldest_peer_of(src, ih)
            } else if self.peers >= self.limits.max_peers {
                let victim = match self.sources.heaviest_by_peers() {
                    Some((h, n)) if h != src && n > own => h,
                    _ => src,
                };
                self.evict_oldest_peer_of(victim, ih)
            } else {
                return Ok(());
            };
            if !evicted {
                return Err(RegistryError::NotStored);
            }
        }
        Err(RegistryError::NotStored)
    }

    /// Remove the oldest stored peer of `s` (never removing swarm `keep`, even if emptied).
    fn evict_oldest_peer_of(&mut self, s: Source, keep: &InfoHash) -> bool {
        // Stale entries are popped once each: amortised O(1) per stored peer.
        while let Some(q) = self.sources.pop_peer(s) {
            if peer_live(&self.swarms, &q) {
                let ((ih, key), _) = q;
                return self.remove_peer(&ih, &key, Some(keep));
            }
        }
        false
    }
}

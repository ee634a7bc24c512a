//! Connection slots that serve the swarm: who gets one when they run out, and peer
//! turnover.
//!
//! A torrent has `max_peers` slots, of which inbound connections may hold all but
//! `outbound_reserve` (so we can always dial), and one IP at most `max_peers_per_ip`.
//! Every peer carries `last_useful`: when it last sent us a block, took one from us, was
//! given an upload turn (unless it wasted its last one), offered us its pieces (unchoked us
//! while we wanted them), or connected. When slots run out:
//!
//! - **A newcomer** (inbound, or a dial that completed) takes the slot of the *least useful*
//!   peer, if there is one that has been useless for at least `eviction_grace`; otherwise
//!   it is refused. Least useful first: a peer with which neither side wants anything, then
//!   the one useless for longest.
//! - **Peer turnover**: a downloading torrent whose slots are full while the known-peer list
//!   has addresses to try drops up to `turnover_count` useless peers every
//!   `turnover_interval`, so peers that give it nothing cannot keep it from meeting ones
//!   that might (libtorrent's peer turnover is the model).
//!
//! A peer waiting for its first upload turn from us (interested, choked, never unchoked,
//! we have something it lacks, and not silent: it sent a message other than a keep-alive
//! within the grace, as a leecher getting pieces elsewhere sends Haves) is protected: it
//! is useless only because we have not served it yet. After a turn it is judged like
//! everyone else, and a turn it did not use ages it from the moment it was given.

use std::time::{Duration, Instant};

use super::{Engine, PeerKey};

/// What the eviction policy looks at for one peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotView {
    pub key: PeerKey,
    pub connected_at: Instant,
    pub last_useful: Instant,
    /// Neither side is interested in the other.
    pub neither_wants: bool,
    /// Waiting for its first upload turn from us (protected).
    pub waiting_first_turn: bool,
}

/// The peer to evict, if any has been useless for at least `grace` (and connected that
/// long): a peer with which neither side wants anything first, then the one useless for
/// longest; the key breaks ties, so the choice is deterministic.
pub(super) fn least_useful(
    views: impl IntoIterator<Item = SlotView>,
    now: Instant,
    grace: Duration,
) -> Option<PeerKey> {
    views
        .into_iter()
        .filter(|v| {
            !v.waiting_first_turn
                && now.saturating_duration_since(v.last_useful) >= grace
                && now.saturating_duration_since(v.connected_at) >= grace
        })
        .min_by_key(|v| (!v.neither_wants, v.last_useful, v.key))
        .map(|v| v.key)
}

impl Engine {
    fn slot_views(&self, now: Instant, inbound_only: bool) -> Vec<SlotView> {
        let have = self.picker.have();
        self.peers
            .iter()
            .filter(|(_, p)| !(inbound_only && p.outbound))
            .map(|(key, p)| SlotView {
                key: *key,
                connected_at: p.connected_at,
                last_useful: p.last_useful,
                neither_wants: !p.choke.peer_interested && !p.choke.am_interested,
                waiting_first_turn: p.choke.peer_interested
                    && p.choke.am_choking
                    && now.saturating_duration_since(p.last_message) < self.cfg.eviction_grace
                    && p.serve.unchoked_at.is_none()
                    && !p.seed
                    && have.has_any_missing_from(&p.has),
            })
            .collect()
    }

    /// Makes room for a newcomer, evicting the least useful peer if the slots it may use
    /// are full. False if they are full of peers still useful (the newcomer is refused).
    pub(super) fn make_slot(&mut self, now: Instant, outbound: bool) -> bool {
        let inbound = self.peers.values().filter(|p| !p.outbound).count();
        let inbound_cap = self.cfg.max_peers.saturating_sub(self.cfg.outbound_reserve);
        let inbound_full = !outbound && inbound >= inbound_cap;
        if !inbound_full && self.peers.len() < self.cfg.max_peers {
            return true;
        }
        let views = self.slot_views(now, inbound_full);
        match least_useful(views, now, self.cfg.eviction_grace) {
            Some(victim) => {
                self.evict(now, victim, "evicted for a newcomer");
                true
            }
            None => false,
        }
    }

    /// Drops a useless peer to free its slot; an address we dialled ranks behind
    /// untried ones from now on.
    fn evict(&mut self, now: Instant, key: PeerKey, reason: &'static str) {
        if let Some(p) = self.peers.get(&key) {
            tracing::debug!(peer = %p.addr, reason, "evicting peer");
        }
        self.disconnect(key, reason);
        if let Some(p) = self.remove_peer(now, key) {
            if p.outbound {
                self.list.failed(now, &p.addr);
            }
            self.tally.evicted += 1;
            if !p.choke.am_choking {
                self.fill_upload_slots(now);
            }
        }
    }

    /// Once per `turnover_interval`: a downloading torrent with every slot taken and
    /// addresses left to try drops up to `turnover_count` useless peers, then dials.
    pub(super) fn turnover(&mut self, now: Instant) {
        if now < self.clock.last_turnover + self.cfg.turnover_interval {
            return;
        }
        self.clock.last_turnover = now;
        let complete = self.is_complete();
        if complete
            || self.peers.len() + self.list.connecting() < self.cfg.max_peers
            || !self.list.has_candidates(now, complete)
        {
            return;
        }
        for _ in 0..self.cfg.turnover_count {
            let views = self.slot_views(now, false);
            match least_useful(views, now, self.cfg.eviction_grace) {
                Some(victim) => self.evict(now, victim, "peer turnover"),
                None => break,
            }
        }
        self.dial(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(key: PeerKey, t0: Instant, useful_at: u64) -> SlotView {
        SlotView {
            key,
            connected_at: t0,
            last_useful: t0 + Duration::from_secs(useful_at),
            neither_wants: false,
            waiting_first_turn: false,
        }
    }

    #[test]
    fn the_peer_useless_longest_goes_first_and_the_grace_holds() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        let views = [view(1, t0, 50), view(2, t0, 10), view(3, t0, 20)];
        let now = t0 + Duration::from_secs(45);
        assert_eq!(least_useful(views, now, grace), Some(2));
        // Within the grace, nobody.
        let now = t0 + Duration::from_secs(39);
        assert_eq!(least_useful([views[1], views[0]], now, grace), None);
        // A new connection is never evicted inside its grace, however idle.
        let mut young = view(4, t0 + Duration::from_secs(100), 0);
        young.last_useful = t0;
        assert_eq!(
            least_useful([young], t0 + Duration::from_secs(110), grace),
            None
        );
    }

    #[test]
    fn mutual_disinterest_goes_before_longer_idleness() {
        let t0 = Instant::now();
        let mut a = view(1, t0, 0);
        let mut b = view(2, t0, 5);
        b.neither_wants = true;
        let now = t0 + Duration::from_secs(60);
        assert_eq!(least_useful([a, b], now, Duration::from_secs(30)), Some(2));
        a.waiting_first_turn = true;
        b.waiting_first_turn = true;
        assert_eq!(least_useful([a, b], now, Duration::from_secs(30)), None);
    }
}

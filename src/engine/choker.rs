//! Who we upload to: a pure function from the peers' state to the set to unchoke.
//!
//! This is the seam for the full choker (tit-for-tat, optimistic unchoke, snubbing,
//! seeding rotation). The policy here is deliberately simple: a fixed number of slots go
//! to interested peers, ranked by what they give us while leeching (by how fast we send to
//! them while seeding); a slot that frees up is filled at once rather than at the next
//! rechoke, so a newcomer is served without waiting.

use std::time::Instant;

use super::PeerKey;

/// What the choker may look at for one peer.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: PeerKey,
    pub interested: bool,
    pub unchoked: bool,
    /// Bytes/s this peer sends us.
    pub down_rate: f64,
    /// Bytes/s we send this peer.
    pub up_rate: f64,
    pub connected_at: Instant,
}

/// Upload-slot policy.
#[derive(Debug, Clone)]
pub struct Choker {
    slots: usize,
}

impl Choker {
    pub fn new(slots: usize) -> Self {
        Choker { slots }
    }

    /// The full re-ranking (every rechoke interval): returns the peers that should be
    /// unchoked; everyone else is choked.
    pub fn rechoke(&self, cands: &[Candidate], seeding: bool) -> Vec<PeerKey> {
        let mut interested: Vec<&Candidate> = cands.iter().filter(|c| c.interested).collect();
        let rate = |c: &Candidate| if seeding { c.up_rate } else { c.down_rate };
        // Fastest first; among equals, the longest-connected keeps its slot (stable).
        interested.sort_by(|a, b| {
            rate(b)
                .total_cmp(&rate(a))
                .then(b.unchoked.cmp(&a.unchoked))
                .then(a.connected_at.cmp(&b.connected_at))
                .then(a.key.cmp(&b.key))
        });
        interested
            .into_iter()
            .take(self.slots)
            .map(|c| c.key)
            .collect()
    }

    /// Between rechokes: interested peers to unchoke into free slots, oldest first.
    pub fn fill_free_slots(&self, cands: &[Candidate]) -> Vec<PeerKey> {
        let used = cands.iter().filter(|c| c.unchoked && c.interested).count();
        let mut waiting: Vec<&Candidate> = cands
            .iter()
            .filter(|c| c.interested && !c.unchoked)
            .collect();
        waiting.sort_by_key(|c| (c.connected_at, c.key));
        waiting
            .into_iter()
            .take(self.slots.saturating_sub(used))
            .map(|c| c.key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cand(key: PeerKey, interested: bool, unchoked: bool, down: f64, t0: Instant) -> Candidate {
        Candidate {
            key,
            interested,
            unchoked,
            down_rate: down,
            up_rate: 0.0,
            connected_at: t0 + Duration::from_secs(key),
        }
    }

    #[test]
    fn rechoke_picks_fastest_interested_within_slots() {
        let t0 = Instant::now();
        let c = Choker::new(2);
        let cands = vec![
            cand(1, true, false, 10.0, t0),
            cand(2, false, true, 99.0, t0),
            cand(3, true, true, 50.0, t0),
            cand(4, true, false, 20.0, t0),
        ];
        assert_eq!(c.rechoke(&cands, false), vec![3, 4]);
    }

    #[test]
    fn free_slots_go_to_oldest_waiting() {
        let t0 = Instant::now();
        let c = Choker::new(2);
        let cands = vec![
            cand(5, true, false, 0.0, t0),
            cand(1, true, true, 0.0, t0),
            cand(3, true, false, 0.0, t0),
        ];
        assert_eq!(c.fill_free_slots(&cands), vec![3]);
        let full = vec![cand(1, true, true, 0.0, t0), cand(2, true, true, 0.0, t0)];
        assert!(c.fill_free_slots(&full).is_empty());
    }
}

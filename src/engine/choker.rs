//! Who we upload to: pure decisions from the peers' state, the time and a seeded RNG.
//!
//! - **Regular slots** (`slots`): while leeching, the interested peers that send to us
//!   fastest (tit-for-tat, BEP 3). A peer that has us unchoked, has something we want, and
//!   sent no block for `snub_time` is *snubbed* and gets no regular slot. While seeding
//!   (nothing to trade) the slots go round-robin: a peer keeps its slot for one *turn*, until
//!   it has received `seed_quota` bytes or held it for `seed_turn`, then peers that waited
//!   longest come first; among peers in the middle of a turn the ones we send to fastest
//!   rank first. A turn in which the peer took nothing for `idle_turn` is over too, so a
//!   peer that says Interested and never asks cannot sit on a slot. So many leechers get pieces to trade and no fast one monopolises the seed.
//! - **One optimistic slot** on top, kept for `optimistic_rechokes` rechokes and then
//!   rotated: a weighted random pick among interested peers without a regular slot, peers
//!   connected for less than `newcomer_age` weighing `newcomer_weight` times more (as
//!   mainline BitTorrent did), so newcomers get their first pieces. If the optimistic peer
//!   earns a regular slot, another peer becomes optimistic.
//! - **Between rechokes** a slot that frees up is filled at once (`fill_free_slots`), so an
//!   interested newcomer is served without waiting up to a rechoke interval.
//!
//! Invariant: at most `slots + 1` interested peers are unchoked at once.

use std::time::{Duration, Instant};

use rand::Rng;

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
    /// When the current unchoke began (unchoked) or the last one did (choked); `None`:
    /// never unchoked.
    pub unchoked_at: Option<Instant>,
    /// Payload bytes sent to this peer since its current unchoke began.
    pub sent_this_turn: u64,
    /// It has us unchoked, has pieces we want, and sent no block for the snub time.
    pub snubbed: bool,
    /// It sent nothing but keep-alives for a while (see `slots`): it waits behind peers
    /// that show signs of life.
    pub silent: bool,
}

/// The choker's numbers (see `TorrentConfig` for where each comes from).
#[derive(Debug, Clone)]
pub struct ChokerConfig {
    /// Regular upload slots (the optimistic slot comes on top).
    pub slots: usize,
    /// Rechokes an optimistic unchoke lasts before it rotates.
    pub optimistic_rechokes: u32,
    /// Peers connected for less than this are newcomers...
    pub newcomer_age: Duration,
    /// ...and are this many times likelier to be picked as optimistic.
    pub newcomer_weight: u32,
    /// Seeding: bytes a peer may receive in one turn of its slot.
    pub seed_quota: u64,
    /// Seeding: longest turn of a slot, however little the peer took.
    pub seed_turn: Duration,
    /// Seeding: a turn in which the peer took nothing for this long is over.
    pub idle_turn: Duration,
}

/// Upload-slot policy and the little state it keeps (the optimistic peer).
#[derive(Debug, Clone)]
pub struct Choker {
    cfg: ChokerConfig,
    optimistic: Option<PeerKey>,
    /// Rechokes since `optimistic` was picked.
    optimistic_age: u32,
}

impl Choker {
    pub fn new(cfg: ChokerConfig) -> Self {
        Choker {
            cfg,
            optimistic: None,
            optimistic_age: 0,
        }
    }

    /// The current optimistic unchoke.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// The full re-ranking (every rechoke interval): the peers that should be unchoked
    /// (regular slots first, the optimistic one last); everyone else is choked.
    pub fn rechoke(
        &mut self,
        now: Instant,
        cands: &[Candidate],
        seeding: bool,
        rng: &mut impl Rng,
    ) -> Vec<PeerKey> {
        let mut unchoke = if seeding {
            self.rank_seeding(now, cands)
        } else {
            self.rank_leeching(cands)
        };
        unchoke.truncate(self.cfg.slots);
        self.optimistic_age += 1;
        let keep = self.optimistic.filter(|k| {
            self.optimistic_age < self.cfg.optimistic_rechokes
                && !unchoke.contains(k)
                && cands.iter().any(|c| c.key == *k && c.interested)
        });
        let optimistic = match keep {
            Some(k) => Some(k),
            None => {
                let outgoing = self.optimistic;
                self.pick_optimistic(now, cands, &unchoke, outgoing, rng)
            }
        };
        unchoke.extend(optimistic);
        unchoke
    }

    /// Between rechokes: interested peers to unchoke into free slots (regular ones first,
    /// then the optimistic slot if it is empty).
    pub fn fill_free_slots(
        &mut self,
        now: Instant,
        cands: &[Candidate],
        seeding: bool,
        rng: &mut impl Rng,
    ) -> Vec<PeerKey> {
        let opt_valid = self.optimistic.is_some_and(|k| {
            cands
                .iter()
                .any(|c| c.key == k && c.interested && c.unchoked)
        });
        if !opt_valid {
            self.optimistic = None;
        }
        let used = cands
            .iter()
            .filter(|c| c.unchoked && c.interested && Some(c.key) != self.optimistic)
            .count();
        let mut waiting: Vec<&Candidate> = cands
            .iter()
            .filter(|c| c.interested && !c.unchoked && (seeding || !c.snubbed))
            .collect();
        if seeding {
            waiting.sort_by(|a, b| waited_longest(a, b));
        } else {
            waiting.sort_by(|a, b| faster_to_us(a, b));
        }
        let mut unchoke: Vec<PeerKey> = waiting
            .into_iter()
            .take(self.cfg.slots.saturating_sub(used))
            .map(|c| c.key)
            .collect();
        if self.optimistic.is_none() {
            let already: Vec<PeerKey> = cands
                .iter()
                .filter(|c| c.unchoked)
                .map(|c| c.key)
                .chain(unchoke.iter().copied())
                .collect();
            if let Some(k) = self.pick_optimistic(now, cands, &already, None, rng) {
                unchoke.push(k);
            }
        }
        unchoke
    }

    /// Leeching: interested, unsnubbed peers, fastest to us first; on a tie the one that
    /// holds a slot keeps it, then the longest connected.
    fn rank_leeching(&self, cands: &[Candidate]) -> Vec<PeerKey> {
        let mut v: Vec<&Candidate> = cands
            .iter()
            .filter(|c| c.interested && !c.snubbed)
            .collect();
        v.sort_by(|a, b| faster_to_us(a, b));
        v.into_iter().map(|c| c.key).collect()
    }

    /// Seeding: peers in the middle of their turn (fastest first), then those waiting
    /// (longest wait first), then those whose turn is over (fastest first).
    fn rank_seeding(&self, now: Instant, cands: &[Candidate]) -> Vec<PeerKey> {
        let held_for = |c: &Candidate, d: Duration| {
            c.unchoked_at
                .is_some_and(|t| now.saturating_duration_since(t) >= d)
        };
        let turn_over = |c: &Candidate| {
            c.sent_this_turn >= self.cfg.seed_quota
                || held_for(c, self.cfg.seed_turn)
                || (c.sent_this_turn == 0 && held_for(c, self.cfg.idle_turn))
        };
        let group = |c: &Candidate| match (c.unchoked, turn_over(c)) {
            (true, false) => 0,
            (false, _) => 1,
            (true, true) => 2,
        };
        let mut v: Vec<&Candidate> = cands.iter().filter(|c| c.interested).collect();
        v.sort_by(|a, b| {
            group(a).cmp(&group(b)).then_with(|| {
                if group(a) == 1 {
                    waited_longest(a, b)
                } else {
                    b.up_rate
                        .total_cmp(&a.up_rate)
                        .then(a.connected_at.cmp(&b.connected_at))
                        .then(a.key.cmp(&b.key))
                }
            })
        });
        v.into_iter().map(|c| c.key).collect()
    }

    /// A weighted random pick among interested peers not in `taken`, avoiding `outgoing`
    /// when anyone else qualifies. Sets the optimistic state.
    fn pick_optimistic(
        &mut self,
        now: Instant,
        cands: &[Candidate],
        taken: &[PeerKey],
        outgoing: Option<PeerKey>,
        rng: &mut impl Rng,
    ) -> Option<PeerKey> {
        let eligible = |c: &Candidate| c.interested && !taken.contains(&c.key);
        let weight = |c: &Candidate| {
            let newcomer = now.saturating_duration_since(c.connected_at) < self.cfg.newcomer_age;
            if newcomer {
                self.cfg.newcomer_weight.max(1)
            } else {
                1
            }
        };
        let mut pool: Vec<(PeerKey, u32)> = cands
            .iter()
            .filter(|c| eligible(c) && Some(c.key) != outgoing)
            .map(|c| (c.key, weight(c)))
            .collect();
        if pool.is_empty() {
            // Nobody else qualifies: the outgoing peer may stay.
            pool = cands
                .iter()
                .filter(|c| eligible(c) && Some(c.key) == outgoing)
                .map(|c| (c.key, 1))
                .collect();
        }
        let total: u32 = pool.iter().map(|(_, w)| *w).sum();
        self.optimistic_age = 0;
        self.optimistic = if total == 0 {
            None
        } else {
            let mut x = rng.gen_range(0..total);
            pool.iter()
                .find(|(_, w)| {
                    if x < *w {
                        true
                    } else {
                        x -= *w;
                        false
                    }
                })
                .map(|(k, _)| *k)
        };
        self.optimistic
    }
}

/// Fastest to us first; on a tie the unchoked one (keeps its slot), the longest connected.
fn faster_to_us(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.down_rate
        .total_cmp(&a.down_rate)
        .then(b.unchoked.cmp(&a.unchoked))
        .then(a.connected_at.cmp(&b.connected_at))
        .then(a.key.cmp(&b.key))
}

/// Never unchoked first, then the one whose last unchoke is oldest; among equals a peer
/// that shows signs of life before a silent one, then the longest connected.
fn waited_longest(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    a.unchoked_at
        .cmp(&b.unchoked_at)
        .then(a.silent.cmp(&b.silent))
        .then(a.connected_at.cmp(&b.connected_at))
        .then(a.key.cmp(&b.key))
}

#[cfg(test)]
mod tests;

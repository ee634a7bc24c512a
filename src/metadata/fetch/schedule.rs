//! Choosing what to fetch: which size (by a vote of responsive peers) and which piece goes
//! to which peer (spread over the best peers, or all from one in single-source mode).
//!
//! Invariant kept here: a request is only ever issued to a peer that
//! can ask (under its limit and not resting), so no peer exceeds
//! [`MAX_OUTSTANDING_PER_PEER`](super::MAX_OUTSTANDING_PER_PEER).

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Instant;

use super::{piece_count, Action, Fetcher, Mode, PeerKey};

impl Fetcher {
    /// Keep the current size while a responsive peer offers it; otherwise take the size
    /// most responsive peers offer (the first offered on a tie).
    pub(super) fn choose_size(&mut self) {
        let offered = |s: u32| self.peers.values().any(|p| p.size == s);
        if let Some(s) = self.size {
            if self.peers.values().any(|p| p.size == s && p.responsive()) {
                return;
            }
        }
        let mut winner = self.vote(true);
        if winner.is_none() && !self.size.is_some_and(offered) {
            winner = self.vote(false);
        }
        match winner {
            Some(w) if Some(w) != self.size => self.switch_size(w),
            _ => {}
        }
    }

    fn vote(&self, responsive_only: bool) -> Option<u32> {
        let mut tally: BTreeMap<u32, (usize, Reverse<u64>)> = BTreeMap::new();
        for p in self.peers.values() {
            if responsive_only && !p.responsive() {
                continue;
            }
            let t = tally.entry(p.size).or_insert((0, Reverse(p.seq)));
            t.0 += 1;
            t.1 = t.1.max(Reverse(p.seq));
        }
        tally.into_iter().max_by_key(|&(_, t)| t).map(|(s, _)| s)
    }

    fn switch_size(&mut self, size: u32) {
        // Free the old buffer before making the new one: never two at once.
        self.buf = Vec::new();
        self.buf = vec![0; size as usize];
        self.allocations += 1;
        self.size = Some(size);
        self.sources = vec![None; piece_count(size) as usize];
        self.received = 0;
        // Evidence and single-source mode were about another size's senders.
        self.evidence.clear();
        self.mode = Mode::Parallel;
    }

    pub(super) fn fill(&mut self, now: Instant) {
        let Some(size) = self.size else { return };
        match self.mode {
            Mode::Parallel => self.fill_parallel(now, size),
            Mode::Single(solo) => {
                let solo = solo.or_else(|| {
                    let best = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.size == size && p.can_ask(now))
                        .min_by_key(|(_, p)| (p.failures, p.seq))
                        .map(|(&k, _)| k);
                    self.mode = Mode::Single(best);
                    best
                });
                if let Some(solo) = solo {
                    self.fill_solo(now, solo);
                }
            }
        }
    }

    fn fill_parallel(&mut self, now: Instant, size: u32) {
        let mut in_flight = vec![false; piece_count(size) as usize];
        for p in self.peers.values() {
            for &(piece, _) in &p.outstanding {
                if let Some(f) = in_flight.get_mut(piece as usize) {
                    *f = true;
                }
            }
        }
        for piece in 0..piece_count(size) {
            if self.sources[piece as usize].is_some() || in_flight[piece as usize] {
                continue;
            }
            let best = self
                .peers
                .iter_mut()
                .filter(|(_, p)| p.size == size && p.can_ask(now))
                .min_by_key(|(_, p)| (p.failures, p.outstanding.len(), p.seq));
            let Some((&peer, p)) = best else { return };
            p.outstanding.push((piece, now));
            p.late.remove(&piece);
            self.actions.push_back(Action::Request { peer, piece });
        }
    }

    fn fill_solo(&mut self, now: Instant, solo: PeerKey) {
        let Some(p) = self.peers.get_mut(&solo) else {
            return;
        };
        for (piece, source) in self.sources.iter().enumerate() {
            let piece = piece as u32;
            if !p.can_ask(now) {
                return;
            }
            if source.is_none() && !p.outstanding.iter().any(|&(q, _)| q == piece) {
                p.outstanding.push((piece, now));
                p.late.remove(&piece);
                self.actions
                    .push_back(Action::Request { peer: solo, piece });
            }
        }
    }
}

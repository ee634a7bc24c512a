//! The request pipeline: keeping each unchoked peer's queue full, taking blocks in,
//! giving requests back on choke, reject, timeout, and reacting to verified/failed pieces.

use std::time::Instant;

use super::{Action, Engine, PeerKey};
use crate::types::{BlockRef, BLOCK_SIZE};
use crate::wire::Message;

/// Requests a peer may have in flight during endgame (libtorrent keeps duplicates to the
/// last few blocks too); 4 blocks is 64 KiB, a few round trips on any link.
const ENDGAME_QUEUE: usize = 4;

/// Fewest requests a peer's share ([`Engine::request_share`]) allows.
const MIN_SHARE: usize = 4;

impl Engine {
    /// Top up one peer's request queue to its current depth.
    pub(super) fn fill(&mut self, now: Instant, key: PeerKey) {
        let share = self.request_share(key);
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.choke.peer_choking || !p.choke.am_interested {
            return;
        }
        let mut want = p.req.depth.min(share).saturating_sub(p.req.in_flight.len());
        if self.picker.is_endgame() {
            // Every missing block is already requested: duplicates only trickle out, as
            // each peer's queue drains, so a deep queue does not double the tail.
            want = want.min(ENDGAME_QUEUE.saturating_sub(p.req.in_flight.len()));
        }
        if want == 0 {
            return;
        }
        // A peer that was idle starts its request clock now, not at its last block.
        let idle = p.req.in_flight.is_empty();
        if idle {
            p.req.last_block = now;
        }
        let mut buf = std::mem::take(&mut self.pick_buf);
        buf.clear();
        // Pieces re-downloaded from another single peer are hidden from this one.
        let masked;
        let has = if self
            .single_source
            .values()
            .any(|owner| owner.is_some_and(|o| o != key))
        {
            let mut h = p.has.clone();
            for (&piece, owner) in &self.single_source {
                if owner.is_some_and(|o| o != key) {
                    h.clear(piece);
                }
            }
            masked = h;
            &masked
        } else {
            &p.has
        };
        let in_flight = &p.req.in_flight;
        self.picker.pick(
            has,
            want,
            &mut self.rng,
            &|b| in_flight.contains_key(b),
            &mut buf,
        );
        if let (true, Some(first)) = (idle, buf.first()) {
            p.req.rtt_probe = Some((*first, now));
        }
        for b in &buf {
            p.req.in_flight.insert(*b, now);
            if let Some(owner @ None) = self.single_source.get_mut(&b.piece) {
                *owner = Some(key);
            }
        }
        for b in buf.drain(..) {
            self.actions.push_back(Action::Send {
                key,
                msg: Message::Request(b),
            });
        }
        self.pick_buf = buf;
    }

    /// Most requests `key` may have in flight while other peers serve us too: its share,
    /// by download rate, of the blocks the pieces in progress hold. Without it the peer
    /// that asks most often (the fastest) fills its deep queue with every free block and
    /// the others idle, so several equal seeds deliver no more than one would (see
    /// PERFORMANCE.md, "What was found, and changed", item 15). A floor of a quarter of an
    /// equal share (and [`MIN_SHARE`]) lets a new or slow peer show what it can do.
    /// Unlimited with one peer serving.
    fn request_share(&self, key: PeerKey) -> usize {
        let serving = || {
            self.peers
                .values()
                .filter(|p| !p.choke.peer_choking && p.choke.am_interested)
        };
        let n = serving().count();
        if n <= 1 {
            return usize::MAX;
        }
        let Some(me) = self.peers.get(&key) else {
            return 0;
        };
        let total: f64 = serving().map(|p| p.down.get()).sum();
        let floor = total / (4.0 * n as f64) + BLOCK_SIZE as f64;
        let blocks = self.picker.max_partials() * self.layout.max_blocks_per_piece() as usize;
        let share = blocks as f64 * (me.down.get() + floor) / (total + floor * n as f64);
        (share.ceil() as usize).max(MIN_SHARE)
    }

    /// Top up every peer (after blocks went back to the picker).
    pub(super) fn fill_all(&mut self, now: Instant) {
        if self.picker.is_complete() {
            return;
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill(now, key);
        }
    }

    /// A Piece message arrived. Returns whether the driver should hand the data to the
    /// store: only blocks we requested from this peer and still need.
    pub fn block_received(&mut self, now: Instant, key: PeerKey, block: BlockRef) -> bool {
        let len = block.len as u64;
        let Some(p) = self.peers.get_mut(&key) else {
            self.tally.wasted += len;
            return false;
        };
        if p.req.in_flight.remove(&block).is_none() {
            // Unrequested, or requested and given up on (choke, timeout): not ours to take.
            self.tally.wasted += len;
            return false;
        }
        p.on_block(&self.cfg, now);
        if let Some((probe, sent)) = p.req.rtt_probe {
            if probe == block {
                let sample = now.saturating_duration_since(sent);
                p.req.rtt = Some(p.req.rtt.map_or(sample, |r| r.min(sample)));
                p.req.rtt_probe = None;
            }
        }
        // The peer did send it (tit-for-tat counts it); our total counts only what we
        // needed.
        p.down.add(len);
        // Duplicates requested in endgame may still be out even when endgame has ended
        // since (a choke freed blocks): ask the picker, not the endgame flag.
        let duplicated = self.picker.outstanding_requests(&block) > 1;
        let wanted = self.picker.on_block_received(&block);
        if wanted {
            self.down.add(len);
            if duplicated {
                self.cancel_duplicates(key, &block);
            }
        } else {
            self.tally.wasted += len;
        }
        self.fill(now, key);
        wanted
    }

    /// Endgame: the block came from `from`; everyone else who has it requested gets a
    /// Cancel.
    fn cancel_duplicates(&mut self, from: PeerKey, block: &BlockRef) {
        let mut cancels = Vec::new();
        for (key, p) in self.peers.iter_mut() {
            if *key != from && p.req.in_flight.remove(block).is_some() {
                cancels.push(*key);
            }
        }
        for key in cancels {
            self.picker.on_request_dropped(block);
            self.send(key, Message::Cancel(*block));
        }
    }

    /// The peer choked us: every request to it is void (BEP 3); give them back.
    pub(super) fn peer_choked(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.choke.peer_choking = true;
        self.release_single_source(key);
        let p = self.peers.get_mut(&key).expect("checked above");
        let dropped = std::mem::take(&mut p.req.in_flight);
        for b in dropped.keys() {
            self.picker.on_request_dropped(b);
        }
        if !dropped.is_empty() {
            self.fill_all(now);
        }
    }

    /// BEP 6 Reject: that one request goes back to the picker for other peers.
    pub(super) fn peer_rejected(&mut self, now: Instant, key: PeerKey, block: BlockRef) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.req.in_flight.remove(&block).is_some() {
            self.picker.on_request_dropped(&block);
            let others: Vec<PeerKey> = self.peers.keys().copied().filter(|k| *k != key).collect();
            for other in others {
                self.fill(now, other);
            }
        }
    }

    /// A peer that sent nothing for `request_timeout` while we wait on it loses its
    /// requests to other peers and is marked snubbed (one request at a time until it
    /// delivers again).
    pub(super) fn expire_requests(&mut self, now: Instant) {
        let mut freed = false;
        let timeout = self.cfg.request_timeout;
        let mut cancels = Vec::new();
        for (key, p) in self.peers.iter_mut() {
            if p.req.in_flight.is_empty() || now.duration_since(p.req.last_block) < timeout {
                continue;
            }
            tracing::debug!(peer = %p.addr, requests = p.req.in_flight.len(), "requests timed out");
            p.req.snubbed = true;
            p.req.slow_start = false;
            p.req.depth = 1;
            p.req.last_block = now;
            for b in std::mem::take(&mut p.req.in_flight).into_keys() {
                self.picker.on_request_dropped(&b);
                cancels.push((*key, b));
                freed = true;
            }
        }
        for (key, b) in cancels {
            self.send(key, Message::Cancel(b));
        }
        if freed {
            self.fill_all(now);
        }
    }

    pub(super) fn piece_verified(&mut self, now: Instant, piece: u32) {
        if piece >= self.layout.num_pieces() || self.picker.we_have(piece) {
            return;
        }
        let needed = self.needs(piece);
        self.picker.on_piece_verified(piece);
        self.single_source.remove(&piece);
        let size = u64::from(self.layout.piece_size(piece));
        self.tally.verified_bytes += size;
        if needed {
            self.tally.wanted_verified += size;
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if p.has.get(piece) {
                if needed {
                    p.wanted = p.wanted.saturating_sub(1);
                    self.update_interest(now, key);
                }
            } else {
                self.send(key, Message::Have(piece));
            }
        }
        if self.picker.is_complete() && !self.complete_sent {
            self.on_complete(now);
        } else {
            // A verified piece leaves the set in progress: room for the next one. With
            // every block of the pieces in progress already in, nothing else would ask
            // for it before the next tick.
            self.fill_all(now);
        }
    }

    /// Every wanted piece is verified: say so (the driver ends a fetch that does not
    /// seed), and let seeds go, since they have nothing more for us.
    pub(super) fn on_complete(&mut self, now: Instant) {
        self.complete_sent = true;
        self.completed_at = Some(now);
        self.actions.push_back(Action::Complete);
        tracing::info!("download complete");
        // Seeds have nothing more for us and want nothing from us.
        let seeds: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.seed || p.has.is_full())
            .map(|(k, _)| *k)
            .collect();
        for key in seeds {
            self.drop_seed(now, key);
        }
        self.rechoke(now);
    }

    pub(super) fn piece_failed(&mut self, now: Instant, piece: u32, peers: &[PeerKey]) {
        if piece >= self.layout.num_pieces() || self.picker.we_have(piece) {
            return;
        }
        // Warned by the store, which knows the files.
        tracing::debug!(piece, peers = peers.len(), "piece failed its hash check");
        self.tally.failed_pieces += 1;
        self.tally.wasted += self.layout.piece_size(piece) as u64;
        self.picker.on_piece_failed(piece);
        // Requests still out for the piece are void: their data belongs to the failed
        // attempt and must not count towards the next one (nor blur who sent what).
        let mut cancels = Vec::new();
        for (key, p) in self.peers.iter_mut() {
            let stale: Vec<BlockRef> = p
                .req
                .in_flight
                .range(
                    BlockRef {
                        piece,
                        offset: 0,
                        len: 0,
                    }..,
                )
                .take_while(|(b, _)| b.piece == piece)
                .map(|(b, _)| *b)
                .collect();
            for b in stale {
                p.req.in_flight.remove(&b);
                cancels.push((*key, b));
            }
        }
        for (key, b) in cancels {
            self.send(key, Message::Cancel(b));
        }
        self.single_source.insert(piece, None);
        self.penalise(now, peers);
        self.fill_all(now);
    }

    /// `key` no longer serves us (choke, gone): the pieces it was to re-download alone are
    /// free for the next peer that picks them.
    pub(super) fn release_single_source(&mut self, key: PeerKey) {
        for owner in self.single_source.values_mut() {
            if *owner == Some(key) {
                *owner = None;
            }
        }
    }
}

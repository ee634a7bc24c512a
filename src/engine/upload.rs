//! Serving: interest from peers, the choker's decisions, and validating and queueing their
//! requests.
//!
//! Accepted requests wait in the peer's `upload_queue`; only a window of about one second
//! of data (`TorrentConfig::serve_window`) is handed to the connection's writer as `Serve`
//! actions, refilled as `Served` reports come back. The writer serves what it was handed,
//! in order, before any later message (a Choke included), so when we choke a peer:
//! requests already handed over are served (they go out before the Choke), and those
//! still queued here are dropped — with a Reject each for a fast-extension peer (BEP 6:
//! a choke no longer voids requests implicitly, every request gets a Piece or a Reject).
//! A Cancel removes a queued request (and is answered by a Reject for fast peers, as
//! libtorrent does); one already handed to the writer is served anyway.

use std::time::Instant;

use super::choker::Candidate;
use super::{Action, Engine, PeerKey};
use crate::types::{BlockRef, BLOCK_SIZE};
use crate::wire::Message;

impl Engine {
    pub(super) fn peer_interest(&mut self, now: Instant, key: PeerKey, interested: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.choke.peer_interested == interested {
            return;
        }
        p.choke.peer_interested = interested;
        if !interested && !p.choke.am_choking {
            self.set_choke(key, true);
        }
        self.fill_upload_slots(now);
    }

    fn candidates(&self, now: Instant) -> Vec<Candidate> {
        self.peers
            .iter()
            .map(|(key, p)| Candidate {
                key: *key,
                interested: p.choke.peer_interested,
                unchoked: !p.choke.am_choking,
                down_rate: p.down.get(),
                up_rate: p.up.get(),
                connected_at: p.connected_at,
                unchoked_at: p.serve.unchoked_at,
                sent_this_turn: p.serve.sent_this_turn,
                snubbed: p.choke.am_interested
                    && !p.choke.peer_choking
                    && now.saturating_duration_since(p.req.last_received) >= self.cfg.snub_time,
                silent: now.saturating_duration_since(p.last_message) >= self.cfg.eviction_grace,
            })
            .collect()
    }

    /// Unchoke waiting interested peers into free slots.
    pub(super) fn fill_upload_slots(&mut self, now: Instant) {
        let seeding = self.picker.is_complete();
        let cands = self.candidates(now);
        for key in self
            .choker
            .fill_free_slots(now, &cands, seeding, &mut self.rng)
        {
            self.set_choke_at(now, key, false);
        }
    }

    /// Seeding, once a tick: a peer unchoked for `idle_turn` that has asked for nothing
    /// loses its slot now, not at the next rechoke, and waiting peers take the slots.
    pub(super) fn end_idle_turns(&mut self, now: Instant) {
        if !self.picker.is_complete() {
            return;
        }
        let idle: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.choke.am_choking
                    && p.serve.sent_this_turn == 0
                    && p.serve.serving == 0
                    && p.serve.upload_queue.is_empty()
                    && p.serve
                        .unchoked_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.idle_turn)
            })
            .map(|(k, _)| *k)
            .collect();
        if idle.is_empty() {
            return;
        }
        for key in idle {
            self.set_choke(key, true);
        }
        self.fill_upload_slots(now);
    }

    /// Periodic re-ranking of the upload slots.
    pub(super) fn rechoke(&mut self, now: Instant) {
        let seeding = self.picker.is_complete();
        let cands = self.candidates(now);
        let unchoke = self.choker.rechoke(now, &cands, seeding, &mut self.rng);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.set_choke_at(now, key, !unchoke.contains(&key));
        }
    }

    fn set_choke_at(&mut self, now: Instant, key: PeerKey, choke: bool) {
        if let Some(p) = self.peers.get_mut(&key) {
            if p.choke.am_choking && !choke {
                // A first turn, or one after a turn it used, is a chance to be useful; a
                // turn after a wasted one is not (or squatters would stay fresh for ever).
                if p.serve.unchoked_at.is_none() || p.serve.sent_this_turn > 0 {
                    p.last_useful = now;
                }
                p.serve.unchoked_at = Some(now);
                p.serve.sent_this_turn = 0;
            }
        }
        self.set_choke(key, choke);
    }

    fn set_choke(&mut self, key: PeerKey, choke: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.choke.am_choking == choke {
            return;
        }
        p.choke.am_choking = choke;
        let dropped = if choke {
            std::mem::take(&mut p.serve.upload_queue)
        } else {
            Default::default()
        };
        let fast = p.fast;
        self.send(
            key,
            if choke {
                Message::Choke
            } else {
                Message::Unchoke
            },
        );
        if fast {
            for block in dropped {
                self.send(key, Message::Reject(block));
            }
        }
    }

    /// A Request: queue it if it is in range, we have the piece, the peer is unchoked and
    /// within its queue; otherwise Reject (BEP 6) or ignore (plain BEP 3).
    pub(super) fn peer_request(&mut self, now: Instant, key: PeerKey, block: BlockRef) {
        let servable = self.may_serve(key, block.piece);
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !self.layout.is_valid_request(&block) {
            // Wrong geometry is a protocol error: this peer is confused or hostile.
            self.drop_peer(now, key, "request outside the piece");
            return;
        }
        // Our count of pending uploads lags the wire (a block counts until its write is
        // reported), so an honest peer can briefly exceed the `reqq` we advertised: the
        // hard limit is twice that.
        let pending = p.serve.serving + p.serve.upload_queue.len();
        let queue_full = pending >= self.cfg.our_reqq.saturating_mul(2);
        if !p.choke.am_choking && !queue_full && servable {
            p.serve.upload_queue.push_back(block);
            p.serve.overflow = 0;
            self.release_uploads(key);
            return;
        }
        if queue_full {
            // Requests refused in a row while the queue stays full: a flood, not a race.
            p.serve.overflow += 1;
            if p.serve.overflow > self.cfg.our_reqq {
                self.drop_peer(now, key, "request flood");
                return;
            }
        }
        if p.fast {
            self.send(key, Message::Reject(block));
        }
    }

    /// A Cancel: a request still queued here is dropped (and rejected for fast peers);
    /// one already handed to the writer goes out anyway.
    pub(super) fn peer_cancel(&mut self, key: PeerKey, block: BlockRef) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(i) = p.serve.upload_queue.iter().position(|b| *b == block) {
            p.serve.upload_queue.remove(i);
            if p.fast {
                self.send(key, Message::Reject(block));
            }
        }
    }

    /// Hand queued requests to the writer up to about one second of this peer's rate.
    fn release_uploads(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let (lo, hi) = self.cfg.serve_window;
        let window = ((p.up.get() / BLOCK_SIZE as f64).ceil() as usize).clamp(lo, hi.max(lo));
        while p.serve.serving < window {
            let Some(block) = p.serve.upload_queue.pop_front() else {
                break;
            };
            p.serve.serving += 1;
            self.actions.push_back(Action::Serve { key, block });
        }
    }

    pub(super) fn served(&mut self, now: Instant, key: PeerKey, block: BlockRef) {
        self.up.add(block.len as u64);
        if let Some(p) = self.peers.get_mut(&key) {
            if p.up.total() == 0 {
                self.tally.peers_served += 1;
            }
            p.serve.serving = p.serve.serving.saturating_sub(1);
            p.last_useful = now;
            p.up.add(block.len as u64);
            p.serve.sent_this_turn += block.len as u64;
        }
        self.release_uploads(key);
        self.superseed_on_served(now, key, &block);
    }
}

//! Serving: interest from peers, the choker's decisions, and validating their requests.

use std::time::Instant;

use super::choker::Candidate;
use super::{Action, Engine, PeerKey};
use crate::types::BlockRef;
use crate::wire::Message;

impl Engine {
    pub(super) fn peer_interest(&mut self, now: Instant, key: PeerKey, interested: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.peer_interested == interested {
            return;
        }
        p.peer_interested = interested;
        if !interested && !p.am_choking {
            self.set_choke(key, true);
        }
        self.fill_upload_slots(now);
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.peers
            .iter()
            .map(|(key, p)| Candidate {
                key: *key,
                interested: p.peer_interested,
                unchoked: !p.am_choking,
                down_rate: p.down.get(),
                up_rate: p.up.get(),
                connected_at: p.connected_at,
            })
            .collect()
    }

    /// Unchoke waiting interested peers into free slots.
    pub(super) fn fill_upload_slots(&mut self, now: Instant) {
        for key in self.choker.fill_free_slots(&self.candidates()) {
            self.set_choke(key, false);
            if let Some(p) = self.peers.get_mut(&key) {
                p.unchoked_at = Some(now);
            }
        }
    }

    /// Periodic re-ranking of the upload slots.
    pub(super) fn rechoke(&mut self, now: Instant) {
        let seeding = self.picker.is_complete();
        let unchoke = self.choker.rechoke(&self.candidates(), seeding);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let want_unchoked = unchoke.contains(&key);
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if p.am_choking == want_unchoked {
                if want_unchoked {
                    p.unchoked_at = Some(now);
                }
                self.set_choke(key, !want_unchoked);
            }
        }
    }

    fn set_choke(&mut self, key: PeerKey, choke: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.am_choking == choke {
            return;
        }
        p.am_choking = choke;
        self.send(
            key,
            if choke {
                Message::Choke
            } else {
                Message::Unchoke
            },
        );
    }

    /// A Request: serve it if it is in range, we have the piece, the peer is unchoked and
    /// within its queue; otherwise Reject (BEP 6) or ignore (plain BEP 3).
    pub(super) fn peer_request(&mut self, now: Instant, key: PeerKey, block: BlockRef) {
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
        let queue_full = p.serving >= self.cfg.our_reqq.saturating_mul(2);
        if !p.am_choking && !queue_full && self.picker.we_have(block.piece) {
            p.serving += 1;
            p.overflow = 0;
            self.actions.push_back(Action::Serve { key, block });
            return;
        }
        if queue_full {
            // Requests refused in a row while the queue stays full: a flood, not a race.
            p.overflow += 1;
            if p.overflow > self.cfg.our_reqq {
                self.drop_peer(now, key, "request flood");
                return;
            }
        }
        if p.fast {
            self.send(key, Message::Reject(block));
        }
    }

    pub(super) fn served(&mut self, key: PeerKey, block: BlockRef) {
        self.up.add(block.len as u64);
        if let Some(p) = self.peers.get_mut(&key) {
            p.serving = p.serving.saturating_sub(1);
            p.up.add(block.len as u64);
        }
    }
}

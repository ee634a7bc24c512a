//! Super-seeding (BEP 16), for an initial seed: we hide what we have and offer each peer
//! one piece at a time (a `Have` for it), choosing pieces offered least and held by fewest.
//! A peer is offered its next piece only once the previous one has been seen at another
//! peer: it must pass what it got on before the seed spends more upload on it. The seed
//! then sends little more than one copy of the content, however many leechers there are.
//!
//! Two escapes keep a peer from waiting forever: when no other connected peer lacks the
//! piece (a lone leecher has nobody to pass it to), and after [`PATIENCE`] (the others
//! never took it from this peer).
//!
//! Requests are served only for pieces offered to that peer. Super-seeding is on when the
//! configuration asks for it and the engine started complete (`swarm seed --super-seed`).

use std::time::{Duration, Instant};

use rand::Rng;

use super::{Engine, PeerKey};
use crate::types::BlockRef;
use crate::wire::Message;

/// Pieces offered to one peer at once. BEP 16 offers one; libtorrent keeps two. We keep
/// one: the point of super-seeding is to upload little more than one copy, and with two
/// offers several leechers fetch the same pieces from the seed, which then uploads clearly
/// more for little or no gain in time. See PERFORMANCE.md, "What was found, and changed",
/// item 13.
pub(super) const OFFERS_PER_PEER: usize = 1;

/// How long a peer that has its offered piece waits for another peer to show it before
/// it is offered the next one anyway.
pub(super) const PATIENCE: Duration = Duration::from_secs(20);

/// One piece offered to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub piece: u32,
    /// Bytes of it we have sent this peer.
    pub served: u64,
    /// When the peer had the piece: it announced it, or we sent it all of it (a peer need
    /// not announce a piece to a peer it believes has it, and ours do not).
    pub had_at: Option<Instant>,
}

/// The seed's side of super-seeding: what has been offered so far.
#[derive(Debug)]
pub(super) struct SuperSeed {
    /// Times each piece has been offered, to anyone.
    offered: Vec<u32>,
    /// Pieces never offered yet, in random order; taken from the back.
    fresh: Vec<u32>,
}

impl SuperSeed {
    pub(super) fn new(num_pieces: u32, rng: &mut impl Rng) -> Self {
        let mut fresh: Vec<u32> = (0..num_pieces).collect();
        rand::seq::SliceRandom::shuffle(&mut fresh[..], rng);
        SuperSeed {
            offered: vec![0; num_pieces as usize],
            fresh,
        }
    }
}

impl Engine {
    pub(super) fn super_seeding(&self) -> bool {
        self.superseed.is_some()
    }

    /// Whether `key` may download `piece` from us: any piece normally; under super-seeding
    /// only a piece we offered it.
    pub(super) fn may_serve(&self, key: PeerKey, piece: u32) -> bool {
        if !self.picker.we_have(piece) {
            return false;
        }
        if !self.super_seeding() {
            return true;
        }
        self.peers
            .get(&key)
            .is_some_and(|p| p.offers.iter().any(|o| o.piece == piece))
    }

    /// A peer announced `piece`: its own offer of that piece is now held, and other
    /// peers' offers of it may have spread.
    pub(super) fn superseed_on_have(&mut self, now: Instant, piece: u32) {
        if !self.super_seeding() {
            return;
        }
        let holders: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.offers.iter().any(|o| o.piece == piece))
            .map(|(k, _)| *k)
            .collect();
        for k in holders {
            self.offer_pieces(now, k);
        }
    }

    /// We sent `key` a block: once all of an offered piece is sent, the peer has it.
    pub(super) fn superseed_on_served(&mut self, now: Instant, key: PeerKey, block: &BlockRef) {
        if !self.super_seeding() {
            return;
        }
        let size = self.layout.piece_size(block.piece) as u64;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(o) = p.offers.iter_mut().find(|o| o.piece == block.piece) else {
            return;
        };
        o.served += block.len as u64;
        if o.served >= size && o.had_at.is_none() {
            o.had_at = Some(now);
            // Only now can this offer have spread (per block would be upload hot-path work).
            self.offer_pieces(now, key);
        }
    }

    /// Re-examine every peer's offers (a peer left, or time passed).
    pub(super) fn superseed_all(&mut self, now: Instant) {
        if !self.super_seeding() {
            return;
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.offer_pieces(now, k);
        }
    }

    /// Retire `key`'s offers that have spread, then offer it pieces up to
    /// [`OFFERS_PER_PEER`].
    pub(super) fn offer_pieces(&mut self, now: Instant, key: PeerKey) {
        if !self.super_seeding() {
            return;
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        for o in p.offers.iter_mut() {
            if o.had_at.is_none() && p.has.get(o.piece) {
                o.had_at = Some(now);
            }
        }
        let p = &self.peers[&key];
        let spread: Vec<u32> = p
            .offers
            .iter()
            .filter(|o| {
                o.had_at
                    .is_some_and(|t| self.has_spread(key, o.piece, t, now))
            })
            .map(|o| o.piece)
            .collect();
        let p = self.peers.get_mut(&key).expect("checked above");
        p.offers.retain(|o| !spread.contains(&o.piece));
        while self.peers[&key].offers.len() < OFFERS_PER_PEER {
            let Some(piece) = self.next_offer(key) else {
                break;
            };
            let p = self.peers.get_mut(&key).expect("checked above");
            p.offers.push(Offer {
                piece,
                served: 0,
                had_at: None,
            });
            self.send(key, Message::Have(piece));
        }
    }

    /// `key` got `piece` at `had_at`: has it been seen elsewhere since, is there nobody
    /// left to pass it to, or has the peer waited long enough?
    fn has_spread(&self, key: PeerKey, piece: u32, had_at: Instant, now: Instant) -> bool {
        let elsewhere = self
            .peers
            .iter()
            .any(|(k, p)| *k != key && (p.seed || p.has.get(piece)));
        let someone_lacks = self
            .peers
            .iter()
            .any(|(k, p)| *k != key && !p.seed && !p.has.get(piece));
        elsewhere || !someone_lacks || now.saturating_duration_since(had_at) >= PATIENCE
    }

    /// The piece to offer `key` next, counted as offered: one never offered if any is
    /// left, else the one offered least and held by fewest; never one the peer has or was
    /// offered already.
    fn next_offer(&mut self, key: PeerKey) -> Option<u32> {
        let p = &self.peers[&key];
        let ss = self.superseed.as_mut()?;
        let taken = |piece: u32| p.has.get(piece) || p.offers.iter().any(|o| o.piece == piece);
        // Fresh pieces the peer already has stay fresh for the others.
        let piece = if let Some(i) = ss.fresh.iter().rposition(|&piece| !taken(piece)) {
            ss.fresh.swap_remove(i)
        } else {
            let n = ss.offered.len();
            let start = self.rng.gen_range(0..n.max(1));
            (0..n)
                .map(|i| ((start + i) % n) as u32)
                .filter(|&piece| !taken(piece))
                .min_by_key(|&piece| {
                    (ss.offered[piece as usize], self.picker.availability(piece))
                })?
        };
        ss.offered[piece as usize] += 1;
        Some(piece)
    }
}

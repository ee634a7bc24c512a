//! Piece priorities and the queries that depend on what we want: completion, endgame,
//! interest. A piece is wanted when its priority is not Skip; `needed` (wanted and not
//! verified) mirrors the orderings as a bitfield so interest is a byte-wise scan.

use super::{Picker, RECEIVED};
use crate::selection::Priority;
use crate::types::{Bitfield, BlockRef};

impl Picker {
    /// One priority per piece (a slice shorter than the piece count: the rest Normal; longer:
    /// extra ignored). Can be called at any time (before any pick, or mid-download when the
    /// user changes selection): a piece in progress set to Skip is forgotten (its late
    /// blocks are refused, as after [`Picker::on_piece_failed`]); a piece wanted again enters
    /// the ordering at its current availability. O(pieces).
    pub fn set_priorities(&mut self, prio: &[Priority]) {
        for piece in 0..self.layout.num_pieces() {
            let new = prio
                .get(piece as usize)
                .copied()
                .unwrap_or(Priority::Normal);
            if self.order.priority(piece) == new {
                continue;
            }
            let lacking = !self.have.get(piece);
            self.order.set_priority(piece, new, lacking);
            if new == Priority::Skip {
                self.needed.clear(piece);
                self.forget_partial(piece);
            } else if lacking && self.needed.set(piece) {
                // Newly wanted: the sequential window may have to start before the cursor.
                self.cursor = self.cursor.min(piece);
            }
        }
    }

    /// The priority of `piece` (Normal for an index out of range).
    pub fn priority(&self, piece: u32) -> Priority {
        self.order.priority(piece)
    }

    pub fn we_have(&self, piece: u32) -> bool {
        self.have.get(piece)
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Every wanted piece (priority not Skip) verified.
    pub fn is_complete(&self) -> bool {
        self.order.missing_wanted() == 0
    }

    /// Every piece of the torrent verified, wanted or not.
    pub fn has_all(&self) -> bool {
        self.have.is_full()
    }

    /// Wanted pieces not yet verified.
    pub fn wanted_missing(&self) -> u32 {
        self.order.missing_wanted()
    }

    /// No free block left among wanted missing pieces: every one is in progress and every
    /// block of it is requested or received.
    pub fn is_endgame(&self) -> bool {
        !self.is_complete()
            && self.partials.len() == self.order.missing_wanted() as usize
            && self.free_in_partials == 0
    }

    /// The peer has a piece we want and lack.
    pub fn is_interesting(&self, peer_has: &Bitfield) -> bool {
        if peer_has.len() != self.needed.len() {
            return peer_has
                .iter_ones()
                .take_while(|&p| p < self.needed.len())
                .any(|p| self.needed.get(p));
        }
        // Spare bits are zero in both, so a byte-wise scan is exact.
        peer_has
            .as_bytes()
            .iter()
            .zip(self.needed.as_bytes())
            .any(|(theirs, needed)| theirs & needed != 0)
    }

    /// Pieces in progress (requested or buffered, not yet verified).
    pub fn partial_count(&self) -> usize {
        self.partials.len()
    }

    /// Outstanding requests recorded for `b` (0 when free, received, or unknown).
    pub fn outstanding(&self, b: &BlockRef) -> u32 {
        let Some(n) = self.layout.block_index(b) else {
            return 0;
        };
        match self.partials.get(&b.piece).map(|p| p.blocks[n as usize]) {
            Some(RECEIVED) | None => 0,
            Some(c) => c as u32,
        }
    }
}

//! Extent affinity: among equally rare pieces, prefer one in the same extent (a run of
//! adjacent pieces, ~4 MiB) as a piece just started, as libtorrent's `piece_extent_affinity`
//! does.
//!
//! Why: rarest first breaks ties at random, so a download from a few peers writes its
//! pieces in random order, and each piece is one write of its own. Adjacent pieces started
//! together finish together: the store hashes two at once and writes neighbours as one
//! larger sequential write, and the file grows in long runs (fewer, larger requests to the
//! device; on a spinning disk, far fewer seeks).
//!
//! Only while no non-seed peer has a piece we lack, i.e. everything we need comes from
//! seeds: then there is no one to trade with and the order costs nothing. With leechers
//! around, random ties keep each leecher's pieces different from the others', which is
//! what lets them trade instead of all asking the seed for the same pieces: always on,
//! affinity raised a capped seed's upload in `tests/seeding.rs` (six leechers) from
//! 1.8× the content to 1.7–3.1×, and the leechers' share fell below the seed's.

use super::order::{level, LEVELS_BY_RANK};
use super::Picker;
use crate::types::Bitfield;

/// Bytes per extent: libtorrent's extent size.
const EXTENT_BYTES: u32 = 4 << 20;

/// Most pieces per extent, so the scan for a neighbour stays short with tiny pieces (16
/// KiB pieces: 64 pieces, a 1 MiB extent).
const MAX_EXTENT_PIECES: u32 = 64;

/// Extents of this many most recently started pieces are preferred.
const RECENT: usize = 2;

impl Picker {
    /// Whether ties go to neighbours now: no non-seed peer has a piece we lack and want.
    pub(super) fn extent_affinity(&self) -> bool {
        self.extent_pieces() > 1
            && LEVELS_BY_RANK
                .iter()
                .all(|&l| self.order.bucket(l, 0).len() == self.order.missing(l) as usize)
    }

    /// Pieces per extent (1: no affinity, pieces of 4 MiB or more).
    pub(super) fn extent_pieces(&self) -> u32 {
        (EXTENT_BYTES / self.layout.piece_len().max(1)).clamp(1, MAX_EXTENT_PIECES)
    }

    /// A piece not yet started, that `peer_has` and we lack, of ordering `lvl`, with non-seed
    /// availability `bucket`, in the extent of one of the [`RECENT`] most recently started pieces: the
    /// first after that piece, wrapping inside its extent.
    pub(super) fn extent_neighbour(
        &self,
        lvl: usize,
        bucket: usize,
        peer_has: &Bitfield,
    ) -> Option<u32> {
        let e = self.extent_pieces();
        if e <= 1 {
            return None;
        }
        let n = self.layout.num_pieces();
        for &p in self.partial_order.iter().rev().take(RECENT) {
            let first = p / e * e;
            let end = first.saturating_add(e).min(n);
            let after = (p + 1..end).chain(first..p);
            let found = after.into_iter().find(|&q| {
                self.order.contains(q)
                    && level(self.order.priority(q)) == Some(lvl)
                    && self.order.avail(q) as usize == bucket
                    && peer_has.get(q)
                    && !self.partials.contains_key(&q)
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

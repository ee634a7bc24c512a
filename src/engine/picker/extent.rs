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
//! Rarest first is unchanged: only a piece of the same availability bucket qualifies, and
//! the extent of a piece is fixed by its index, so different peers and different
//! downloaders still spread over different extents, each chosen at random.

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
    /// Pieces per extent (1: no affinity, pieces of 4 MiB or more).
    pub(super) fn extent_pieces(&self) -> u32 {
        (EXTENT_BYTES / self.layout.piece_len().max(1)).clamp(1, MAX_EXTENT_PIECES)
    }

    /// A piece not yet started, that `peer_has` and we lack, with non-seed availability
    /// `bucket`, in the extent of one of the [`RECENT`] most recently started pieces: the
    /// first after that piece, wrapping inside its extent.
    pub(super) fn extent_neighbour(&self, bucket: usize, peer_has: &Bitfield) -> Option<u32> {
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

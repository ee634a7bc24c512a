//! File selection in the engine: file priorities become piece priorities for the picker,
//! and what depends on "wanted" follows them — completion, each peer's interest, and the
//! wanted-bytes tally behind the tracker's `left`.
//!
//! Invariants:
//! - `Peer::wanted` counts the pieces a peer has that we lack *and want*; a peer is
//!   interesting iff it is above zero.
//! - `tally.wanted_bytes` is the size of the wanted pieces (a piece straddling a wanted and
//!   a skipped file counts whole: it is downloaded whole), `tally.wanted_verified` the size
//!   of those verified.
//! - "Complete" is every wanted piece verified; widening the selection of a complete
//!   torrent makes it incomplete again (it completes, and says so, once more).

use std::time::Instant;

use super::Engine;
use crate::selection::{first_last_priorities, piece_priorities, Priority};

impl Engine {
    /// Which files are wanted (one entry per file; see [`crate::selection`]). Pieces
    /// follow: the highest priority among the files they touch, and with `first_last`
    /// each wanted file's first and last pieces first. May be called at any time.
    pub fn set_file_priorities(&mut self, now: Instant, files: &[Priority]) {
        let pieces = if self.cfg.first_last {
            first_last_priorities(&self.layout, files)
        } else {
            piece_priorities(&self.layout, files)
        };
        self.set_piece_priorities(now, &pieces);
    }

    fn set_piece_priorities(&mut self, now: Instant, pieces: &[Priority]) {
        let was_complete = self.picker.is_complete();
        self.picker.set_priorities(pieces);
        self.picker.set_sequential(self.cfg.sequential);
        let (mut bytes, mut verified) = (0, 0);
        for p in 0..self.layout.num_pieces() {
            if self.picker.priority(p) == Priority::Skip {
                continue;
            }
            let size = u64::from(self.layout.piece_size(p));
            bytes += size;
            if self.picker.we_have(p) {
                verified += size;
            }
        }
        self.tally.wanted_bytes = bytes;
        self.tally.wanted_verified = verified;
        let keys: Vec<_> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get(&key) else {
                continue;
            };
            let wanted = p.has.iter_ones().filter(|&i| self.needs(i)).count() as u32;
            if let Some(p) = self.peers.get_mut(&key) {
                p.wanted = wanted;
            }
            self.update_interest(now, key);
        }
        match (was_complete, self.picker.is_complete()) {
            (false, true) => self.on_complete(now),
            (true, false) => {
                self.complete_sent = false;
                self.completed_at = None;
            }
            _ => {}
        }
        self.fill_all(now);
    }

    /// We lack `piece` and want it.
    pub(super) fn needs(&self, piece: u32) -> bool {
        piece < self.layout.num_pieces()
            && !self.picker.we_have(piece)
            && self.picker.priority(piece) != Priority::Skip
    }

    /// Wanted pieces we lack that no connected peer has, and all wanted pieces we lack
    /// (one pass over the pieces: called once a second, for the snapshot).
    pub(super) fn missing_everywhere(&self) -> (u32, u32) {
        let (mut missing, mut lacking) = (0, 0);
        if self.picker.is_complete() {
            return (0, 0);
        }
        for p in 0..self.layout.num_pieces() {
            if self.needs(p) {
                lacking += 1;
                missing += u32::from(self.picker.availability(p) == 0);
            }
        }
        (missing, lacking)
    }
}

//! Sequential (streaming) order: Normal pieces are started in piece index order, which is
//! file order in a torrent, so a media player can read the file while it downloads.
//!
//! The window is the first [`Picker::window_len`] needed pieces (wanted, not verified) at
//! or after the cursor, the lowest needed piece: [`SEQUENTIAL_WINDOW`], or twice the cap on
//! pieces in progress when that is more. A peer is given, among the window's pieces it has
//! and that are not in progress, the rarest (ties: the piece at the cursor, else at
//! random); if it has none of them, the lowest needed piece it has beyond the window. High
//! pieces (a file's first and last piece for `--first-last`) are still started first, by
//! the main picker.
//!
//! Trade-off: strict index order makes every sequential downloader want the same few
//! pieces at once, so they have little to trade with each other and all lean on the
//! seeds (less piece diversity is worse for the swarm). The window keeps some diversity:
//! within it pieces go rarest first, so peers fetch different pieces of the window and
//! trade them, while playback order still holds to within a window.
//!
//! The cursor only moves forward as pieces are verified (lazily, at pick time: amortised
//! O(1) per piece), and back only when [`Picker::set_priorities`] makes an earlier piece
//! wanted again.

use std::collections::HashMap;

use rand::Rng;

use super::{Partial, Picker};
use crate::types::{Bitfield, BlockRef};

/// Pieces of read-ahead in sequential mode. 16 pieces (4 MiB of 256 KiB pieces, a few
/// seconds of HD video) is about what a player buffers ahead anyway, so playback order
/// holds; and 16 candidates, taken rarest first, are enough for a swarm of sequential
/// downloaders to fetch different pieces and trade them rather than all queue for the same
/// one (libtorrent's sequential mode has no window at all and trades nothing new).
pub const SEQUENTIAL_WINDOW: u32 = 16;

impl Picker {
    /// Sequential / streaming order on or off (see `sequential.rs`); off by default.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// The lowest needed piece at or after `from` (that `peer` has too, when given), a byte
    /// of the bitfields at a time.
    pub(super) fn next_needed(&self, from: u32, peer: Option<&Bitfield>) -> Option<u32> {
        let n = self.needed.len();
        let needed = self.needed.as_bytes();
        let mut i = from;
        while i < n {
            let byte_i = (i / 8) as usize;
            let mut byte = needed[byte_i] & (0xFF >> (i % 8));
            match peer {
                Some(peer) if peer.len() == n => byte &= peer.as_bytes()[byte_i],
                Some(peer) => {
                    // A bitfield of another length: only the pieces that exist count.
                    let mask = (0..8u32)
                        .filter(|k| peer.get(byte_i as u32 * 8 + k))
                        .fold(0u8, |m, k| m | 0x80 >> k);
                    byte &= mask;
                }
                None => {}
            }
            if byte != 0 {
                let p = byte_i as u32 * 8 + byte.leading_zeros();
                return (p < n).then_some(p);
            }
            i = (byte_i as u32 + 1) * 8;
        }
        None
    }

    /// Move the cursor up to the lowest needed piece.
    pub(super) fn advance_cursor(&mut self) {
        self.cursor = self
            .next_needed(self.cursor, None)
            .unwrap_or(self.needed.len());
    }

    /// The window's pieces, lowest first (fewer near the end of the torrent).
    pub(super) fn window(&self) -> impl Iterator<Item = u32> + '_ {
        let mut from = self.cursor;
        std::iter::from_fn(move || {
            let q = self.next_needed(from, None)?;
            from = q + 1;
            Some(q)
        })
        .take(self.window_len())
    }

    /// Pieces in the read-ahead window: [`SEQUENTIAL_WINDOW`], or twice the cap on pieces
    /// in progress when that is more. A window no wider than the pieces in progress would
    /// have every downloader that reached it ask for all of it at once, from the seeds:
    /// with twice as many, each takes a different half and trades the rest (simulated: 1
    /// seed + 8 sequential leechers, the seed sent 6.7 copies with the window at the cap,
    /// 2.9 at twice it, 2.3 at four times; rarest-first 1.7).
    pub fn window_len(&self) -> usize {
        (SEQUENTIAL_WINDOW as usize).max(2 * self.max_partials)
    }

    /// Start Normal pieces in sequential order (see the module doc).
    pub(super) fn pick_new_sequential(
        &mut self,
        peer_has: &Bitfield,
        want_total: usize,
        rng: &mut impl Rng,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        self.advance_cursor();
        // Pieces that gave nothing: every free block already in flight here (only after a
        // failed piece); skipped so the loop cannot find them again.
        let mut tried: Vec<u32> = Vec::new();
        while out.len() < want_total && self.partials.len() < self.max_partials {
            let Some(piece) = self.sequential_candidate(peer_has, &tried, rng) else {
                return;
            };
            let before = out.len();
            self.start_piece(piece);
            self.take_free(piece, want_total, in_flight_here, out);
            if out.len() == before {
                tried.push(piece);
            }
        }
    }

    /// The window's rarest piece for this peer. The piece at the cursor (the one a player
    /// waits for) wins a tie; other ties are broken at random, so downloaders that reached
    /// the same window at once fetch different pieces and trade them, instead of all asking
    /// the seed for the same one.
    fn sequential_candidate(
        &self,
        peer_has: &Bitfield,
        tried: &[u32],
        rng: &mut impl Rng,
    ) -> Option<u32> {
        let partials: &HashMap<u32, Partial> = &self.partials;
        let eligible =
            |q: u32| peer_has.get(q) && !partials.contains_key(&q) && !tried.contains(&q);
        // (availability, piece, ties seen): reservoir sampling among the rarest.
        let mut best: Option<(u32, u32, u32)> = None;
        let mut end = None;
        for q in self.window() {
            end = Some(q + 1);
            if !eligible(q) {
                continue;
            }
            let a = self.order.avail(q);
            best = match best {
                None => Some((a, q, 1)),
                Some((b, _, _)) if a < b => Some((a, q, 1)),
                Some((b, p, n)) if a == b && p != self.cursor => {
                    let n = n + 1;
                    Some(if rng.gen_range(0..n) == 0 {
                        (a, q, n)
                    } else {
                        (b, p, n)
                    })
                }
                keep => keep,
            };
        }
        if let Some((_, q, _)) = best {
            return Some(q);
        }
        // Nothing for this peer in the window: the next piece it has beyond it.
        let mut from = end?;
        while let Some(q) = self.next_needed(from, Some(peer_has)) {
            if eligible(q) {
                return Some(q);
            }
            from = q + 1;
        }
        None
    }
}

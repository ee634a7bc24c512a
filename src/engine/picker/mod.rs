//! The piece picker: decides which blocks to request from a peer. Pure, synchronous state.
//!
//! Each piece has a priority (`crate::selection::Priority`): Skip (never fetched), Normal
//! (the default) or High. Policy, in order:
//! 1. blocks of pieces already in progress ("partials"), High ones first, so pieces finish
//!    and leave the store's buffer;
//! 2. new High pieces, rarest first with a random tie-break among High pieces only;
//! 3. new Normal pieces: rarest first with a random tie-break (in favour of a piece next to
//!    one just started while only seeds have what we lack: extent affinity, `extent.rs`), or
//!    at random while we have fewer than [`RANDOM_FIRST_PIECES`] (so we soon have something
//!    to trade); in sequential mode instead in piece order through a read-ahead window
//!    (`sequential.rs`);
//! 4. once every wanted missing block is requested (endgame), duplicates of outstanding
//!    requests, fewest outstanding first, never to a peer that already asked for that block.
//!
//! Skipped pieces are never picked and make no peer interesting; [`Picker::is_complete`]
//! means every wanted piece is verified ([`Picker::has_all`]: every piece). Availability is
//! counted for skipped pieces too, so one wanted again is ordered at once by its real rarity.
//!
//! Invariants:
//! - A piece is in an availability ordering iff we lack it and want it (priority not Skip),
//!   and then in the ordering of its priority (`order.rs`); `needed` is exactly that set as a
//!   bitfield (`have` clear and priority not Skip), for the byte-wise interest scan.
//! - A partial exists only for a piece we lack and want, and only while at least one of its
//!   blocks is requested or received; a partial that goes back to pristine (every request
//!   dropped, nothing received) is forgotten, and so is one whose piece is set to Skip.
//!   Per-block state lives only in partials, so memory follows the number of pieces in
//!   progress, not the torrent size; per piece we keep 13 bytes and two bits (availability
//!   4, position 4, the ordering slot 4, the priority 1; the have and needed bits).
//! - No new piece is started while `partials >= max_partials`.
//! - `free_in_partials` is the sum of free blocks over all partials; a block is free when it
//!   has no outstanding request and was not received.
//! - Seeds are one counter added to every piece's availability on read; they never reorder.
//! - The sequential cursor is at most the lowest needed piece (advanced lazily).
//! - Invalid input (piece out of range, a block not of this layout) is ignored, never panics.
//!
//! The engine owns the per-peer in-flight sets; it reports every request's end through
//! [`Picker::on_block_received`] or [`Picker::on_request_dropped`].

mod extent;
mod order;
#[cfg(test)]
mod priority_tests;
#[cfg(test)]
mod proptests;
mod sequential;
#[cfg(test)]
mod tests;
mod wanted;

use std::collections::HashMap;

use rand::Rng;

use crate::layout::Layout;
use crate::selection::Priority;
use crate::types::{Bitfield, BlockRef};
use order::{AvailOrder, LEVEL_HIGH, LEVEL_NORMAL};
pub use sequential::SEQUENTIAL_WINDOW;

/// While we have fewer verified pieces than this, new pieces are picked at random among the
/// peer's pieces rather than rarest first (libtorrent's default; a new peer gets something
/// to trade quickly).
pub const RANDOM_FIRST_PIECES: u32 = 4;

/// Endgame: at most this many requests beyond the first for any one block (so at most three
/// peers fetch the same block; more just wastes their upload).
pub const ENDGAME_MAX_EXTRA: u8 = 2;

/// Random probes into the ordering before a random-first pick falls back to a scan.
const RANDOM_PROBES: usize = 16;

/// Block state byte: no request outstanding, not received.
const FREE: u8 = 0;
/// Block state byte: received (awaiting the piece's verification).
const RECEIVED: u8 = u8::MAX;

/// Per-block state of one piece in progress.
#[derive(Debug, Clone)]
struct Partial {
    /// Per block: [`FREE`], a count of outstanding requests (1..RECEIVED), or [`RECEIVED`].
    blocks: Vec<u8>,
    free: u32,
    received: u32,
}

impl Partial {
    fn is_pristine(&self) -> bool {
        self.received == 0 && self.free as usize == self.blocks.len()
    }
}

/// Rarest-first piece picker. See the module doc for the policy and invariants.
#[derive(Debug, Clone)]
pub struct Picker {
    layout: Layout,
    have: Bitfield,
    /// Pieces we lack and want: `!have` and priority not Skip.
    needed: Bitfield,
    order: AvailOrder,
    /// Peers that have every piece (HaveAll or a full bitfield the engine chose to count so).
    seeds: u32,
    partials: HashMap<u32, Partial>,
    /// Partials in the order they were started: oldest are finished first.
    partial_order: Vec<u32>,
    free_in_partials: u64,
    max_partials: usize,
    /// A pick wanted more than the pieces in progress had free while `max_partials` kept
    /// it from starting another (read and reset by [`Picker::take_capped`]).
    capped: bool,
    random_first: u32,
    /// Normal pieces are started in piece order (`sequential.rs`).
    sequential: bool,
    /// At most the lowest needed piece; the sequential window starts here.
    cursor: u32,
}

impl Picker {
    /// `have`: pieces already verified on disk (bits past the layout are ignored).
    /// `max_partials`: cap on pieces in progress; new pieces are not started past it. A cap of
    /// 0 is taken as 1, since a picker that may start nothing could never finish.
    pub fn new(layout: &Layout, have: &Bitfield, max_partials: usize) -> Self {
        let n = layout.num_pieces();
        let mut ours = Bitfield::new(n);
        for p in have.iter_ones().take_while(|&p| p < n) {
            ours.set(p);
        }
        let mut needed = Bitfield::new(n);
        for p in (0..n).filter(|&p| !ours.get(p)) {
            needed.set(p);
        }
        Picker {
            layout: layout.clone(),
            order: AvailOrder::new(n, |p| ours.get(p)),
            have: ours,
            needed,
            seeds: 0,
            partials: HashMap::new(),
            partial_order: Vec::new(),
            free_in_partials: 0,
            max_partials: max_partials.max(1),
            capped: false,
            random_first: RANDOM_FIRST_PIECES,
            sequential: false,
            cursor: 0,
        }
    }

    /// Override [`RANDOM_FIRST_PIECES`] (0 disables random-first picking).
    pub fn set_random_first_pieces(&mut self, n: u32) {
        self.random_first = n;
    }

    pub fn max_partials(&self) -> usize {
        self.max_partials
    }

    /// Whether the cap on pieces in progress held a pick back since the last call.
    pub fn take_capped(&mut self) -> bool {
        std::mem::take(&mut self.capped)
    }

    /// Raise (or lower) the cap on pieces in progress; pieces already started stay.
    pub fn set_max_partials(&mut self, n: usize) {
        self.max_partials = n.max(1);
    }

    // ---- availability ----

    /// A peer with every piece: O(1), touches no per-piece counter.
    pub fn add_seed(&mut self) {
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A seed left. Ignored when none are counted.
    pub fn remove_seed(&mut self) {
        self.seeds = self.seeds.saturating_sub(1);
    }

    pub fn seeds(&self) -> u32 {
        self.seeds
    }

    pub fn add_bitfield(&mut self, bf: &Bitfield) {
        for p in bf.iter_ones() {
            self.order.inc(p);
        }
    }

    pub fn remove_bitfield(&mut self, bf: &Bitfield) {
        for p in bf.iter_ones() {
            self.order.dec(p);
        }
    }

    pub fn add_have(&mut self, piece: u32) {
        self.order.inc(piece);
    }

    /// Undo one [`Self::add_have`] (used when a peer's bitfield is replaced). Never underflows.
    pub fn remove_have(&mut self, piece: u32) {
        self.order.dec(piece);
    }

    /// Peers known to have `piece`, seeds included; 0 for an index out of range.
    pub fn availability(&self, piece: u32) -> u32 {
        if piece >= self.layout.num_pieces() {
            return 0;
        }
        self.order.avail(piece).saturating_add(self.seeds)
    }

    // ---- picking ----

    /// Append up to `want` blocks to `out` for a peer that has `peer_has`, marking them
    /// requested. `in_flight_here(b)` says whether this peer already has `b` requested (so
    /// endgame never duplicates to the same peer).
    pub fn pick(
        &mut self,
        peer_has: &Bitfield,
        want: usize,
        rng: &mut impl Rng,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let start = out.len();
        let want_total = start.saturating_add(want);
        // 1. Finish what is in progress, High pieces first (the list is short: at most
        // `max_partials`).
        let high_first = self.order.missing(LEVEL_HIGH) > 0;
        for pass in 0..1 + high_first as usize {
            for i in 0..self.partial_order.len() {
                if out.len() >= want_total {
                    return;
                }
                let piece = self.partial_order[i];
                let high = self.order.priority(piece) == Priority::High;
                if high_first && (pass == 0) != high {
                    continue;
                }
                if peer_has.get(piece) {
                    self.take_free(piece, want_total, in_flight_here, out);
                }
            }
        }
        // 2. Start new pieces, within the partials budget: High, then Normal.
        if out.len() < want_total && self.partials.len() >= self.max_partials {
            self.capped = true;
        }
        if out.len() < want_total && self.partials.len() < self.max_partials {
            if high_first {
                self.pick_new_rarest(LEVEL_HIGH, peer_has, want_total, rng, in_flight_here, out);
            }
            if self.sequential {
                self.pick_new_sequential(peer_has, want_total, rng, in_flight_here, out);
            } else if self.have.count_ones() < self.random_first {
                self.pick_new_random(peer_has, want_total, rng, in_flight_here, out);
            } else {
                self.pick_new_rarest(LEVEL_NORMAL, peer_has, want_total, rng, in_flight_here, out);
            }
        }
        // 3. Endgame: duplicate outstanding requests, but only once nothing fresh was
        // found in this call: the call that hands out the last free blocks must not also
        // fill a deep queue with duplicates (the engine keeps endgame queues short).
        if out.len() == start && want > 0 && self.is_endgame() {
            self.pick_endgame(peer_has, want_total, start, in_flight_here, out);
        }
    }

    /// Walk `level`'s ordering from the rarest bucket. Inside a bucket, a piece next to one
    /// just started comes first (`extent.rs`); otherwise the scan starts at a random offset
    /// and wraps, which is the random tie-break among equally available pieces.
    fn pick_new_rarest(
        &mut self,
        level: usize,
        peer_has: &Bitfield,
        want_total: usize,
        rng: &mut impl Rng,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        if out.len() >= want_total || self.partials.len() >= self.max_partials {
            return;
        }
        for b in 0..self.order.buckets(level) {
            let range = self.order.bucket(level, b);
            let len = range.len();
            if len == 0 {
                continue;
            }
            let offset = rng.gen_range(0..len);
            let (mut k, mut affinity) = (0, self.extent_affinity());
            while out.len() < want_total && self.partials.len() < self.max_partials {
                let neighbour = affinity
                    .then(|| self.extent_neighbour(level, b, peer_has))
                    .flatten();
                let piece = match neighbour {
                    Some(q) => q,
                    None => {
                        let at = |i| self.order.at(level, range.start + (offset + i) % len);
                        let scan = (k..len).map(|i| (i, at(i)));
                        let found = scan
                            .into_iter()
                            .find(|&(_, q)| peer_has.get(q) && !self.partials.contains_key(&q));
                        let Some((i, q)) = found else { break };
                        k = i + 1;
                        q
                    }
                };
                let before = out.len();
                self.start_piece(piece);
                self.take_free(piece, want_total, in_flight_here, out);
                if out.len() == before && neighbour.is_some() {
                    // Every free block of it is in flight here (only after a failed piece):
                    // the same neighbour would be found again; scan at random instead.
                    affinity = false;
                }
            }
            if out.len() >= want_total || self.partials.len() >= self.max_partials {
                return;
            }
        }
    }

    /// Start Normal pieces chosen uniformly-ish at random among those the peer has and we lack:
    /// a few random probes, then a wrapping scan from a random point (only in the first few
    /// pieces of a download, so the O(pieces) fallback is rare).
    fn pick_new_random(
        &mut self,
        peer_has: &Bitfield,
        want_total: usize,
        rng: &mut impl Rng,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let m = self.order.missing(LEVEL_NORMAL) as usize;
        if m == 0 || out.len() >= want_total || self.partials.len() >= self.max_partials {
            return;
        }
        while out.len() < want_total && self.partials.len() < self.max_partials {
            let eligible = |s: &Self, p: u32| peer_has.get(p) && !s.partials.contains_key(&p);
            let mut found = (0..RANDOM_PROBES)
                .map(|_| self.order.at(LEVEL_NORMAL, rng.gen_range(0..m)))
                .find(|&p| eligible(self, p));
            if found.is_none() {
                let offset = rng.gen_range(0..m);
                found = (0..m)
                    .map(|k| self.order.at(LEVEL_NORMAL, (offset + k) % m))
                    .find(|&p| eligible(self, p));
            }
            let Some(piece) = found else { return };
            let before = out.len();
            self.start_piece(piece);
            self.take_free(piece, want_total, in_flight_here, out);
            if out.len() == before {
                // Every free block of it is already in flight here (only after a failed
                // piece); the same piece would be found again, so stop rather than spin.
                return;
            }
        }
    }

    /// Duplicate requests for blocks outstanding elsewhere, fewest outstanding first.
    fn pick_endgame(
        &mut self,
        peer_has: &Bitfield,
        want_total: usize,
        start: usize,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let mut candidates: Vec<(u8, BlockRef)> = Vec::new();
        for &piece in &self.partial_order {
            if !peer_has.get(piece) {
                continue;
            }
            let Some(partial) = self.partials.get(&piece) else {
                continue;
            };
            for (n, &state) in partial.blocks.iter().enumerate() {
                if state == FREE || state == RECEIVED || state > ENDGAME_MAX_EXTRA {
                    continue;
                }
                let Some(b) = self.layout.block(piece, n as u32) else {
                    continue;
                };
                // Blocks picked earlier in this same call are not yet in the engine's set.
                if !in_flight_here(&b) && !out[start..].contains(&b) {
                    candidates.push((state, b));
                }
            }
        }
        candidates.sort_by_key(|&(count, _)| count);
        for (_, b) in candidates {
            if out.len() >= want_total {
                break;
            }
            if let Some((partial, n)) = Self::locate_mut(&self.layout, &mut self.partials, &b) {
                partial.blocks[n] += 1;
                out.push(b);
            }
        }
    }

    fn start_piece(&mut self, piece: u32) {
        let n = self.layout.blocks_in_piece(piece);
        if n == 0 || self.partials.contains_key(&piece) || !self.order.contains(piece) {
            return;
        }
        self.partials.insert(
            piece,
            Partial {
                blocks: vec![FREE; n as usize],
                free: n,
                received: 0,
            },
        );
        self.partial_order.push(piece);
        self.free_in_partials += n as u64;
    }

    /// Request free blocks of `piece`, in offset order, until `out` holds `want_total`.
    /// A free block this peer still has in flight (possible only after a piece failed with
    /// requests outstanding) is left for another peer.
    fn take_free(
        &mut self,
        piece: u32,
        want_total: usize,
        in_flight_here: &dyn Fn(&BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let Some(partial) = self.partials.get_mut(&piece) else {
            return;
        };
        if partial.free == 0 {
            return;
        }
        for (n, state) in partial.blocks.iter_mut().enumerate() {
            if out.len() >= want_total || partial.free == 0 {
                break;
            }
            if *state != FREE {
                continue;
            }
            let Some(b) = self.layout.block(piece, n as u32) else {
                continue;
            };
            if !in_flight_here(&b) {
                *state = 1;
                partial.free -= 1;
                self.free_in_partials -= 1;
                out.push(b);
            }
        }
        if partial.is_pristine() {
            // Just started but nothing taken: do not hold a partial slot for nothing.
            self.forget_partial(piece);
        }
    }

    /// The partial holding `b` and the block's index in it, if `b` is one of our blocks.
    /// (Borrows only the fields it needs, so callers may update the counters alongside.)
    fn locate_mut<'a>(
        layout: &Layout,
        partials: &'a mut HashMap<u32, Partial>,
        b: &BlockRef,
    ) -> Option<(&'a mut Partial, usize)> {
        let n = layout.block_index(b)? as usize;
        let partial = partials.get_mut(&b.piece)?;
        Some((partial, n))
    }

    fn forget_partial(&mut self, piece: u32) {
        if let Some(partial) = self.partials.remove(&piece) {
            self.free_in_partials -= partial.free as u64;
            self.partial_order.retain(|&p| p != piece);
        }
    }

    // ---- request outcomes ----

    /// A block arrived. Returns true if it was wanted and not already received (false:
    /// duplicate, unknown, or a piece not in progress).
    pub fn on_block_received(&mut self, b: &BlockRef) -> bool {
        let Some((partial, n)) = Self::locate_mut(&self.layout, &mut self.partials, b) else {
            return false;
        };
        match partial.blocks[n] {
            RECEIVED => return false,
            FREE => {
                // Its request was dropped (e.g. timed out) but the data came after all.
                partial.free -= 1;
                self.free_in_partials -= 1;
            }
            _ => {}
        }
        partial.blocks[n] = RECEIVED;
        partial.received += 1;
        true
    }

    /// Requests outstanding for a block (0 when free, received or not in progress): more
    /// than one means duplicates are out (endgame, even if endgame has ended since).
    pub fn outstanding_requests(&self, b: &BlockRef) -> u8 {
        let Some(n) = self.layout.block_index(b) else {
            return 0;
        };
        match self.partials.get(&b.piece).map(|p| p.blocks[n as usize]) {
            Some(RECEIVED) | None => 0,
            Some(count) => count,
        }
    }

    /// A request ended without data (choke, reject, timeout, peer gone): one fewer
    /// outstanding request; the block is free again when none remain and it was not received.
    pub fn on_request_dropped(&mut self, b: &BlockRef) {
        let Some((partial, n)) = Self::locate_mut(&self.layout, &mut self.partials, b) else {
            return;
        };
        let state = partial.blocks[n];
        if state == FREE || state == RECEIVED {
            return;
        }
        partial.blocks[n] = state - 1;
        if state == 1 {
            partial.free += 1;
            self.free_in_partials += 1;
            if partial.is_pristine() {
                self.forget_partial(b.piece);
            }
        }
    }

    /// Every block of `piece` received (awaiting verification). False for pieces we have.
    pub fn is_piece_complete(&self, piece: u32) -> bool {
        self.partials
            .get(&piece)
            .is_some_and(|p| p.received as usize == p.blocks.len())
    }

    /// We now have `piece` (wanted or not: a skipped piece sharing a wanted file's boundary
    /// may be verified): it leaves the ordering and the working set.
    pub fn on_piece_verified(&mut self, piece: u32) {
        if !self.have.set(piece) {
            return;
        }
        self.needed.clear(piece);
        self.order.remove(piece);
        self.forget_partial(piece);
    }

    /// Hash mismatch: all its blocks are free again. The piece goes back to the ordering's
    /// care; any requests still outstanding for it are forgotten (their late data is refused).
    pub fn on_piece_failed(&mut self, piece: u32) {
        if self.have.get(piece) {
            return;
        }
        self.forget_partial(piece);
    }
}

//! Pieces we lack and want, kept sorted by availability in buckets (libtorrent's piece_picker
//! idea), one ordering per wanted priority level, so a pick among the few High pieces never
//! walks the many Normal ones.
//!
//! Each piece has a priority (`prio`, kept here for every piece, have or not). A piece we lack
//! whose priority is not Skip is in exactly one level's ordering: [`LEVEL_NORMAL`] or
//! [`LEVEL_HIGH`]. In a level, `order` holds its pieces exactly once; bucket `a` is the index
//! range `[start(a), bounds[a])` where `start(0) = 0` and `start(a) = bounds[a - 1]`; every
//! piece in bucket `a` has availability `a` (peers that sent a bitfield/Have; seeds are counted
//! elsewhere and never reorder anything). Invariants:
//! - a piece is in an ordering iff it is not removed (we lack it) and its priority is not
//!   Skip, and then it is in the ordering of its priority's level;
//! - per level, `bounds` is non-decreasing, non-empty, and its last element is `order.len()`;
//! - `pos[p]` is the index of `p` in its level's `order`, or [`NONE`] when in no ordering;
//! - `avail[p] < bounds.len()` of its level for every `p` in an ordering. Availability is
//!   counted for every piece, in an ordering or not (a skipped piece keeps its count, so it
//!   re-enters at the right bucket when wanted again).
//!
//! A ±1 change swaps the piece with its bucket's boundary element and moves the boundary:
//! O(1). Removing a piece (verified, or skipped) cascades it past each higher bucket, and
//! inserting one cascades it down from the top: O(buckets), which is at most the peer count.
//! Ties are broken at pick time, by a random start inside a bucket.

use crate::selection::Priority;

/// `pos` value of a piece that is not in any ordering (we have it, or skip it).
pub(super) const NONE: u32 = u32::MAX;

/// Level index of Normal pieces.
pub(super) const LEVEL_NORMAL: usize = 0;
/// Level index of High pieces.
pub(super) const LEVEL_HIGH: usize = 1;
/// Wanted levels, most wanted first (the order picks walk them in).
pub(super) const LEVELS_BY_RANK: [usize; 2] = [LEVEL_HIGH, LEVEL_NORMAL];

/// The ordering level of a priority (None: Skip, in no ordering).
pub(super) fn level(prio: Priority) -> Option<usize> {
    match prio {
        Priority::Skip => None,
        Priority::Normal => Some(LEVEL_NORMAL),
        Priority::High => Some(LEVEL_HIGH),
    }
}

/// One priority level's pieces, sorted by availability.
#[derive(Debug, Clone)]
struct Level {
    order: Vec<u32>,
    /// Exclusive end of each availability bucket in `order`.
    bounds: Vec<u32>,
}

#[derive(Debug, Clone)]
pub(super) struct AvailOrder {
    /// Availability per piece from non-seed peers, for every piece (have or not, wanted or not).
    avail: Vec<u32>,
    /// Index of each piece in its level's `order`, or `NONE`.
    pos: Vec<u32>,
    /// Priority of every piece.
    prio: Vec<Priority>,
    levels: [Level; 2],
}

impl AvailOrder {
    /// All pieces at availability 0 and Normal; pieces with `have(p)` are left out.
    pub(super) fn new(num_pieces: u32, have: impl Fn(u32) -> bool) -> Self {
        let mut pos = vec![NONE; num_pieces as usize];
        let mut order = Vec::new();
        for p in 0..num_pieces {
            if !have(p) {
                pos[p as usize] = order.len() as u32;
                order.push(p);
            }
        }
        let normal = Level {
            bounds: vec![order.len() as u32],
            order,
        };
        let high = Level {
            order: Vec::new(),
            bounds: vec![0],
        };
        AvailOrder {
            avail: vec![0; num_pieces as usize],
            pos,
            prio: vec![Priority::Normal; num_pieces as usize],
            levels: [normal, high],
        }
    }

    pub(super) fn avail(&self, piece: u32) -> u32 {
        self.avail.get(piece as usize).copied().unwrap_or(0)
    }

    /// Normal for an index out of range.
    pub(super) fn priority(&self, piece: u32) -> Priority {
        self.prio
            .get(piece as usize)
            .copied()
            .unwrap_or(Priority::Normal)
    }

    /// Number of pieces we lack and want at `level`.
    pub(super) fn missing(&self, level: usize) -> u32 {
        self.levels[level].order.len() as u32
    }

    /// Number of pieces we lack and want, every level.
    pub(super) fn missing_wanted(&self) -> u32 {
        self.levels.iter().map(|l| l.order.len() as u32).sum()
    }

    /// Whether `piece` is in an ordering (we lack it and want it).
    pub(super) fn contains(&self, piece: u32) -> bool {
        self.pos.get(piece as usize).is_some_and(|&i| i != NONE)
    }

    /// Number of buckets of `level` (one more than the highest availability seen there).
    pub(super) fn buckets(&self, level: usize) -> usize {
        self.levels[level].bounds.len()
    }

    /// The pieces in bucket `b` of `level`, as an index range into [`Self::at`].
    pub(super) fn bucket(&self, level: usize, b: usize) -> std::ops::Range<usize> {
        let bounds = &self.levels[level].bounds;
        let start = if b == 0 { 0 } else { bounds[b - 1] as usize };
        start..bounds[b] as usize
    }

    /// The piece at index `i` of `level`'s ordering (`i < missing(level)`).
    pub(super) fn at(&self, level: usize, i: usize) -> u32 {
        self.levels[level].order[i]
    }

    /// The level `piece` is in, if in an ordering.
    fn level_of(&self, piece: u32) -> Option<usize> {
        if !self.contains(piece) {
            return None;
        }
        level(self.prio[piece as usize])
    }

    fn swap(&mut self, level: usize, i: usize, j: usize) {
        let order = &mut self.levels[level].order;
        order.swap(i, j);
        let (a, b) = (order[i], order[j]);
        self.pos[a as usize] = i as u32;
        self.pos[b as usize] = j as u32;
    }

    /// One more peer has `piece`. Out-of-range indexes are ignored.
    pub(super) fn inc(&mut self, piece: u32) {
        let Some(&a) = self.avail.get(piece as usize) else {
            return;
        };
        if a == u32::MAX {
            return;
        }
        if let Some(l) = self.level_of(piece) {
            let i = self.pos[piece as usize] as usize;
            let a = a as usize;
            let lv = &mut self.levels[l];
            if a + 1 == lv.bounds.len() {
                lv.bounds.push(lv.order.len() as u32);
            }
            // Last element of bucket `a` becomes first of bucket `a + 1`.
            let last = lv.bounds[a] as usize - 1;
            self.swap(l, i, last);
            self.levels[l].bounds[a] -= 1;
        }
        self.avail[piece as usize] = a + 1;
    }

    /// One fewer peer has `piece`. Ignored at 0 (never underflows) or out of range.
    pub(super) fn dec(&mut self, piece: u32) {
        let Some(&a) = self.avail.get(piece as usize) else {
            return;
        };
        if a == 0 {
            return;
        }
        if let Some(l) = self.level_of(piece) {
            let i = self.pos[piece as usize] as usize;
            // First element of bucket `a` becomes last of bucket `a - 1`.
            let first = self.levels[l].bounds[a as usize - 1] as usize;
            self.swap(l, i, first);
            self.levels[l].bounds[a as usize - 1] += 1;
        }
        self.avail[piece as usize] = a - 1;
    }

    /// Take `piece` out of its ordering (we have it, or skip it). Returns whether it was in one.
    pub(super) fn remove(&mut self, piece: u32) -> bool {
        let Some(l) = self.level_of(piece) else {
            return false;
        };
        let mut i = self.pos[piece as usize] as usize;
        // Walk it to the very end, one bucket boundary at a time, shrinking each bucket.
        for b in self.avail[piece as usize] as usize..self.levels[l].bounds.len() {
            let last = self.levels[l].bounds[b] as usize - 1;
            self.swap(l, i, last);
            i = last;
            self.levels[l].bounds[b] -= 1;
        }
        debug_assert_eq!(i + 1, self.levels[l].order.len());
        self.levels[l].order.pop();
        self.pos[piece as usize] = NONE;
        true
    }

    /// Put `piece` (lacking, not in an ordering) into its priority's ordering, in the bucket
    /// of its current availability. Nothing for Skip or a piece already in an ordering.
    fn insert(&mut self, piece: u32) {
        if self.contains(piece) {
            return;
        }
        let Some(l) = self.prio.get(piece as usize).and_then(|&p| level(p)) else {
            return;
        };
        let a = self.avail[piece as usize] as usize;
        let lv = &mut self.levels[l];
        while lv.bounds.len() <= a {
            lv.bounds.push(lv.order.len() as u32);
        }
        let mut i = lv.order.len();
        lv.order.push(piece);
        self.pos[piece as usize] = i as u32;
        let top = lv.bounds.len() - 1;
        lv.bounds[top] += 1;
        // Walk it down to bucket `a`: the first element of each higher bucket.
        for b in (a + 1..=top).rev() {
            let first = self.levels[l].bounds[b - 1] as usize;
            self.swap(l, i, first);
            i = first;
            self.levels[l].bounds[b - 1] += 1;
        }
    }

    /// Set `piece`'s priority; `lacking`: we do not have it (it then moves to the ordering
    /// of its new level, or out of every ordering for Skip). Out of range: ignored.
    pub(super) fn set_priority(&mut self, piece: u32, prio: Priority, lacking: bool) {
        let Some(old) = self.prio.get(piece as usize).copied() else {
            return;
        };
        if old == prio {
            return;
        }
        self.remove(piece);
        self.prio[piece as usize] = prio;
        if lacking {
            self.insert(piece);
        }
    }

    /// Checks every invariant in the module doc; for tests.
    #[cfg(test)]
    pub(super) fn check(&self) {
        for (l, lv) in self.levels.iter().enumerate() {
            assert_eq!(*lv.bounds.last().unwrap() as usize, lv.order.len());
            assert!(lv.bounds.windows(2).all(|w| w[0] <= w[1]));
            for (i, &p) in lv.order.iter().enumerate() {
                assert_eq!(self.pos[p as usize] as usize, i);
                assert_eq!(level(self.prio[p as usize]), Some(l), "piece {p} level");
                let a = self.avail[p as usize] as usize;
                assert!(self.bucket(l, a).contains(&i), "piece {p} avail {a} at {i}");
            }
        }
        let in_order = self.pos.iter().filter(|&&i| i != NONE).count();
        assert_eq!(in_order as u32, self.missing_wanted());
    }
}

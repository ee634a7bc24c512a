//! Pieces we lack, kept sorted by availability in buckets (libtorrent's piece_picker idea).
//!
//! `order` holds every piece we lack exactly once. Bucket `a` is the index range
//! `[start(a), bounds[a])` where `start(0) = 0` and `start(a) = bounds[a - 1]`; every piece in
//! bucket `a` has availability `a` (peers that sent a bitfield/Have; seeds are counted
//! elsewhere and never reorder anything). Invariants:
//! - `bounds` is non-decreasing, non-empty, and its last element is `order.len()`;
//! - `pos[p]` is the index of `p` in `order`, or [`NONE`] once we have `p`;
//! - `avail[p] < bounds.len()` for every `p` in `order`.
//!
//! A ±1 change swaps the piece with its bucket's boundary element and moves the boundary:
//! O(1). Removing a piece (verified) cascades it past each higher bucket: O(buckets), which is
//! at most the peer count. Ties are broken at pick time, by a random start inside a bucket.

/// `pos` value of a piece that is not in the ordering (we have it).
pub(super) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(super) struct AvailOrder {
    /// Availability per piece from non-seed peers, for every piece (have or not).
    avail: Vec<u32>,
    /// Index of each piece in `order`, or `NONE`.
    pos: Vec<u32>,
    /// Pieces we lack, sorted by availability.
    order: Vec<u32>,
    /// Exclusive end of each availability bucket in `order`.
    bounds: Vec<u32>,
}

impl AvailOrder {
    /// All pieces at availability 0; pieces with `have(p)` are left out of the ordering.
    pub(super) fn new(num_pieces: u32, have: impl Fn(u32) -> bool) -> Self {
        let mut pos = vec![NONE; num_pieces as usize];
        let mut order = Vec::new();
        for p in 0..num_pieces {
            if !have(p) {
                pos[p as usize] = order.len() as u32;
                order.push(p);
            }
        }
        let bounds = vec![order.len() as u32];
        AvailOrder {
            avail: vec![0; num_pieces as usize],
            pos,
            order,
            bounds,
        }
    }

    pub(super) fn avail(&self, piece: u32) -> u32 {
        self.avail.get(piece as usize).copied().unwrap_or(0)
    }

    /// Number of pieces we lack.
    pub(super) fn missing(&self) -> u32 {
        self.order.len() as u32
    }

    pub(super) fn contains(&self, piece: u32) -> bool {
        self.pos.get(piece as usize).is_some_and(|&i| i != NONE)
    }

    /// Number of buckets (one more than the highest availability ever seen among them).
    pub(super) fn buckets(&self) -> usize {
        self.bounds.len()
    }

    /// The pieces in bucket `b`, as an index range into [`Self::at`].
    pub(super) fn bucket(&self, b: usize) -> std::ops::Range<usize> {
        let start = if b == 0 {
            0
        } else {
            self.bounds[b - 1] as usize
        };
        start..self.bounds[b] as usize
    }

    /// The piece at index `i` of the ordering (`i < missing()`).
    pub(super) fn at(&self, i: usize) -> u32 {
        self.order[i]
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.order.swap(i, j);
        self.pos[self.order[i] as usize] = i as u32;
        self.pos[self.order[j] as usize] = j as u32;
    }

    /// One more peer has `piece`. Out-of-range indexes are ignored.
    pub(super) fn inc(&mut self, piece: u32) {
        let Some(&a) = self.avail.get(piece as usize) else {
            return;
        };
        if a == u32::MAX {
            return;
        }
        let i = self.pos[piece as usize];
        if i != NONE {
            let a = a as usize;
            if a + 1 == self.bounds.len() {
                self.bounds.push(self.order.len() as u32);
            }
            // Last element of bucket `a` becomes first of bucket `a + 1`.
            let last = self.bounds[a] as usize - 1;
            self.swap(i as usize, last);
            self.bounds[a] -= 1;
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
        let i = self.pos[piece as usize];
        if i != NONE {
            // First element of bucket `a` becomes last of bucket `a - 1`.
            let first = self.bounds[a as usize - 1] as usize;
            self.swap(i as usize, first);
            self.bounds[a as usize - 1] += 1;
        }
        self.avail[piece as usize] = a - 1;
    }

    /// We have `piece` now: take it out of the ordering. Returns whether it was in it.
    pub(super) fn remove(&mut self, piece: u32) -> bool {
        if !self.contains(piece) {
            return false;
        }
        let mut i = self.pos[piece as usize] as usize;
        // Walk it to the very end, one bucket boundary at a time, shrinking each bucket.
        for b in self.avail[piece as usize] as usize..self.bounds.len() {
            let last = self.bounds[b] as usize - 1;
            self.swap(i, last);
            i = last;
            self.bounds[b] -= 1;
        }
        debug_assert_eq!(i + 1, self.order.len());
        self.order.pop();
        self.pos[piece as usize] = NONE;
        true
    }

    /// Checks every invariant in the module doc; for tests.
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(*self.bounds.last().unwrap() as usize, self.order.len());
        assert!(self.bounds.windows(2).all(|w| w[0] <= w[1]));
        for (i, &p) in self.order.iter().enumerate() {
            assert_eq!(self.pos[p as usize] as usize, i);
            let a = self.avail[p as usize] as usize;
            assert!(self.bucket(a).contains(&i), "piece {p} avail {a} at {i}");
        }
        let in_order = self.pos.iter().filter(|&&i| i != NONE).count();
        assert_eq!(in_order, self.order.len());
    }
}

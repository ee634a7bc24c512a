//! The HTTP front end's connection table: who holds how many connections, and which one to
//! give up when the table is full. Pure (the accept loop owns it; `H` is how it cancels a
//! connection, an `AbortHandle` there and a plain value in tests).
//!
//! Invariants: `per_source[s]` is the number of live entries of source `s` (absent when 0);
//! `order` holds every live entry in admission order, plus at most as many stale ones as
//! live ones plus [`SLACK`] (compacted on admit).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::tracker_server::quota::Source;

const SLACK: usize = 32;

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<H> {
    /// Serve it.
    Yes,
    /// Serve it, after cancelling this older connection of the heaviest source (the table
    /// was full).
    Evict(H),
    /// Close it at once: its source already holds its share.
    No,
}

#[derive(Debug)]
pub(crate) struct Conns<K, H> {
    live: HashMap<K, (Source, H)>,
    per_source: HashMap<Source, usize>,
    order: VecDeque<K>,
    max_total: usize,
    max_per_source: usize,
}

impl<K: Copy + Eq + Hash, H> Conns<K, H> {
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Self {
        Conns {
            live: HashMap::new(),
            per_source: HashMap::new(),
            order: VecDeque::new(),
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Decide about a connection from `src`; when admitted (`Yes` or `Evict`) it is recorded
    /// under `key` with `handle` once [`Conns::insert`] is called.
    pub(crate) fn admit(&mut self, src: Source) -> Admit<H> {
        if self.per_source.get(&src).copied().unwrap_or(0) >= self.max_per_source {
            return Admit::No;
        }
        if self.live.len() < self.max_total {
            return Admit::Yes;
        }
        // Full: the oldest connection of the source holding most (ties: the oldest).
        let Some(heaviest) = self.per_source.values().copied().max() else {
            return Admit::Yes;
        };
        let victim = self.order.iter().copied().find(|k| {
            self.live
                .get(k)
                .is_some_and(|(s, _)| self.per_source.get(s) == Some(&heaviest))
        });
        match victim.and_then(|k| self.remove(k)) {
            Some(h) => Admit::Evict(h),
            None => Admit::Yes,
        }
    }

    /// Record an admitted connection.
    pub(crate) fn insert(&mut self, key: K, src: Source, handle: H) {
        self.live.insert(key, (src, handle));
        *self.per_source.entry(src).or_insert(0) += 1;
        self.order.push_back(key);
        if self.order.len() > 2 * self.live.len() + SLACK {
            let live = &self.live;
            self.order.retain(|k| live.contains_key(k));
        }
    }

    /// A connection ended (or was evicted); unknown keys are ignored. Returns its handle.
    pub(crate) fn remove(&mut self, key: K) -> Option<H> {
        let (src, h) = self.live.remove(&key)?;
        if let Some(n) = self.per_source.get_mut(&src) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&src);
            }
        }
        while self
            .order
            .front()
            .is_some_and(|k| !self.live.contains_key(k))
        {
            self.order.pop_front();
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: u8) -> Source {
        Source::V4([127, 0, 0, n])
    }

    #[test]
    fn per_source_cap_refuses_only_that_source() {
        let mut c: Conns<u32, u32> = Conns::new(100, 3);
        for k in 0..3 {
            assert_eq!(c.admit(src(1)), Admit::Yes);
            c.insert(k, src(1), k);
        }
        assert_eq!(c.admit(src(1)), Admit::No);
        assert_eq!(c.admit(src(2)), Admit::Yes);
        c.remove(1);
        assert_eq!(c.admit(src(1)), Admit::Yes);
    }

    #[test]
    fn full_table_evicts_the_heaviest_sources_oldest() {
        let mut c: Conns<u32, u32> = Conns::new(6, 4);
        // Source 1 holds 4 (keys 0..4), source 2 holds 2 (keys 10, 11).
        for k in 0..4 {
            c.insert(k, src(1), k);
        }
        c.insert(10, src(2), 10);
        c.insert(11, src(2), 11);
        assert_eq!(c.admit(src(3)), Admit::Evict(0));
        c.insert(20, src(3), 20);
        assert_eq!(c.admit(src(3)), Admit::Evict(1));
        c.insert(21, src(3), 21);
        // Now 2, 2, 2: the oldest of the tied heaviest goes.
        assert_eq!(c.admit(src(4)), Admit::Evict(2));
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn churn_keeps_the_order_queue_bounded() {
        let mut c: Conns<u32, ()> = Conns::new(10, 10);
        c.insert(u32::MAX, src(9), ());
        for k in 0..100_000 {
            c.insert(k, src(1), ());
            c.remove(k);
            assert!(c.order.len() <= 2 * 2 + SLACK + 1);
        }
        assert_eq!(c.len(), 1);
    }
}

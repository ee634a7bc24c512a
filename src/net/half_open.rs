//! The table of incoming connections still in their handshake, and who gives way when it
//! is full. Pure: the caller spawns and aborts; this only decides.
//!
//! Policy (a flood of connections that never complete a handshake must not keep an honest
//! peer out, as refusing newcomers at the cap did):
//! - at most `per_ip` entries from one IP address: more from it are refused;
//! - at most `max` entries in all: a newcomer evicts the oldest entry that has sent nothing
//!   yet, or, when every entry has sent something, the oldest of all. An honest peer sends
//!   its whole handshake in its first round trip, so it is never the oldest for long, and
//!   a flood only evicts its own connections.
//!
//! Invariants: `len() <= max` after every `admit` + `insert`; per-IP counts match entries.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;

/// Answer to a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// Take it; `evicted` (already removed from the table) must be closed.
    Yes { evicted: Option<T> },
    /// Its IP already has `per_ip` connections in their handshake.
    TooManyFromIp,
}

/// Connections in their handshake, oldest first. `K` names an entry (a task id), `T` is
/// what the caller needs to close it.
#[derive(Debug)]
pub struct HalfOpen<K, T> {
    max: usize,
    per_ip: usize,
    /// Entries by arrival number: iteration order is age order.
    by_age: BTreeMap<u64, (K, IpAddr, T)>,
    index: HashMap<K, u64>,
    per_ip_count: HashMap<IpAddr, usize>,
    next: u64,
}

impl<K: Hash + Eq + Copy, T> HalfOpen<K, T> {
    /// `max` and `per_ip` are at least 1.
    pub fn new(max: usize, per_ip: usize) -> Self {
        HalfOpen {
            max: max.max(1),
            per_ip: per_ip.max(1),
            by_age: BTreeMap::new(),
            index: HashMap::new(),
            per_ip_count: HashMap::new(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    /// Decides on a newcomer from `ip`, making room if the table is full. `silent(t)` says
    /// whether an entry has sent nothing yet. Call [`HalfOpen::insert`] after a `Yes`.
    pub fn admit(&mut self, ip: IpAddr, silent: impl Fn(&T) -> bool) -> Admit<T> {
        if self.per_ip_count.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Admit::TooManyFromIp;
        }
        if self.by_age.len() < self.max {
            return Admit::Yes { evicted: None };
        }
        let victim = self
            .by_age
            .iter()
            .find(|(_, (_, _, t))| silent(t))
            .or_else(|| self.by_age.iter().next())
            .map(|(_, (k, _, _))| *k);
        Admit::Yes {
            evicted: victim.and_then(|k| self.remove(&k)),
        }
    }

    /// Records a connection admitted by [`HalfOpen::admit`].
    pub fn insert(&mut self, key: K, ip: IpAddr, t: T) {
        let n = self.next;
        self.next += 1;
        if let Some(old) = self.index.insert(key, n) {
            // A key is never reused; were it to be, the old entry goes.
            if let Some((_, ip, _)) = self.by_age.remove(&old) {
                self.uncount(ip);
            }
        }
        self.by_age.insert(n, (key, ip, t));
        *self.per_ip_count.entry(ip).or_insert(0) += 1;
    }

    /// Forgets a connection whose handshake ended (either way). `None` if it was evicted.
    pub fn remove(&mut self, key: &K) -> Option<T> {
        let n = self.index.remove(key)?;
        let (_, ip, t) = self.by_age.remove(&n)?;
        self.uncount(ip);
        Some(t)
    }

    fn uncount(&mut self, ip: IpAddr) {
        if let Some(c) = self.per_ip_count.get_mut(&ip) {
            *c -= 1;
            if *c == 0 {
                self.per_ip_count.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// `T` = whether the entry has sent something.
    fn fill(t: &mut HalfOpen<u32, bool>, keys: std::ops::Range<u32>, heard: bool) {
        for k in keys {
            assert_eq!(
                t.admit(ip(k as u8), |h| !h),
                Admit::Yes { evicted: None },
                "{k}"
            );
            t.insert(k, ip(k as u8), heard);
        }
    }

    #[test]
    fn a_full_table_evicts_its_oldest_silent_entry() {
        let mut t = HalfOpen::new(4, 2);
        fill(&mut t, 0..1, true);
        fill(&mut t, 1..4, false);
        // Entry 0 is oldest but has spoken: 1 goes.
        assert_eq!(
            t.admit(ip(9), |h| !h),
            Admit::Yes {
                evicted: Some(false)
            }
        );
        t.insert(9, ip(9), false);
        assert_eq!(t.len(), 4);
        assert_eq!(t.remove(&1), None, "evicted already");
        assert_eq!(t.remove(&2), Some(false));
    }

    #[test]
    fn when_everyone_has_spoken_the_oldest_goes() {
        let mut t = HalfOpen::new(3, 3);
        fill(&mut t, 0..3, true);
        assert!(matches!(
            t.admit(ip(9), |h| !h),
            Admit::Yes { evicted: Some(_) }
        ));
        t.insert(9, ip(9), false);
        assert_eq!(t.remove(&0), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn one_ip_gets_at_most_its_share() {
        let mut t: HalfOpen<u32, bool> = HalfOpen::new(100, 2);
        for k in 0..2 {
            assert!(matches!(t.admit(ip(5), |h| !h), Admit::Yes { .. }));
            t.insert(k, ip(5), false);
        }
        assert_eq!(t.admit(ip(5), |h| !h), Admit::TooManyFromIp);
        assert!(matches!(t.admit(ip(6), |h| !h), Admit::Yes { .. }));
        t.remove(&0);
        assert!(matches!(t.admit(ip(5), |h| !h), Admit::Yes { .. }));
    }

    #[test]
    fn a_flood_never_keeps_a_newcomer_out() {
        // 300 silent connections from 50 addresses into a table of 256, then an honest
        // peer: it is admitted, and the flood only ever evicts flood entries.
        let mut t: HalfOpen<u32, bool> = HalfOpen::new(256, 8);
        let mut evicted = 0;
        for k in 0..300u32 {
            let a = ip(10 + (k % 50) as u8);
            match t.admit(a, |h| !h) {
                Admit::Yes { evicted: e } => evicted += e.is_some() as u32,
                Admit::TooManyFromIp => panic!("6 per address is under the cap"),
            }
            t.insert(k, a, false);
        }
        assert_eq!(evicted, 300 - 256);
        assert!(matches!(
            t.admit(ip(200), |h| !h),
            Admit::Yes { evicted: Some(_) }
        ));
        t.insert(1000, ip(200), true);
        // More flood: the honest entry (it has spoken) stays.
        for k in 300..600u32 {
            let a = ip(10 + (k % 50) as u8);
            if let Admit::Yes { .. } = t.admit(a, |h| !h) {
                t.insert(k, a, false);
            }
        }
        assert_eq!(t.remove(&1000), Some(true));
    }
}

//! Who holds what in the tracker: per-[`Source`] counts of stored peers and of swarms
//! created, the order each source's entries were made in, and which source is heaviest.
//!
//! Pure bookkeeping, no policy: the registry decides whom to evict and calls back here. The
//! registry owns the truth (its swarm and peer tables); the queues here may hold *stale*
//! entries (a peer that already stopped or expired, a swarm already gone), which the registry
//! recognises by their sequence number and skips. Invariants:
//! - each [`Ledger`] (peers stored, swarms created) keeps an exact count per source
//!   (maintained on every insert and removal) and an ordered index holding `(count, source)`
//!   for every source with a non-zero count, so the heaviest is the last element (O(log n));
//! - a queue never holds more than twice its live count plus [`SLACK`] entries (it is
//!   compacted on push), and a source with nothing left in a ledger is forgotten there, so this costs memory
//!   in proportion to what is stored, never to how much was announced.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use crate::types::InfoHash;

/// Entries a queue may hold beyond twice its live count before it is compacted.
const SLACK: usize = 32;

/// An announcing party: an IPv4 address, or the /64 prefix of an IPv6 address (a /64 is
/// what one subscriber line or one host gets; counting single IPv6 addresses would give
/// every attacker 2⁶⁴ sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    /// The source of `ip` (IPv4-mapped IPv6 counts as the IPv4 address).
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&a.octets()[..8]);
                Source::V6(p)
            }
        }
    }
}

/// A queued entry: what it refers to and the sequence number it had when made.
pub(crate) type Queued<T> = (T, u64);

/// One kind of entry (peers, or swarms created) counted per source: the exact count, the
/// entries oldest first (possibly stale), and an index for the heaviest source.
#[derive(Debug)]
struct Ledger<T> {
    map: HashMap<Source, (usize, VecDeque<Queued<T>>)>,
    by_count: BTreeSet<(usize, Source)>,
}

impl<T> Ledger<T> {
    fn new() -> Self {
        Ledger {
            map: HashMap::new(),
            by_count: BTreeSet::new(),
        }
    }

    fn count(&self, s: Source) -> usize {
        self.map.get(&s).map_or(0, |(n, _)| *n)
    }

    fn heaviest(&self) -> Option<(Source, usize)> {
        self.by_count.last().map(|&(n, s)| (s, n))
    }

    /// An entry was stored for `s`; the queue is compacted (`live` keeps the entries that
    /// still refer to something stored) once it holds more than twice the count + SLACK.
    fn added(&mut self, s: Source, e: Queued<T>, live: impl Fn(&Queued<T>) -> bool) {
        let (n, queue) = self.map.entry(s).or_default();
        reindex(&mut self.by_count, s, *n, *n + 1);
        *n += 1;
        queue.push_back(e);
        if queue.len() > 2 * *n + SLACK {
            queue.retain(&live);
        }
    }

    /// An entry of `s` was removed (its queue entry goes stale); a source left with none is
    /// forgotten.
    fn removed(&mut self, s: Source) {
        let Some((n, _)) = self.map.get_mut(&s) else {
            return;
        };
        reindex(&mut self.by_count, s, *n, n.saturating_sub(1));
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.map.remove(&s);
        }
    }

    fn queue(&mut self, s: Source) -> Option<&mut VecDeque<Queued<T>>> {
        self.map.get_mut(&s).map(|(_, q)| q)
    }
}

/// Per-source loads. `P` is how the registry names a stored peer.
#[derive(Debug)]
pub(crate) struct Sources<P> {
    peers: Ledger<P>,
    swarms: Ledger<InfoHash>,
}

impl<P: Copy> Sources<P> {
    pub(crate) fn new() -> Self {
        Sources {
            peers: Ledger::new(),
            swarms: Ledger::new(),
        }
    }

    /// Sources currently holding something.
    pub(crate) fn len(&self) -> usize {
        let only_swarms = self
            .swarms
            .map
            .keys()
            .filter(|s| !self.peers.map.contains_key(s))
            .count();
        self.peers.map.len() + only_swarms
    }

    pub(crate) fn peers(&self, s: Source) -> usize {
        self.peers.count(s)
    }

    pub(crate) fn swarms(&self, s: Source) -> usize {
        self.swarms.count(s)
    }

    /// The source with the most stored peers, and that count.
    pub(crate) fn heaviest_by_peers(&self) -> Option<(Source, usize)> {
        self.peers.heaviest()
    }

    /// The source that created the most live swarms, and that count.
    pub(crate) fn heaviest_by_swarms(&self) -> Option<(Source, usize)> {
        self.swarms.heaviest()
    }

    /// A peer was stored for `s`. `live` tells whether a queued entry still refers to a
    /// stored peer (used to compact the queue).
    pub(crate) fn peer_added(
        &mut self,
        s: Source,
        p: Queued<P>,
        live: impl Fn(&Queued<P>) -> bool,
    ) {
        self.peers.added(s, p, live);
    }

    /// A peer of `s` was removed (its queue entry goes stale).
    pub(crate) fn peer_removed(&mut self, s: Source) {
        self.peers.removed(s);
    }

    /// A swarm was created by `s`.
    pub(crate) fn swarm_added(
        &mut self,
        s: Source,
        w: Queued<InfoHash>,
        live: impl Fn(&Queued<InfoHash>) -> bool,
    ) {
        self.swarms.added(s, w, live);
    }

    /// A swarm created by `s` was removed.
    pub(crate) fn swarm_removed(&mut self, s: Source) {
        self.swarms.removed(s);
    }

    /// Take the oldest queued peer entry of `s` (possibly stale: the caller checks).
    pub(crate) fn pop_peer(&mut self, s: Source) -> Option<Queued<P>> {
        self.peers.queue(s)?.pop_front()
    }

    /// Take the oldest queued swarm entry of `s` (possibly stale: the caller checks).
    pub(crate) fn pop_swarm(&mut self, s: Source) -> Option<Queued<InfoHash>> {
        self.swarms.queue(s)?.pop_front()
    }

    /// Put back a live swarm entry that could not be evicted (it goes to the back, so the
    /// next search starts with other swarms).
    pub(crate) fn requeue_swarm(&mut self, s: Source, w: Queued<InfoHash>) {
        if let Some(q) = self.swarms.queue(s) {
            q.push_back(w);
        }
    }

    /// Queued swarm entries of `s` (a bound for a search through them).
    pub(crate) fn swarm_queue_len(&self, s: Source) -> usize {
        self.swarms.map.get(&s).map_or(0, |(_, q)| q.len())
    }
}

fn reindex(index: &mut BTreeSet<(usize, Source)>, s: Source, old: usize, new: usize) {
    if old > 0 {
        index.remove(&(old, s));
    }
    if new > 0 {
        index.insert((new, s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_is_v4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a.into()), Source::of(b.into()));
        assert_ne!(Source::of(a.into()), Source::of(c.into()));
        let m = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped();
        assert_eq!(
            Source::of(m.into()),
            Source::of(Ipv4Addr::new(10, 0, 0, 1).into())
        );
    }

    #[test]
    fn heaviest_follows_counts_and_empty_sources_are_forgotten() {
        let a = Source::V4([1, 1, 1, 1]);
        let b = Source::V4([2, 2, 2, 2]);
        let mut s: Sources<u32> = Sources::new();
        for i in 0..3 {
            s.peer_added(a, (i, u64::from(i)), |_| true);
        }
        s.peer_added(b, (9, 9), |_| true);
        assert_eq!(s.heaviest_by_peers(), Some((a, 3)));
        for _ in 0..3 {
            s.peer_removed(a);
        }
        assert_eq!(s.heaviest_by_peers(), Some((b, 1)));
        assert_eq!(s.len(), 1, "a holds nothing and is forgotten");
        s.swarm_added(b, (InfoHash([1; 20]), 1), |_| true);
        s.peer_removed(b);
        assert_eq!(s.len(), 1, "b still created a swarm");
        s.swarm_removed(b);
        assert_eq!((s.len(), s.heaviest_by_swarms()), (0, None));
    }

    #[test]
    fn queues_stay_bounded_by_live_entries() {
        let a = Source::V4([1, 1, 1, 1]);
        let mut s: Sources<u64> = Sources::new();
        // One permanent peer and one churning: stale entries are compacted away.
        s.peer_added(a, (0, u64::MAX), |_| true);
        for i in 0..100_000u64 {
            s.peer_added(a, (i, i), |&(_, seq)| seq == u64::MAX || seq == i);
            s.peer_removed(a);
            assert!(s.peers.map[&a].1.len() <= 2 * 2 + SLACK + 1);
        }
        assert_eq!(s.peers(a), 1);
    }
}

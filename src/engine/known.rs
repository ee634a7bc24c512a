//! The addresses a torrent may dial: [`PeerList`], bounded and ranked.
//!
//! Sources (trackers, `--peer`, later the DHT and peer exchange) hand us addresses; most
//! of what a public tracker lists is dead, and a hostile one can list thousands of dead
//! addresses or millions over time. So the list is a sub-state with its own rules:
//!
//! - **Bounded**: at most `cap` entries. When full, a newcomer takes the place of the entry
//!   that failed most (oldest listed first among equals); an address never tried is never
//!   pushed out by another never-tried one — it is the newcomer that is dropped, and counted
//!   in [`PeerList::dropped`], so early arrivals are dialled rather than churned.
//! - **Ranked dialing**: addresses never tried go before any that failed, so however many
//!   dead addresses a source lists, each live one is dialled after at most one attempt per
//!   address ahead of it; among equals the most recently listed first, then a random rank
//!   drawn when the address arrived (never address order, which a source could game).
//! - **Back-off and forgetting**: a failure delays the next attempt (`base × 2^failures`,
//!   at most a minute); after `forget_after` failures in a row an address is forgotten —
//!   unless it came from the user (`--peer`), which is kept and retried. A source that
//!   lists it again later brings it back as new.
//! - **Refused**: port 0, ourselves, banned IPs, and addresses no peer can have (unspecified,
//!   broadcast, multicast, IPv4 `0.0.0.0/8` and `240.0.0.0/4`).
//!
//! Invariants: `entries.len() <= cap`; an entry is `Connecting` exactly while a dial to it
//! is under way and `Connected` while a connection we dialled to it is up.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSource {
    /// Given by the user (`--peer`): never forgotten.
    Manual,
    /// A tracker's announce reply.
    Tracker,
    /// A peer's `ut_pex` message (BEP 11).
    Pex,
    /// A local service discovery announce (BEP 14).
    Lsd,
    /// A magnet link's `x.pe` (kept like `--peer`: the link's author named them).
    Magnet,
    /// A DHT lookup's `get_peers` values (BEP 5).
    Dht,
}

impl PeerSource {
    /// Addresses a person gave (`--peer`, a magnet's `x.pe`) are retried, never forgotten.
    pub fn is_kept(self) -> bool {
        matches!(self, PeerSource::Manual | PeerSource::Magnet)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DialState {
    Idle,
    Connecting,
    Connected,
}

/// One address we may dial.
#[derive(Debug, Clone)]
struct Known {
    state: DialState,
    source: PeerSource,
    /// It had every piece when we did too: not worth dialing while we are complete.
    seed: bool,
    /// Failed attempts in a row (a connection that completes resets it).
    failures: u32,
    next_attempt: Instant,
    /// When a source last listed it.
    listed: Instant,
    /// Random tie-break drawn on arrival.
    rank: u32,
}

impl Known {
    /// Dial order: smaller first.
    fn order(&self) -> (u32, std::cmp::Reverse<Instant>, u32) {
        (self.failures, std::cmp::Reverse(self.listed), self.rank)
    }
}

/// What the list is tuned by (see `TorrentConfig` for where each number comes from).
#[derive(Debug, Clone)]
pub(super) struct ListConfig {
    pub cap: usize,
    pub forget_after: u32,
    pub reconnect_base: Duration,
}

/// Bounded, ranked set of dialable addresses, with the bans and our own addresses.
#[derive(Debug)]
pub(super) struct PeerList {
    cfg: ListConfig,
    entries: BTreeMap<SocketAddr, Known>,
    banned: HashSet<IpAddr>,
    /// Our own addresses as seen by dialing them.
    ourselves: HashSet<SocketAddr>,
    /// Addresses refused because the list was full of untried ones.
    dropped: u64,
    /// Dial attempts handed out, in all.
    dialled: u64,
    /// New addresses taken in, by source.
    found: crate::snapshot::Found,
    /// Peers that sent us blocks and have left, oldest first, at most
    /// [`MAX_DEPARTED_SENDERS`]: a proof of corrupt data that names one after it left
    /// still bans its IP.
    departed: VecDeque<(super::PeerKey, IpAddr)>,
}

/// How many departed senders are remembered: a failed piece is proven within a few
/// hundred departures of its senders, and each entry costs 24 bytes.
pub(super) const MAX_DEPARTED_SENDERS: usize = 1024;

/// Longest back-off between attempts at one address.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Whether any peer could have this address (unicast, routable in principle). Loopback
/// and private ranges are fine: tests and home networks use them.
pub fn is_dialable(addr: &SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match addr.ip() {
        IpAddr::V4(ip) => {
            let first = ip.octets()[0];
            !(ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || first == 0
                || first >= 240)
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_dialable(&SocketAddr::new(IpAddr::V4(v4), addr.port()));
            }
            !(ip.is_unspecified() || ip.is_multicast())
        }
    }
}

impl PeerList {
    pub fn new(cfg: ListConfig) -> Self {
        PeerList {
            cfg,
            entries: BTreeMap::new(),
            banned: HashSet::new(),
            ourselves: HashSet::new(),
            dropped: 0,
            dialled: 0,
            found: Default::default(),
            departed: VecDeque::new(),
        }
    }

    /// New addresses taken in from each source (one listed again is not new).
    pub fn found(&self) -> crate::snapshot::Found {
        self.found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn dialled(&self) -> u64 {
        self.dialled
    }

    pub fn is_banned(&self, ip: &IpAddr) -> bool {
        self.banned.contains(ip)
    }

    /// Adds or refreshes an address. False if it was refused (unusable, ours, banned, or
    /// the list is full of addresses not yet tried).
    pub fn add(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        source: PeerSource,
        rng: &mut impl Rng,
    ) -> bool {
        if !is_dialable(&addr) || self.ourselves.contains(&addr) || self.banned.contains(&addr.ip())
        {
            return false;
        }
        if let Some(k) = self.entries.get_mut(&addr) {
            // Listed again: fresher, but its failures stand (a source that keeps listing a
            // dead address must not keep it at the front).
            k.listed = now;
            if source.is_kept() {
                k.source = source;
            }
            return true;
        }
        if self.entries.len() >= self.cfg.cap && !self.make_room() {
            self.dropped += 1;
            return false;
        }
        self.entries.insert(
            addr,
            Known {
                state: DialState::Idle,
                source,
                seed: false,
                failures: 0,
                next_attempt: now,
                listed: now,
                rank: rng.gen(),
            },
        );
        let f = &mut self.found;
        *match source {
            PeerSource::Tracker => &mut f.tracker,
            PeerSource::Dht => &mut f.dht,
            PeerSource::Lsd => &mut f.lsd,
            PeerSource::Pex => &mut f.pex,
            PeerSource::Manual | PeerSource::Magnet => &mut f.given,
        } += 1;
        true
    }

    /// Drops the idle entry that failed most (oldest listed among equals). False when every
    /// idle entry is untried (or none is idle).
    fn make_room(&mut self) -> bool {
        let worst = self
            .entries
            .iter()
            .filter(|(_, k)| k.state == DialState::Idle && k.failures > 0)
            .max_by_key(|(_, k)| (k.failures, std::cmp::Reverse(k.listed), k.rank))
            .map(|(a, _)| *a);
        match worst {
            Some(a) => {
                self.entries.remove(&a);
                true
            }
            None => false,
        }
    }

    /// Whether some address could be dialled now (for peer turnover).
    pub fn has_candidates(&self, now: Instant, complete: bool) -> bool {
        self.entries
            .values()
            .any(|k| Self::eligible(k, now, complete))
    }

    fn eligible(k: &Known, now: Instant, complete: bool) -> bool {
        k.state == DialState::Idle && k.next_attempt <= now && !(complete && k.seed)
    }

    /// Dials in progress.
    pub fn connecting(&self) -> usize {
        self.entries
            .values()
            .filter(|k| k.state == DialState::Connecting)
            .count()
    }

    /// Up to `n` addresses to dial now, best first; each is marked `Connecting`.
    pub fn take_dials(&mut self, now: Instant, complete: bool, n: usize) -> Vec<SocketAddr> {
        if n == 0 {
            return Vec::new();
        }
        let mut cands: Vec<(&SocketAddr, &Known)> = self
            .entries
            .iter()
            .filter(|(_, k)| Self::eligible(k, now, complete))
            .collect();
        let pick = n.min(cands.len());
        if pick < cands.len() {
            cands.select_nth_unstable_by_key(pick, |(_, k)| k.order());
            cands.truncate(pick);
        }
        cands.sort_by_key(|(_, k)| k.order());
        let chosen: Vec<SocketAddr> = cands.into_iter().map(|(a, _)| *a).collect();
        self.dialled += chosen.len() as u64;
        for a in &chosen {
            if let Some(k) = self.entries.get_mut(a) {
                k.state = DialState::Connecting;
            }
        }
        chosen
    }

    /// A dial to `addr` failed (or its connection was refused): back off, or forget it.
    pub fn failed(&mut self, now: Instant, addr: &SocketAddr) {
        let Some(k) = self.entries.get_mut(addr) else {
            return;
        };
        k.state = DialState::Idle;
        k.failures = k.failures.saturating_add(1);
        if !k.source.is_kept() && k.failures >= self.cfg.forget_after {
            self.entries.remove(addr);
            return;
        }
        let backoff = self.cfg.reconnect_base * 2u32.saturating_pow(k.failures.min(6));
        k.next_attempt = now + backoff.min(MAX_BACKOFF);
    }

    /// A connection we dialled completed its handshake.
    pub fn connected(&mut self, addr: &SocketAddr) {
        if let Some(k) = self.entries.get_mut(addr) {
            k.state = DialState::Connected;
            k.failures = 0;
        }
    }

    /// A connection we dialled ended: it may be dialled again after `delay`.
    pub fn disconnected(&mut self, now: Instant, addr: &SocketAddr, delay: Duration) {
        if let Some(k) = self.entries.get_mut(addr) {
            k.state = DialState::Idle;
            k.next_attempt = now + delay;
        }
    }

    /// The peer at `addr` is a seed and so are we: do not dial it while complete.
    pub fn mark_seed(&mut self, addr: &SocketAddr) {
        if let Some(k) = self.entries.get_mut(addr) {
            k.seed = true;
        }
    }

    /// Our own address: never dial it again.
    pub fn ourselves(&mut self, addr: SocketAddr) {
        self.entries.remove(&addr);
        self.ourselves.insert(addr);
    }

    /// A peer that sent us blocks left: remember its IP under its key.
    pub fn sender_left(&mut self, key: super::PeerKey, ip: IpAddr) {
        if self.departed.len() == MAX_DEPARTED_SENDERS {
            self.departed.pop_front();
        }
        self.departed.push_back((key, ip));
    }

    /// The IP of a departed sender, if still remembered.
    pub fn departed_ip(&self, key: super::PeerKey) -> Option<IpAddr> {
        self.departed
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, ip)| *ip)
    }

    /// Bans an IP and forgets every address on it.
    pub fn ban(&mut self, ip: IpAddr) {
        self.banned.insert(ip);
        self.entries.retain(|a, _| a.ip() != ip);
    }

    #[cfg(test)]
    fn state(&self, addr: &SocketAddr) -> Option<DialState> {
        self.entries.get(addr).map(|k| k.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn list(cap: usize) -> PeerList {
        PeerList::new(ListConfig {
            cap,
            forget_after: 3,
            reconnect_base: Duration::from_secs(1),
        })
    }

    fn a(i: u32) -> SocketAddr {
        let [_, b, c, d] = i.to_be_bytes();
        SocketAddr::from(([10, b, c, d], 6881))
    }

    #[test]
    fn unusable_addresses_are_refused() {
        let mut l = list(10);
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        for s in [
            "0.0.0.0:1",
            "0.1.2.3:1",
            "255.255.255.255:1",
            "224.0.0.1:1",
            "239.255.255.250:1900",
            "240.0.0.1:1",
            "10.0.0.1:0",
            "[::]:1",
            "[ff02::1]:1",
            "[::ffff:224.0.0.1]:1",
        ] {
            assert!(
                !l.add(now, s.parse().unwrap(), PeerSource::Tracker, &mut rng),
                "{s}"
            );
        }
        for s in [
            "127.0.0.1:1",
            "192.168.1.2:6881",
            "[::1]:1",
            "[2001:db8::1]:1",
        ] {
            assert!(
                l.add(now, s.parse().unwrap(), PeerSource::Tracker, &mut rng),
                "{s}"
            );
        }
    }

    /// However many dead addresses a tracker lists, and in whatever order, the live one is
    /// dialled before any dead one is tried a second time.
    #[test]
    fn dead_addresses_cannot_starve_a_live_one() {
        let mut rng = StdRng::seed_from_u64(2);
        let now = Instant::now();
        let mut l = list(2000);
        let live = a(0); // sorts first by address: order must not depend on that
        for i in 1..1990 {
            l.add(now, a(i), PeerSource::Tracker, &mut rng);
        }
        l.add(now, live, PeerSource::Tracker, &mut rng);
        let mut t = now;
        let mut attempts = 0;
        let mut seen = HashSet::new();
        loop {
            let batch = l.take_dials(t, false, 10);
            assert!(!batch.is_empty(), "ran dry after {attempts} attempts");
            for addr in batch {
                attempts += 1;
                if addr == live {
                    assert!(attempts <= 1990);
                    return;
                }
                assert!(seen.insert(addr), "{addr} retried before the live one");
                l.failed(t, &addr);
            }
            t += Duration::from_secs(1);
        }
    }

    #[test]
    fn the_list_is_bounded_and_untried_addresses_keep_their_place() {
        let mut rng = StdRng::seed_from_u64(3);
        let now = Instant::now();
        let mut l = list(100);
        for i in 0..100 {
            assert!(l.add(now, a(i), PeerSource::Tracker, &mut rng));
        }
        // Full of untried addresses: newcomers are dropped (and counted).
        for i in 100..1000 {
            assert!(!l.add(now, a(i), PeerSource::Tracker, &mut rng));
        }
        assert_eq!((l.len(), l.dropped()), (100, 900));
        // Once some have failed, newcomers take their places.
        let tried = l.take_dials(now, false, 5);
        for addr in &tried {
            l.failed(now, addr);
        }
        for i in 1000..1010 {
            l.add(now, a(i), PeerSource::Tracker, &mut rng);
        }
        assert_eq!(l.len(), 100);
        assert!(tried.iter().all(|t| l.state(t).is_none()));
        assert!(l.state(&a(1000)).is_some());
    }

    #[test]
    fn failures_back_off_then_forget_except_manual() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut now = Instant::now();
        let mut l = list(10);
        let (t, m) = (a(1), a(2));
        l.add(now, t, PeerSource::Tracker, &mut rng);
        l.add(now, m, PeerSource::Manual, &mut rng);
        for round in 0..5 {
            let dials = l.take_dials(now, false, 10);
            if round < 3 {
                assert!(dials.contains(&t), "round {round}");
            } else {
                assert!(!dials.contains(&t), "forgotten after 3 failures");
            }
            assert!(dials.contains(&m), "manual kept, round {round}");
            for d in &dials {
                l.failed(now, d);
            }
            // Nothing is due before its back-off.
            assert!(l.take_dials(now, false, 10).is_empty());
            now += MAX_BACKOFF;
        }
        // Listed again by a tracker: back as new.
        assert!(l.add(now, t, PeerSource::Tracker, &mut rng));
        assert!(l.take_dials(now, false, 10).contains(&t));
    }

    #[test]
    fn fresh_listings_go_first_and_failed_ones_last() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut l = list(10);
        l.add(t0, a(1), PeerSource::Tracker, &mut rng);
        l.add(t0, a(2), PeerSource::Tracker, &mut rng);
        let first = l.take_dials(t0, false, 1)[0];
        l.failed(t0, &first);
        let other = if first == a(1) { a(2) } else { a(1) };
        // Re-listing the failed one does not put it ahead of an untried one.
        l.add(t1, first, PeerSource::Tracker, &mut rng);
        l.add(t1, a(3), PeerSource::Tracker, &mut rng);
        let order = l.take_dials(t1 + MAX_BACKOFF, false, 3);
        assert_eq!(order, vec![a(3), other, first]);
    }

    #[test]
    fn bans_and_ourselves_stick() {
        let mut rng = StdRng::seed_from_u64(6);
        let now = Instant::now();
        let mut l = list(10);
        l.add(now, a(1), PeerSource::Tracker, &mut rng);
        l.ban(a(1).ip());
        assert!(!l.add(now, a(1), PeerSource::Manual, &mut rng));
        l.ourselves(a(2));
        assert!(!l.add(now, a(2), PeerSource::Tracker, &mut rng));
        assert_eq!((l.len(), l.banned_count()), (0, 1));
    }
}

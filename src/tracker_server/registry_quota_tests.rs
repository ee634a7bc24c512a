//! The quota and eviction policy (`evict.rs`): one source cannot hold more than its share,
//! a full table displaces the heaviest source's oldest entry, shared swarms are never
//! dropped, `downloaded` cannot be inflated, and the bookkeeping stays exact under any
//! sequence of announces (property test).

use super::*;
use proptest::prelude::*;

fn src_addr(s: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, s], port))
}

fn ann_from(h: u8, s: u8, n: u32, left: u64, event: Event) -> Announce {
    let mut a = ann(h, n, src_addr(s, 1000 + (n % 60_000) as u16), left, event);
    a.peer_id = pid(u32::from(s) << 24 | n);
    a
}

fn small() -> Limits {
    Limits {
        max_swarms: 50,
        max_peers_per_swarm: 1_000,
        max_peers: 100,
        max_peers_per_source: 10,
        max_swarms_per_source: 5,
        ..Limits::default()
    }
}

fn ip(s: u8) -> IpAddr {
    src_addr(s, 1).ip()
}

#[test]
fn one_source_cannot_fill_the_tracker_and_honest_peers_meet() {
    let mut r = Registry::with_seed(IV, small(), 3);
    let t = Instant::now();
    for n in 0..5_000u32 {
        // Every announce is stored (OK) — by replacing the attacker's own oldest entries.
        r.announce(&ann_from((n % 200) as u8, 1, n, 1, Event::Started), t)
            .unwrap();
        assert!(r.source_peers(ip(1)) <= 10);
        assert!(r.source_swarms(ip(1)) <= 5);
    }
    assert_eq!(r.source_swarms(ip(1)), 5);
    r.announce(&ann_from(250, 2, 1, 1, Event::Started), t)
        .unwrap();
    let b = r
        .announce(&ann_from(250, 3, 1, 0, Event::Started), t)
        .unwrap();
    assert_eq!(b.peers.len(), 1, "the honest peers meet");
    assert_eq!(b.peers[0].addr.ip(), ip(2));
    invariants(&r);
}

#[test]
fn full_tracker_takes_the_heaviest_sources_oldest_peer() {
    let limits = Limits {
        max_peers: 25,
        ..small()
    };
    let mut r = Registry::with_seed(IV, limits, 3);
    let t = Instant::now();
    // Source 1: 10 peers in swarms 0..10 (oldest in swarm 0); sources 2 and 3: 5 and 10.
    for n in 0..10 {
        r.announce(&ann_from(n as u8 % 5, 1, n, 1, Event::None), t)
            .unwrap();
    }
    for n in 0..5 {
        r.announce(&ann_from(n as u8 % 5, 2, n, 1, Event::None), t)
            .unwrap();
    }
    for n in 0..10 {
        r.announce(&ann_from(n as u8 % 5, 3, n, 1, Event::None), t)
            .unwrap();
    }
    assert_eq!(r.peer_count(), 25);
    // A newcomer displaces one peer of a heaviest source (1 or 3), never source 2.
    r.announce(&ann_from(40, 4, 0, 1, Event::None), t).unwrap();
    assert_eq!(r.peer_count(), 25);
    assert_eq!(r.source_peers(ip(2)), 5);
    assert_eq!(r.source_peers(ip(1)) + r.source_peers(ip(3)), 19);
    // Its oldest: the one it stored first (in swarm 0, with peer number 0).
    let heavy = if r.source_peers(ip(1)) == 9 { 1 } else { 3 };
    let gone = ann_from(0, heavy, 0, 1, Event::None);
    let key = PeerKey {
        peer_id: gone.peer_id,
        addr: gone.addr,
    };
    assert!(r.swarms.get(&ih(0)).unwrap().get(&key).is_none());
    invariants(&r);
}

#[test]
fn swarm_cap_drops_the_heaviest_creators_oldest_unshared_swarm() {
    let limits = Limits {
        max_swarms: 10,
        max_swarms_per_source: 100,
        max_peers_per_source: 100,
        ..small()
    };
    let mut r = Registry::with_seed(IV, limits, 3);
    let t = Instant::now();
    for h in 0..10 {
        r.announce(&ann_from(h, 1, u32::from(h), 1, Event::None), t)
            .unwrap();
    }
    // Someone else joins swarm 0: it is shared now and must survive.
    r.announce(&ann_from(0, 2, 0, 1, Event::None), t).unwrap();
    r.announce(&ann_from(100, 3, 0, 1, Event::None), t).unwrap();
    assert_eq!(r.swarm_count(), 10);
    assert_eq!(r.scrape(&[ih(0)])[0].incomplete, 2, "shared swarm kept");
    assert_eq!(
        r.scrape(&[ih(1)])[0],
        ScrapeCounts::default(),
        "oldest unshared gone"
    );
    assert_eq!(r.scrape(&[ih(100)])[0].incomplete, 1);
    invariants(&r);
}

#[test]
fn a_source_at_its_swarm_quota_replaces_its_own_oldest() {
    let mut r = Registry::with_seed(IV, small(), 3);
    let t = Instant::now();
    for h in 0..8 {
        r.announce(&ann_from(h, 1, u32::from(h), 1, Event::None), t)
            .unwrap();
    }
    assert_eq!(r.source_swarms(ip(1)), 5);
    let live: Vec<u8> = (0..8)
        .filter(|&h| r.scrape(&[ih(h)])[0].incomplete > 0)
        .collect();
    assert_eq!(live, vec![3, 4, 5, 6, 7]);
    invariants(&r);
}

#[test]
fn full_swarm_takes_from_the_source_holding_most_of_it() {
    let limits = Limits {
        max_peers_per_swarm: 10,
        max_peers_per_source: 100,
        ..small()
    };
    let mut r = Registry::with_seed(IV, limits, 3);
    let t = Instant::now();
    for n in 0..10 {
        r.announce(&ann_from(1, 1, n, 1, Event::None), t).unwrap();
    }
    let b = r.announce(&ann_from(1, 2, 0, 1, Event::None), t).unwrap();
    assert_eq!(b.incomplete, 10);
    assert_eq!((r.source_peers(ip(1)), r.source_peers(ip(2))), (9, 1));
    // The attacker's next peer replaces its own oldest, not the honest one.
    for n in 10..30 {
        r.announce(&ann_from(1, 1, n, 1, Event::None), t).unwrap();
    }
    assert_eq!((r.source_peers(ip(1)), r.source_peers(ip(2))), (9, 1));
    invariants(&r);
}

#[test]
fn zero_caps_answer_not_stored_instead_of_ok() {
    let limits = Limits {
        max_peers_per_source: 0,
        ..small()
    };
    let mut r = Registry::with_seed(IV, limits, 3);
    let t = Instant::now();
    assert_eq!(
        r.announce(&ann_from(1, 1, 1, 1, Event::None), t),
        Err(RegistryError::NotStored)
    );
    assert_eq!((r.swarm_count(), r.source_count()), (0, 0));
}

#[test]
fn downloaded_counts_once_per_stored_leecher() {
    let mut r = reg();
    let t = Instant::now();
    // Completed/stopped pairs under fresh ids: never stored as leechers, never counted.
    for n in 0..100 {
        r.announce(&ann_from(1, 1, n, 0, Event::Completed), t)
            .unwrap();
        r.announce(&ann_from(1, 1, n, 0, Event::Stopped), t)
            .unwrap();
    }
    assert_eq!(r.scrape(&[ih(1)])[0].downloaded, 0);
    // A stored leecher completing counts once, however often it repeats it, even after
    // going back to leeching.
    r.announce(&ann_from(1, 2, 1, 5, Event::Started), t)
        .unwrap();
    for left in [0, 0, 5, 0] {
        r.announce(&ann_from(1, 2, 1, left, Event::Completed), t)
            .unwrap();
    }
    assert_eq!(r.scrape(&[ih(1)])[0].downloaded, 1);
    // A seed that never leeched here: not a download.
    r.announce(&ann_from(1, 3, 1, 0, Event::Started), t)
        .unwrap();
    r.announce(&ann_from(1, 3, 1, 0, Event::Completed), t)
        .unwrap();
    assert_eq!(r.scrape(&[ih(1)])[0].downloaded, 1);
}

#[test]
fn expiry_frees_quota_and_forgets_sources() {
    let mut r = Registry::with_seed(IV, small(), 3);
    let t0 = Instant::now();
    for n in 0..10 {
        r.announce(&ann_from(n as u8, 1, n, 1, Event::None), t0)
            .unwrap();
    }
    let late = t0 + r.peer_timeout() + Duration::from_secs(1);
    r.sweep(late, 1_000);
    assert_eq!((r.peer_count(), r.swarm_count()), (0, 0));
    assert_eq!(r.source_count(), 0, "nothing left of the source");
    invariants(&r);
}

/// Bookkeeping matches the tables, and every cap holds.
fn invariants(r: &Registry) {
    use std::collections::HashMap;
    let l = &r.limits;
    let mut peers: HashMap<Source, usize> = HashMap::new();
    let mut created: HashMap<Source, usize> = HashMap::new();
    let mut total = 0;
    for (_, w) in &r.swarms.items {
        assert!(w.len() > 0, "no empty swarm is kept");
        assert!(w.len() <= l.max_peers_per_swarm);
        let mut foreign = 0;
        let mut seeders = 0;
        for (k, p) in w.v4.items.iter().chain(&w.v6.items) {
            *peers.entry(k.source()).or_default() += 1;
            foreign += u32::from(k.source() != w.creator);
            seeders += u32::from(p.seed);
        }
        assert_eq!((w.foreign, w.seeders), (foreign, seeders));
        *created.entry(w.creator).or_default() += 1;
        total += w.len();
    }
    assert_eq!(r.peers, total);
    assert!(total <= l.max_peers && r.swarms.len() <= l.max_swarms);
    for (s, n) in &peers {
        assert_eq!(r.sources.peers(*s), *n);
        assert!(*n <= l.max_peers_per_source);
    }
    for (s, n) in &created {
        assert_eq!(r.sources.swarms(*s), *n);
        assert!(*n <= l.max_swarms_per_source);
    }
    assert!(r.sources.len() <= peers.len() + created.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of announces from a few sources, with small caps and time passing:
    /// the bookkeeping stays exact, every cap holds, and an `Ok` non-stop announce means
    /// the announcer is stored.
    #[test]
    fn any_announces_keep_the_books(
        ops in prop::collection::vec((0u8..6, 0u8..4, 0u32..12, 0u64..2, 0u8..4, 0u64..4), 1..300)
    ) {
        let limits = Limits {
            max_swarms: 4,
            max_peers_per_swarm: 5,
            max_peers: 9,
            max_peers_per_source: 4,
            max_swarms_per_source: 2,
            ..Limits::default()
        };
        let mut r = Registry::with_seed(Duration::from_secs(10), limits, 5);
        let t0 = Instant::now();
        let mut now = t0;
        for (h, s, n, left, ev, dt) in ops {
            now += Duration::from_secs(dt * 7);
            let event = [Event::None, Event::Started, Event::Completed, Event::Stopped]
                [usize::from(ev)];
            let a = ann_from(h, s, n, left, event);
            let ok = r.announce(&a, now).is_ok();
            if ok && event != Event::Stopped {
                let key = PeerKey { peer_id: a.peer_id, addr: a.addr };
                prop_assert!(r.swarms.get(&a.info_hash).and_then(|w| w.get(&key)).is_some());
            }
            if dt == 3 {
                r.sweep(now, 5);
            }
            invariants(&r);
        }
    }
}

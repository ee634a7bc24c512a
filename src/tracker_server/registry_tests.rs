use super::*;

const IV: Duration = Duration::from_secs(1800);

fn ih(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

fn pid(n: u32) -> PeerId {
    let mut id = [b'x'; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    PeerId(id)
}

fn v4(n: u32) -> SocketAddr {
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 6881))
}

fn v6(n: u32) -> SocketAddr {
    SocketAddr::from((
        [0x2001, 0xdb8, 0, 0, 0, 0, (n >> 16) as u16, n as u16],
        6881,
    ))
}

fn ann(h: u8, n: u32, addr: SocketAddr, left: u64, event: Event) -> Announce {
    Announce {
        info_hash: ih(h),
        peer_id: pid(n),
        addr,
        left,
        event,
        numwant: None,
        both_families: true,
    }
}

fn reg() -> Registry {
    Registry::with_seed(IV, Limits::default(), 7)
}

#[test]
fn first_announce_sees_nobody_second_sees_first() {
    let mut r = reg();
    let t = Instant::now();
    let a = r
        .announce(&ann(1, 1, v4(1), 100, Event::Started), t)
        .unwrap();
    assert!(a.peers.is_empty() && a.peers6.is_empty());
    assert_eq!((a.complete, a.incomplete), (0, 1));
    assert_eq!(a.interval, IV);
    let b = r.announce(&ann(1, 2, v4(2), 0, Event::Started), t).unwrap();
    assert_eq!(
        b.peers,
        vec![PeerInfo {
            peer_id: pid(1),
            addr: v4(1)
        }]
    );
    assert_eq!((b.complete, b.incomplete), (1, 1));
}

#[test]
fn never_returns_self_and_honours_numwant_cap() {
    let mut r = reg();
    let t = Instant::now();
    for n in 0..500 {
        r.announce(&ann(1, n, v4(n), 1, Event::Started), t).unwrap();
    }
    for _ in 0..20 {
        let a = r.announce(&ann(1, 7, v4(7), 1, Event::None), t).unwrap();
        assert_eq!(a.peers.len(), 50, "default numwant");
        assert!(a.peers.iter().all(|p| p.peer_id != pid(7)));
        let mut addrs: Vec<_> = a.peers.iter().map(|p| p.addr).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 50, "distinct peers");
    }
    let mut big = ann(1, 7, v4(7), 1, Event::None);
    big.numwant = Some(100_000);
    assert_eq!(r.announce(&big, t).unwrap().peers.len(), 200);
    big.numwant = Some(0);
    assert!(r.announce(&big, t).unwrap().peers.is_empty());
    // A small swarm: everyone but us, however many we want.
    let mut r = reg();
    for n in 0..5 {
        r.announce(&ann(2, n, v4(n), 1, Event::None), t).unwrap();
    }
    let a = r.announce(&ann(2, 0, v4(0), 1, Event::None), t).unwrap();
    assert_eq!(a.peers.len(), 4);
}

#[test]
fn same_id_other_address_is_another_peer() {
    let mut r = reg();
    let t = Instant::now();
    r.announce(&ann(1, 1, v4(1), 1, Event::None), t).unwrap();
    let a = r.announce(&ann(1, 1, v4(2), 1, Event::None), t).unwrap();
    assert_eq!(a.peers.len(), 1);
    assert_eq!(r.peer_count(), 2);
}

#[test]
fn families_are_separate() {
    let mut r = reg();
    let t = Instant::now();
    r.announce(&ann(1, 1, v4(1), 1, Event::None), t).unwrap();
    r.announce(&ann(1, 2, v6(2), 1, Event::None), t).unwrap();
    let a = r.announce(&ann(1, 3, v6(3), 1, Event::None), t).unwrap();
    assert_eq!(a.peers.len(), 1);
    assert_eq!(a.peers6.len(), 1);
    assert_eq!(a.peers6[0].addr, v6(2));
    let mut only = ann(1, 4, v4(4), 1, Event::None);
    only.both_families = false;
    let a = r.announce(&only, t).unwrap();
    assert_eq!(a.peers.len(), 1, "the other v4 peer, never v6 ones");
    assert!(a.peers6.is_empty());
    assert_eq!(a.incomplete, 4);
}

#[test]
fn mapped_addresses_are_canonical() {
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:6881".parse().unwrap();
    assert_eq!(canonical(mapped), v4(1).to_string().parse().unwrap());
    assert_eq!(canonical(v6(1)), v6(1));
}

#[test]
fn stopped_removes_and_empty_swarm_goes() {
    let mut r = reg();
    let t = Instant::now();
    r.announce(&ann(1, 1, v4(1), 1, Event::Started), t).unwrap();
    r.announce(&ann(1, 2, v4(2), 0, Event::Started), t).unwrap();
    let s = r.announce(&ann(1, 2, v4(2), 0, Event::Stopped), t).unwrap();
    assert_eq!((s.complete, s.incomplete), (0, 1));
    assert!(s.peers.is_empty());
    let a = r.announce(&ann(1, 3, v4(3), 1, Event::None), t).unwrap();
    assert_eq!(a.peers.len(), 1);
    assert_eq!(a.peers[0].peer_id, pid(1));
    r.announce(&ann(1, 1, v4(1), 1, Event::Stopped), t).unwrap();
    r.announce(&ann(1, 3, v4(3), 1, Event::Stopped), t).unwrap();
    assert_eq!((r.swarm_count(), r.peer_count()), (0, 0));
    // Stopping in an unknown swarm creates nothing.
    r.announce(&ann(9, 1, v4(1), 1, Event::Stopped), t).unwrap();
    assert_eq!(r.swarm_count(), 0);
}

#[test]
fn scrape_counts_and_downloaded() {
    let mut r = reg();
    let t = Instant::now();
    r.announce(&ann(1, 1, v4(1), 10, Event::Started), t)
        .unwrap();
    r.announce(&ann(1, 2, v4(2), 10, Event::Started), t)
        .unwrap();
    r.announce(&ann(1, 3, v6(3), 0, Event::Started), t).unwrap();
    r.announce(&ann(1, 1, v4(1), 0, Event::Completed), t)
        .unwrap();
    // A repeated `completed` from a peer already seeding is not counted twice.
    r.announce(&ann(1, 1, v4(1), 0, Event::Completed), t)
        .unwrap();
    let s = r.scrape(&[ih(1), ih(2)]);
    assert_eq!(
        s[0],
        ScrapeCounts {
            complete: 2,
            downloaded: 1,
            incomplete: 1
        }
    );
    assert_eq!(s[1], ScrapeCounts::default());
    // A seed going back to leeching (data deleted) is a leecher again.
    r.announce(&ann(1, 3, v6(3), 5, Event::None), t).unwrap();
    assert_eq!(r.scrape(&[ih(1)])[0].complete, 1);
}

#[test]
fn peers_expire_after_two_intervals() {
    let mut r = reg();
    let t0 = Instant::now();
    r.announce(&ann(1, 1, v4(1), 1, Event::Started), t0)
        .unwrap();
    r.announce(&ann(2, 1, v4(1), 1, Event::Started), t0)
        .unwrap();
    let t1 = t0 + IV;
    r.announce(&ann(1, 2, v4(2), 1, Event::Started), t1)
        .unwrap();
    // Within the timeout: still handed out.
    let a = r.announce(&ann(1, 3, v4(3), 1, Event::None), t1).unwrap();
    assert_eq!(a.peers.len(), 2);
    // Past it: never handed out, even before any sweep reaches it.
    let t2 = t0 + r.peer_timeout() + Duration::from_secs(1);
    let a = r.announce(&ann(1, 3, v4(3), 1, Event::None), t2).unwrap();
    assert_eq!(a.peers.len(), 1);
    assert_eq!(a.peers[0].peer_id, pid(2));
    // A sweep removes the stale peer, and swarm 2 with it.
    r.sweep(t2, 100);
    assert_eq!(r.swarm_count(), 1);
    assert_eq!(r.peer_count(), 2);
    assert_eq!(r.scrape(&[ih(1)])[0].incomplete, 2);
}

#[test]
fn sweep_is_bounded_and_resumes() {
    let mut r = reg();
    let t0 = Instant::now();
    for h in 0..10 {
        for n in 0..10 {
            r.announce(&ann(h, n, v4(n), 1, Event::None), t0).unwrap();
        }
    }
    let late = t0 + r.peer_timeout() + Duration::from_secs(1);
    let mut total = 0;
    for _ in 0..100 {
        let removed = r.sweep(late, 7);
        assert!(removed <= 7);
        total += removed;
        if r.peer_count() == 0 {
            break;
        }
    }
    assert_eq!(total, 100);
    assert_eq!(r.swarm_count(), 0);
    assert_eq!(r.sweep(late, 10), 0);
}

#[test]
fn caps_hold() {
    let limits = Limits {
        max_swarms: 3,
        max_peers_per_swarm: 5,
        max_peers: 12,
        ..Limits::default()
    };
    let mut r = Registry::with_seed(IV, limits, 1);
    let t = Instant::now();
    for n in 0..20 {
        let a = r.announce(&ann(1, n, v4(n), 1, Event::None), t).unwrap();
        assert!(a.incomplete <= 5);
    }
    assert_eq!(r.peer_count(), 5);
    // Twenty sources of one peer each: the newest five are stored (first come, first
    // replaced), and each announcer was stored when told OK.
    let a = r.announce(&ann(1, 99, v4(99), 1, Event::None), t).unwrap();
    assert_eq!(a.peers.len(), 4);
    assert!(a.peers.iter().all(|p| p.peer_id.0[3] >= 16));
    for n in 0..20 {
        r.announce(&ann(2, n, v4(n), 1, Event::None), t).unwrap();
        r.announce(&ann(3, n, v4(n), 1, Event::None), t).unwrap();
    }
    assert_eq!(r.peer_count(), 12, "global cap");
    // Every swarm is shared by many sources: none may be dropped for a new one.
    assert_eq!(
        r.announce(&ann(4, 1, v4(1), 1, Event::None), t),
        Err(RegistryError::TooManySwarms)
    );
    assert_eq!(r.swarm_count(), 3);
    assert_eq!(r.peer_count(), 12);
}

#[test]
fn full_tracker_creates_no_empty_swarm() {
    let limits = Limits {
        max_peers: 1,
        ..Limits::default()
    };
    let mut r = Registry::with_seed(IV, limits, 1);
    let t = Instant::now();
    r.announce(&ann(1, 1, v4(1), 1, Event::None), t).unwrap();
    r.announce(&ann(2, 1, v4(1), 1, Event::None), t).unwrap();
    assert_eq!(r.swarm_count(), 1);
}

#[path = "registry_quota_tests.rs"]
mod quota;

//! PEX policy on a virtual clock: diffing, caps, cadence, privacy, flood limits.

use super::*;

fn a(i: u32) -> SocketAddr {
    // Public-looking addresses (TEST-NET-3 is not "local"), distinct per i.
    SocketAddr::new(IpAddr::from([203, 0, (i >> 8) as u8, i as u8]), 6881)
}

fn seed() -> PexFlags {
    PexFlags {
        seed: true,
        connectable: true,
        ..PexFlags::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn public() -> Pex<u64> {
    Pex::new(PexConfig::default(), false)
}

fn drain(p: &mut Pex<u64>, now: Instant) -> Vec<(u64, PexMessage)> {
    std::iter::from_fn(|| p.poll_send(now)).collect()
}

#[test]
fn flags_round_trip_through_the_added_f_byte() {
    for bits in 0..=u8::MAX {
        let f = PexFlags::from_bits(bits);
        assert_eq!(f.to_bits(), bits & 0x17, "bits {bits:#x}");
        assert_eq!(PexFlags::from_bits(f.to_bits()), f);
    }
    assert_eq!(seed().to_bits(), 0x12);
}

#[test]
fn first_message_lists_live_peers_but_not_the_recipient() {
    let t0 = Instant::now();
    let mut p = public();
    p.connected(a(1), seed());
    p.connected(a(2), PexFlags::default());
    p.open(t0, 7, a(1));
    assert_eq!(p.next_deadline(), Some(t0));
    let msgs = drain(&mut p, t0);
    assert_eq!(
        msgs,
        vec![(
            7,
            PexMessage {
                added: vec![(a(2), PexFlags::default())],
                dropped: vec![]
            }
        )]
    );
    // Told everything: idle until the live set changes.
    assert_eq!(p.next_deadline(), None);
    assert!(drain(&mut p, t0 + secs(600)).is_empty());
}

#[test]
fn diff_sends_added_and_dropped_since_last_message() {
    let t0 = Instant::now();
    let mut p = public();
    p.open(t0, 1, a(100));
    p.connected(a(1), seed());
    p.connected(a(2), seed());
    assert_eq!(drain(&mut p, t0)[0].1.added.len(), 2);

    p.disconnected(a(1));
    p.connected(a(3), seed());
    // Connected and gone again before the next message: never mentioned.
    p.connected(a(4), seed());
    p.disconnected(a(4));
    assert_eq!(p.next_deadline(), Some(t0 + secs(60)));
    let msgs = drain(&mut p, t0 + secs(60));
    assert_eq!(
        msgs,
        vec![(
            1,
            PexMessage {
                added: vec![(a(3), seed())],
                dropped: vec![a(1)]
            }
        )]
    );
}

#[test]
fn at_most_one_message_a_minute_per_peer() {
    let t0 = Instant::now();
    let mut p = public();
    p.open(t0, 1, a(100));
    p.connected(a(1), seed());
    assert_eq!(drain(&mut p, t0).len(), 1);
    p.connected(a(2), seed());
    for s in [1, 30, 59] {
        assert!(drain(&mut p, t0 + secs(s)).is_empty(), "at {s} s");
    }
    let msgs = drain(&mut p, t0 + secs(60));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].1.added, vec![(a(2), seed())]);
}

#[test]
fn added_is_capped_at_fifty_and_the_rest_follows_a_minute_later() {
    let t0 = Instant::now();
    let mut p = public();
    for i in 0..120 {
        p.connected(a(i), seed());
    }
    p.open(t0, 1, a(1000));
    let mut told = BTreeSet::new();
    for (k, at) in [(50, 0), (50, 60), (20, 120)] {
        let msgs = drain(&mut p, t0 + secs(at));
        assert_eq!(msgs.len(), 1, "at {at} s");
        assert_eq!(msgs[0].1.added.len(), k, "at {at} s");
        told.extend(msgs[0].1.added.iter().map(|(x, _)| *x));
    }
    assert_eq!(told.len(), 120);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn dropped_is_capped_at_fifty() {
    let t0 = Instant::now();
    let mut p = public();
    for i in 0..80 {
        p.connected(a(i), seed());
    }
    p.open(t0, 1, a(1000));
    drain(&mut p, t0);
    drain(&mut p, t0 + secs(60));
    for i in 0..80 {
        p.disconnected(a(i));
    }
    let m1 = drain(&mut p, t0 + secs(120));
    assert_eq!(m1[0].1.dropped.len(), 50);
    let m2 = drain(&mut p, t0 + secs(180));
    assert_eq!(m2[0].1.dropped.len(), 30);
    assert!(m2[0].1.added.is_empty());
}

#[test]
fn each_peer_has_its_own_view_and_clock() {
    let t0 = Instant::now();
    let mut p = public();
    p.connected(a(1), seed());
    p.open(t0, 1, a(100));
    assert_eq!(drain(&mut p, t0).len(), 1);
    p.connected(a(2), seed());
    p.open(t0 + secs(10), 2, a(200));
    let msgs = drain(&mut p, t0 + secs(10));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, 2);
    assert_eq!(msgs[0].1.added.len(), 2);
    let msgs = drain(&mut p, t0 + secs(60));
    assert_eq!(
        msgs,
        vec![(
            1,
            PexMessage {
                added: vec![(a(2), seed())],
                dropped: vec![]
            }
        )]
    );
    p.close(1);
    p.connected(a(3), seed());
    let msgs = drain(&mut p, t0 + secs(200));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, 2);
}

#[test]
fn unusable_addresses_never_enter_the_live_set() {
    let t0 = Instant::now();
    let mut p = public();
    for s in [
        "0.0.0.0:6881",
        "203.0.113.1:0",
        "239.1.1.1:6881",
        "255.255.255.255:1",
    ] {
        p.connected(s.parse().unwrap(), seed());
    }
    p.open(t0, 1, a(100));
    assert!(drain(&mut p, t0).is_empty());
}

#[test]
fn private_torrent_is_silent_both_ways() {
    let t0 = Instant::now();
    let mut p: Pex<u64> = Pex::new(PexConfig::default(), true);
    assert!(p.is_private());
    p.connected(a(1), seed());
    p.open(t0, 1, a(100));
    assert_eq!(p.next_deadline(), None);
    assert!(drain(&mut p, t0 + secs(3600)).is_empty());
    assert_eq!(
        p.receive(t0, 1, a(100), [(a(5), seed())]),
        Err(PexRefused::Private)
    );
}

#[test]
fn receive_filters_unusable_and_duplicate_addresses() {
    let t0 = Instant::now();
    let mut p = public();
    p.open(t0, 1, a(100));
    let bad = [
        "0.0.0.0:6881",
        "203.0.113.9:0",
        "224.0.0.1:6881",
        "255.255.255.255:6881",
        "[::]:6881",
        "[ff02::1]:6881",
        "240.0.0.1:6881",
    ];
    let mut input: Vec<_> = bad.iter().map(|s| (s.parse().unwrap(), seed())).collect();
    input.push((a(5), seed()));
    input.push((a(5), PexFlags::default()));
    input.push((a(100), seed())); // the sender itself
    input.push(("[2001:db8::1]:51413".parse().unwrap(), seed()));
    let got = p.receive(t0, 1, a(100), input).unwrap();
    let addrs: Vec<_> = got.iter().map(|(x, _)| x.to_string()).collect();
    assert_eq!(addrs, ["203.0.0.5:6881", "[2001:db8::1]:51413"]);
}

#[test]
fn local_addresses_only_from_a_local_peer() {
    let t0 = Instant::now();
    let mut p = public();
    let lan: Vec<(SocketAddr, PexFlags)> = ["192.168.1.5:6881", "127.0.0.1:7000", "[fe80::1]:6881"]
        .iter()
        .map(|s| (s.parse().unwrap(), seed()))
        .collect();
    p.open(t0, 1, a(100));
    assert!(p.receive(t0, 1, a(100), lan.clone()).unwrap().is_empty());
    let local_peer: SocketAddr = "192.168.1.2:6881".parse().unwrap();
    p.open(t0, 2, local_peer);
    assert_eq!(p.receive(t0, 2, local_peer, lan).unwrap().len(), 3);
}

#[test]
fn flood_of_messages_is_ignored_until_the_interval_passes() {
    let t0 = Instant::now();
    let mut p = public();
    p.open(t0, 1, a(100));
    assert_eq!(p.receive(t0, 1, a(100), [(a(1), seed())]).unwrap().len(), 1);
    for s in [0, 1, 10, 44] {
        assert_eq!(
            p.receive(t0 + secs(s), 1, a(100), [(a(2), seed())]),
            Err(PexRefused::TooFrequent),
            "at {s} s"
        );
    }
    // Refused messages do not move the window: "just under a minute" is tolerated.
    assert_eq!(
        p.receive(t0 + secs(50), 1, a(100), [(a(2), seed())])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        p.receive(t0 + secs(60), 1, a(200), [(a(3), seed())]),
        Err(PexRefused::TooFrequent)
    );
    assert_eq!(
        p.receive(t0, 9, a(100), [(a(3), seed())]),
        Err(PexRefused::NotOpen)
    );
}

#[test]
fn flood_of_addresses_is_capped_per_message_and_per_period() {
    let t0 = Instant::now();
    let mut p = public();
    p.open(t0, 1, a(60000));
    let many = |base: u32| {
        (base..base + 1000)
            .map(|i| (a(i), seed()))
            .collect::<Vec<_>>()
    };
    assert_eq!(p.receive(t0, 1, a(60000), many(0)).unwrap().len(), 100);
    assert_eq!(
        p.receive(t0 + secs(60), 1, a(60000), many(1000))
            .unwrap()
            .len(),
        100
    );
    // The period's 200 are used up.
    assert!(p
        .receive(t0 + secs(120), 1, a(60000), many(2000))
        .unwrap()
        .is_empty());
    assert!(p
        .receive(t0 + secs(599), 1, a(60000), many(3000))
        .unwrap()
        .is_empty());
    // A new period.
    assert_eq!(
        p.receive(t0 + secs(660), 1, a(60000), many(4000))
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn local_ranges() {
    for s in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(is_local(s.parse().unwrap()), "{s}");
    }
    for s in ["203.0.113.1", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"] {
        assert!(!is_local(s.parse().unwrap()), "{s}");
    }
}

#[test]
fn reconnecting_does_not_renew_the_accept_budget() {
    let t0 = Instant::now();
    let mut p = public();
    let many = |base: u32| {
        (base..base + 1000)
            .map(|i| (a(i), seed()))
            .collect::<Vec<_>>()
    };
    let sender = a(60000);
    let same_ip_other_port = SocketAddr::new(sender.ip(), 7000);
    p.open(t0, 1, sender);
    assert_eq!(p.receive(t0, 1, sender, many(0)).unwrap().len(), 100);
    p.close(1);
    // A new connection from the same address: its first message is taken (it is the
    // full list an honest peer sends), but only within what the period has left.
    p.open(t0 + secs(1), 2, same_ip_other_port);
    let got = p.receive(t0 + secs(1), 2, same_ip_other_port, many(1000));
    assert_eq!(got.unwrap().len(), 100);
    p.close(2);
    p.open(t0 + secs(2), 3, sender);
    assert!(p
        .receive(t0 + secs(2), 3, sender, many(2000))
        .unwrap()
        .is_empty());
    p.close(3);
    // Another address is not affected, and a new period gives the full budget back.
    p.open(t0 + secs(3), 4, a(60001));
    assert_eq!(
        p.receive(t0 + secs(3), 4, a(60001), many(3000))
            .unwrap()
            .len(),
        100
    );
    p.open(t0 + secs(700), 5, sender);
    assert_eq!(
        p.receive(t0 + secs(700), 5, sender, many(4000))
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn departed_budgets_are_bounded() {
    let t0 = Instant::now();
    let mut p = public();
    for i in 0..(MAX_DEPARTED as u32 + 500) {
        let from = SocketAddr::new(IpAddr::from([198, 18, (i >> 8) as u8, i as u8]), 6881);
        let now = t0 + Duration::from_millis(u64::from(i));
        p.open(now, u64::from(i), from);
        let got = p.receive(now, u64::from(i), from, [(a(i), seed())]);
        assert_eq!(got.unwrap().len(), 1);
        p.close(u64::from(i));
        assert!(p.departed.len() <= MAX_DEPARTED);
    }
    assert_eq!(p.departed.len(), MAX_DEPARTED);
    assert!(p.peers.is_empty());
}

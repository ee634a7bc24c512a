//! One test per choker rule, on hand-made candidates and a hand-moved clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

const MIB: u64 = 1 << 20;

fn cfg(slots: usize) -> ChokerConfig {
    ChokerConfig {
        slots,
        optimistic_rechokes: 3,
        newcomer_age: Duration::from_secs(60),
        newcomer_weight: 3,
        seed_quota: 4 * MIB,
        seed_turn: Duration::from_secs(30),
        idle_turn: Duration::from_secs(10),
    }
}

/// An interested, choked peer connected at `t0` that sends us `down` bytes/s.
fn cand(key: PeerKey, down: f64, t0: Instant) -> Candidate {
    Candidate {
        key,
        interested: true,
        unchoked: false,
        down_rate: down,
        up_rate: 0.0,
        connected_at: t0,
        unchoked_at: None,
        sent_this_turn: 0,
        snubbed: false,
        silent: false,
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(1)
}

/// Apply a decision: the listed peers become unchoked (stamped `now`), the others choked.
fn apply(cands: &mut [Candidate], unchoke: &[PeerKey], now: Instant) {
    for c in cands.iter_mut() {
        let want = unchoke.contains(&c.key);
        if want && !c.unchoked {
            c.unchoked_at = Some(now);
            c.sent_this_turn = 0;
        }
        c.unchoked = want;
    }
}

#[test]
fn slot_count_is_honoured_regular_plus_one_optimistic() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(3));
    let cands: Vec<Candidate> = (1..=10).map(|k| cand(k, k as f64, t0)).collect();
    let u = ch.rechoke(t0, &cands, false, &mut rng());
    assert_eq!(u.len(), 4, "3 regular + 1 optimistic: {u:?}");
    // Nobody interested: nobody unchoked, no optimistic.
    let bored: Vec<Candidate> = (1..=5)
        .map(|k| Candidate {
            interested: false,
            ..cand(k, 100.0, t0)
        })
        .collect();
    let mut ch = Choker::new(cfg(3));
    assert!(ch.rechoke(t0, &bored, false, &mut rng()).is_empty());
    assert_eq!(ch.optimistic(), None);
    // Fewer interested peers than slots: all of them, no more.
    let few: Vec<Candidate> = (1..=2).map(|k| cand(k, 0.0, t0)).collect();
    let mut u = ch.rechoke(t0, &few, false, &mut rng());
    u.sort();
    assert_eq!(u, vec![1, 2]);
}

#[test]
fn fastest_uploaders_win_the_regular_slots() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(3));
    let mut cands: Vec<Candidate> = (1..=8).map(|k| cand(k, 0.0, t0)).collect();
    cands[6].down_rate = 900.0; // key 7
    cands[2].down_rate = 800.0; // key 3
    cands[4].down_rate = 700.0; // key 5
    cands[0].down_rate = 10.0; // key 1
    let u = ch.rechoke(t0, &cands, false, &mut rng());
    assert_eq!(&u[..3], &[7, 3, 5]);
    // Not interested peers get nothing however fast they are.
    cands[6].interested = false;
    let u = ch.rechoke(t0, &cands, false, &mut rng());
    assert_eq!(&u[..3], &[3, 5, 1]);
    assert!(!u.contains(&7));
}

#[test]
fn optimistic_rotates_every_third_rechoke_and_favours_newcomers() {
    let t0 = Instant::now();
    let start = t0 + Duration::from_secs(3600);
    let mut ch = Choker::new(cfg(1));
    let mut r = rng();
    // Key 1 holds the regular slot; 2..=9 are old peers; 10 connected just now.
    let mut cands: Vec<Candidate> = (1..=9).map(|k| cand(k, 0.0, t0)).collect();
    cands[0].down_rate = 1000.0;
    cands.push(cand(10, 0.0, start));
    let mut now = start;
    let mut picks = Vec::new();
    for round in 0..9 {
        let u = ch.rechoke(now, &cands, false, &mut r);
        assert_eq!(u[0], 1);
        assert_eq!(u.len(), 2);
        let opt = ch.optimistic().unwrap();
        assert_eq!(u[1], opt);
        if round % 3 == 0 {
            picks.push(opt);
        } else {
            assert_eq!(opt, *picks.last().unwrap(), "kept for 3 rechokes");
        }
        apply(&mut cands, &u, now);
        now += Duration::from_secs(10);
    }
    // Consecutive picks differ: it rotates.
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");

    // Over many independent picks a newcomer (weight 3 of 11) wins ~27 %, an old peer
    // (weight 1 of 11) ~9 %.
    let mut wins: BTreeMap<PeerKey, u32> = BTreeMap::new();
    for seed in 0..3000 {
        let mut ch = Choker::new(cfg(1));
        ch.rechoke(start, &cands, false, &mut StdRng::seed_from_u64(seed));
        *wins.entry(ch.optimistic().unwrap()).or_default() += 1;
    }
    let newcomer = wins[&10];
    let old_avg = (2..=9).map(|k| wins[&k]).sum::<u32>() / 8;
    assert!(
        newcomer > 2 * old_avg && (700..1000).contains(&newcomer),
        "{wins:?}"
    );
    assert!(
        !wins.contains_key(&1),
        "the regular peer is never optimistic"
    );
}

#[test]
fn optimistic_that_earns_a_regular_slot_is_replaced() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(1));
    let mut r = rng();
    let mut cands: Vec<Candidate> = (1..=4).map(|k| cand(k, 0.0, t0)).collect();
    cands[0].down_rate = 100.0;
    let u = ch.rechoke(t0, &cands, false, &mut r);
    let opt = ch.optimistic().unwrap();
    apply(&mut cands, &u, t0);
    // The optimistic peer turns out to be the fastest: it takes the regular slot and
    // someone else becomes optimistic at once.
    cands.iter_mut().find(|c| c.key == opt).unwrap().down_rate = 500.0;
    let u = ch.rechoke(t0 + Duration::from_secs(10), &cands, false, &mut r);
    assert_eq!(u[0], opt);
    assert_ne!(ch.optimistic(), Some(opt));
    assert_eq!(u.len(), 2);
}

#[test]
fn snubbed_peers_lose_their_regular_slot() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(2));
    let mut cands: Vec<Candidate> = (1..=4).map(|k| cand(k, 0.0, t0)).collect();
    cands[0].down_rate = 1000.0;
    cands[1].down_rate = 900.0;
    cands[2].down_rate = 10.0;
    let u = ch.rechoke(t0, &cands, false, &mut rng());
    assert_eq!(&u[..2], &[1, 2]);
    apply(&mut cands, &u, t0);
    // Peer 1 stops sending while it has us unchoked: snubbed, even though its smoothed
    // rate still looks good.
    cands[0].snubbed = true;
    let u = ch.rechoke(t0 + Duration::from_secs(10), &cands, false, &mut rng());
    assert_eq!(&u[..2], &[2, 3]);
    // Nor does it get a free slot between rechokes.
    apply(&mut cands, &[2, 3], t0);
    let mut ch = Choker::new(cfg(3));
    let f = ch.fill_free_slots(t0, &cands, false, &mut rng());
    assert!(f.first() != Some(&1), "{f:?}");
    assert_eq!(f[0], 4);
    // Seeding ignores snubbing (we want nothing from anyone).
    let mut ch = Choker::new(cfg(4));
    assert!(ch.rechoke(t0, &cands, true, &mut rng()).contains(&1));
}

#[test]
fn free_slots_are_filled_between_rechokes() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(2));
    let mut cands: Vec<Candidate> = (1..=3).map(|k| cand(k, 0.0, t0)).collect();
    cands[2].down_rate = 50.0;
    let f = ch.fill_free_slots(t0, &cands, false, &mut rng());
    // Two regular slots (fastest first), then the optimistic one.
    assert_eq!(&f[..2], &[3, 1]);
    assert_eq!(f.len(), 3);
    assert_eq!(ch.optimistic(), Some(2));
    apply(&mut cands, &f, t0);
    // Everything is taken: a newcomer waits for the next rechoke.
    cands.push(cand(4, 0.0, t0));
    assert!(ch.fill_free_slots(t0, &cands, false, &mut rng()).is_empty());
    // A regular peer loses interest: its slot goes to the newcomer at once.
    cands[0].interested = false;
    cands[0].unchoked = false;
    assert_eq!(ch.fill_free_slots(t0, &cands, false, &mut rng()), vec![4]);
}

#[test]
fn seeding_rotates_slots_so_a_fast_leecher_cannot_monopolise() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(2));
    let mut r = rng();
    // Six leechers; key 1 takes everything we can send, the others are slower.
    let mut cands: Vec<Candidate> = (1..=6).map(|k| cand(k, 0.0, t0)).collect();
    let mut now = t0;
    let mut served: BTreeMap<PeerKey, u32> = BTreeMap::new();
    for _ in 0..30 {
        let u = ch.rechoke(now, &cands, true, &mut r);
        assert!(u.len() <= 3);
        apply(&mut cands, &u, now);
        // Ten seconds pass: each unchoked peer takes its share of 10 MiB/s, peer 1 half.
        for c in cands.iter_mut().filter(|c| c.unchoked) {
            let rate = if c.key == 1 { 5 * MIB } else { MIB };
            c.up_rate = rate as f64;
            c.sent_this_turn += 10 * rate;
            *served.entry(c.key).or_default() += 1;
        }
        for c in cands.iter_mut().filter(|c| !c.unchoked) {
            c.up_rate = 0.0;
        }
        now += Duration::from_secs(10);
    }
    // 30 rechokes × 3 slots over 6 peers: a fair share is 15 intervals each. Everyone got
    // a good part of it, and the fast leecher (which "fastest upload" would keep in a
    // slot all 30 times) no more than its share.
    let fair = 30 * 3 / 6;
    assert_eq!(served.len(), 6, "{served:?}");
    assert!(served.values().all(|&n| n >= fair / 2), "{served:?}");
    assert!(served[&1] <= fair + 2, "{served:?}");
}

#[test]
fn seeding_keeps_a_turn_until_quota_or_time_is_used() {
    let t0 = Instant::now();
    let mut ch = Choker::new(cfg(1));
    let mut cands: Vec<Candidate> = (1..=3).map(|k| cand(k, 0.0, t0)).collect();
    cands[1].unchoked = true;
    cands[1].unchoked_at = Some(t0);
    cands[1].sent_this_turn = MIB;
    cands[1].up_rate = 1.0;
    // Mid-turn: peer 2 keeps its regular slot over peers that never had one.
    let u = ch.rechoke(t0 + Duration::from_secs(10), &cands, true, &mut rng());
    assert_eq!(u[0], 2);
    // Quota used: the peer that never had a slot comes first.
    cands[1].sent_this_turn = 4 * MIB;
    let u = ch.rechoke(t0 + Duration::from_secs(10), &cands, true, &mut rng());
    assert_ne!(u[0], 2);
    // Time used (30 s) with little sent: also the end of the turn.
    cands[1].sent_this_turn = 0;
    let u = ch.rechoke(t0 + Duration::from_secs(30), &cands, true, &mut rng());
    assert_ne!(u[0], 2);
    // Among waiting peers, the one unchoked longest ago goes first.
    cands[1].unchoked = false;
    cands[0].unchoked_at = Some(t0 + Duration::from_secs(5));
    cands[2].unchoked_at = Some(t0 + Duration::from_secs(1));
    cands[1].unchoked_at = Some(t0 + Duration::from_secs(20));
    let u = ch.rechoke(t0 + Duration::from_secs(40), &cands, true, &mut rng());
    assert_eq!(u[0], 3);
}

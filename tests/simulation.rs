//! Whole swarms of real engines on a virtual clock (see `sim/mod.rs` for the model).
//! Only correctness facts are asserted; speed figures are printed for information.

mod sim;

use std::time::Duration;

use sim::*;

#[test]
fn one_seed_one_leecher() {
    let sc = one_seed(1, 8 * MIB + 12_345, 256 * KIB as u32, 10 * MIB);
    let r = Sim::new(&sc).run();
    r.assert_all_complete();
    let l = &r.nodes[1];
    assert_eq!(l.stats.downloaded, sc.size, "\n{}", r.table());
    assert_eq!(l.stats.verified_bytes, sc.size);
    assert_eq!(r.nodes[0].stats.uploaded, sc.size, "\n{}", r.table());
    eprintln!(
        "1 seed + 1 leecher, {} bytes at 10 MiB/s: finished at {:?} (ideal {:.3}s)\n{}",
        sc.size,
        l.finished.unwrap(),
        sc.size as f64 / (10 * MIB) as f64,
        r.table()
    );
}

/// Lower bound on the time for every leecher to have the content (Kumar & Ross, "Peer-
/// assisted file distribution", with unlimited download capacity): the seed must send
/// every byte at least once, `size / u_seed`, and the `n` leechers need `n × size` bytes
/// that all uploaders together send at most at `u_seed + Σ u_leechers`.
fn ideal(sc: &Scenario) -> Duration {
    let seed_up: u64 = sc.nodes.iter().filter(|n| n.seed).map(|n| n.upload).sum();
    let total_up: u64 = sc.nodes.iter().map(|n| n.upload).sum();
    let leechers = sc.nodes.iter().filter(|n| !n.seed).count() as f64;
    let size = sc.size as f64;
    Duration::from_secs_f64((size / seed_up as f64).max(leechers * size / total_up as f64))
}

fn swarm_of_20() -> Scenario {
    one_seed(20, 64 * MIB, 256 * KIB as u32, 10 * MIB)
}

#[test]
fn one_seed_twenty_leechers() {
    let sc = swarm_of_20();
    let r = Sim::new(&sc).run();
    r.assert_all_complete();
    let size = sc.size;
    let leech_down: u64 = r.leechers().map(|(_, n)| n.stats.downloaded).sum();
    let ups: u64 = r.nodes.iter().map(|n| n.stats.uploaded).sum();
    let downs: u64 = r.nodes.iter().map(|n| n.stats.downloaded).sum();
    let delivered: u64 = r.nodes.iter().map(|n| n.delivered).sum();
    let wasted: u64 = r.nodes.iter().map(|n| n.stats.wasted).sum();
    for (i, n) in r.leechers() {
        assert_eq!(n.stats.verified_bytes, size, "leecher {i}\n{}", r.table());
    }
    let last = r.leechers().filter_map(|(_, n)| n.finished).max().unwrap();
    let ideal = ideal(&sc);
    eprintln!(
        "1 seed + 20 leechers, 64 MiB, 256 KiB pieces, 10 MiB/s each, 5 ms latency:\n\
         seed uploaded {:.2} × size; last leecher finished at {:.3}s = {:.2} × ideal \
         ({:.3}s = max(size/u_seed, n·size/Σu));\n\
         downloaded {leech_down}, uploaded {ups}, delivered {delivered}, wasted {wasted}, \
         lost in flight {}; {} events\n{}",
        r.nodes[0].stats.uploaded as f64 / size as f64,
        last.as_secs_f64(),
        last.as_secs_f64() / ideal.as_secs_f64(),
        ideal.as_secs_f64(),
        r.lost_in_flight,
        r.events,
        r.table()
    );
    // Every block sent was delivered, or was still in the air at the end, or was lost
    // with its connection.
    assert_eq!(
        ups,
        delivered + r.in_the_air + r.lost_in_flight,
        "\n{}",
        r.table()
    );
    // Each leecher downloaded (took in as requested) exactly one copy...
    assert_eq!(leech_down, 20 * size, "\n{}", r.table());
    // ...and every other delivered byte was counted as wasted (cancelled in endgame, or
    // arriving after a choke voided its request).
    assert_eq!(delivered, downs + wasted, "\n{}", r.table());
}

#[test]
fn same_seed_same_run() {
    let mut sc = one_seed(6, 8 * MIB, 256 * KIB as u32, 4 * MIB);
    sc.seed = 42;
    let a = Sim::new(&sc).run();
    let b = Sim::new(&sc).run();
    a.assert_all_complete();
    assert_eq!(a.end, b.end);
    assert_eq!(a.events, b.events);
    assert_eq!(a.nodes, b.nodes, "\n{}\n{}", a.table(), b.table());
}

#[test]
fn liar_is_banned_and_leecher_completes_from_honest_seed() {
    let upload = 10 * MIB;
    let sc = Scenario {
        size: 16 * MIB,
        piece_len: 256 * KIB as u32,
        latency: Duration::from_millis(5),
        nodes: vec![
            NodeSpec::seed(upload),
            NodeSpec::liar(upload),
            NodeSpec::leecher(upload),
        ],
        time_limit: Duration::from_secs(300),
        seed: 3,
    };
    let r = Sim::new(&sc).run();
    eprintln!("liar scenario:\n{}", r.table());
    r.assert_all_complete();
    let l = &r.nodes[2];
    assert!(l.stats.failed_pieces >= 1, "the liar's pieces must fail");
    assert!(l.stats.peers_banned >= 1, "the liar must be banned");
    assert_eq!(l.stats.verified_bytes, sc.size);
}

#[test]
fn leechers_finish_after_the_seed_leaves() {
    let mut sc = one_seed(10, 32 * MIB, 256 * KIB as u32, 10 * MIB);
    sc.nodes[0].leave_after_upload = Some(sc.size + sc.size / 10);
    sc.seed = 5;
    let r = Sim::new(&sc).run();
    eprintln!("seed leaves at {:?}:\n{}", r.nodes[0].left, r.table());
    assert!(r.nodes[0].left.is_some(), "the seed should have left");
    eprintln!(
        "the seed left at {:.3}s having uploaded {:.2} × size (it waits for a distributed copy)",
        r.nodes[0].left.unwrap().as_secs_f64(),
        r.nodes[0].stats.uploaded as f64 / sc.size as f64
    );
    r.assert_all_complete();
    let left = r.nodes[0].left.unwrap();
    let after = r
        .leechers()
        .filter(|(_, n)| n.finished.unwrap() > left)
        .count();
    assert!(
        after >= 5,
        "only {after} leechers finished after the seed left: the test proves little\n{}",
        r.table()
    );
    for (_, n) in r.leechers() {
        assert_eq!(n.stats.verified_bytes, sc.size);
    }
    let leech_up: u64 = r.leechers().map(|(_, n)| n.stats.uploaded).sum();
    assert!(leech_up > 0, "leechers must upload to each other");
}

/// BEP 16: a super-seed sends little more than one copy however many leechers there are
/// (the `--swarm 8` benchmark target is 1.5×); a plain seed, for comparison, is printed.
#[test]
fn super_seed_sends_about_one_copy() {
    let mut sc = one_seed(8, 32 * MIB, 256 * KIB as u32, 10 * MIB);
    sc.seed = 11;
    let plain = Sim::new(&sc).run();
    plain.assert_all_complete();
    sc.nodes[0].super_seed = true;
    let r = Sim::new(&sc).run();
    r.assert_all_complete();
    let ratio = |r: &Report| r.nodes[0].stats.uploaded as f64 / sc.size as f64;
    let last = |r: &Report| r.leechers().filter_map(|(_, n)| n.finished).max().unwrap();
    eprintln!(
        "1 seed + 8 leechers, 32 MiB, 10 MiB/s each: plain seed uploads {:.2}× (last done {:.2}s), \
         super-seed {:.2}× (last done {:.2}s); ideal {:.2}s\n{}",
        ratio(&plain),
        last(&plain).as_secs_f64(),
        ratio(&r),
        last(&r).as_secs_f64(),
        ideal(&sc).as_secs_f64(),
        r.table()
    );
    for (_, n) in r.leechers() {
        assert_eq!(n.stats.verified_bytes, sc.size);
    }
    assert!(
        ratio(&r) <= 1.5,
        "super-seed uploaded {:.2}×\n{}",
        ratio(&r),
        r.table()
    );
}

/// The buffer (pieces in progress, and the store's budget) grows when it holds back a
/// download from far peers, and stays at its floor when the peers are near: one leecher,
/// three seeds of 20 MiB/s each, 50 ms and 1 ms one way.
#[test]
fn buffer_grows_for_far_peers_only() {
    let floor = swarm::config::TorrentConfig::default().max_buffer as u64;
    let run = |latency_ms: u64| {
        let mut sc = one_seed(1, 128 * MIB, 256 * KIB as u32, 20 * MIB);
        sc.latency = Duration::from_millis(latency_ms);
        sc.nodes.push(NodeSpec::seed(20 * MIB));
        sc.nodes.push(NodeSpec::seed(20 * MIB));
        sc.seed = 9;
        let r = Sim::new(&sc).run();
        r.assert_all_complete();
        let l = &r.nodes[1];
        assert_eq!(l.stats.verified_bytes, sc.size);
        eprintln!(
            "{latency_ms} ms one way, 3 seeds x 20 MiB/s: 128 MiB in {:.2}s, buffer {} MiB",
            l.finished.unwrap().as_secs_f64(),
            l.stats.buffer >> 20
        );
        l.stats.buffer as u64
    };
    assert!(run(50) > floor, "far peers: the buffer should grow");
    assert_eq!(run(1), floor, "near peers: the buffer stays at its floor");
}

/// How many pieces below `piece` were still missing when each piece was verified, for one
/// node's verification order (0 everywhere = strictly in order).
fn missing_below(verified: &[u32], pieces: u32) -> Vec<usize> {
    let mut have = vec![false; pieces as usize];
    verified
        .iter()
        .map(|&p| {
            have[p as usize] = true;
            have[..p as usize].iter().filter(|h| !**h).count()
        })
        .collect()
}

/// `--sequential` in a swarm: one seed and eight leechers that all download in piece
/// order. Each leecher verifies its pieces in order apart from the read-ahead window, and
/// they still trade (the seed sends far fewer than eight copies). The same swarm in
/// rarest-first order is run for comparison: the figures are printed.
#[test]
fn sequential_leechers_verify_in_order_within_the_window_and_still_trade() {
    let mut sc = one_seed(8, 32 * MIB, 256 * KIB as u32, 10 * MIB);
    let rarest = Sim::new(&sc).run();
    rarest.assert_all_complete();
    for n in sc.nodes.iter_mut().skip(1) {
        n.sequential = true;
    }
    let r = Sim::new(&sc).run();
    r.assert_all_complete();
    let pieces = (sc.size / (256 * KIB)) as u32;
    let window = swarm::engine::picker::SEQUENTIAL_WINDOW as usize;
    for (i, n) in r.leechers() {
        let window = window.max(2 * n.max_partials);
        let below = missing_below(&n.verified, pieces);
        let worst = below.iter().copied().max().unwrap_or(0);
        assert!(
            worst < window,
            "leecher {i}: a piece was verified with {worst} pieces below it missing \
             (window {window}): {:?}",
            n.verified
        );
    }
    // The rarest-first run is not in order: the check above means something.
    let out_of_order = rarest
        .leechers()
        .map(|(_, n)| {
            missing_below(&n.verified, pieces)
                .into_iter()
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    assert!(out_of_order >= window, "rarest-first came out in order");
    let seed_copies = |r: &Report| r.nodes[0].stats.uploaded as f64 / sc.size as f64;
    let last = |r: &Report| {
        let t = r.leechers().filter_map(|(_, n)| n.finished).max().unwrap();
        t.as_secs_f64()
    };
    eprintln!(
        "figure: 1 seed + 8 leechers, 32 MiB, 256 KiB pieces, 10 MiB/s each: last leecher \
         done at {:.2} s rarest-first, {:.2} s sequential; the seed sent {:.2} copies \
         rarest-first, {:.2} sequential",
        last(&rarest),
        last(&r),
        seed_copies(&rarest),
        seed_copies(&r)
    );
    // Leechers fed each other: without trading the seed would send one copy per leecher.
    assert!(
        seed_copies(&r) < 7.0,
        "the seed sent {:.2} copies\n{}",
        seed_copies(&r),
        r.table()
    );
}

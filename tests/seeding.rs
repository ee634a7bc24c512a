//! Real sockets on 127.0.0.x: one seeder with a capped upload rate and several leechers
//! started together. Leechers trade with each other (`Mode::Fetch { seed: true }` keeps
//! them serving until everyone is done); the seeder may leave once the swarm holds a
//! copy. Only correctness facts are asserted; figures are printed for information.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use swarm::metainfo::Metainfo;
use swarm::session::{Mode, Summary};
use swarm::types::Bitfield;
use tempfile::TempDir;

const MIB: u64 = 1024 * 1024;

fn capped(rate: Option<u64>) -> TestConfig {
    let mut cfg = test_config();
    cfg.session.max_upload_rate = rate;
    cfg
}

/// `n` leechers on 127.0.0.10.., each told about the seeder and the leechers before it
/// (as a tracker would), all keeping on serving after they complete.
async fn start_leechers(
    meta: &Arc<Metainfo>,
    seed: &Running,
    n: usize,
    cfg: TestConfig,
) -> Vec<(Running, TempDir)> {
    let mut out: Vec<(Running, TempDir)> = Vec::new();
    for i in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut peers = vec![seed.addr.unwrap()];
        peers.extend(out.iter().map(|(r, _)| r.addr.unwrap()));
        let r = Running::start(
            meta,
            dir.path(),
            Mode::Fetch { seed: true },
            ip(10 + i as u8),
            peers,
            cfg.clone(),
        )
        .await;
        out.push((r, dir));
    }
    out
}

/// Wait until every leecher has verified everything; returns each one's finishing time
/// (when the poll first saw it complete), measured from `t0`.
async fn wait_all_complete(
    leechers: &mut [(Running, TempDir)],
    size: u64,
    t0: Instant,
) -> Vec<Duration> {
    let mut done: Vec<Option<Duration>> = vec![None; leechers.len()];
    tokio::time::timeout(TEST_TIMEOUT, async {
        while done.iter().any(Option::is_none) {
            for (i, (r, _)) in leechers.iter_mut().enumerate() {
                if done[i].is_none() && r.snapshot.borrow_and_update().stats.verified_bytes == size
                {
                    done[i] = Some(t0.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let progress: Vec<u64> = leechers
            .iter()
            .map(|(r, _)| r.snapshot.borrow().stats.verified_bytes)
            .collect();
        panic!("leechers did not all complete in time: {progress:?} of {size}")
    });
    done.into_iter().map(Option::unwrap).collect()
}

async fn stop_all(leechers: Vec<(Running, TempDir)>, meta: &Metainfo, src: &Path) -> Vec<Summary> {
    let mut out = Vec::new();
    for (r, dir) in leechers {
        let s = r.stop().await;
        assert!(s.complete);
        assert_eq!(hash_tree(meta, dir.path()), hash_tree(meta, src));
        out.push(s);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_seeder_and_six_leechers_trade_among_themselves() {
    let src = tempfile::tempdir().unwrap();
    let size = 7 * MIB + 4321;
    let content = make_content(src.path(), "shared.bin", &[("", size as usize)], 11);
    let meta = make_torrent(&content, 64 * 1024);
    let seed = Running::start(
        &meta,
        src.path(),
        Mode::Seed,
        ip(2),
        vec![],
        capped(Some(MIB)),
    )
    .await;
    let t0 = Instant::now();
    let mut leechers = start_leechers(&meta, &seed, 6, test_config()).await;
    let times = wait_all_complete(&mut leechers, size, t0).await;
    let seeded = seed.stop().await;
    let sums = stop_all(leechers, &meta, src.path()).await;
    let leech_up: u64 = sums.iter().map(|s| s.stats.uploaded).sum();
    eprintln!(
        "1 seed capped at 1 MiB/s + 6 leechers, {size} B: finished at {:?}; seed uploaded {:.2} × size, leechers {:.2} × size",
        times.iter().map(|t| format!("{:.1}s", t.as_secs_f64())).collect::<Vec<_>>(),
        seeded.stats.uploaded as f64 / size as f64,
        leech_up as f64 / size as f64,
    );
    for s in &sums {
        assert_eq!(s.stats.verified_bytes, size);
    }
    assert!(
        leech_up > seeded.stats.uploaded,
        "leechers uploaded {leech_up} B to each other, the seeder {} B",
        seeded.stats.uploaded
    );
}

/// The seeder leaves as soon as it has uploaded a full copy and the leechers hold every
/// piece between them (one copy uploaded is not enough by itself: two leechers may have
/// asked it for the same piece; the union of their pieces is what the swarm needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leechers_finish_after_the_seeder_leaves_with_one_copy_out() {
    let src = tempfile::tempdir().unwrap();
    let size = 6 * MIB + 99;
    let content = make_content(src.path(), "leaving.bin", &[("", size as usize)], 12);
    let meta = make_torrent(&content, 64 * 1024);
    let mut seed = Running::start(
        &meta,
        src.path(),
        Mode::Seed,
        ip(3),
        vec![],
        capped(Some(MIB)),
    )
    .await;
    let t0 = Instant::now();
    // Leechers have slow uplinks too (128 KiB/s each): without that, loopback spreads every
    // piece among them in milliseconds and all finish the moment the seeder's last piece
    // lands, so the seeder's leaving would prove nothing.
    let mut leechers = start_leechers(&meta, &seed, 6, capped(Some(128 * 1024))).await;
    let n = meta.num_pieces();
    let (mut one_copy_at, mut coverage_at_one_copy) = (None, 0);
    let left = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            let up = seed.snapshot.borrow_and_update().stats.uploaded;
            let mut union = Bitfield::new(n);
            for (r, _) in leechers.iter_mut() {
                let s = r.snapshot.borrow_and_update();
                for p in s.have.iter_ones() {
                    union.set(p);
                }
            }
            if up >= size && one_copy_at.is_none() {
                one_copy_at = Some(t0.elapsed());
                coverage_at_one_copy = union.count_ones();
            }
            if up >= size && union.is_full() {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the seeder never uploaded a distributed copy");
    let seeded = seed.stop().await;
    let verified_when_left: Vec<u64> = leechers
        .iter()
        .map(|(r, _)| r.snapshot.borrow().stats.verified_bytes)
        .collect();
    let times = wait_all_complete(&mut leechers, size, t0).await;
    eprintln!(
        "seeder reached one copy at {:?} (leechers then held {coverage_at_one_copy}/{n} pieces \
         between them), left at {:.1}s having uploaded {:.2} × size; leechers had verified \
         {verified_when_left:?} of {size} B; they finished at {:?}",
        one_copy_at.unwrap(),
        left.as_secs_f64(),
        seeded.stats.uploaded as f64 / size as f64,
        times
            .iter()
            .map(|t| format!("{:.1}s", t.as_secs_f64()))
            .collect::<Vec<_>>(),
    );
    assert!(
        verified_when_left.iter().any(|&v| v < size),
        "every leecher was done before the seeder left: the test proves nothing"
    );
    stop_all(leechers, &meta, src.path()).await;
}

/// Figures, not a test: 1 seed + 8 leechers on loopback with the seed capped (and then
/// not), printing each leecher's finishing time and the seed's upload ÷ content size.
/// `SWARM_FIG_MIB` (default 64) sets the file size, `SWARM_FIG_CAP_MIB` (default 20) the
/// cap. Run: `cargo test --release --test seeding figures -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for the closing note; slow"]
async fn figures_one_seed_eight_leechers() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let size = env("SWARM_FIG_MIB", 64) * MIB;
    let cap = env("SWARM_FIG_CAP_MIB", 20) * MIB;
    let src = tempfile::tempdir().unwrap();
    let content = make_content(src.path(), "figures.bin", &[("", size as usize)], 13);
    let meta = make_torrent(&content, 256 * 1024);
    for rate in [Some(cap), None] {
        let seed = Running::start(&meta, src.path(), Mode::Seed, ip(4), vec![], capped(rate)).await;
        let t0 = Instant::now();
        let mut leechers = start_leechers(&meta, &seed, 8, test_config()).await;
        let times = wait_all_complete(&mut leechers, size, t0).await;
        let seeded = seed.stop().await;
        let sums = stop_all(leechers, &meta, src.path()).await;
        let leech_up: u64 = sums.iter().map(|s| s.stats.uploaded).sum();
        let ideal = rate.map(|r| size as f64 / r as f64);
        eprintln!(
            "FIGURES {} MiB, 1 seed ({}) + 8 leechers: finishing times {:?}; seed uploaded {:.2} × size, \
             leechers {:.2} × size{}",
            size / MIB,
            rate.map_or("no cap".to_string(), |r| format!("capped at {} MiB/s", r / MIB)),
            times.iter().map(|t| format!("{:.2}s", t.as_secs_f64())).collect::<Vec<_>>(),
            seeded.stats.uploaded as f64 / size as f64,
            leech_up as f64 / size as f64,
            ideal.map_or(String::new(), |i| format!(
                "; last = {:.2} × the seed's one-copy time ({i:.2}s)",
                times.iter().max().unwrap().as_secs_f64() / i
            )),
        );
    }
}

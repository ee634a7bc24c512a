//! Tracker registry throughput on one core: 10,000 swarms of 50 peers each (500,000 peers),
//! announces from peers already known (the steady state: periodic re-announces with the
//! default numwant of 50), churn (a new peer starts, then stops), and scrapes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::tracker_server::registry::{Announce, Event, Limits, Registry};
use swarm::types::{InfoHash, PeerId};

const SWARMS: u32 = 10_000;
const PEERS: u32 = 50;

fn hash(s: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&s.to_be_bytes());
    InfoHash(h)
}

fn announce(s: u32, p: u32, event: Event) -> Announce {
    let mut id = [b'-'; 20];
    id[..4].copy_from_slice(&p.to_be_bytes());
    id[4..8].copy_from_slice(&s.to_be_bytes());
    Announce {
        info_hash: hash(s),
        peer_id: PeerId(id),
        addr: SocketAddr::from(([10, (p >> 16) as u8, (p >> 8) as u8, p as u8], 6881)),
        left: u64::from(p % 3),
        event,
        numwant: None,
        both_families: true,
    }
}

fn populated(now: Instant) -> Registry {
    let mut r = Registry::with_seed(Duration::from_secs(1800), Limits::default(), 1);
    for s in 0..SWARMS {
        for p in 0..PEERS {
            r.announce(&announce(s, p, Event::Started), now).unwrap();
        }
    }
    assert_eq!(r.peer_count(), (SWARMS * PEERS) as usize);
    r
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let mut reg = populated(now);
    let mut rng = StdRng::seed_from_u64(9);
    let mut g = c.benchmark_group("tracker_registry");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reannounce_10k_swarms_x50", |b| {
        b.iter(|| {
            let a = announce(
                rng.gen_range(0..SWARMS),
                rng.gen_range(0..PEERS),
                Event::None,
            );
            black_box(reg.announce(&a, now).unwrap());
        })
    });
    g.bench_function("start_then_stop", |b| {
        b.iter(|| {
            let s = rng.gen_range(0..SWARMS);
            black_box(
                reg.announce(&announce(s, 1000, Event::Started), now)
                    .unwrap(),
            );
            black_box(
                reg.announce(&announce(s, 1000, Event::Stopped), now)
                    .unwrap(),
            );
        })
    });
    g.bench_function("scrape_one", |b| {
        b.iter(|| black_box(reg.scrape(&[hash(rng.gen_range(0..SWARMS))])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

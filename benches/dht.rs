//! DHT figures (issue 15's closing note), with `cargo bench --bench dht`:
//! - a simulated DHT of 10,000 of our nodes with churn (model in `tests/dht_sim/net.rs`):
//!   queries and virtual time per lookup, run once and printed;
//! - memory of one node's routing table, full as in the mainline DHT today (~22 buckets
//!   deep) and at its cap (160 buckets), measured by a counting allocator;
//! - queries one `Node` answers per second on one core (`receive` of a `find_node` or
//!   `get_peers` query, then `poll_transmit`), rate limits configured out of the way;
//!   criterion reports the rate (throughput in elements).
//!
//! Run as a test (`cargo test --benches`), only a small simulation and one iteration of
//! each benchmark run. With a filter (`cargo bench --bench dht -- dht_answer`) only the
//! criterion benchmarks run.

#[path = "../tests/dht_sim/net.rs"]
mod net;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use criterion::{black_box, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::dht::node::{DhtConfig, Node};
use swarm::dht::{Body, Msg, NodeId, Query, Want};

/// Bytes allocated and not yet freed, process-wide.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn query(tid: u16, id: NodeId, q: Query) -> Vec<u8> {
    Msg {
        tid: tid.to_be_bytes().to_vec(),
        body: Body::Query { id, query: q },
        ip: None,
        read_only: false,
    }
    .encode()
}

/// Node `i`'s address: public-looking (44.0.0.0/8), as on the internet, where a node at a
/// private address is neither kept nor asked.
fn source(i: usize) -> SocketAddr {
    SocketAddr::from(([44, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
}

/// A node whose table was filled by pings from 16 nodes at each depth `0..depth` (each
/// from its own IP), rate limits out of the way; its replies drained.
fn filled(depth: u32, seed: u64) -> Node {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Instant::now();
    let me = NodeId(rng.gen());
    let cfg = DhtConfig {
        per_source_rate: f64::INFINITY,
        per_source_burst: f64::INFINITY,
        total_rate: f64::INFINITY,
        rng_seed: seed,
        ..DhtConfig::default()
    };
    let mut node = Node::new(cfg, me, now);
    let mut i = 0;
    for d in 0..depth {
        for _ in 0..16 {
            let id = me.with_prefix_of(d, &NodeId(rng.gen()));
            node.receive(now, source(i), &query(i as u16, id, Query::Ping));
            i += 1;
            while node.poll_transmit().is_some() {}
        }
    }
    node
}

fn memory() {
    for (label, depth) in [
        ("mainline today (22 buckets)", 22),
        ("cap (160 buckets)", 160),
    ] {
        let before = live_bytes();
        let node = filled(depth, 7);
        let with_node = live_bytes() - before;
        let before = live_bytes();
        let table = node.table().clone();
        let table_heap = live_bytes() - before;
        println!(
            "dht memory, {label}: {} nodes in {} buckets; table heap {} B (+{} B inline); \
             whole node {} B (heap, incl. rate-limit sources for {} addresses)",
            table.len(),
            table.bucket_count(),
            table_heap,
            std::mem::size_of_val(&table),
            with_node,
            depth * 16,
        );
        drop(table);
        drop(node);
    }
}

fn simulation(full: bool) {
    // Two ways a network forms: 20 joins a second (each node's lookups finish before many
    // neighbours arrive, as in the settled mainline DHT) and a flash crowd of 200 a second
    // (hundreds of neighbours join at once and miss each other).
    for (gap_ms, how) in [(50, "20 joins/s"), (5, "flash crowd, 200 joins/s")] {
        let s = net::Scenario {
            sim: net::SimConfig::default(),
            nodes: if full { 10_000 } else { 300 },
            join_gap_ms: gap_ms,
            // Past the 15-minute bucket refresh, as in tests/dht_sim.rs.
            settle_s: if full { 1000 } else { 60 },
            lookups: if full { 300 } else { 20 },
            churn: if full { 5 } else { 1 },
            pairs: 10,
        };
        let t = Instant::now();
        let r = s.run();
        let label = format!("{} nodes, {how}", s.nodes);
        r.print(&label);
        println!("[{label}] wall time {:.1} s", t.elapsed().as_secs_f64());
    }
}

fn answering(c: &mut Criterion) {
    let mut g = c.benchmark_group("dht_answer");
    g.throughput(Throughput::Elements(1));
    let mut rng = StdRng::seed_from_u64(9);
    // 1,024 querying sources, each a fresh id; a fresh target each time.
    let n = 1024;
    let find: Vec<(SocketAddr, Vec<u8>)> = (0..n)
        .map(|i| {
            let q = Query::FindNode {
                target: NodeId(rng.gen()),
                want: Want::default(),
            };
            (source(100_000 + i), query(i as u16, NodeId(rng.gen()), q))
        })
        .collect();
    let get: Vec<(SocketAddr, Vec<u8>)> = (0..n)
        .map(|i| {
            let q = Query::GetPeers {
                info_hash: NodeId(rng.gen()),
                want: Want::default(),
            };
            (source(100_000 + i), query(i as u16, NodeId(rng.gen()), q))
        })
        .collect();
    let ping: Vec<(SocketAddr, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                source(100_000 + i),
                query(i as u16, NodeId(rng.gen()), Query::Ping),
            )
        })
        .collect();
    for (name, msgs) in [("ping", &ping), ("find_node", &find), ("get_peers", &get)] {
        let mut node = filled(22, 11);
        let now = Instant::now();
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % msgs.len();
                let (from, bytes) = &msgs[i];
                node.receive(now, *from, bytes);
                // The reply, and any ping to a questionable node the querier would replace.
                let mut sent = 0;
                while let Some(d) = node.poll_transmit() {
                    black_box(d);
                    sent += 1;
                }
                sent
            })
        });
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not (a quick smoke run).
    let full = std::env::args().any(|a| a == "--bench");
    // A filter (`cargo bench --bench dht -- get_peers`) runs only the criterion benchmarks.
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    if !filtered {
        simulation(full);
        memory();
    }
    let mut c = Criterion::default().configure_from_args();
    answering(&mut c);
    c.final_summary();
}

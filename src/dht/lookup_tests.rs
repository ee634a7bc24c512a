//! Lookups against a model network on a hand-moved clock: convergence to the true closest
//! nodes, dead nodes, liars, and caps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::dht::table::Rules;

struct Net {
    nodes: Vec<(NodeId, SocketAddr)>,
}

impl Net {
    fn new(n: usize, seed: u64) -> Net {
        let mut rng = StdRng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881));
                (NodeId(rng.gen()), addr)
            })
            .collect();
        Net { nodes }
    }

    /// What node `asked` knows near `target`: the K closest of a random half of the network
    /// it happens to know (its own view), so lookups take several hops.
    fn answer(&self, asked: usize, target: &NodeId) -> Vec<(NodeId, SocketAddr)> {
        let mut known: Vec<_> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| (i ^ asked).is_multiple_of(2) || *i % 7 == asked % 7)
            .map(|(_, n)| *n)
            .collect();
        known.sort_by_key(|(id, _)| id.distance(target));
        known.truncate(K);
        known
    }

    fn index_of(&self, addr: &SocketAddr) -> usize {
        self.nodes.iter().position(|(_, a)| a == addr).unwrap()
    }

    /// Every node id, nearest `target` first.
    fn by_distance(&self, target: &NodeId) -> Vec<NodeId> {
        let mut all: Vec<_> = self.nodes.iter().map(|(id, _)| *id).collect();
        all.sort_by_key(|id| id.distance(target));
        all
    }

    fn truly_closest(&self, target: &NodeId) -> Vec<NodeId> {
        let mut all = self.by_distance(target);
        all.truncate(K);
        all
    }
}

fn run(net: &Net, target: NodeId, dead: &[usize], seeds: usize) -> (Lookup, u32) {
    let now = Instant::now();
    let mut l = Lookup::new(
        target,
        Kind::FindNode,
        None,
        Rules::LOCAL,
        net.nodes[..seeds].to_vec(),
    );
    let mut t = now;
    for _ in 0..1000 {
        if l.is_done(t) {
            break;
        }
        let ask = l.next_queries(t);
        for (id, addr) in ask {
            let i = net.index_of(&addr);
            if dead.contains(&i) {
                continue;
            }
            l.answered(
                id,
                addr,
                net.answer(i, &target),
                Vec::new(),
                Some(vec![i as u8]),
            );
        }
        t += Duration::from_millis(500);
    }
    assert!(l.is_done(t), "the lookup ended");
    let q = l.queries_sent();
    (l, q)
}

#[test]
fn a_lookup_converges_on_the_true_closest_nodes() {
    let net = Net::new(500, 1);
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..20 {
        let target = NodeId(rng.gen());
        let (l, queries) = run(&net, target, &[], 3);
        let got: Vec<_> = l
            .closest_answered()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(got, net.truly_closest(&target));
        assert!(queries < 100, "{queries} queries");
    }
}

#[test]
fn dead_nodes_time_out_and_the_lookup_goes_around_them() {
    let net = Net::new(300, 3);
    let target = NodeId([0x77; 20]);
    let order = net.by_distance(&target);
    // The closest node of all never answers: the answer is the next K.
    let dead = net
        .nodes
        .iter()
        .position(|(id, _)| *id == order[0])
        .unwrap();
    let (l, _) = run(&net, target, &[dead], 3);
    let got: Vec<_> = l
        .closest_answered()
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(got, order[1..=K].to_vec());
}

#[test]
fn at_most_alpha_on_time_and_slow_queries_free_their_slot() {
    let net = Net::new(50, 4);
    let now = Instant::now();
    let mut l = Lookup::new(
        NodeId([1; 20]),
        Kind::FindNode,
        None,
        Rules::LOCAL,
        net.nodes.clone(),
    );
    assert_eq!(l.next_queries(now).len(), ALPHA);
    assert!(l.next_queries(now).is_empty());
    // Slow: a new slot each; failed after the timeout.
    assert_eq!(l.next_queries(now + SLOW_AFTER).len(), ALPHA);
    assert_eq!(l.expire(now + QUERY_TIMEOUT).len(), ALPHA);
}

#[test]
fn get_peers_collects_peers_capped_and_ignores_unasked_answers() {
    let now = Instant::now();
    let seed = (NodeId([9; 20]), "10.0.0.9:1".parse::<SocketAddr>().unwrap());
    let mut l = Lookup::new(
        NodeId([8; 20]),
        Kind::GetPeers,
        None,
        Rules::LOCAL,
        vec![seed],
    );
    // An answer from a node never asked is ignored.
    l.answered(
        NodeId([9; 20]),
        seed.1,
        Vec::new(),
        vec!["10.1.1.1:1".parse().unwrap()],
        None,
    );
    assert!(l.peers().is_empty());
    assert_eq!(l.next_queries(now), vec![seed]);
    let flood: Vec<SocketAddr> = (0..1000u32)
        .map(|i| SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 7)))
        .chain(std::iter::once("0.0.0.0:0".parse().unwrap()))
        .collect();
    let many_nodes: Vec<(NodeId, SocketAddr)> = (0..1000u32)
        .map(|i| {
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            (
                NodeId(id),
                SocketAddr::from(([10, 3, (i >> 8) as u8, i as u8], 7)),
            )
        })
        .collect();
    l.answered(seed.0, seed.1, many_nodes, flood, Some(b"tok".to_vec()));
    assert_eq!(l.peers().len(), MAX_PEERS);
    assert!(l.candidates.len() <= MAX_CANDIDATES);
    assert_eq!(l.closest_answered()[0].2.as_deref(), Some(&b"tok"[..]));
}

#[test]
fn our_own_id_and_dark_addresses_are_never_queried() {
    let now = Instant::now();
    let me = NodeId([5; 20]);
    let public: SocketAddr = "198.51.100.7:6881".parse().unwrap();
    let seeds = vec![
        (me, "198.51.100.1:6881".parse().unwrap()),
        (NodeId([6; 20]), "192.168.1.1:80".parse().unwrap()),
        (NodeId([7; 20]), "127.0.0.1:6881".parse().unwrap()),
        (NodeId([8; 20]), public),
    ];
    let mut l = Lookup::new(
        NodeId([5; 20]),
        Kind::FindNode,
        Some(me),
        Rules::PUBLIC,
        seeds,
    );
    assert_eq!(l.next_queries(now), vec![(NodeId([8; 20]), public)]);
}

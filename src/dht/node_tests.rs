//! The node against itself: answers to each query, tokens, rate limits, spoofed answers,
//! and a network of nodes on a virtual clock where an announce is found by another node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::dht::krpc::Msg;

fn cfg(seed: u64) -> DhtConfig {
    DhtConfig {
        one_per_ip: false,
        allow_local: true,
        rng_seed: seed,
        ..DhtConfig::default()
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6881))
}

fn query(tid: &[u8], id: NodeId, q: Query) -> Vec<u8> {
    Msg {
        tid: tid.to_vec(),
        body: Body::Query { id, query: q },
        ip: None,
        read_only: false,
    }
    .encode()
}

fn replies(n: &mut Node) -> Vec<(SocketAddr, Msg)> {
    std::iter::from_fn(|| n.poll_transmit())
        .map(|(a, b)| (a, Msg::decode(&b).unwrap()))
        .collect()
}

#[test]
fn each_query_gets_its_answer() {
    let now = Instant::now();
    let mut n = Node::new(cfg(1), NodeId([1; 20]), now);
    let them = NodeId([2; 20]);
    let from = addr(2);
    n.receive(now, from, &query(b"p1", them, Query::Ping));
    let r = replies(&mut n);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, from);
    assert_eq!(r[0].1.tid, b"p1");
    assert!(matches!(r[0].1.body, Body::Response { id, .. } if id == NodeId([1; 20])));
    assert_eq!(
        r[0].1.ip,
        Some(from),
        "BEP 42: the querier's address as we see it"
    );
    // The querier is in the table now; find_node returns it.
    let q = Query::FindNode {
        target: them,
        want: Want::default(),
    };
    n.receive(now, addr(3), &query(b"f1", NodeId([3; 20]), q));
    let Body::Response { response, .. } = &replies(&mut n)[0].1.body else {
        panic!("no response")
    };
    assert!(response.nodes.iter().any(|(id, _)| *id == them));
    // get_peers: a token and nodes; announce with it; then values.
    let ih = NodeId([0x55; 20]);
    let gp = Query::GetPeers {
        info_hash: ih,
        want: Want::default(),
    };
    n.receive(now, from, &query(b"g1", them, gp.clone()));
    let Body::Response { response, .. } = &replies(&mut n)[0].1.body else {
        panic!("no response")
    };
    let token = response.token.clone().expect("a token");
    assert!(response.values.is_empty());
    let bad = Query::AnnouncePeer {
        info_hash: ih,
        port: 7000,
        implied_port: false,
        token: b"nope".to_vec(),
    };
    n.receive(now, from, &query(b"a0", them, bad));
    assert!(matches!(
        replies(&mut n)[0].1.body,
        Body::Error { code: 203, .. }
    ));
    // A token is for the address it was given to.
    let stolen = Query::AnnouncePeer {
        info_hash: ih,
        port: 7000,
        implied_port: false,
        token: token.clone(),
    };
    n.receive(now, addr(9), &query(b"a1", NodeId([9; 20]), stolen));
    assert!(matches!(
        replies(&mut n)[0].1.body,
        Body::Error { code: 203, .. }
    ));
    let good = Query::AnnouncePeer {
        info_hash: ih,
        port: 7000,
        implied_port: true,
        token,
    };
    n.receive(now, from, &query(b"a2", them, good));
    assert!(matches!(replies(&mut n)[0].1.body, Body::Response { .. }));
    n.receive(now, addr(4), &query(b"g2", NodeId([4; 20]), gp));
    let Body::Response { response, .. } = &replies(&mut n)[0].1.body else {
        panic!("no response")
    };
    // implied_port: the packet's source port, not the one named.
    assert_eq!(response.values, vec![from]);
    // Unknown methods: 204. Garbage: silence.
    n.receive(
        now,
        from,
        &query(
            b"x1",
            them,
            Query::Other {
                method: "vote".into(),
            },
        ),
    );
    assert!(matches!(
        replies(&mut n)[0].1.body,
        Body::Error { code: 204, .. }
    ));
    n.receive(now, from, b"d1:t2:xx1:y1:qe");
    n.receive(now, from, b"\x00\x01garbage");
    assert!(replies(&mut n).is_empty());
}

#[test]
fn a_flood_from_one_source_is_answered_only_within_its_rate() {
    let now = Instant::now();
    let mut n = Node::new(cfg(2), NodeId([1; 20]), now);
    for i in 0..200u16 {
        n.receive(
            now,
            addr(7),
            &query(&i.to_be_bytes(), NodeId([7; 20]), Query::Ping),
        );
    }
    let answered = replies(&mut n).len();
    assert_eq!(answered, 20, "the burst, then nothing");
    assert_eq!(n.refused, 180);
    // Another source is not affected; time refills the first.
    n.receive(now, addr(8), &query(b"o1", NodeId([8; 20]), Query::Ping));
    assert_eq!(replies(&mut n).len(), 1);
    let later = now + Duration::from_secs(1);
    for i in 0..10u16 {
        n.receive(
            later,
            addr(7),
            &query(&i.to_be_bytes(), NodeId([7; 20]), Query::Ping),
        );
    }
    assert_eq!(replies(&mut n).len(), 5);
}

#[test]
fn an_answer_from_another_address_is_ignored() {
    let now = Instant::now();
    let mut n = Node::new(cfg(3), NodeId([1; 20]), now);
    n.bootstrap(now, &[addr(5)]);
    let sent = replies(&mut n);
    assert_eq!(sent.len(), 1);
    let tid = sent[0].1.tid.clone();
    let answer = Msg {
        tid,
        body: Body::Response {
            id: NodeId([5; 20]),
            response: Response::default(),
        },
        ip: None,
        read_only: false,
    }
    .encode();
    n.receive(now, addr(6), &answer);
    assert!(n.table().is_empty(), "a spoofed answer adds nobody");
    n.receive(now, addr(5), &answer);
    assert_eq!(n.table().len(), 1);
}

/// Nodes on a virtual clock; every datagram delivered at once.
struct Net {
    nodes: Vec<Node>,
    at: HashMap<SocketAddr, usize>,
    now: Instant,
    datagrams: u64,
}

impl Net {
    fn new(n: usize) -> Net {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(42);
        let nodes = (0..n)
            .map(|i| Node::new(cfg(i as u64), NodeId(rng.gen()), now))
            .collect();
        let at = (0..n).map(|i| (addr(i), i)).collect();
        Net {
            nodes,
            at,
            now,
            datagrams: 0,
        }
    }

    /// Deliver until quiet (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some((to, bytes)) = self.nodes[i].poll_transmit() {
                    moved = true;
                    self.datagrams += 1;
                    if let Some(&j) = self.at.get(&to) {
                        self.nodes[j].receive(self.now, addr(i), &bytes);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    fn tick(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            for n in &mut self.nodes {
                n.handle_timeout(self.now);
            }
            self.settle();
        }
    }
}

#[test]
fn in_a_network_of_nodes_an_announce_is_found_by_another_node() {
    let mut net = Net::new(200);
    // Everyone bootstraps from node 0 (node 0 from node 1).
    let now = net.now;
    net.nodes[0].bootstrap(now, &[addr(1)]);
    for i in 1..200 {
        net.nodes[i].bootstrap(now, &[addr(0)]);
        net.settle();
    }
    net.tick(3);
    let filled = net.nodes.iter().filter(|n| n.table().len() >= 8).count();
    assert!(
        filled >= 190,
        "{filled} of 200 nodes know at least 8 others"
    );
    let ih = NodeId([0xab; 20]);
    assert!(net.nodes[17].get_peers(net.now, ih, Some(51413)));
    net.settle();
    net.tick(10);
    let done: Vec<Event> = std::iter::from_fn(|| net.nodes[17].poll_event()).collect();
    let announced = done.iter().find_map(|e| match e {
        Event::LookupDone { announced, .. } => Some(*announced),
        _ => None,
    });
    assert!(announced.unwrap_or(0) >= 4, "{done:?}");
    // Another node, far from 17 in the id space, finds it.
    assert!(net.nodes[150].get_peers(net.now, ih, None));
    net.settle();
    net.tick(10);
    let found: Vec<SocketAddr> = std::iter::from_fn(|| net.nodes[150].poll_event())
        .filter_map(|e| match e {
            Event::Peers { peers, .. } => Some(peers),
            _ => None,
        })
        .flatten()
        .collect();
    let want = SocketAddr::new(addr(17).ip(), 51413);
    assert!(found.contains(&want), "{found:?}");
}

#[test]
fn ipv6_nodes_have_their_own_table_and_are_answered_as_want_asks() {
    let now = Instant::now();
    let mut n = Node::new(cfg(5), NodeId([1; 20]), now);
    let v6: SocketAddr = "[fd00::2]:6881".parse().unwrap();
    let v4 = addr(3);
    n.receive(now, v6, &query(b"p6", NodeId([6; 20]), Query::Ping));
    n.receive(now, v4, &query(b"p4", NodeId([4; 20]), Query::Ping));
    // One more of each family: a querier is never told about itself.
    let v6b: SocketAddr = "[fd00::3]:6881".parse().unwrap();
    n.receive(now, v6b, &query(b"q6", NodeId([7; 20]), Query::Ping));
    n.receive(now, addr(4), &query(b"q4", NodeId([5; 20]), Query::Ping));
    replies(&mut n);
    assert_eq!((n.table().len(), n.table6().len()), (2, 2));
    let target = NodeId([9; 20]);
    // Without `want`, each querier gets its own family.
    let q = Query::FindNode {
        target,
        want: Want::default(),
    };
    n.receive(now, v6, &query(b"f6", NodeId([6; 20]), q.clone()));
    n.receive(now, v4, &query(b"f4", NodeId([4; 20]), q));
    let r = replies(&mut n);
    let Body::Response { response: to6, .. } = &r[0].1.body else {
        panic!()
    };
    let Body::Response { response: to4, .. } = &r[1].1.body else {
        panic!()
    };
    assert!(to6.nodes.is_empty() && to6.nodes6.len() == 1, "{to6:?}");
    assert!(to4.nodes6.is_empty() && to4.nodes.len() == 1, "{to4:?}");
    // `want: n4 n6` gets both.
    let both = Query::FindNode {
        target,
        want: Want { v4: true, v6: true },
    };
    n.receive(now, v4, &query(b"fb", NodeId([4; 20]), both));
    let Body::Response { response, .. } = &replies(&mut n)[0].1.body else {
        panic!()
    };
    // (The v4 querier is not told about itself; both v6 nodes are listed.)
    assert_eq!((response.nodes.len(), response.nodes6.len()), (1, 2));
}

#[test]
fn on_the_internet_local_addresses_are_neither_kept_nor_asked() {
    let now = Instant::now();
    let public = DhtConfig {
        rng_seed: 6,
        ..DhtConfig::default()
    };
    let mut n = Node::new(public, NodeId([1; 20]), now);
    // A LAN address queries us: answered (it reached us), but not kept.
    n.receive(now, addr(3), &query(b"p1", NodeId([3; 20]), Query::Ping));
    assert_eq!(replies(&mut n).len(), 1);
    assert!(n.table().is_empty());
    // Bootstrapping to a LAN address sends nothing.
    n.bootstrap(now, &[addr(4), "127.0.0.1:6881".parse().unwrap()]);
    assert!(replies(&mut n).is_empty());
}

#[test]
fn five_nodes_agreeing_on_our_address_give_us_a_bep42_id() {
    let now = Instant::now();
    let public = DhtConfig {
        rng_seed: 7,
        ..DhtConfig::default()
    };
    let mut n = Node::new(public, NodeId([1; 20]), now);
    let routers: Vec<SocketAddr> = (1..=5)
        .map(|i| SocketAddr::from(([198, 51, 100, i], 6881)))
        .collect();
    n.bootstrap(now, &routers);
    let sent = replies(&mut n);
    assert_eq!(sent.len(), 5);
    let ours: SocketAddr = "203.0.113.50:51413".parse().unwrap();
    for (i, (to, q)) in sent.into_iter().enumerate() {
        assert!(n.external_ip().is_none(), "not before five agree");
        let answer = Msg {
            tid: q.tid,
            body: Body::Response {
                id: NodeId([0x80 + i as u8; 20]),
                response: Response::default(),
            },
            ip: Some(ours),
            read_only: false,
        };
        n.receive(now, to, &answer.encode());
    }
    assert_eq!(n.external_ip(), Some(ours.ip()));
    assert!(crate::dht::secure::is_secure(&n.id(), ours.ip()));
    // The table was rebuilt around the new id and kept the nodes it knew.
    assert_eq!(n.table().me(), n.id());
    assert_eq!(n.table().len(), 5);
}

#[test]
fn a_joining_node_refreshes_every_bucket_once_its_own_lookup_is_done() {
    let mut net = Net::new(120);
    let now = net.now;
    net.nodes[0].bootstrap(now, &[addr(1)]);
    for i in 1..120 {
        net.nodes[i].bootstrap(now, &[addr(0)]);
        net.settle();
    }
    // A newcomer joins; its queries are watched.
    let me = NodeId([0x5a; 20]);
    let mut x = Node::new(cfg(999), me, net.now);
    let x_addr = addr(500);
    x.bootstrap(net.now, &[addr(0)]);
    let mut far_targets = 0;
    for step in 0..2_000 {
        if step % 50 == 49 {
            net.now += Duration::from_secs(1);
            x.handle_timeout(net.now);
        }
        let mut moved = false;
        while let Some((to, bytes)) = x.poll_transmit() {
            moved = true;
            if let Ok(Msg {
                body:
                    Body::Query {
                        query: Query::FindNode { target, .. },
                        ..
                    },
                ..
            }) = Msg::decode(&bytes)
            {
                far_targets += usize::from(me.common_prefix(&target) == 0);
            }
            if let Some(&j) = net.at.get(&to) {
                net.nodes[j].receive(net.now, x_addr, &bytes);
                while let Some((back, reply)) = net.nodes[j].poll_transmit() {
                    if back == x_addr {
                        x.receive(net.now, addr(j), &reply);
                    }
                }
            }
        }
        if !moved && far_targets > 0 {
            break;
        }
    }
    assert!(
        far_targets > 0,
        "the farthest bucket was never refreshed after joining"
    );
    assert!(x.table().len() >= 16, "table of {}", x.table().len());
}

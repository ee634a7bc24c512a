//! Random operation sequences against a model of the engine's side (peers, their bitfields and
//! in-flight requests): never a panic, every invariant holds after every step, availability
//! matches the model and never underflows, picked blocks are valid, wanted (never of a
//! skipped piece), and never duplicated to the same peer; completion and interest follow the
//! priorities, which change at random mid-download, as does sequential mode.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::types::BLOCK_SIZE;

#[derive(Debug, Clone)]
enum Op {
    /// A peer with a bitfield drawn from these bits.
    Connect(u64),
    ConnectSeed,
    Disconnect(usize),
    Have(usize, u32),
    Pick(usize, u8),
    Receive(usize, usize),
    Drop(usize, usize),
    /// Verify (or, when false, fail) a piece; only complete pieces unless `force`.
    Hash(u32, bool, bool),
    Bogus(u32, u32, u32),
    /// Unbalanced removes at availability 0 (an engine bug): must not underflow.
    StrayRemove(u32),
    /// New priorities, two bits a piece (0 Skip, 1 and 3 Normal, 2 High), this many pieces.
    Priorities(u64, u32),
    Sequential(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<u64>().prop_map(Op::Connect),
        1 => Just(Op::ConnectSeed),
        1 => any::<usize>().prop_map(Op::Disconnect),
        2 => (any::<usize>(), 0u32..24).prop_map(|(p, i)| Op::Have(p, i)),
        6 => (any::<usize>(), 0u8..12).prop_map(|(p, w)| Op::Pick(p, w)),
        5 => (any::<usize>(), any::<usize>()).prop_map(|(p, i)| Op::Receive(p, i)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(p, i)| Op::Drop(p, i)),
        3 => (0u32..24, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(p, ok, f)| Op::Hash(p, ok, f)),
        1 => (0u32..24, 0u32..(4 * BLOCK_SIZE), 0u32..(2 * BLOCK_SIZE))
            .prop_map(|(p, o, l)| Op::Bogus(p, o, l)),
        1 => (0u32..24).prop_map(Op::StrayRemove),
        1 => (any::<u64>(), 0u32..28).prop_map(|(b, n)| Op::Priorities(b, n)),
        1 => any::<bool>().prop_map(Op::Sequential),
    ]
}

struct Peer {
    has: Bitfield,
    seed: bool,
    in_flight: Vec<BlockRef>,
}

struct Model {
    p: Picker,
    peers: Vec<Peer>,
    n: u32,
    rng: StdRng,
}

impl Model {
    fn peer(&self, i: usize) -> Option<usize> {
        (!self.peers.is_empty()).then(|| i % self.peers.len())
    }

    /// Cancel every other copy of `b` once it arrived (what the engine does).
    fn cancel_others(&mut self, b: &BlockRef) {
        for peer in &mut self.peers {
            if let Some(j) = peer.in_flight.iter().position(|x| x == b) {
                peer.in_flight.swap_remove(j);
                self.p.on_request_dropped(b);
            }
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect(bits) => {
                let mut has = Bitfield::new(self.n);
                (0..self.n)
                    .filter(|i| bits >> (i % 64) & 1 == 1)
                    .for_each(|i| {
                        has.set(i);
                    });
                self.p.add_bitfield(&has);
                self.peers.push(Peer {
                    has,
                    seed: false,
                    in_flight: Vec::new(),
                });
            }
            Op::ConnectSeed => {
                self.p.add_seed();
                self.peers.push(Peer {
                    has: Bitfield::full(self.n),
                    seed: true,
                    in_flight: Vec::new(),
                });
            }
            Op::Disconnect(i) => {
                let Some(i) = self.peer(i) else { return };
                let peer = self.peers.swap_remove(i);
                if peer.seed {
                    self.p.remove_seed();
                } else {
                    self.p.remove_bitfield(&peer.has);
                }
                for b in &peer.in_flight {
                    self.p.on_request_dropped(b);
                }
            }
            Op::Have(i, piece) => {
                let Some(i) = self.peer(i) else { return };
                if !self.peers[i].seed && self.peers[i].has.set(piece) {
                    self.p.add_have(piece);
                }
            }
            Op::Pick(i, want) => {
                let Some(i) = self.peer(i) else { return };
                let mut out = vec![BlockRef {
                    piece: 0,
                    offset: 0,
                    len: 0,
                }];
                let peer = &self.peers[i];
                let here = |b: &BlockRef| peer.in_flight.contains(b);
                self.p
                    .pick(&peer.has, want as usize, &mut self.rng, &here, &mut out);
                assert!(out.len() <= 1 + want as usize);
                for (k, b) in out.iter().enumerate().skip(1) {
                    assert!(!self.p.we_have(b.piece), "{b:?} of a piece we have");
                    assert_ne!(self.p.priority(b.piece), Priority::Skip, "{b:?} skipped");
                    assert!(peer.has.get(b.piece), "{b:?} of a piece the peer lacks");
                    assert!(self.p.layout.block_index(b).is_some(), "{b:?} invalid");
                    assert!(!peer.in_flight.contains(b), "{b:?} duplicated to peer");
                    assert!(!out[1..k].contains(b), "{b:?} twice in one pick");
                    assert!(self.p.outstanding(b) >= 1);
                }
                self.peers[i].in_flight.extend_from_slice(&out[1..]);
            }
            Op::Receive(i, j) => {
                let Some(i) = self.peer(i) else { return };
                let fl = &mut self.peers[i].in_flight;
                if fl.is_empty() {
                    return;
                }
                let b = fl.swap_remove(j % fl.len());
                let had = self.p.we_have(b.piece);
                let skipped = self.p.priority(b.piece) == Priority::Skip;
                let wanted = self.p.on_block_received(&b);
                assert!(!(had && wanted), "a block of a verified piece was wanted");
                assert!(
                    !(skipped && wanted),
                    "a block of a skipped piece was wanted"
                );
                self.p.on_request_dropped(&b); // never counts: the block is received
                self.cancel_others(&b);
            }
            Op::Drop(i, j) => {
                let Some(i) = self.peer(i) else { return };
                let fl = &mut self.peers[i].in_flight;
                if !fl.is_empty() {
                    let b = fl.swap_remove(j % fl.len());
                    self.p.on_request_dropped(&b);
                }
            }
            Op::Hash(piece, ok, force) => {
                if force || self.p.is_piece_complete(piece) {
                    if ok {
                        self.p.on_piece_verified(piece);
                        assert!(!self.p.is_piece_complete(piece));
                    } else {
                        self.p.on_piece_failed(piece);
                    }
                }
            }
            Op::Bogus(piece, offset, len) => {
                let b = BlockRef { piece, offset, len };
                if self.p.layout.block_index(&b).is_none() {
                    assert!(!self.p.on_block_received(&b));
                    self.p.on_request_dropped(&b);
                }
            }
            Op::Priorities(bits, count) => {
                let prio: Vec<Priority> = (0..count)
                    .map(|i| match bits >> (2 * (i % 32)) & 3 {
                        0 => Priority::Skip,
                        2 => Priority::High,
                        _ => Priority::Normal,
                    })
                    .collect();
                self.p.set_priorities(&prio);
                for piece in 0..self.n {
                    let want = prio
                        .get(piece as usize)
                        .copied()
                        .unwrap_or(Priority::Normal);
                    assert_eq!(self.p.priority(piece), want);
                }
            }
            Op::Sequential(on) => self.p.set_sequential(on),
            Op::StrayRemove(piece) => {
                if self.p.order.avail(piece) == 0 {
                    self.p.remove_have(piece);
                    assert_eq!(self.p.order.avail(piece), 0);
                }
            }
        }
    }

    fn seeds(&self) -> u32 {
        self.peers.iter().filter(|p| p.seed).count() as u32
    }

    fn model_avail(&self, piece: u32) -> u32 {
        self.peers.iter().filter(|p| p.has.get(piece)).count() as u32
    }

    fn check(&self) {
        self.p.check_invariants();
        assert_eq!(self.p.seeds(), self.seeds());
        for piece in 0..self.n {
            assert_eq!(self.p.availability(piece), self.model_avail(piece));
        }
        let needed = |q: u32| !self.p.we_have(q) && self.p.priority(q) != Priority::Skip;
        let missing = (0..self.n).filter(|&q| needed(q)).count() as u32;
        assert_eq!(self.p.wanted_missing(), missing);
        assert_eq!(self.p.is_complete(), missing == 0);
        assert_eq!(self.p.has_all(), (0..self.n).all(|q| self.p.we_have(q)));
        for peer in &self.peers {
            let interesting = (0..self.n).any(|q| peer.has.get(q) && needed(q));
            assert_eq!(self.p.is_interesting(&peer.has), interesting);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_invariants(
        pieces in 1u32..24,
        tail in 1u32..(3 * BLOCK_SIZE),
        have_bits in any::<u64>(),
        max_partials in 0usize..6,
        random_first in 0u32..6,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        // Pieces of 3 blocks; the last piece is `tail` bytes.
        let piece_len = 3 * BLOCK_SIZE;
        let total = (pieces - 1) as u64 * piece_len as u64 + tail as u64;
        let layout = Layout::new(piece_len, &[total]).unwrap();
        let mut have = Bitfield::new(pieces);
        (0..pieces).filter(|i| have_bits >> i & 1 == 1 && i % 3 == 0).for_each(|i| {
            have.set(i);
        });
        let mut p = Picker::new(&layout, &have, max_partials);
        p.set_random_first_pieces(random_first);
        let mut m = Model { p, peers: Vec::new(), n: pieces, rng: StdRng::seed_from_u64(seed) };
        m.check();
        for op in ops {
            m.apply(op);
            m.check();
        }
    }
}

//! String-DSL picker tests, one character per piece (as libtorrent's picker tests do):
//! availability strings are digits ("1213": piece 0 has 1 peer, piece 1 has 2, ...), have and
//! peer strings use `x` for a set bit and `.` for a clear one.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::types::BLOCK_SIZE;

impl Picker {
    /// Checks every invariant in the module doc; for tests.
    pub(super) fn check_invariants(&self) {
        self.order.check();
        let n = self.layout.num_pieces();
        for p in 0..n {
            let wanted = self.order.priority(p) != Priority::Skip;
            assert_eq!(
                self.order.contains(p),
                !self.have.get(p) && wanted,
                "piece {p}"
            );
            assert_eq!(self.needed.get(p), self.order.contains(p), "needed {p}");
        }
        assert_eq!(self.needed.count_ones(), self.order.missing_wanted());
        let lowest = self.next_needed(0, None).unwrap_or(n);
        assert!(
            self.cursor <= lowest,
            "cursor {} past {lowest}",
            self.cursor
        );
        assert!(self.partials.len() <= self.max_partials);
        assert_eq!(self.partial_order.len(), self.partials.len());
        let mut free = 0u64;
        for (&piece, partial) in &self.partials {
            assert!(!self.have.get(piece), "partial {piece} is verified");
            assert!(self.order.contains(piece), "partial {piece} not wanted");
            assert!(self.partial_order.contains(&piece));
            assert!(!partial.is_pristine(), "pristine partial {piece} kept");
            assert_eq!(
                partial.blocks.len() as u32,
                self.layout.blocks_in_piece(piece)
            );
            let f = partial.blocks.iter().filter(|&&s| s == FREE).count() as u32;
            let r = partial.blocks.iter().filter(|&&s| s == RECEIVED).count() as u32;
            assert_eq!((f, r), (partial.free, partial.received));
            assert!(partial
                .blocks
                .iter()
                .all(|&s| s == RECEIVED || s <= 1 + ENDGAME_MAX_EXTRA));
            free += f as u64;
        }
        assert_eq!(free, self.free_in_partials);
    }
}

/// Blocks per piece in the DSL layouts.
pub(super) const BPP: u32 = 4;

pub(super) fn layout(pieces: u32) -> Layout {
    Layout::new(BPP * BLOCK_SIZE, &[(pieces * BPP * BLOCK_SIZE) as u64]).unwrap()
}

pub(super) fn bf(s: &str) -> Bitfield {
    let mut b = Bitfield::new(s.len() as u32);
    for (i, c) in s.chars().enumerate() {
        if c == 'x' {
            b.set(i as u32);
        }
    }
    b
}

pub(super) fn full(n: u32) -> Bitfield {
    Bitfield::full(n)
}

/// A picker with the given availability and have strings (rarest-first from the start:
/// random-first is off unless a test turns it on).
pub(super) fn setup(avail: &str, have: &str, max_partials: usize) -> Picker {
    let n = avail.len() as u32;
    let have = if have.is_empty() {
        Bitfield::new(n)
    } else {
        bf(have)
    };
    let mut p = Picker::new(&layout(n), &have, max_partials);
    p.set_random_first_pieces(0);
    for (i, c) in avail.chars().enumerate() {
        for _ in 0..c.to_digit(10).unwrap() {
            p.add_have(i as u32);
        }
    }
    p.check_invariants();
    p
}

pub(super) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub(super) fn never(_: &BlockRef) -> bool {
    false
}

pub(super) fn pick(p: &mut Picker, peer: &Bitfield, want: usize, seed: u64) -> Vec<BlockRef> {
    let mut out = Vec::new();
    p.pick(peer, want, &mut rng(seed), &never, &mut out);
    p.check_invariants();
    out
}

/// The order in which pieces get started: pick one block at a time and receive it, noting
/// each piece the first time it shows up.
pub(super) fn pick_order(p: &mut Picker, peer: &Bitfield, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    let mut seen = Vec::new();
    loop {
        let mut out = Vec::new();
        p.pick(peer, 1, &mut r, &never, &mut out);
        let Some(b) = out.pop() else { break };
        assert!(p.on_block_received(&b));
        if !seen.contains(&b.piece) {
            seen.push(b.piece);
        }
        p.check_invariants();
    }
    seen
}

pub(super) fn pieces(blocks: &[BlockRef]) -> Vec<u32> {
    let mut v: Vec<u32> = blocks.iter().map(|b| b.piece).collect();
    v.dedup();
    v
}

#[test]
fn rarest_first() {
    for seed in 0..20 {
        let mut p = setup("1213", "", 10);
        let order = pick_order(&mut p, &full(4), seed);
        assert!(order == [0, 2, 1, 3] || order == [2, 0, 1, 3], "{order:?}");
    }
    let mut p = setup("3120", "..x.", 10);
    assert_eq!(pick_order(&mut p, &bf("xxxx"), 1), [3, 1, 0]);
}

#[test]
fn random_tie_break() {
    let mut firsts = HashSet::new();
    for seed in 0..64 {
        let mut p = setup("22", "", 10);
        firsts.insert(pick(&mut p, &full(2), 1, seed)[0].piece);
    }
    assert_eq!(firsts, HashSet::from([0, 1]));
}

#[test]
fn tie_break_after_availability_changes() {
    // Moving pieces between buckets keeps them reachable and ordered.
    let mut p = setup("2222", "", 10);
    p.add_have(3);
    p.add_have(1);
    p.remove_have(3);
    p.remove_have(3);
    p.check_invariants();
    assert_eq!(pick(&mut p, &full(4), 1, 7)[0].piece, 3);
    assert_eq!(p.availability(1), 3);
}

#[test]
fn partial_pieces_first() {
    let mut p = setup("1222", "", 10);
    // A peer with only piece 1 starts it.
    assert_eq!(pieces(&pick(&mut p, &bf(".x.."), 1, 0)), [1]);
    // A peer with everything finishes piece 1 before starting the rarer piece 0.
    let got = pick(&mut p, &full(4), 5, 0);
    assert_eq!(pieces(&got), [1, 0]);
    assert_eq!(got.iter().filter(|b| b.piece == 1).count(), 3);
}

#[test]
fn max_partials_respected() {
    let mut p = setup("1111", "", 2);
    let got = pick(&mut p, &full(4), 100, 0);
    assert_eq!(got.len(), 2 * BPP as usize);
    assert_eq!(p.partial_count(), 2);
    assert!(pick(&mut p, &full(4), 100, 1).is_empty());
    assert!(!p.is_endgame(), "unstarted pieces still have free blocks");
    // Finishing one makes room for one more.
    let done = got[0].piece;
    for b in got.iter().filter(|b| b.piece == done) {
        assert!(p.on_block_received(b));
    }
    p.on_piece_verified(done);
    assert_eq!(p.partial_count(), 1);
    assert_eq!(pick(&mut p, &full(4), 100, 2).len(), BPP as usize);
    assert_eq!(p.partial_count(), 2);
}

#[test]
fn random_first_pieces() {
    // Piece 3 is the most common: rarest-first never starts with it, random-first sometimes.
    let mut firsts = HashSet::new();
    for seed in 0..64 {
        let mut p = setup("1119", "", 10);
        p.set_random_first_pieces(RANDOM_FIRST_PIECES);
        firsts.insert(pick(&mut p, &full(4), 1, seed)[0].piece);
    }
    assert!(firsts.contains(&3), "{firsts:?}");
    for seed in 0..64 {
        let mut p = setup("1119", "", 10);
        assert_ne!(pick(&mut p, &full(4), 1, seed)[0].piece, 3);
    }
    // Only among pieces the peer has.
    for seed in 0..16 {
        let mut p = setup("1119", "", 10);
        p.set_random_first_pieces(RANDOM_FIRST_PIECES);
        assert_eq!(pieces(&pick(&mut p, &bf("..x."), 100, seed)), [2]);
    }
    // With four pieces verified, rarest first takes over.
    let mut p = Picker::new(&layout(8), &bf("xxxx...."), 10);
    for (i, c) in "00001119".chars().enumerate() {
        for _ in 0..c.to_digit(10).unwrap() {
            p.add_have(i as u32);
        }
    }
    for seed in 0..32 {
        let mut q = p.clone();
        assert_ne!(pick(&mut q, &full(8), 1, seed)[0].piece, 7);
    }
}

#[test]
fn seeds_counted_without_changing_order() {
    let mut p = setup("1213", "", 10);
    for _ in 0..3 {
        p.add_seed();
    }
    assert_eq!(p.availability(0), 4);
    assert_eq!(p.availability(3), 6);
    assert_eq!(p.seeds(), 3);
    let order = pick_order(&mut p, &full(4), 3);
    assert_eq!(order[2..], [1, 3]);
    let mut p = setup("1", "", 10);
    p.remove_seed();
    assert_eq!(p.availability(0), 1, "removing a seed never underflows");
    assert_eq!(p.availability(9), 0, "out of range");
}

#[test]
fn add_remove_bitfield_symmetry() {
    let mut p = setup("0000000000", "x.........", 10);
    let peers = [
        bf("xx..xx..xx"),
        bf("x.x.x.x.x."),
        bf("xxxxxxxxxx"),
        bf(".........x"),
    ];
    for b in &peers {
        p.add_bitfield(b);
        p.check_invariants();
    }
    let avail: Vec<u32> = (0..10).map(|i| p.availability(i)).collect();
    assert_eq!(avail, [3, 2, 2, 1, 3, 2, 2, 1, 3, 3]);
    for b in peers.iter().rev() {
        p.remove_bitfield(b);
        p.check_invariants();
    }
    assert!((0..10).all(|i| p.availability(i) == 0));
    p.remove_bitfield(&peers[2]);
    assert!((0..10).all(|i| p.availability(i) == 0), "no underflow");
    // A bitfield of the wrong length only counts the pieces that exist.
    p.add_bitfield(&bf("xxxxxxxxxxxx"));
    p.remove_bitfield(&bf("xxxxxxxxxxxx"));
    p.check_invariants();
}

#[test]
fn endgame_duplicates_never_to_same_peer() {
    let mut p = setup("33", "", 10);
    let a = pick(&mut p, &full(2), 100, 0);
    assert_eq!(a.len(), 8);
    assert!(p.is_endgame());
    assert!(p.on_block_received(&a[0]));
    let a_set: HashSet<BlockRef> = a.iter().copied().collect();
    let mut out = Vec::new();
    p.pick(&full(2), 100, &mut rng(1), &|b| a_set.contains(b), &mut out);
    assert!(
        out.is_empty(),
        "nothing duplicated to the peer that has it all"
    );

    // B takes two duplicates; C gets the blocks with fewest outstanding first.
    let b = pick(&mut p, &full(2), 2, 0);
    assert_eq!(b.len(), 2);
    assert!(!b.contains(&a[0]), "received blocks are not duplicated");
    let b_set: HashSet<BlockRef> = b.iter().copied().collect();
    let mut c = Vec::new();
    p.pick(&full(2), 5, &mut rng(2), &|x| b_set.contains(x), &mut c);
    assert_eq!(c.len(), 5);
    assert!(c
        .iter()
        .all(|x| !b_set.contains(x) && p.outstanding(x) == 2));
    // Within a single call no block is picked twice; the cap is 1 + ENDGAME_MAX_EXTRA.
    let d = pick(&mut p, &full(2), 100, 3);
    let d_set: HashSet<BlockRef> = d.iter().copied().collect();
    assert_eq!(d_set.len(), d.len());
    assert_eq!(d.len(), 7);
    assert!(pick(&mut p, &full(2), 100, 4).is_empty(), "cap reached");
    assert!((1..8).all(|i| p.outstanding(&a[i]) == 1 + ENDGAME_MAX_EXTRA as u32));
    // The first copy wins; the rest are duplicates.
    assert!(p.on_block_received(&a[1]));
    assert!(!p.on_block_received(&a[1]));
}

#[test]
fn endgame_duplicates_wait_for_the_next_pick() {
    let mut p = setup("1", "", 10);
    let a = pick(&mut p, &full(1), 2, 0);
    let a_set: HashSet<BlockRef> = a.iter().copied().collect();
    let mut out = Vec::new();
    p.pick(&full(1), 4, &mut rng(0), &never, &mut out);
    // The last two free blocks only: the call that starts endgame adds no duplicates.
    assert_eq!(out.len(), 2);
    assert!(p.is_endgame());
    let mut dup = Vec::new();
    let mine: HashSet<BlockRef> = out.iter().copied().collect();
    p.pick(&full(1), 4, &mut rng(0), &|b| mine.contains(b), &mut dup);
    // Then duplicates of the other peer's blocks (never of its own).
    assert_eq!(dup.iter().copied().collect::<HashSet<_>>(), a_set);
}

#[test]
fn request_dropped_frees_block() {
    let mut p = setup("11", "", 10);
    let got = pick(&mut p, &full(2), 100, 0);
    assert_eq!(
        pick(&mut p, &full(2), 100, 0).len(),
        8,
        "endgame duplicates"
    );
    // Undo the duplicates so only the first requests remain.
    for b in &got {
        p.on_request_dropped(b);
    }
    assert!(p.is_endgame(), "every block still requested once");
    assert_eq!(p.partial_count(), 2, "first requests still outstanding");
    p.on_request_dropped(&got[5]);
    assert!(!p.is_endgame());
    assert_eq!(pick(&mut p, &full(2), 1, 1), [got[5]]);
    for b in &got {
        p.on_request_dropped(b);
        p.on_request_dropped(b); // extra drops are ignored
    }
    assert_eq!(p.partial_count(), 0, "pristine partials are forgotten");
    p.check_invariants();
    // A dropped request's data arriving late is still welcome.
    let again = pick(&mut p, &full(2), 1, 2);
    p.on_request_dropped(&again[0]);
    assert_eq!(p.partial_count(), 0);
    assert!(
        !p.on_block_received(&again[0]),
        "not in progress: not wanted"
    );
    let again = pick(&mut p, &full(2), 2, 2);
    p.on_request_dropped(&again[1]);
    assert!(p.on_block_received(&again[1]));
    p.check_invariants();
}

#[test]
fn piece_failed_refrees_blocks() {
    let mut p = setup("1", "", 10);
    let got = pick(&mut p, &full(1), 100, 0);
    for b in &got {
        assert!(!p.is_piece_complete(0));
        assert!(p.on_block_received(b));
    }
    assert!(p.is_piece_complete(0));
    p.on_piece_failed(0);
    p.check_invariants();
    assert!(!p.is_piece_complete(0));
    assert!(!p.we_have(0));
    assert_eq!(pick(&mut p, &full(1), 100, 1), got);
    for b in &got {
        assert!(p.on_block_received(b));
    }
    p.on_piece_verified(0);
    assert!(p.we_have(0) && p.is_complete() && !p.is_endgame());
    assert_eq!(p.partial_count(), 0);
    p.on_piece_failed(0); // ignored: we have it
    assert!(p.we_have(0));
    assert!(!p.on_block_received(&got[0]));
    assert!(pick(&mut p, &full(1), 100, 1).is_empty());
}

#[test]
fn last_piece_shorter() {
    // Two pieces of 4 blocks and a last piece of 1.5 blocks.
    let l = Layout::new(
        BPP * BLOCK_SIZE,
        &[(9 * BLOCK_SIZE + BLOCK_SIZE / 2) as u64],
    )
    .unwrap();
    let mut p = Picker::new(&l, &bf("xx."), 10);
    p.add_have(2);
    let got = pick(&mut p, &full(3), 100, 0);
    assert_eq!(
        got,
        [
            BlockRef {
                piece: 2,
                offset: 0,
                len: BLOCK_SIZE
            },
            BlockRef {
                piece: 2,
                offset: BLOCK_SIZE,
                len: BLOCK_SIZE / 2
            }
        ]
    );
    assert!(p.on_block_received(&got[0]));
    assert!(p.on_block_received(&got[1]));
    assert!(p.is_piece_complete(2));
}

#[test]
fn peer_without_the_piece_gets_nothing() {
    let mut p = setup("1111", "xx..", 10);
    let peer = bf("xx..");
    assert!(!p.is_interesting(&peer));
    assert!(pick(&mut p, &peer, 100, 0).is_empty());
    assert_eq!(p.partial_count(), 0);
    assert!(p.is_interesting(&bf("...x")));
    assert!(
        !p.is_interesting(&bf("xx..xxxxx")),
        "past the end is ignored"
    );
    assert!(p.is_interesting(&bf("..x")), "short bitfield");
    assert_eq!(pieces(&pick(&mut p, &bf("...x"), 100, 0)), [3]);
}

#[test]
fn invalid_input_is_ignored() {
    let mut p = setup("11", "", 10);
    p.add_have(99);
    p.remove_have(99);
    p.remove_have(0);
    p.remove_have(0);
    assert_eq!(p.availability(0), 0);
    p.on_piece_verified(99);
    p.on_piece_failed(99);
    assert!(!p.is_piece_complete(99) && !p.we_have(99));
    let bogus = [
        BlockRef {
            piece: 0,
            offset: 1,
            len: BLOCK_SIZE,
        },
        BlockRef {
            piece: 0,
            offset: 0,
            len: 1,
        },
        BlockRef {
            piece: 7,
            offset: 0,
            len: BLOCK_SIZE,
        },
        BlockRef {
            piece: 0,
            offset: BPP * BLOCK_SIZE,
            len: BLOCK_SIZE,
        },
    ];
    pick(&mut p, &full(2), 1, 0);
    for b in &bogus {
        assert!(!p.on_block_received(b));
        p.on_request_dropped(b);
    }
    assert_eq!(pick(&mut p, &full(2), 0, 0), []);
    p.check_invariants();
    // A zero cap still lets one piece through.
    let mut q = Picker::new(&layout(2), &Bitfield::new(2), 0);
    assert_eq!(q.max_partials(), 1);
    assert_eq!(pick(&mut q, &full(2), 100, 0).len(), BPP as usize);
}

#[test]
fn empty_torrent() {
    let l = Layout::new(BLOCK_SIZE, &[]).unwrap();
    let mut p = Picker::new(&l, &Bitfield::new(0), 4);
    assert!(p.is_complete() && !p.is_endgame());
    assert!(pick(&mut p, &Bitfield::new(0), 10, 0).is_empty());
    let mut r = Picker::new(&layout(3), &Bitfield::new(3), 4);
    r.set_random_first_pieces(RANDOM_FIRST_PIECES);
    assert!(pick(&mut r, &Bitfield::new(3), 10, 0).is_empty());
}

#[test]
fn failed_piece_with_requests_still_in_flight_here() {
    // Only an engine that fails a piece early can get here; pick must neither spin nor
    // hand the peer blocks it already has in flight.
    for random_first in [0, RANDOM_FIRST_PIECES] {
        let mut p = setup("1", "", 10);
        p.set_random_first_pieces(random_first);
        let a = pick(&mut p, &full(1), 100, 0);
        p.on_piece_failed(0);
        let a_set: HashSet<BlockRef> = a.iter().copied().collect();
        let mut out = Vec::new();
        p.pick(&full(1), 100, &mut rng(1), &|b| a_set.contains(b), &mut out);
        assert!(out.is_empty());
        assert_eq!(p.partial_count(), 0);
        p.check_invariants();
        assert_eq!(pick(&mut p, &full(1), 100, 2), a, "another peer gets them");
    }
}

/// Pieces started by picking one piece's worth of blocks `count` times.
pub(super) fn started(p: &mut Picker, peer: &Bitfield, count: usize) -> Vec<u32> {
    (0..count)
        .map(|i| {
            let blocks = pick(p, peer, BPP as usize, i as u64);
            assert!(blocks.iter().all(|b| b.piece == blocks[0].piece));
            blocks[0].piece
        })
        .collect()
}

#[test]
fn ties_go_to_the_extent_in_progress() {
    // 64 KiB pieces: 64 to a 4 MiB extent. All from seeds: after the first piece (at
    // random), its extent's pieces follow in order, wrapping inside the extent.
    let mut p = setup(&"0".repeat(200), "", 1000);
    p.add_seed();
    assert_eq!(p.extent_pieces(), 64);
    let got = started(&mut p, &full(200), 64);
    let first = got[0];
    let extent = first / 64 * 64..(first / 64 * 64 + 64).min(200);
    let want: Vec<u32> = (first..extent.end).chain(extent.start..first).collect();
    assert_eq!(got[..want.len()], want[..]);
    // The extent done, the next piece is a random one of another extent.
    let next = started(&mut p, &full(200), 1)[0];
    assert!(!extent.contains(&next), "{next} in {extent:?}");
}

#[test]
fn extent_affinity_only_while_everything_comes_from_seeds() {
    let mut p = setup(&"0".repeat(200), "", 1000);
    p.add_seed();
    assert!(p.extent_affinity());
    // A leecher has piece 150: someone to trade with, so ties are random again.
    p.add_have(150);
    assert!(!p.extent_affinity());
    p.remove_have(150);
    assert!(p.extent_affinity());
    // Rarity still comes first: with one leecher holding most pieces, the pieces only
    // the seed has are started before any other.
    let mut avail = vec!['1'; 200];
    avail[10] = '0';
    avail[100] = '0';
    let mut p = setup(&avail.iter().collect::<String>(), "", 1000);
    p.add_seed();
    let mut rare = started(&mut p, &full(200), 2);
    rare.sort();
    assert_eq!(rare, [10, 100]);
}

#[test]
fn no_extent_affinity_with_pieces_of_4_mib() {
    let layout = Layout::new(4 << 20, &[40 << 20]).unwrap();
    let p = Picker::new(&layout, &Bitfield::new(10), 10);
    assert_eq!(p.extent_pieces(), 1);
    assert_eq!(p.extent_neighbour(order::LEVEL_NORMAL, 0, &full(10)), None);
}

//! Priority and sequential-order tests, in the string DSL of `tests.rs`; priority strings use
//! one character per piece: `-` Skip, `n` Normal, `h` High.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::Rng;

use super::tests::{bf, full, never, pick, pick_order, pieces, rng, setup, BPP};
use super::*;

fn prio(s: &str) -> Vec<Priority> {
    s.chars()
        .map(|c| match c {
            '-' => Priority::Skip,
            'h' => Priority::High,
            _ => Priority::Normal,
        })
        .collect()
}

fn set(p: &mut Picker, s: &str) {
    p.set_priorities(&prio(s));
    p.check_invariants();
}

/// Receive every block of `got` and verify the pieces that are then complete.
fn receive_all(p: &mut Picker, got: &[BlockRef]) {
    for b in got {
        assert!(p.on_block_received(b));
        if p.is_piece_complete(b.piece) {
            p.on_piece_verified(b.piece);
        }
    }
    p.check_invariants();
}

/// The order in which pieces get started when each piece is verified as soon as it is
/// complete (so a sequential window slides), one block at a time.
fn download_order(p: &mut Picker, peer: &Bitfield, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    let mut seen = Vec::new();
    loop {
        let mut out = Vec::new();
        p.pick(peer, 1, &mut r, &never, &mut out);
        let Some(b) = out.pop() else { break };
        if !seen.contains(&b.piece) {
            seen.push(b.piece);
        }
        receive_all(p, &[b]);
    }
    seen
}

#[test]
fn skipped_pieces_are_never_picked() {
    for seed in 0..16 {
        // Piece 0 is the rarest, but skipped.
        let mut p = setup("1999", "", 10);
        set(&mut p, "-nnn");
        assert_eq!(p.priority(0), Priority::Skip);
        let order = pick_order(&mut p, &full(4), seed);
        assert!(!order.contains(&0), "{order:?}");
        assert_eq!(order.len(), 3);
    }
    // Random-first never picks them either.
    for seed in 0..16 {
        let mut p = setup("1111", "", 10);
        p.set_random_first_pieces(RANDOM_FIRST_PIECES);
        set(&mut p, "-n-n");
        let got: HashSet<u32> = pieces(&pick(&mut p, &full(4), 100, seed))
            .into_iter()
            .collect();
        assert_eq!(got, HashSet::from([1, 3]));
    }
}

#[test]
fn skipped_pieces_make_no_peer_interesting() {
    let mut p = setup("1111", "x...", 10);
    set(&mut p, "n-n-");
    assert!(!p.is_interesting(&bf(".x.x")));
    assert!(!p.is_interesting(&bf("xx.x")), "pieces we have or skip");
    assert!(p.is_interesting(&bf("..x.")));
    assert!(!p.is_interesting(&bf(".x.x.....")), "wrong length");
    assert!(p.is_interesting(&bf("..x")), "short bitfield");
    assert!(pick(&mut p, &bf(".x.x"), 100, 0).is_empty());
    assert_eq!(p.partial_count(), 0);
}

#[test]
fn complete_when_every_wanted_piece_is_verified() {
    let mut p = setup("111", "", 10);
    set(&mut p, "n-n");
    assert_eq!(p.wanted_missing(), 2);
    let got = pick(&mut p, &full(3), 100, 0);
    assert_eq!(pieces(&got).len(), 2);
    assert!(p.is_endgame(), "every wanted block is requested");
    assert!(!p.is_complete());
    receive_all(&mut p, &got);
    assert!(p.is_complete() && !p.has_all() && !p.is_endgame());
    assert_eq!(p.wanted_missing(), 0);
    assert!(!p.we_have(1));
    // A skipped piece can still be verified (one sharing a wanted file's boundary).
    p.on_piece_verified(1);
    assert!(p.we_have(1) && p.has_all() && p.is_complete());
    p.check_invariants();
}

#[test]
fn no_endgame_duplicates_of_skipped_pieces() {
    let mut p = setup("11", "", 10);
    let a = pick(&mut p, &full(2), BPP as usize, 0);
    let started = a[0].piece;
    // The other piece is skipped: only `started` is wanted, and it is fully requested.
    let mut prios = prio("nn");
    prios[1 - started as usize] = Priority::Skip;
    p.set_priorities(&prios);
    assert!(p.is_endgame());
    let dup = pick(&mut p, &full(2), 100, 1);
    assert_eq!(dup.len(), BPP as usize);
    assert!(dup.iter().all(|b| b.piece == started), "{dup:?}");
}

#[test]
fn high_before_normal() {
    // The Normal piece 1 is the rarest; High pieces go first anyway.
    for seed in 0..16 {
        let mut p = setup("5155", "", 10);
        set(&mut p, "nnhh");
        let order = pick_order(&mut p, &full(4), seed);
        assert!(order == [2, 3, 1, 0] || order == [3, 2, 1, 0], "{order:?}");
    }
    // Rarest first within High, and within Normal.
    let mut p = setup("1253", "", 10);
    set(&mut p, "nhhh");
    assert_eq!(pick_order(&mut p, &full(4), 0), [1, 3, 2, 0]);
    let mut p = setup("3120", "", 10);
    set(&mut p, "hnnn");
    assert_eq!(pick_order(&mut p, &full(4), 0), [0, 3, 1, 2]);
    // A High piece the peer lacks does not hold Normal ones back.
    let mut p = setup("11", "", 10);
    set(&mut p, "hn");
    assert_eq!(pieces(&pick(&mut p, &bf(".x"), 100, 0)), [1]);
}

#[test]
fn high_partials_are_finished_first() {
    let mut p = setup("11", "", 10);
    set(&mut p, "nh");
    assert_eq!(pieces(&pick(&mut p, &bf("x."), 1, 0)), [0]);
    assert_eq!(pieces(&pick(&mut p, &bf(".x"), 1, 0)), [1]);
    // Piece 0 was started first, but the High piece 1 is finished first.
    let got = pick(&mut p, &full(2), BPP as usize - 1, 0);
    assert_eq!(pieces(&got), [1]);
}

#[test]
fn skip_mid_download_forgets_the_partial() {
    let mut p = setup("12", "", 10);
    let got = pick(&mut p, &full(2), 2, 0);
    assert_eq!(pieces(&got), [0]);
    assert!(p.on_block_received(&got[0]));
    set(&mut p, "-n");
    assert_eq!(p.partial_count(), 0);
    assert!(
        !p.on_block_received(&got[1]),
        "late block of a skipped piece"
    );
    p.on_request_dropped(&got[1]); // ignored
    assert!(!p.is_piece_complete(0));
    assert_eq!(pieces(&pick(&mut p, &full(2), 100, 0)), [1]);
    // Wanted again: started from scratch.
    set(&mut p, "nn");
    let again = pick(&mut p, &full(2), 100, 0);
    assert_eq!(again.len(), BPP as usize);
    assert!(again.iter().all(|b| b.piece == 0));
}

#[test]
fn skip_to_normal_reenters_at_its_current_availability() {
    // Skipped at availability 3, it becomes the rarest while skipped.
    let mut p = setup("3333", "", 10);
    set(&mut p, "-nnn");
    p.remove_have(0);
    p.remove_have(0);
    for q in 1..4 {
        p.add_have(q);
    }
    p.add_bitfield(&bf("..x."));
    p.check_invariants();
    assert_eq!(p.availability(0), 1);
    set(&mut p, "nnnn");
    assert_eq!(pick_order(&mut p, &full(4), 0), [0, 1, 3, 2]);
    // The other way round: rarest when skipped, most common when wanted again.
    let mut p = setup("1222", "", 10);
    set(&mut p, "-nnn");
    for _ in 0..5 {
        p.add_have(0);
    }
    set(&mut p, "hnnn");
    set(&mut p, "nnnn");
    assert_eq!(p.availability(0), 6);
    assert_eq!(*pick_order(&mut p, &full(4), 0).last().unwrap(), 0);
}

#[test]
fn sequential_starts_pieces_in_index_order() {
    // Equally available pieces, each finished before the next is picked: the piece at the
    // cursor wins every tie, so the order is the index order.
    let mut p = setup(&"2".repeat(40), "", 8);
    p.set_sequential(true);
    assert_eq!(
        download_order(&mut p, &full(40), 0),
        (0..40).collect::<Vec<_>>()
    );
    // From the cursor: the lowest piece we lack and want.
    let mut p = setup(&"2".repeat(8), "xx.x....", 8);
    p.set_sequential(true);
    set(&mut p, "nnn-nnnn");
    assert_eq!(download_order(&mut p, &full(8), 0), [2, 4, 5, 6, 7]);
    // Pieces started together (none finished): the cursor's first, the rest of the
    // window in random order, so downloaders at the same place fetch different pieces.
    let orders: Vec<Vec<u32>> = (0..4)
        .map(|seed| {
            let mut p = setup(&"2".repeat(40), "", 8);
            p.set_sequential(true);
            pick_order(&mut p, &full(40), seed)
        })
        .collect();
    for o in &orders {
        assert_eq!(o[0], 0, "{o:?}");
        assert!(o.iter().all(|&q| q < 16), "{o:?}");
    }
    assert!(orders.windows(2).any(|w| w[0] != w[1]), "{orders:?}");
}

#[test]
fn sequential_window_goes_rarest_first() {
    // Piece 5 (in the first window) is rarer: first. Piece 20 (past it) waits until the
    // window reaches it (16 missing pieces from the cursor: 4 and 6..=20, once 0..=3 and 5
    // are verified), then jumps the queue.
    let mut avail = ['3'; 40];
    avail[5] = '1';
    avail[20] = '1';
    // 8 pieces in progress at most: the window is 16 pieces.
    let mut p = setup(&avail.iter().collect::<String>(), "", 8);
    p.set_sequential(true);
    let order = download_order(&mut p, &full(40), 0);
    let mut want = vec![5, 0, 1, 2, 3, 20];
    want.extend((4..40).filter(|&q| q != 5 && q != 20));
    assert_eq!(order, want);
    assert_eq!(
        SEQUENTIAL_WINDOW, 16,
        "the expected order assumes this window"
    );
}

#[test]
fn sequential_peer_without_the_window_gets_the_next_piece_it_has() {
    let mut p = setup(&"1".repeat(40), "", 10);
    p.set_sequential(true);
    let mut peer = Bitfield::new(40);
    peer.set(35);
    peer.set(30);
    assert_eq!(pieces(&pick(&mut p, &peer, 100, 0)), [30, 35]);
    // One window piece is enough to stay in the window.
    peer.set(3);
    let mut q = setup(&"1".repeat(40), "", 10);
    q.set_sequential(true);
    assert_eq!(pieces(&pick(&mut q, &peer, 1, 0)), [3]);
    // Random-first does not apply in sequential mode.
    let mut r = setup(&"1".repeat(40), "", 10);
    r.set_random_first_pieces(RANDOM_FIRST_PIECES);
    r.set_sequential(true);
    assert_eq!(pieces(&pick(&mut r, &full(40), 1, 7)), [0]);
}

#[test]
fn sequential_high_pieces_first() {
    // --first-last: the first and last piece of the file are High.
    for seed in 0..8 {
        let mut p = setup(&"1".repeat(20), "", 10);
        p.set_sequential(true);
        let mut s = ['n'; 20];
        s[0] = 'h';
        s[19] = 'h';
        set(&mut p, &s.iter().collect::<String>());
        let order = download_order(&mut p, &full(20), seed);
        let mut firsts = order[..2].to_vec();
        firsts.sort();
        assert_eq!(firsts, [0, 19]);
        assert_eq!(order[2..], (1..19).collect::<Vec<_>>()[..]);
    }
}

/// Several peers with every piece, each keeping a few requests in flight; blocks arrive in
/// a shuffled order and a piece is verified when complete. Returns, for each verified
/// piece, how many wanted pieces below it were still missing at that moment.
fn simulate(sequential: bool, max_partials: usize, seed: u64) -> Vec<usize> {
    let n = 64u32;
    let avail: String = (0..n)
        .map(|i| ['1', '2', '3'][(i * 7 % 3) as usize])
        .collect();
    let mut p = setup(&avail, "", max_partials);
    p.set_sequential(sequential);
    let mut r = rng(seed);
    let mut in_flight: Vec<Vec<BlockRef>> = vec![Vec::new(); 3];
    let mut below = Vec::new();
    for _round in 0..100_000 {
        if p.is_complete() {
            break;
        }
        for mine in &mut in_flight {
            let mut out = Vec::new();
            let want = 6usize.saturating_sub(mine.len());
            let here = mine.clone();
            p.pick(&full(n), want, &mut r, &|b| here.contains(b), &mut out);
            mine.extend(out);
        }
        for _ in 0..4 {
            let k = r.gen_range(0..in_flight.len());
            if in_flight[k].is_empty() {
                continue;
            }
            in_flight[k].shuffle(&mut r);
            let b = in_flight[k].pop().unwrap();
            assert!(p.on_block_received(&b), "{b:?}");
            for other in &mut in_flight {
                if let Some(j) = other.iter().position(|x| *x == b) {
                    other.swap_remove(j);
                    p.on_request_dropped(&b);
                }
            }
            if p.is_piece_complete(b.piece) {
                below.push((0..b.piece).filter(|&q| !p.we_have(q)).count());
                p.on_piece_verified(b.piece);
            }
        }
        p.check_invariants();
    }
    assert!(p.is_complete());
    assert_eq!(below.len(), n as usize);
    below
}

#[test]
fn sequential_verification_order_stays_within_the_window() {
    let w = SEQUENTIAL_WINDOW as usize;
    for seed in 0..4 {
        // With more pieces in progress than the window, the window grows to hold them.
        for max_partials in [2, 5, w, 3 * w] {
            let window = w.max(2 * max_partials);
            let below = simulate(true, max_partials, seed);
            assert!(below.iter().all(|&b| b < window), "{below:?}");
        }
        // The same check catches rarest-first order: it is not sequential.
        let below = simulate(false, w, seed);
        assert!(below.iter().any(|&b| b >= w), "{below:?}");
    }
}

#[test]
fn hostile_priorities_are_ignored() {
    let mut p = setup("111", "", 10);
    assert_eq!(p.priority(99), Priority::Normal);
    set(&mut p, "-h-h-h-h"); // longer: extra ignored
    assert_eq!(p.wanted_missing(), 1);
    set(&mut p, "-"); // shorter: the rest Normal
    assert_eq!(p.wanted_missing(), 2);
    assert_eq!(p.priority(2), Priority::Normal);
    set(&mut p, "");
    assert_eq!(p.wanted_missing(), 3);
    // An empty torrent.
    let l = crate::layout::Layout::new(crate::types::BLOCK_SIZE, &[]).unwrap();
    let mut e = Picker::new(&l, &Bitfield::new(0), 4);
    e.set_priorities(&prio("hh"));
    e.set_sequential(true);
    assert!(e.is_complete() && e.has_all());
    assert!(pick(&mut e, &Bitfield::new(0), 10, 0).is_empty());
}

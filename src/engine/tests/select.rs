//! File selection in the engine: skipped pieces are never asked for, interest and
//! completion follow what is wanted, and the wanted-bytes tally follows the selection.

use super::*;
use crate::selection::Priority::{Normal as N, Skip as S};

/// Three files over 8 pieces of two blocks, boundaries inside pieces 3 and 5:
/// file 0 is pieces 0-3, file 1 pieces 3-5, file 2 pieces 5-7.
fn three_files() -> T {
    let b = BLOCK_SIZE as u64;
    let p = PIECE as u64;
    let layout = Layout::new(PIECE, &[3 * p + b, 2 * p, 3 * p - b]).unwrap();
    let cfg = TorrentConfig {
        rng_seed: 7,
        ..TorrentConfig::default()
    };
    let now = Instant::now();
    T {
        e: Engine::new(cfg, layout, Bitfield::new(8), now),
        now,
    }
}

fn pieces_of(reqs: &[BlockRef]) -> Vec<u32> {
    let mut p: Vec<u32> = reqs.iter().map(|b| b.piece).collect();
    p.sort();
    p.dedup();
    p
}

#[test]
fn only_the_pieces_of_wanted_files_are_requested_and_they_complete_the_torrent() {
    let mut t = three_files();
    t.e.set_file_priorities(t.now, &[S, N, S]);
    assert_eq!(t.e.stats().wanted_bytes, 3 * PIECE as u64);
    assert!(!t.e.is_complete());
    let mut asked = t.seed_peer(1);
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|b| (3..=5).contains(&b.piece)),
        "{asked:?}"
    );
    let mut seen = pieces_of(&asked);
    // Hand every block in; whatever else it asks for is wanted too.
    while let Some(b) = asked.pop() {
        assert!(t.e.block_received(t.now, 1, b));
        asked.extend(requests(&t.drain(), 1));
        assert!(
            asked.iter().all(|b| (3..=5).contains(&b.piece)),
            "{asked:?}"
        );
        seen.extend(pieces_of(&asked));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec![3, 4, 5]);
    t.verified(3);
    t.verified(4);
    let done = t.verified(5);
    assert!(
        done.iter().any(|a| matches!(a, Action::Complete)),
        "{done:?}"
    );
    assert!(t.e.is_complete() && !t.e.have().is_full());
    let st = t.e.stats();
    assert_eq!(st.wanted_verified_bytes, st.wanted_bytes);
}

#[test]
fn a_peer_with_only_skipped_pieces_is_not_interesting() {
    let mut t = three_files();
    t.e.set_file_priorities(t.now, &[N, S, S]);
    t.connect(1, PLAIN);
    let mut bf = Bitfield::new(8);
    for p in [6, 7] {
        bf.set(p);
    }
    let a = t.msg(1, Message::Bitfield(bf));
    assert!(!sent(&a, 1, &Message::Interested), "{a:?}");
    let a = t.msg(1, Message::Have(2));
    assert!(sent(&a, 1, &Message::Interested), "{a:?}");
    // Wanting another file (pieces 3-5, none of which it has) takes the interest away.
    t.e.set_file_priorities(t.now, &[S, N, S]);
    let a = t.drain();
    assert!(sent(&a, 1, &Message::NotInterested), "{a:?}");
    // A Have of a skipped piece changes nothing; one of a wanted piece does.
    let a = t.msg(1, Message::Have(0));
    assert!(!sent(&a, 1, &Message::Interested), "{a:?}");
    let a = t.msg(1, Message::Have(5));
    assert!(sent(&a, 1, &Message::Interested), "{a:?}");
}

#[test]
fn widening_a_complete_selection_downloads_the_rest() {
    let mut t = three_files();
    t.e.set_file_priorities(t.now, &[N, S, S]);
    for p in 0..=3 {
        t.verified(p);
    }
    assert!(t.e.is_complete());
    t.e.set_file_priorities(t.now, &[N, N, N]);
    assert!(!t.e.is_complete());
    assert_eq!(t.e.stats().wanted_bytes, 8 * PIECE as u64);
    let asked = t.seed_peer(2);
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|b| b.piece >= 4), "{asked:?}");
    for p in 4..8 {
        t.verified(p);
    }
    assert!(t.e.is_complete() && t.e.have().is_full());
}

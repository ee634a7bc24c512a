//! Who sent the bad blocks of a failed piece ("smart ban", as libtorrent calls it).
//!
//! A piece that fails its hash with blocks from several peers does not say who lied, and a
//! liar whose blocks always share pieces with honest ones would never be the sole sender
//! of a failure. So when a piece fails (any piece: failures are rare), each block's SHA-1
//! is remembered with its sender; when the piece later verifies, a sender whose remembered block differs from the
//! verified block lied, proven. Pure: the store task feeds it digests computed on its
//! blocking threads.
//!
//! Invariants: at most [`MAX_PIECES`] failed pieces are remembered (the oldest forgotten
//! first), each with at most [`MAX_ENTRIES`] (block, sender, digest) entries, so memory is
//! bounded whatever peers send; a piece's record is dropped once it verifies.

use std::collections::{HashMap, VecDeque};

/// Failed pieces remembered at once. A liar is usually caught within a few pieces; more
/// would only keep proof of pieces no one will finish.
pub(super) const MAX_PIECES: usize = 64;

/// Entries kept per piece: a 16 MiB piece's 1,024 blocks over four failed attempts.
pub(super) const MAX_ENTRIES: usize = 4096;

/// One remembered block of a failed attempt.
#[derive(Debug, Clone, Copy)]
struct Sent {
    block: u32,
    peer: u64,
    digest: [u8; 20],
}

#[derive(Debug, Default)]
pub(super) struct SmartBan {
    pieces: HashMap<u32, Vec<Sent>>,
    order: VecDeque<u32>,
}

impl SmartBan {
    /// Piece `piece` failed; `from[i]` sent block `i`, whose SHA-1 is `digests[i]`.
    pub fn failed(&mut self, piece: u32, from: &[u64], digests: &[[u8; 20]]) {
        if !self.pieces.contains_key(&piece) {
            if self.order.len() >= MAX_PIECES {
                if let Some(old) = self.order.pop_front() {
                    self.pieces.remove(&old);
                }
            }
            self.order.push_back(piece);
        }
        let sent = self.pieces.entry(piece).or_default();
        let blocks = from.iter().zip(digests).enumerate();
        for (block, (&peer, &digest)) in blocks {
            if sent.len() >= MAX_ENTRIES {
                break;
            }
            sent.push(Sent {
                block: block as u32,
                peer,
                digest,
            });
        }
    }

    /// Whether a failed attempt of `piece` is remembered (its verified blocks are then
    /// worth hashing one by one).
    pub fn is_suspect(&self, piece: u32) -> bool {
        self.pieces.contains_key(&piece)
    }

    /// `piece` verified with blocks whose SHA-1s are `good`: the senders of any remembered
    /// block that differs (each once, in order of first offence). Forgets the piece.
    pub fn verified(&mut self, piece: u32, good: &[[u8; 20]]) -> Vec<u64> {
        let Some(sent) = self.pieces.remove(&piece) else {
            return Vec::new();
        };
        self.order.retain(|&p| p != piece);
        let mut liars = Vec::new();
        for s in sent {
            let differs = good.get(s.block as usize).is_some_and(|g| *g != s.digest);
            if differs && !liars.contains(&s.peer) {
                liars.push(s.peer);
            }
        }
        liars
    }

    /// Forgets `piece` (verified without digests, e.g. by a recheck).
    pub fn forget(&mut self, piece: u32) {
        if self.pieces.remove(&piece).is_some() {
            self.order.retain(|&p| p != piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: u8) -> [u8; 20] {
        [b; 20]
    }

    #[test]
    fn the_sender_of_a_block_that_differs_is_named_and_honest_sharers_are_not() {
        let mut s = SmartBan::default();
        // Peers 1 (honest) and 2 (liar) share piece 7; 2's block 1 is wrong.
        s.failed(7, &[1, 2, 1], &[d(10), d(99), d(12)]);
        assert!(s.is_suspect(7));
        assert!(!s.is_suspect(8));
        assert_eq!(s.verified(7, &[d(10), d(11), d(12)]), [2]);
        assert!(!s.is_suspect(7), "forgotten once verified");
        assert!(s.verified(7, &[d(10), d(11), d(12)]).is_empty());
    }

    #[test]
    fn several_failed_attempts_add_up() {
        let mut s = SmartBan::default();
        s.failed(3, &[1, 2], &[d(1), d(50)]);
        s.failed(3, &[3, 1], &[d(60), d(2)]);
        assert_eq!(s.verified(3, &[d(1), d(2)]), [2, 3]);
    }

    #[test]
    fn memory_is_bounded_in_pieces_and_entries() {
        let mut s = SmartBan::default();
        for p in 0..(MAX_PIECES as u32 + 10) {
            s.failed(p, &[1], &[d(0)]);
        }
        assert_eq!(s.pieces.len(), MAX_PIECES);
        assert!(!s.is_suspect(0), "the oldest went first");
        assert!(s.is_suspect(MAX_PIECES as u32 + 9));
        let many = vec![5u64; MAX_ENTRIES + 100];
        let digests = vec![d(1); MAX_ENTRIES + 100];
        s.failed(1000, &many, &digests);
        s.failed(1000, &many, &digests);
        assert_eq!(s.pieces[&1000].len(), MAX_ENTRIES);
        s.forget(1000);
        assert!(!s.is_suspect(1000));
        assert_eq!(s.order.len(), s.pieces.len());
    }
}

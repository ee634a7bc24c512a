//! Complete pieces waiting to be hashed, and the job that hashes and writes them: one or
//! two at a time.
//!
//! Why two: with SHA-NI, two SHA-1s interleaved on one core (`sha1_pair`) cost ~60 % of two
//! apart, so a job takes two ready pieces when it can, preferably neighbours, which are then
//! written as one run (`Storage::write_adjacent`).
//!
//! Invariants: `lone_since` is set exactly while one piece is queued; a lone piece goes to
//! a job only when no job runs and it has waited [`PAIR_WAIT`] for a partner (at once when
//! the store is closing), so it can never wait past the running job or 5 ms.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::stream;
use super::{hash_blocks, Storage, StoreError};

/// How long a lone complete piece waits for a second one to be hashed with. At 50 MB/s and
/// more a 256 KiB piece follows within 5 ms, so fast downloads hash in pairs even when the
/// hashing keeps up with the network, when each piece would otherwise find no job running
/// and go alone (profiled on a 1 GiB fetch: lone pieces were 12 % of the hashing without
/// the wait, none with it); slower downloads lose 5 ms of latency per piece, which nothing
/// waits on.
pub(super) const PAIR_WAIT: Duration = Duration::from_millis(5);

/// A complete piece: its index and its blocks in order.
pub(super) type Piece = (u32, Vec<Bytes>);

/// SHA-1 of each block of a piece, in order (for the smart ban: `smart_ban.rs`).
pub(super) type Digests = Vec<[u8; 20]>;

/// What a job did to a piece. A buffered piece that failed comes with its blocks' digests
/// (failures are rare, and who sent which block is the proof against its sender); one that
/// verified, only when it was `suspect` (an earlier attempt failed: its blocks are the
/// reference). Otherwise the blocks are not hashed twice.
pub(super) enum Outcome {
    Verified(Option<Digests>),
    Mismatch(Option<Digests>),
    WriteFailed(StoreError),
    /// A streamed piece's job ended (the piece may or may not be complete).
    Streamed(stream::Done),
}

/// What a job did: each piece it handled (one or two) and the outcome.
pub(super) type Done = Vec<(u32, Outcome)>;

/// Complete pieces waiting for a hashing slot, in arrival order.
#[derive(Default)]
pub(super) struct Ready {
    queue: VecDeque<Piece>,
    /// When the one queued piece started waiting for a partner.
    lone_since: Option<Instant>,
}

impl Ready {
    pub fn push(&mut self, piece: u32, blocks: Vec<Bytes>) {
        self.queue.push_back((piece, blocks));
        self.lone_since = (self.queue.len() == 1).then(Instant::now);
    }

    /// The next job's pieces: two if two are queued (the first's neighbour if there is
    /// one), a lone one only when no job runs (`busy` false) and it has waited
    /// [`PAIR_WAIT`] or the store is `closing`.
    pub fn take(&mut self, busy: bool, closing: bool) -> Option<(Piece, Option<Piece>)> {
        let waited = self
            .lone_since
            .is_none_or(|t| closing || t.elapsed() >= PAIR_WAIT);
        if !(self.queue.len() >= 2 || (self.queue.len() == 1 && !busy && waited)) {
            return None;
        }
        let first = self.queue.pop_front()?;
        let near = |&(p, _): &Piece| p.abs_diff(first.0) == 1;
        let second = match self.queue.iter().position(near) {
            Some(i) => self.queue.remove(i),
            None => self.queue.pop_front(),
        };
        self.lone_since = (self.queue.len() == 1).then(Instant::now);
        Some((first, second))
    }

    /// When a lone piece's wait is over, if one waits and no job runs (`busy` false; else
    /// the job's end is the next look).
    pub fn wake_at(&self, busy: bool) -> Option<Instant> {
        self.lone_since.filter(|_| !busy).map(|t| t + PAIR_WAIT)
    }

    /// Empties the queue; the pieces that were in it.
    pub fn drain(&mut self) -> impl Iterator<Item = u32> + '_ {
        self.lone_since = None;
        self.queue.drain(..).map(|(p, _)| p)
    }
}

/// Hashes one complete piece, or two together, and writes each whose SHA-1 matched (two
/// neighbours that both matched as one run).
pub(super) fn verify_and_write(
    storage: &Storage,
    hashes: &[[u8; 20]],
    (first, suspect_first): (Piece, bool),
    second: Option<(Piece, bool)>,
) -> Done {
    let matches = |piece: u32, digest: [u8; 20]| hashes.get(piece as usize) == Some(&digest);
    let Some((second, suspect_second)) = second else {
        let ok = matches(first.0, hash_blocks(&first.1));
        return vec![write_one(storage, first, ok, suspect_first)];
    };
    let (x, y) = crate::sha1_pair::digest_pair(&first.1, &second.1);
    let (ok_a, ok_b) = (matches(first.0, x), matches(second.0, y));
    if ok_a && ok_b && first.0.abs_diff(second.0) == 1 {
        let (lo, hi) = if first.0 < second.0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        if storage.write_adjacent(lo.0, &lo.1, &hi.1).is_ok() {
            let a = digests(&first.1, suspect_first);
            let b = digests(&second.1, suspect_second);
            return vec![
                (first.0, Outcome::Verified(a)),
                (second.0, Outcome::Verified(b)),
            ];
        }
        // Written apart again, so each piece gets its own outcome (and its own error).
    }
    vec![
        write_one(storage, first, ok_a, suspect_first),
        write_one(storage, second, ok_b, suspect_second),
    ]
}

/// Writes one piece whose hash was checked (`ok`: it matched).
fn write_one(storage: &Storage, (piece, blocks): Piece, ok: bool, suspect: bool) -> (u32, Outcome) {
    if !ok {
        return (piece, Outcome::Mismatch(digests(&blocks, true)));
    }
    match storage.write_piece(piece, &blocks) {
        Ok(()) => (piece, Outcome::Verified(digests(&blocks, suspect))),
        Err(e) => (piece, Outcome::WriteFailed(e)),
    }
}

/// Each block's SHA-1, when wanted.
fn digests(blocks: &[Bytes], wanted: bool) -> Option<Digests> {
    wanted.then(|| {
        blocks
            .iter()
            .map(|b| hash_blocks(std::slice::from_ref(b)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(p: u32) -> Vec<Bytes> {
        vec![Bytes::from(vec![p as u8; 4])]
    }

    #[tokio::test(start_paused = true)]
    async fn pairs_go_at_once_and_a_lone_piece_waits_for_a_partner_or_the_wait() {
        let mut r = Ready::default();
        r.push(7, piece(7));
        assert!(r.take(false, false).is_none(), "a lone piece waits");
        assert!(
            r.wake_at(true).is_none(),
            "a running job's end is the next look"
        );
        let wake = r.wake_at(false).unwrap();
        r.push(3, piece(3));
        r.push(8, piece(8));
        // Two queued: the first goes with its neighbour, not with the next in line.
        let (a, b) = r.take(true, false).unwrap();
        assert_eq!((a.0, b.map(|b| b.0)), (7, Some(8)));
        // The one left waits anew, then goes alone once the wait is over.
        assert!(r.take(false, false).is_none());
        tokio::time::sleep_until(wake + PAIR_WAIT).await;
        assert!(r.take(true, false).is_none(), "not while a job runs");
        let (a, b) = r.take(false, false).unwrap();
        assert_eq!((a.0, b.is_none()), (3, true));
        assert!(r.wake_at(false).is_none());
    }

    #[test]
    fn closing_sends_a_lone_piece_at_once_and_drain_empties() {
        let mut r = Ready::default();
        r.push(1, piece(1));
        assert_eq!(r.take(false, true).map(|(a, _)| a.0), Some(1));
        r.push(2, piece(2));
        assert_eq!(r.drain().collect::<Vec<_>>(), [2]);
        assert!(r.wake_at(false).is_none());
    }
}

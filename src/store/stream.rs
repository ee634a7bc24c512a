//! Pieces too large to buffer whole ([`crate::layout::streamed`]): each block is written to
//! disk as soon as a hashing slot takes it, and the piece's SHA-1 advances over the blocks
//! in order as they reach the disk.
//!
//! The rule: a streamed piece never holds more memory than the blocks waiting for its next
//! job (each covered by its reservation, so the store's budget bounds them), whatever the
//! piece length. In-order blocks are hashed from memory, then written; a block that arrives
//! ahead of the hash (several peers share a piece, or a peer answers out of order) is
//! written at once and read back, at most [`READ_BACK`] bytes at a time, when the hash
//! reaches it. So out-of-order blocks never pin the budget and cannot deadlock it.
//!
//! Invariants:
//! - A streamed piece's bytes reach the disk before they are verified, but the piece is
//!   counted as had only once its whole SHA-1 matched. A failed piece is dropped and simply
//!   re-downloaded over the same bytes; resume data never names it, and a recheck finds it
//!   wrong.
//! - At most one job per piece runs at a time (the hasher lives in the job while it runs);
//!   blocks that arrive meanwhile wait in `queued` for the next one.

use std::collections::BTreeMap;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::handle::Reservation;
use super::{Storage, StoreError};

/// Most bytes read back from disk at once when the hash catches up with blocks that were
/// written ahead of it: one bounded buffer per job, never a piece.
pub const READ_BACK: u32 = 1 << 20;

/// A streamed piece receiving blocks.
pub(super) struct Stream {
    /// `None` while a job holds it.
    hasher: Option<Sha1>,
    /// Blocks `[0, hashed)` are hashed (and on disk).
    hashed: u32,
    /// Per block: on disk (this attempt).
    written: Vec<bool>,
    /// Received, waiting for the next job.
    queued: BTreeMap<u32, (Bytes, Reservation)>,
    /// Handed to the running job; released when it ends.
    in_job: Vec<Reservation>,
    pub peers: Vec<u64>,
}

/// What a job is given: everything it needs, owned.
pub(super) struct Job {
    pub piece: u32,
    hasher: Sha1,
    hashed: u32,
    written: Vec<bool>,
    batch: Vec<(u32, Bytes)>,
}

/// What a job hands back.
pub(super) struct Done {
    hasher: Sha1,
    hashed: u32,
    wrote: Vec<u32>,
    /// `Some(matched)` once every block has been hashed.
    pub verdict: Result<Option<bool>, StoreError>,
}

impl Stream {
    pub fn new(blocks: u32) -> Self {
        Stream {
            hasher: Some(Sha1::new()),
            hashed: 0,
            written: vec![false; blocks as usize],
            queued: BTreeMap::new(),
            in_job: Vec::new(),
            peers: Vec::new(),
        }
    }

    /// Takes block `index`; false for a duplicate (the caller drops it).
    pub fn add(&mut self, peer: u64, index: u32, data: Bytes, reservation: Reservation) -> bool {
        let i = index as usize;
        if self.written.get(i) != Some(&false) || self.queued.contains_key(&index) {
            return false;
        }
        self.queued.insert(index, (data, reservation));
        if !self.peers.contains(&peer) {
            self.peers.push(peer);
        }
        true
    }

    /// Whether a job could start now: blocks wait and no job runs.
    pub fn startable(&self) -> bool {
        self.hasher.is_some() && !self.queued.is_empty()
    }

    /// The next job, taking the queued blocks (their reservations stay here until
    /// [`Stream::finish`]).
    pub fn start(&mut self, piece: u32) -> Option<Job> {
        if !self.startable() {
            return None;
        }
        let hasher = self.hasher.take()?;
        let mut batch = Vec::with_capacity(self.queued.len());
        for (i, (data, r)) in std::mem::take(&mut self.queued) {
            batch.push((i, data));
            self.in_job.push(r);
        }
        Some(Job {
            piece,
            hasher,
            hashed: self.hashed,
            written: self.written.clone(),
            batch,
        })
    }

    /// Takes a job's result back; the batch's reservations are released.
    pub fn finish(&mut self, done: Done) -> Result<Option<bool>, StoreError> {
        self.in_job.clear();
        self.hasher = Some(done.hasher);
        self.hashed = done.hashed;
        for i in done.wrote {
            self.written[i as usize] = true;
        }
        done.verdict
    }
}

impl Job {
    /// Writes the batch (runs of adjacent blocks in one vectored write each), then hashes
    /// every block from `hashed` on that is now on disk, from memory when the batch has it.
    /// Blocking: call on a hashing thread.
    pub fn run(self, storage: &Storage, expected: Option<[u8; 20]>) -> Done {
        let Job {
            piece,
            mut hasher,
            mut hashed,
            mut written,
            batch,
        } = self;
        let layout = storage.layout();
        let n = layout.blocks_in_piece(piece);
        let mut wrote = Vec::with_capacity(batch.len());
        let verdict = (|| {
            let mut i = 0;
            while i < batch.len() {
                let mut j = i + 1;
                while j < batch.len() && batch[j].0 == batch[j - 1].0 + 1 {
                    j += 1;
                }
                let offset = batch[i].0 * crate::types::BLOCK_SIZE;
                let blocks: Vec<Bytes> = batch[i..j].iter().map(|(_, d)| d.clone()).collect();
                storage.write_at(piece, offset, &blocks)?;
                for (k, _) in &batch[i..j] {
                    written[*k as usize] = true;
                    wrote.push(*k);
                }
                i = j;
            }
            let mut from_batch = batch.iter().peekable();
            while hashed < n && written[hashed as usize] {
                while from_batch.next_if(|(k, _)| *k < hashed).is_some() {}
                if let Some((_, data)) = from_batch.next_if(|(k, _)| *k == hashed) {
                    hasher.update(data);
                    hashed += 1;
                    continue;
                }
                // Written by an earlier job, ahead of the hash: read back a bounded run.
                let start = layout.block(piece, hashed).map_or(0, |b| b.offset);
                let mut end = hashed;
                let mut len = 0u32;
                while end < n && written[end as usize] && len < READ_BACK {
                    if batch.iter().any(|(k, _)| *k == end) {
                        break;
                    }
                    len += layout.block(piece, end).map_or(0, |b| b.len);
                    end += 1;
                }
                hasher.update(storage.read(piece, start, len)?);
                hashed = end;
            }
            if hashed < n {
                return Ok(None);
            }
            let digest: [u8; 20] = std::mem::take(&mut hasher).finalize().into();
            Ok(Some(Some(digest) == expected))
        })();
        Done {
            hasher,
            hashed,
            wrote,
            verdict,
        }
    }
}

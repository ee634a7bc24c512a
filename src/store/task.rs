//! The store task: the one owner of buffered blocks.
//!
//! Connection tasks hold a [`StoreHandle`]. For each Piece message they first
//! [`reserve`](StoreHandle::reserve) its length from a byte budget (a semaphore of
//! `max_buffer` permits), then read it off the socket, then hand it over with
//! [`write_block`](StoreHandle::write_block). When the budget is spent, `reserve` waits, so
//! sockets stop being read: that is the back-pressure from disk to network.
//!
//! Invariants:
//! - A block's reservation lives until its piece has been hashed and written, or until the
//!   block is dropped (duplicate, invalid, piece already verified, hash mismatch). So the
//!   unbounded command channel holds at most `max_buffer` bytes of block data, and at most
//!   `max_buffer` messages (every reservation is at least one byte).
//! - A piece is written only after its SHA-1 matched; a mismatched piece is dropped whole.
//!   Except a piece too large to buffer whole ([`crate::layout::streamed`] with
//!   [`StoreConfig::budget_cap`]): it is streamed to disk as its blocks arrive and hashed
//!   in order (`stream.rs`), still counted as verified only once its whole SHA-1 matched.
//!   Which rule applies is fixed per torrent at [`spawn`].
//! - A buffered piece that fails has each block's SHA-1 and sender remembered (bounded:
//!   `smart_ban.rs`); when it later verifies, the senders of blocks that differ are
//!   reported as [`StoreEvent::CorruptSenders`].
//! - Hashing and writing run on blocking threads, at most `hash_threads` jobs at a time
//!   for this store (a job hashes one or two pieces: `pairs.rs`), and at most the pool's
//!   permits across every store sharing [`StoreConfig::pool`]; the task itself only moves
//!   `Bytes` handles around.
//! - After a write error ([`StoreEvent::Fatal`]) the store accepts no more blocks
//!   (`write_block` returns [`StoreClosed`]); pieces already hashing finish, and data already
//!   verified on disk is untouched. A disk error while reading for an upload is reported
//!   as `Fatal` too: data that cannot be read is never served, and the torrent stops.
//!
//! Shutdown: the task ends when every [`StoreHandle`] has been dropped, after it has
//! hashed and written every complete piece it holds (partial pieces are discarded). Await
//! the `JoinHandle` from [`spawn`] to know the flush is done; it returns the pieces
//! verified on disk by then (what resume data may record, once the files are synced).
//!
//! Caller's duty: buffered partial pieces only leave the buffer by completing, so the engine
//! must keep (pieces in progress) × (piece length) within `max_buffer`, or the buffer can
//! fill with partial pieces that no one can finish. Streamed pieces have no such duty: their
//! blocks leave the buffer as soon as a hashing slot writes them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::handle::{Reservation, StoreHandle, Write};
use super::pairs::{verify_and_write, Done, Outcome, Ready};
use super::smart_ban::SmartBan;
use super::stream::{self, Stream};
use super::{Storage, StoreError};
use crate::error::error_chain;
use crate::layout;
use crate::types::{Bitfield, BLOCK_SIZE};

/// Tuning of the store task.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bytes of block data buffered at most (reserved, queued, or awaiting hash/write).
    /// Raised to one piece length if smaller, so any single piece can complete, unless
    /// pieces are streamed (then at least one block).
    pub max_buffer: usize,
    /// The most the budget may ever grow to ([`StoreHandle::grow_budget`] stops there;
    /// `TorrentConfig::max_buffer_cap`). Pieces that two of would not fit in it are
    /// streamed ([`crate::layout::streamed`]), so memory stays within it for any piece
    /// length.
    pub budget_cap: usize,
    /// Pieces hashed (and written) in parallel; 0 is treated as 1.
    pub hash_threads: usize,
    /// Hashing slots shared with other stores (the session's pool), if any: a job waits
    /// for a permit before it takes a blocking thread.
    pub pool: Option<Arc<Semaphore>>,
}

/// What the store tells the driver.
#[derive(Debug)]
pub enum StoreEvent {
    /// The piece hashed correctly and is on disk.
    Verified { piece: u32 },
    /// The piece's hash did not match; its blocks were dropped. `peers` contributed blocks.
    Failed { piece: u32, peers: Vec<u64> },
    /// A disk error: the store accepts no more blocks. The download should end.
    Fatal(StoreError),
    /// The piece verified after a failed attempt, in which `peers` sent blocks that differ
    /// from the verified ones (after its `Verified`).
    CorruptSenders { piece: u32, peers: Vec<u64> },
}

/// Starts the store task on the current tokio runtime. `have` marks pieces already verified
/// (their blocks are ignored); `hashes[i]` is piece `i`'s SHA-1.
pub fn spawn(
    storage: Arc<Storage>,
    hashes: Arc<Vec<[u8; 20]>>,
    have: Bitfield,
    config: StoreConfig,
    events: mpsc::Sender<StoreEvent>,
) -> (StoreHandle, JoinHandle<Bitfield>) {
    let piece_len = storage.layout().piece_len() as usize;
    let streamed = layout::streamed(
        storage.layout().piece_len(),
        config.budget_cap.max(config.max_buffer),
    );
    let floor = if streamed {
        BLOCK_SIZE as usize
    } else {
        piece_len
    };
    let max_buffer = config.max_buffer.clamp(floor, Semaphore::MAX_PERMITS);
    if max_buffer != config.max_buffer {
        tracing::warn!(
            requested = config.max_buffer,
            used = max_buffer,
            "store buffer adjusted to fit at least one piece"
        );
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = StoreHandle {
        tx,
        storage: storage.clone(),
        budget: Arc::new(Semaphore::new(max_buffer)),
        capacity: Arc::new(AtomicUsize::new(max_buffer)),
        limit: config.budget_cap.max(max_buffer),
        events: events.clone(),
    };
    tracing::debug!(piece_len, budget = max_buffer, streamed, "store starting");
    let task = Task {
        storage,
        hashes,
        have,
        hash_threads: config.hash_threads.max(1),
        pool: config.pool,
        partial: HashMap::new(),
        streamed,
        streams: HashMap::new(),
        stream_ready: VecDeque::new(),
        ready: Ready::default(),
        busy: HashMap::new(),
        jobs: JoinSet::new(),
        events,
        fatal: false,
        smart_ban: SmartBan::default(),
    };
    let join = tokio::spawn(task.run(rx).instrument(tracing::info_span!("store")));
    (handle, join)
}

/// A piece still receiving blocks.
struct Partial {
    blocks: Vec<Option<Bytes>>,
    /// Who sent each block (meaningful where `blocks` is `Some`).
    from: Vec<u64>,
    received: u32,
    peers: Vec<u64>,
    reservations: Vec<Reservation>,
}

/// A complete piece queued for, or undergoing, hashing and writing.
struct Busy {
    peers: Vec<u64>,
    from: Vec<u64>,
    _reservations: Vec<Reservation>,
}

struct Task {
    storage: Arc<Storage>,
    hashes: Arc<Vec<[u8; 20]>>,
    have: Bitfield,
    hash_threads: usize,
    pool: Option<Arc<Semaphore>>,
    partial: HashMap<u32, Partial>,
    /// Whether this torrent's pieces are streamed (then `partial`, `ready` and `busy` stay
    /// empty and `streams` is used instead).
    streamed: bool,
    streams: HashMap<u32, Stream>,
    /// Streamed pieces with blocks waiting for a job, each once.
    stream_ready: VecDeque<u32>,
    /// Complete pieces waiting for a hashing slot, with their blocks in order.
    ready: Ready,
    /// Pieces in `ready` or in `jobs`: who contributed, and the budget they hold.
    busy: HashMap<u32, Busy>,
    jobs: JoinSet<Done>,
    events: mpsc::Sender<StoreEvent>,
    fatal: bool,
    smart_ban: SmartBan,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Write>) -> Bitfield {
        let mut open = true;
        loop {
            self.start_jobs(!open);
            if !open && self.jobs.is_empty() {
                break;
            }
            // A lone ready piece waiting for a partner: look again when its wait is over.
            let wait = self.ready.wake_at(!self.jobs.is_empty());
            let wake = wait.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep_until(wake), if wait.is_some() => {}
                msg = rx.recv(), if open => match msg {
                    Some(w) => self.on_write(w),
                    None => open = false,
                },
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => match done {
                    Ok(done) => {
                        for (piece, outcome) in done {
                            self.on_done(piece, outcome, &mut rx).await;
                        }
                    }
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled: the runtime is shutting down under us.
                    Err(_) => break,
                },
            }
        }
        tracing::debug!(
            verified = self.have.count_ones(),
            dropped_partial = self.partial.len(),
            "store task finished"
        );
        self.have
    }

    fn on_write(&mut self, w: Write) {
        let Write {
            peer,
            block,
            data,
            reservation,
        } = w;
        if self.fatal {
            return;
        }
        let layout = self.storage.layout();
        let Some(index) = layout.block_index(&block) else {
            tracing::debug!(peer, ?block, "dropping block that is not a layout block");
            return;
        };
        if data.len() != block.len as usize {
            tracing::debug!(
                peer,
                ?block,
                got = data.len(),
                "dropping block of wrong length"
            );
            return;
        }
        let piece = block.piece;
        if self.have.get(piece) || self.busy.contains_key(&piece) {
            tracing::trace!(peer, ?block, "block of a complete piece");
            return;
        }
        let n = layout.blocks_in_piece(piece);
        if self.streamed {
            let s = self.streams.entry(piece).or_insert_with(|| Stream::new(n));
            if !s.add(peer, index, data, reservation) {
                tracing::trace!(peer, ?block, "duplicate block");
            } else if s.startable() && !self.stream_ready.contains(&piece) {
                self.stream_ready.push_back(piece);
            }
            return;
        }
        let p = self.partial.entry(piece).or_insert_with(|| Partial {
            blocks: vec![None; n as usize],
            from: vec![0; n as usize],
            received: 0,
            peers: Vec::new(),
            reservations: Vec::with_capacity(n as usize),
        });
        let slot = &mut p.blocks[index as usize];
        if slot.is_some() {
            tracing::trace!(peer, ?block, "duplicate block");
            return;
        }
        *slot = Some(data);
        p.from[index as usize] = peer;
        p.received += 1;
        p.reservations.push(reservation);
        if !p.peers.contains(&peer) {
            p.peers.push(peer);
        }
        tracing::trace!(peer, ?block, "block buffered");
        if p.received == n {
            if let Some(p) = self.partial.remove(&piece) {
                let blocks = p.blocks.into_iter().flatten().collect();
                self.ready.push(piece, blocks);
                self.busy.insert(
                    piece,
                    Busy {
                        peers: p.peers,
                        from: p.from,
                        _reservations: p.reservations,
                    },
                );
            }
        }
    }

    /// Moves ready pieces onto blocking threads while slots are free: one or two complete
    /// pieces per job, as [`Ready::take`] decides, then streamed pieces.
    fn start_jobs(&mut self, closing: bool) {
        while self.jobs.len() < self.hash_threads {
            if let Some((first, second)) = self.ready.take(!self.jobs.is_empty(), closing) {
                let storage = self.storage.clone();
                let hashes = self.hashes.clone();
                // A piece that failed before: its verified blocks are the smart ban's reference.
                let (piece, suspect) = (first.0, self.smart_ban.is_suspect(first.0));
                let second = second.map(|s| {
                    let suspect = self.smart_ban.is_suspect(s.0);
                    (s, suspect)
                });
                self.spawn_job(piece, move || {
                    verify_and_write(&storage, &hashes, (first, suspect), second)
                });
                continue;
            }
            let Some(piece) = self.stream_ready.pop_front() else {
                return;
            };
            let Some(job) = self.streams.get_mut(&piece).and_then(|s| s.start(piece)) else {
                continue;
            };
            let storage = self.storage.clone();
            let expected = self.hashes.get(piece as usize).copied();
            self.spawn_job(piece, move || {
                vec![(piece, Outcome::Streamed(job.run(&storage, expected)))]
            });
        }
    }

    /// Runs `job` on a blocking thread, after taking a permit of the shared pool if any.
    fn spawn_job(&mut self, piece: u32, job: impl FnOnce() -> Done + Send + 'static) {
        match self.pool.clone() {
            None => {
                self.jobs.spawn_blocking(job);
            }
            Some(pool) => {
                self.jobs.spawn(async move {
                    // The pool is never closed; without a permit the job still runs.
                    let _permit = pool.acquire_owned().await.ok();
                    match tokio::task::spawn_blocking(job).await {
                        Ok(done) => done,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => vec![(piece, Outcome::WriteFailed(StoreError::ShuttingDown))],
                    }
                });
            }
        }
    }

    /// Handles a finished job. On a write error, closes `rx` (before reporting, so once the
    /// driver sees `Fatal`, `write_block` already fails).
    async fn on_done(
        &mut self,
        piece: u32,
        outcome: Outcome,
        rx: &mut mpsc::UnboundedReceiver<Write>,
    ) {
        let (peers, outcome) = match outcome {
            Outcome::Streamed(done) => match self.stream_done(piece, done) {
                Some(done) => done,
                None => return,
            },
            // Release the budget first, so waiting connections resume before we report.
            // (`map` consumes the entry, dropping its reservations here, not after the send.)
            outcome => {
                let busy = self.busy.remove(&piece);
                let (peers, from) = busy.map(|b| (b.peers, b.from)).unwrap_or_default();
                if let Outcome::Mismatch(Some(digests)) = &outcome {
                    self.smart_ban.failed(piece, &from, digests);
                }
                (peers, outcome)
            }
        };
        let event = match outcome {
            Outcome::Verified(digests) => {
                self.have.set(piece);
                tracing::debug!(piece, "piece verified");
                let liars = match digests {
                    Some(good) => self.smart_ban.verified(piece, &good),
                    None => {
                        self.smart_ban.forget(piece);
                        Vec::new()
                    }
                };
                if !liars.is_empty() {
                    let verified = StoreEvent::Verified { piece };
                    let _ = self.events.send(verified).await;
                    tracing::info!(piece, peers = ?liars, "blocks of a failed attempt differ from the verified piece");
                    StoreEvent::CorruptSenders {
                        piece,
                        peers: liars,
                    }
                } else {
                    StoreEvent::Verified { piece }
                }
            }
            Outcome::Mismatch(_) => {
                let files = self.storage.files_of_piece(piece);
                tracing::warn!(piece, files = %files, "piece failed its hash check");
                StoreEvent::Failed { piece, peers }
            }
            // Taken apart above; never reaches here.
            Outcome::Streamed(_) => return,
            Outcome::WriteFailed(e) => {
                // The error reaches the user once, as the torrent's own; not as a log line too.
                tracing::debug!(piece, error = %error_chain(&e), "disk write failed; store stops");
                self.fatal = true;
                rx.close();
                // Drop every queued and buffered block so waiting connections are released.
                while rx.try_recv().is_ok() {}
                self.partial.clear();
                self.streams.clear();
                self.stream_ready.clear();
                for p in self.ready.drain() {
                    self.busy.remove(&p);
                }
                StoreEvent::Fatal(e)
            }
        };
        // A closed receiver means no one listens any more; keep flushing regardless.
        let _ = self.events.send(event).await;
    }
}

impl Task {
    /// Takes back a streamed piece's job (releasing its blocks' budget): `None` while the
    /// piece is incomplete (its next job is queued if blocks wait), else who contributed
    /// and the verdict.
    fn stream_done(&mut self, piece: u32, done: stream::Done) -> Option<(Vec<u64>, Outcome)> {
        let s = self.streams.get_mut(&piece)?;
        let outcome = match s.finish(done) {
            Ok(None) => {
                if s.startable() && !self.stream_ready.contains(&piece) {
                    self.stream_ready.push_back(piece);
                }
                return None;
            }
            // Streamed pieces keep no blocks to compare: no smart ban for them.
            Ok(Some(true)) => Outcome::Verified(None),
            Ok(Some(false)) => Outcome::Mismatch(None),
            Err(e) => Outcome::WriteFailed(e),
        };
        let peers = self.streams.remove(&piece).map(|s| s.peers);
        Some((peers.unwrap_or_default(), outcome))
    }
}

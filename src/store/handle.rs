//! The store's handle: what connection tasks hold to reserve buffer budget, hand over
//! blocks and read blocks for uploads ([`StoreHandle`]), and the [`Reservation`] that ties a
//! block's bytes to the budget. The task that owns the blocks is `task.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::task::StoreEvent;
use super::{Storage, StoreError};
use crate::types::BlockRef;

/// The store task is gone (every block is refused after a fatal disk error, or at shutdown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the piece store has stopped")]
pub struct StoreClosed;

/// Bytes of the buffer budget held for one block. Give it to
/// [`write_block`](StoreHandle::write_block), or drop it to return the bytes.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.permit.num_permits()
    }

    /// Never true: a reservation holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One block handed to the task.
pub(super) struct Write {
    pub peer: u64,
    pub block: BlockRef,
    pub data: Bytes,
    pub reservation: Reservation,
}

/// Cloneable access to the store task.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    pub(super) tx: mpsc::UnboundedSender<Write>,
    pub(super) storage: Arc<Storage>,
    pub(super) budget: Arc<Semaphore>,
    /// Permits the budget was created with plus every [`StoreHandle::grow_budget`].
    pub(super) capacity: Arc<AtomicUsize>,
    /// [`StoreConfig::budget_cap`], or the starting budget if larger.
    pub(super) limit: usize,
    /// Where a failed upload read is reported as [`StoreEvent::Fatal`].
    pub(super) events: mpsc::Sender<StoreEvent>,
}

impl StoreHandle {
    /// Waits until `len` bytes of buffer budget are free and takes them. Call BEFORE reading
    /// the next Piece payload from a socket. `len` is clamped to `1..=` the budget.
    pub async fn reserve(&self, len: u32) -> Reservation {
        let n = self.permits(len);
        match self.budget.clone().acquire_many_owned(n).await {
            Ok(permit) => Reservation { permit },
            Err(_) => unreachable!("the budget semaphore is never closed"),
        }
    }

    /// [`reserve`](Self::reserve) without waiting: `None` when the budget is spent.
    pub fn try_reserve(&self, len: u32) -> Option<Reservation> {
        let n = self.permits(len);
        let permit = self.budget.clone().try_acquire_many_owned(n).ok()?;
        Some(Reservation { permit })
    }

    fn permits(&self, len: u32) -> u32 {
        (len as usize).clamp(1, self.capacity.load(Ordering::Relaxed)) as u32
    }

    /// Hands a received block to the store. Never blocks: the reservation already bounds
    /// memory. Blocks that are not exactly one of the layout's blocks, duplicates, and blocks
    /// of verified pieces are dropped silently (their reservation is released).
    pub fn write_block(
        &self,
        peer: u64,
        block: BlockRef,
        data: Bytes,
        reservation: Reservation,
    ) -> Result<(), StoreClosed> {
        self.tx
            .send(Write {
                peer,
                block,
                data,
                reservation,
            })
            .map_err(|_| StoreClosed)
    }

    /// Reads a block for an upload (on a blocking thread). The range must lie inside a piece
    /// and be at most one block long.
    pub async fn read_block(&self, block: BlockRef) -> Result<Bytes, StoreError> {
        let mut v = self.read_blocks(vec![block]).await?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Reads several blocks for uploads in one blocking job; runs of adjacent blocks of the
    /// same piece (a peer usually asks in order) are one positioned read, split without
    /// copying. Each block must be a valid request (inside its piece, at most one block).
    pub async fn read_blocks(&self, blocks: Vec<BlockRef>) -> Result<Vec<Bytes>, StoreError> {
        let layout = self.storage.layout();
        if let Some(b) = blocks.iter().find(|b| !layout.is_valid_request(b)) {
            return Err(StoreError::OutOfRange {
                piece: b.piece,
                offset: b.offset,
                len: b.len,
            });
        }
        let storage = self.storage.clone();
        let job = tokio::task::spawn_blocking(move || read_runs(&storage, &blocks));
        let result = match job.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::ShuttingDown),
        };
        if let Err(e) = &result {
            // Data we announced can no longer be read (deleted, shortened, a failing disk):
            // the torrent stops with this error rather than let every peer find out alone.
            if let Some(copy) = e.disk_copy() {
                let _ = self.events.try_send(StoreEvent::Fatal(copy));
            }
        }
        result
    }

    /// Bytes of the budget currently held: reserved by connections, queued, buffered, or
    /// being hashed and written.
    pub fn buffered_bytes(&self) -> usize {
        self.capacity.load(Ordering::Relaxed) - self.budget.available_permits()
    }

    /// Raises the budget to `bytes` in all (never lowers it): the engine found that its
    /// links need more data in flight than the budget lets it request.
    /// Never past [`StoreConfig::budget_cap`]: the engine sizes its wish in pieces, and a
    /// streamed piece may be larger than the whole cap.
    pub fn grow_budget(&self, bytes: usize) {
        let bytes = bytes.min(self.limit).min(Semaphore::MAX_PERMITS);
        let old = self.capacity.fetch_max(bytes, Ordering::Relaxed);
        if bytes > old {
            self.budget.add_permits(bytes - old);
        }
    }
}

/// Blocks in order, each run of adjacent blocks of one piece read with one `read`.
fn read_runs(storage: &Storage, blocks: &[BlockRef]) -> Result<Vec<Bytes>, StoreError> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut i = 0;
    while i < blocks.len() {
        let first = blocks[i];
        let mut j = i + 1;
        let mut end = first.offset + first.len;
        while j < blocks.len() && blocks[j].piece == first.piece && blocks[j].offset == end {
            end += blocks[j].len;
            j += 1;
        }
        let run = storage.read(first.piece, first.offset, end - first.offset)?;
        for b in &blocks[i..j] {
            let at = (b.offset - first.offset) as usize;
            out.push(run.slice(at..at + b.len as usize));
        }
        i = j;
    }
    Ok(out)
}

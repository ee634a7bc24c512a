//! Resume: hash what is already on disk and report which pieces are present.
//!
//! Each of `threads` threads takes a contiguous range of pieces and walks it with large
//! sequential reads (whole pieces, about [`READ_BUF`] bytes at a time, adjacent file runs
//! merged into one `pread`), hashing piece by piece straight from the buffer.
//!
//! Invariants: absent data (a missing file, a file shorter than the layout says) only means
//! the pieces touching it are not present, never an error; any other I/O error aborts the
//! whole recheck. `progress` grows by each piece's size once that piece has been judged, so
//! it ends at the torrent's total length.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use super::{Storage, StoreError};
use crate::types::Bitfield;

/// Target size of one read. Large enough that syscall overhead vanishes next to hashing,
/// small enough to stay in L2/L3-friendly territory per thread.
pub const READ_BUF: usize = 4 << 20;

/// Hashes existing data on `threads` threads; returns the pieces whose SHA-1 matches
/// `hashes`. Checks `cancel` between reads (→ [`StoreError::Cancelled`]) and adds the bytes
/// judged so far to `progress`.
pub fn recheck(
    storage: &Storage,
    hashes: &[[u8; 20]],
    threads: usize,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<Bitfield, StoreError> {
    let n = storage.layout().num_pieces();
    let threads = threads.clamp(1, n.max(1) as usize) as u32;
    let per_thread = n.div_ceil(threads);
    // Set when any thread fails, so the others stop early.
    let abort = AtomicBool::new(false);
    let results: Vec<Result<Vec<u32>, StoreError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let start = (t * per_thread).min(n);
                let end = (start + per_thread).min(n);
                let abort = &abort;
                s.spawn(move || {
                    let r = check_range(storage, hashes, start..end, progress, cancel, abort);
                    if r.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut have = Bitfield::new(n);
    let mut first_err = None;
    for r in results {
        match r {
            Ok(pieces) => pieces.into_iter().for_each(|p| {
                have.set(p);
            }),
            // Prefer a real error over the Cancelled that other threads report after it.
            Err(StoreError::Cancelled) if first_err.is_some() => {}
            Err(e) => first_err = Some(e),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => {
            tracing::info!(pieces = n, have = have.count_ones(), "recheck done");
            Ok(have)
        }
    }
}

/// A run of bytes that lies in one file and lands contiguously in the read buffer.
#[derive(Clone, Copy)]
struct Run {
    file: usize,
    file_offset: u64,
    buf_offset: usize,
    len: usize,
}

fn check_range(
    storage: &Storage,
    hashes: &[[u8; 20]],
    pieces: Range<u32>,
    progress: &AtomicU64,
    cancel: &AtomicBool,
    abort: &AtomicBool,
) -> Result<Vec<u32>, StoreError> {
    let layout = storage.layout();
    let piece_len = layout.piece_len() as usize;
    let per_buf = (READ_BUF / piece_len).max(1) as u32;
    let range_bytes = layout.piece_start(pieces.end).min(layout.total_len())
        - layout.piece_start(pieces.start).min(layout.total_len());
    let buf_len = (per_buf as u64 * piece_len as u64).min(range_bytes) as usize;
    let mut buf = vec![0u8; buf_len];
    let mut found = Vec::new();
    // Buffer ranges that could not be read (missing file or past its end).
    let mut holes: Vec<Range<usize>> = Vec::new();
    let mut p = pieces.start;
    while p < pieces.end {
        if cancel.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
            return Err(StoreError::Cancelled);
        }
        let chunk = p..(p + per_buf).min(pieces.end);
        holes.clear();
        let mut run: Option<Run> = None;
        for q in chunk.clone() {
            for span in layout.piece_spans(q) {
                let next = Run {
                    file: span.file,
                    file_offset: span.file_offset,
                    buf_offset: (q - p) as usize * piece_len + span.piece_offset as usize,
                    len: span.len as usize,
                };
                match &mut run {
                    Some(r)
                        if r.file == next.file
                            && r.file_offset + r.len as u64 == next.file_offset
                            && r.buf_offset + r.len == next.buf_offset =>
                    {
                        r.len += next.len
                    }
                    _ => {
                        if let Some(r) = run.replace(next) {
                            read_run(storage, r, &mut buf, &mut holes)?;
                        }
                    }
                }
            }
        }
        if let Some(r) = run {
            read_run(storage, r, &mut buf, &mut holes)?;
        }
        for q in chunk.clone() {
            let lo = (q - p) as usize * piece_len;
            let size = layout.piece_size(q) as usize;
            let hi = lo + size;
            let absent = holes.iter().any(|h| h.start < hi && lo < h.end);
            if !absent {
                let digest: [u8; 20] = Sha1::digest(&buf[lo..hi]).into();
                if hashes.get(q as usize) == Some(&digest) {
                    found.push(q);
                }
            }
            progress.fetch_add(size as u64, Ordering::Relaxed);
        }
        p = chunk.end;
    }
    Ok(found)
}

fn read_run(
    storage: &Storage,
    r: Run,
    buf: &mut [u8],
    holes: &mut Vec<Range<usize>>,
) -> Result<(), StoreError> {
    // Past the data that existed at open there is nothing to find (and reading a fresh
    // sparse file would only make the kernel zero-fill pages for us to hash).
    let existing = storage.data_len(r.file).saturating_sub(r.file_offset);
    let want = (r.len as u64).min(existing) as usize;
    let dst = &mut buf[r.buf_offset..r.buf_offset + want];
    let got = storage.read_available(r.file, r.file_offset, dst)?;
    if got < r.len {
        holes.push(r.buf_offset + got..r.buf_offset + r.len);
    }
    Ok(())
}
